package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	shared   bool // SharedS3's: S3Main stops it, not a test
}

var bucketSeq atomic.Int64

// StartS3 starts an S3 server for the test and sets the AWS credential
// variables of the process to its identity (so the test cannot be
// parallel). Without ANNALS_TEST_S3_WEED the test is skipped, except in CI
// (CI=true), where it fails. A test that neither stops the server nor
// needs it alone takes SharedS3 instead: starting weed costs seconds.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	weed := s3Weed(t)
	s, err := newS3Server(weed, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	setS3Env(t)
	t.Cleanup(s.Stop)
	s.Start(t)
	return s
}

// The S3 server shared by the tests of a binary (SharedS3, S3Main).
var shared struct {
	sync.Mutex
	srv *S3Server // nil until the first SharedS3
	dir string
}

// SharedS3 returns the S3 server shared by the tests of one binary,
// started on first use, with a bucket of its own for the test, and sets
// the AWS credential variables like StartS3. S3Main, called from the
// binary's TestMain, stops it after the tests. The server cannot be
// stopped by a test: a test of an outage puts a Proxy in front of it.
func SharedS3(t testing.TB) *S3Server {
	t.Helper()
	weed := s3Weed(t)
	setS3Env(t)
	shared.Lock()
	defer shared.Unlock()
	if shared.srv == nil {
		dir, err := os.MkdirTemp("", "annals-weed-")
		if err != nil {
			t.Fatal(err)
		}
		srv, err := newS3Server(weed, dir)
		if err != nil {
			os.RemoveAll(dir)
			t.Fatal(err)
		}
		srv.shared = true
		shared.srv, shared.dir = srv, dir
		srv.Start(t)
		return srv
	}
	// A bucket of its own: its first write creates it.
	s := *shared.srv
	s.Bucket = fmt.Sprintf("annals-%d-%d", os.Getpid(), bucketSeq.Add(1))
	s.waitReady(t)
	return &s
}

// S3Main runs the tests of a binary, then stops the S3 server they shared
// (SharedS3), if one was started. Call it from TestMain.
func S3Main(m *testing.M) {
	code := m.Run()
	shared.Lock()
	if shared.srv != nil {
		shared.srv.kill()
		os.RemoveAll(shared.dir)
	}
	shared.Unlock()
	os.Exit(code)
}

func s3Weed(t testing.TB) string {
	t.Helper()
	weed := os.Getenv("ANNALS_TEST_S3_WEED")
	if weed == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("ANNALS_TEST_S3_WEED is unset: .ci/test builds weed with .ci/seaweedfs.sh and sets it")
		}
		t.Skip("ANNALS_TEST_S3_WEED is unset: run .ci/seaweedfs.sh and export its output")
	}
	return weed
}

func setS3Env(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", S3AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", S3SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// newS3Server prepares a server in dir, on free ports, without starting it.
func newS3Server(weed, dir string) (*S3Server, error) {
	config := fmt.Sprintf(`{"identities":[{"name":"annals","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`, S3AccessKey, S3SecretKey)
	if err := os.WriteFile(filepath.Join(dir, "s3.json"), []byte(config), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
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
			// Each bucket is a collection for which weed grows volumes of
			// its own (7 at once); the default of 8 volumes would hold one
			// bucket, and SharedS3 makes one per test. Volumes take disk as
			// they fill.
			"-master.volumeSizeLimitMB=256", "-volume.max=100"},
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		return nil, err
	}
	return s, nil
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
	if s.shared && s.cmd != nil {
		t.Fatal("the shared S3 server runs already: a test that restarts the server takes StartS3")
	}
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
	s.waitReady(t)
}

// waitReady waits until the server accepts a write to the bucket; the
// first write also creates the bucket (the identity is an admin).
func (s *S3Server) waitReady(t testing.TB) {
	t.Helper()
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

// Stop kills the server; its data stays for a Start. The shared server
// (SharedS3) cannot be stopped by a test.
func (s *S3Server) Stop() {
	if s.shared {
		panic("storetest: the shared S3 server cannot be stopped by a test: take StartS3, or put a Proxy in front of it")
	}
	s.kill()
}

func (s *S3Server) kill() {
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
func freePorts(n int) ([]int, error) {
	var ports []int
	for tries := 0; len(ports) < n && tries < 1000; tries++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
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
		return nil, errors.New("no free ports for weed")
	}
	return ports, nil
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
