package store_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// BenchmarkLogThroughput writes one log of ANNALS_BENCH_LOG_MB MiB
// (default 200) through the store, streamed, and reads it back whole, in
// each place log bytes are kept: database chunks (SQLite, PostgreSQL), a
// directory (--log-dir) and an object store (SeaweedFS's S3, when
// ANNALS_TEST_S3_WEED is set). It reports write-MB/s and read-MB/s; the
// text is realistic step log lines repeated, so that making it costs
// nothing beside the store.
func BenchmarkLogThroughput(b *testing.B) {
	mb := 200
	if v, err := strconv.Atoi(os.Getenv("ANNALS_BENCH_LOG_MB")); err == nil && v > 0 {
		mb = v
	}
	size := int64(mb) << 20
	var block bytes.Buffer
	stepLog(&block, 4<<20, 7)
	backends := []struct {
		name, db string
		opts     func(b *testing.B) store.Options
	}{
		{"db-sqlite", "sqlite", func(*testing.B) store.Options { return store.Options{} }},
		{"db-postgres", "postgres", func(*testing.B) store.Options { return store.Options{} }},
		{"dir", "sqlite", func(b *testing.B) store.Options { return store.Options{LogDir: b.TempDir()} }},
		{"s3", "sqlite", func(b *testing.B) store.Options { return store.Options{LogStore: storetest.StartS3(b).URL()} }},
	}
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			s, _ := storetest.OpenWith(b, be.db, be.opts(b))
			ctx := context.Background()
			tr := newTaskRunForLogs(b, s, "ci")
			b.SetBytes(size)
			var writing, reading time.Duration
			for b.Loop() {
				start := time.Now()
				log, err := s.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: "build"}, &repeatReader{block: block.Bytes(), left: size}, 0)
				if err != nil {
					b.Fatal(err)
				}
				writing += time.Since(start)
				start = time.Now()
				rc, err := s.OpenLog(ctx, log)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, rc); err != nil || n != size {
					b.Fatalf("read %d bytes of %d: %v", n, size, err)
				}
				rc.Close()
				reading += time.Since(start)
			}
			b.ReportMetric(float64(size)*float64(b.N)/writing.Seconds()/1e6, "write-MB/s")
			b.ReportMetric(float64(size)*float64(b.N)/reading.Seconds()/1e6, "read-MB/s")
		})
	}
}

// repeatReader reads block over and over, left bytes in all.
type repeatReader struct {
	block []byte
	off   int
	left  int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(int64(len(p)), r.left)], r.block[r.off:])
	r.off = (r.off + n) % len(r.block)
	r.left -= int64(n)
	return n, nil
}
