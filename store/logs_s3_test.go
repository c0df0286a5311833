package store_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// The S3 tests share one weed (storetest.SharedS3), each with a bucket of
// its own: a start of weed takes seconds on a busy machine.
func TestMain(m *testing.M) { storetest.S3Main(m) }

// TestLogsS3 runs the log tests against a real S3 server (SeaweedFS), on
// both databases.
func TestLogsS3(t *testing.T) {
	srv := storetest.SharedS3(t)
	for _, kind := range storetest.Kinds {
		for _, compression := range []string{"", store.CompressionGzip} {
			t.Run(kind+"/"+map[string]string{"": "plain"}[compression]+compression, func(t *testing.T) {
				s, _ := storetest.OpenWith(t, kind, store.Options{LogStore: srv.URL(), LogCompression: compression})
				testLogs(t, s, "", srv.URL())
			})
		}
	}
}

// stepLog writes realistic Tekton step output: timestamps, a build tool's
// progress, test results, the odd stack trace, with numbers that change.
func stepLog(w io.Writer, size int64, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	bw := bufio.NewWriterSize(w, 64<<10)
	defer bw.Flush()
	start := time.Date(2026, 11, 29, 20, 0, 0, 0, time.UTC)
	pkgs := []string{"github.com/acme/shop/cart", "github.com/acme/shop/payments", "github.com/acme/shop/internal/db", "k8s.io/client-go/tools/cache"}
	var written int64
	for line := 0; written < size; line++ {
		ts := start.Add(time.Duration(line) * 37 * time.Millisecond).Format(time.RFC3339Nano)
		var s string
		switch k := r.IntN(20); {
		case k < 6:
			s = fmt.Sprintf("%s go: downloading %s v1.%d.%d\n", ts, pkgs[r.IntN(len(pkgs))], r.IntN(30), r.IntN(10))
		case k < 12:
			s = fmt.Sprintf("%s === RUN   Test%s/case_%d\n%s --- PASS: Test%s/case_%d (%.2fs)\n", ts, []string{"Checkout", "Refund", "Cache", "Watch"}[r.IntN(4)], r.IntN(500), ts, "Checkout", r.IntN(500), r.Float64()*3)
		case k < 15:
			s = fmt.Sprintf("%s [INFO] Step %d/%d : RUN make build GOFLAGS=-mod=vendor sha256:%x\n", ts, r.IntN(40), 40, r.Uint64())
		case k < 17:
			s = fmt.Sprintf("%s ok  \t%s\t%.3fs\tcoverage: %.1f%% of statements\n", ts, pkgs[r.IntN(len(pkgs))], r.Float64()*20, r.Float64()*100)
		case k < 19:
			s = fmt.Sprintf("%s {\"level\":\"info\",\"ts\":%d.%06d,\"logger\":\"controller\",\"msg\":\"reconciled\",\"request_id\":\"%s\",\"duration_ms\":%d}\n", ts, 1764446400+line/27, r.IntN(1e6), uuidFrom(r), r.IntN(900))
		default:
			s = fmt.Sprintf("%s panic: runtime error: index out of range [%d] with length %d\n\ngoroutine %d [running]:\nmain.(*Server).handle(0xc000%06x)\n\t/workspace/src/server.go:%d +0x%x\n", ts, r.IntN(9), r.IntN(9), r.IntN(900), r.IntN(1<<24), r.IntN(600), r.IntN(1<<12))
		}
		if int64(len(s)) > size-written {
			s = s[:size-written]
		}
		n, _ := bw.WriteString(s)
		written += int64(n)
	}
}

func uuidFrom(r *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Uint64()&(1<<48-1))
}

func stepLogReader(size int64, seed uint64) io.Reader {
	pr, pw := io.Pipe()
	go func() { stepLog(pw, size, seed); pw.Close() }()
	return pr
}

// TestLogObjectsS3Sizes writes logs of 1 byte, 10 MB (a multipart upload)
// and 200 MB (not with -short), streamed, and reads them back byte for
// byte, whole and in ranges, plain and compressed.
func TestLogObjectsS3Sizes(t *testing.T) {
	srv := storetest.SharedS3(t)
	ctx := context.Background()
	sizes := []int64{1, 10 << 20, 200 << 20}
	if testing.Short() || raceDetector {
		// 200 MB under the race detector costs minutes; .ci/test runs these
		// tests again without it, where the 200 MB log takes seconds.
		sizes = sizes[:2]
	}
	for _, compression := range []string{"", store.CompressionZstd} {
		s, _ := storetest.OpenWith(t, "sqlite", store.Options{LogStore: srv.URL(), LogCompression: compression})
		trUID := uuid.NewString()
		tr := storetest.Upsert(t, s, store.RecordWrite{ResultName: store.ResultName("ci", trUID), UID: trUID, DataType: store.TypeTaskRun, UpdateSummary: true,
			Data: run("TaskRun", "ci", "tr", trUID, "True", "", nil, nil, nil)})[0]
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%s/%d", compression, size), func(t *testing.T) {
				wantSum := sha256.New()
				stepLog(wantSum, size, uint64(size))
				log, err := s.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: "build"}, stepLogReader(size, uint64(size)), 0)
				if err != nil {
					t.Fatal(err)
				}
				rc, n, err := s.OpenLogSized(ctx, log)
				if err != nil || n != size {
					t.Fatalf("open: %d bytes, %v", n, err)
				}
				gotSum := sha256.New()
				if _, err := io.Copy(gotSum, rc); err != nil {
					t.Fatal(err)
				}
				rc.Close()
				if !bytes.Equal(gotSum.Sum(nil), wantSum.Sum(nil)) {
					t.Fatal("the log read back differs from what was written")
				}
				if size > 1<<20 {
					// Ranges against the same bytes regenerated: across a chunk
					// boundary, and near the end.
					var want bytes.Buffer
					stepLog(&want, min(size, 12<<20), uint64(size))
					for _, off := range []int64{256<<10 - 5, 5<<20 + 3, 10<<20 - 100} {
						got, err := s.ReadLogRange(ctx, log, off, 100)
						if err != nil || !bytes.Equal(got, want.Bytes()[off:off+100]) {
							t.Errorf("range at %d: %q %v", off, got, err)
						}
					}
					tail, err := s.TailLog(ctx, log, 3)
					if err != nil || strings.Count(string(tail), "\n") > 3 || len(tail) == 0 {
						t.Errorf("tail: %q %v", tail, err)
					}
				}
			})
		}
	}
}

