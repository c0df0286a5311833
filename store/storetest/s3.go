package storetest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob" // s3:// URLs
)

// The S3 identity the test server accepts.
const (
	S3AccessKey = "annals-test"
	S3SecretKey = "annals-test-secret"
)

// S3Server is a real S3 server for tests: SeaweedFS's weed (built by
// .ci/seaweedfs.sh, named by ANNALS_TEST_S3_WEED), in a temporary
// directory, on free ports, with one admin identity. It can be stopped and
// started again, to test a store that goes down.
type S3Server struct {
	Bucket string
	// Endpoint is the server's base URL, http://127.0.0.1:PORT.
	Endpoint string
	weed     string
	dir      string
	args     []string
	cmd      *exec.Cmd
	exited   chan struct{}
}

var bucketSeq atomic.Int64

// StartS3 starts an S3 server for the test and sets the AWS credential
// variables of the process to its identity (so the test cannot be
// parallel). Without ANNALS_TEST_S3_WEED the test is skipped, except in CI
// (CI=true), where it fails.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	weed := os.Getenv("ANNALS_TEST_S3_WEED")
	if weed == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("ANNALS_TEST_S3_WEED is unset: .ci/test builds weed with .ci/seaweedfs.sh and sets it")
		}
		t.Skip("ANNALS_TEST_S3_WEED is unset: run .ci/seaweedfs.sh and export its output")
	}
	dir := t.TempDir()
	config := fmt.Sprintf(`{"identities":[{"name":"annals","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`, S3AccessKey, S3SecretKey)
	if err := os.WriteFile(filepath.Join(dir, "s3.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 4)
	s := &S3Server{
		Bucket:   fmt.Sprintf("annals-%d-%d", os.Getpid(), bucketSeq.Add(1)),
		Endpoint: fmt.Sprintf("http://127.0.0.1:%d", ports[3]),
		weed:     weed,
		dir:      dir,
		args: []string{"server", "-dir=" + filepath.Join(dir, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
			fmt.Sprintf("-master.port=%d", ports[0]), fmt.Sprintf("-volume.port=%d", ports[1]),
			"-filer", fmt.Sprintf("-filer.port=%d", ports[2]),
			"-s3", fmt.Sprintf("-s3.port=%d", ports[3]), "-s3.config=" + filepath.Join(dir, "s3.json"),
			"-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
			"-master.volumeSizeLimitMB=256"},
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", S3AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", S3SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Cleanup(s.Stop)
	s.Start(t)
	return s
}

// URL is the --log-store URL of the server's bucket.
func (s *S3Server) URL() string {
	return "s3://" + s.Bucket + "?region=us-east-1&use_path_style=true&endpoint=" + s.Endpoint
}

// Proxy puts a Proxy in front of the server and returns it with the
// --log-store URL of the bucket through it: taking the proxy down is an
// outage of the store that costs no restart of weed and loses nothing.
func (s *S3Server) Proxy(t testing.TB) (*Proxy, string) {
	t.Helper()
	p := StartProxy(t, strings.TrimPrefix(s.Endpoint, "http://"))
	return p, strings.Replace(s.URL(), "endpoint="+s.Endpoint, "endpoint=http://"+p.Addr(), 1)
}

// Start starts the server (again) and waits until it accepts a write.
func (s *S3Server) Start(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(s.weed, s.args...)
	s.cmd.Dir = s.dir
	logFile, err := os.Create(filepath.Join(s.dir, "weed.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting weed: %v", err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); logFile.Close(); close(s.exited) }()
	// The first write also creates the bucket (the identity is an admin).
	ctx := context.Background()
	deadline := time.Now().Add(3 * time.Minute) // a busy 2-core machine starts weed slowly
	for {
		err := func() error {
			b, err := blob.OpenBucket(ctx, s.URL())
			if err != nil {
				return err
			}
			defer b.Close()
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			return b.WriteAll(wctx, "ready", []byte("ok"), nil)
		}()
		if err == nil {
			return
		}
		select {
		case <-s.exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "weed.log"))
			t.Fatalf("weed exited before it served S3: %v\n%s", err, tail(string(log), 3000))
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "weed.log"))
			t.Fatalf("weed did not serve S3 within 3 minutes: %v\n%s", err, tail(string(log), 3000))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// Stop kills the server; its data stays for a Start.
func (s *S3Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// freePorts finds n ports free on 127.0.0.1 whose gRPC twins (port+10000,
// SeaweedFS's convention) are free too.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for tries := 0; len(ports) < n && tries < 1000; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port+10000 > 65535 {
			continue
		}
		twin, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000))
		if err != nil {
			continue
		}
		twin.Close()
		ports = append(ports, port)
	}
	if len(ports) < n {
		t.Fatal("no free ports for weed")
	}
	return ports
}

// Objects lists the log objects (keys under logs/) of a --log-store URL.
func Objects(t testing.TB, storeURL string) []string {
	t.Helper()
	ctx := context.Background()
	b, err := blob.OpenBucket(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var keys []string
	it := b.List(&blob.ListOptions{Prefix: "logs/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return keys
		}
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, obj.Key)
	}
}