// A store that goes down: reads and writes answer ErrUnavailable, nothing
// stored is lost, and all works again once it is back. The outage is a
// proxy in front of weed that refuses connections, as a dead server's port
// does, and cuts the open ones: restarting weed itself took tens of
// seconds.
func TestLogObjectsS3Down(t *testing.T) {
	srv := storetest.SharedS3(t)
	// The AWS SDK retries a refused request twice, after up to 2 s and 4 s
	// by default; its 2026 retry rules start from 50 ms. The test still
	// goes through the retries, without the seconds of waiting.
	t.Setenv("AWS_NEW_RETRIES_2026", "true")
	ctx := context.Background()
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			proxy, logStore := srv.Proxy(t)
			f := newObjectStoreFixture(t, kind, store.Options{LogStore: logStore})
			log := f.write(t, "build", "before the outage\n")
			proxy.Down()
			if _, err := f.s.ReadLogRange(ctx, log, 0, 10); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("read while down: %v, want ErrUnavailable", err)
			}
			_, err := f.s.WriteLog(ctx, store.LogWrite{UID: log.UID, TaskRun: f.tr, Step: "build"}, strings.NewReader("rewritten during the outage\n"), 0)
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("write while down: %v, want ErrUnavailable", err)
			}
			proxy.Up(t)
			if got := readAll(t, f.s, log); got != "before the outage\n" {
				t.Errorf("after the outage the log reads %q", got)
			}
			// The retry of the failed write succeeds.
			if _, err := f.s.WriteLog(ctx, store.LogWrite{UID: log.UID, TaskRun: f.tr, Step: "build"}, strings.NewReader("rewritten\n"), 0); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, f.s, log); got != "rewritten\n" {
				t.Errorf("after the retry the log reads %q", got)
			}
		})
	}
}

// Wrong credentials: opening the store fails at once, saying so.
func TestLogObjectsS3WrongCredentials(t *testing.T) {
	srv := storetest.SharedS3(t)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
	_, err := store.Open(context.Background(), ":memory:", store.Options{LogStore: srv.URL()})
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("open with a wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), "not-the-secret") || strings.Contains(err.Error(), os.Getenv("AWS_ACCESS_KEY_ID")+":") {
		t.Errorf("the error quotes a credential: %v", err)
	}
}

// BenchmarkLogCompression compresses realistic step logs (stepLog) chunk
// by chunk as log objects are written, and reports the ratio
// (compressed/plain) and the throughput.
func BenchmarkLogCompression(b *testing.B) {
	var text bytes.Buffer
	stepLog(&text, 32<<20, 1)
	for _, compression := range []string{store.CompressionGzip, store.CompressionZstd} {
		b.Run(compression, func(b *testing.B) {
			b.SetBytes(int64(text.Len()))
			var out int
			for b.Loop() {
				out = 0
				for data := text.Bytes(); len(data) > 0; {
					n := min(len(data), store.LogChunkSize)
					c, err := store.CompressChunk(compression, data[:n])
					if err != nil {
						b.Fatal(err)
					}
					out += len(c)
					data = data[n:]
				}
			}
			b.ReportMetric(float64(out)/float64(text.Len()), "ratio")
		})
	}
}

// BenchmarkLogObjectsS3 writes and reads back a 64 MiB log through the
// store against the S3 server, streamed, and reports both throughputs.
func BenchmarkLogObjectsS3(b *testing.B) {
	srv := storetest.SharedS3(b)
	ctx := context.Background()
	const size = 64 << 20
	for _, compression := range []string{"", store.CompressionZstd} {
		b.Run("compression="+compression, func(b *testing.B) {
			s, _ := storetest.OpenWith(b, "sqlite", store.Options{LogStore: srv.URL(), LogCompression: compression})
			trUID := uuid.NewString()
			tr := storetest.Upsert(b, s, store.RecordWrite{ResultName: store.ResultName("ci", trUID), UID: trUID, DataType: store.TypeTaskRun, UpdateSummary: true,
				Data: run("TaskRun", "ci", "tr", trUID, "True", "", nil, nil, nil)})[0]
			var writing, reading time.Duration
			for b.Loop() {
				start := time.Now()
				log, err := s.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: "build"}, stepLogReader(size, 3), 0)
				if err != nil {
					b.Fatal(err)
				}
				writing += time.Since(start)
				start = time.Now()
				rc, _ := s.OpenLog(ctx, log)
				if n, err := io.Copy(io.Discard, rc); err != nil || n != size {
					b.Fatalf("read %d bytes: %v", n, err)
				}
				rc.Close()
				reading += time.Since(start)
			}
			b.ReportMetric(float64(size*b.N)/writing.Seconds()/1e6, "write-MB/s")
			b.ReportMetric(float64(size*b.N)/reading.Seconds()/1e6, "read-MB/s")
		})
	}
}
