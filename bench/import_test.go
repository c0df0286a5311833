package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
	"github.com/annals-dev/annals/watcher"
)

// importBenchSize reads the memory benchmarks' settings: the runs making
// ANNALS_IMPORT_BENCH_MB of JSON (64 by default) and the database kind
// ANNALS_IMPORT_BENCH_DB (sqlite by default).
func importBenchSize() (records int, kind string) {
	mb := 64
	if v, err := strconv.Atoi(os.Getenv("ANNALS_IMPORT_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	kind = os.Getenv("ANNALS_IMPORT_BENCH_DB")
	if kind == "" {
		kind = "sqlite"
	}
	const bytesPerRun = 3500 // what the generator's runs average as JSON
	return mb << 20 / bytesPerRun, kind
}

// BenchmarkImportMemory imports a large generated kubectl List, streamed
// from a pipe (never held whole), and reports the peak Go heap and peak
// RSS of the process while it ran, with the runs written per second. The
// TaskRuns come before their PipelineRun and name it by label only, the
// order that makes the import set them aside. Size and database:
//
//	ANNALS_IMPORT_BENCH_MB=1024 ANNALS_IMPORT_BENCH_DB=postgres go test ./bench -run '^$' -bench BenchmarkImportMemory -benchtime 1x
func BenchmarkImportMemory(b *testing.B) {
	records, kind := importBenchSize()
	writers := 1
	if kind == "postgres" {
		writers = 8
	}
	// As `annals import` does: a soft limit that makes the collector work
	// harder rather than let garbage grow the process (GOMEMLIMIT wins).
	if os.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(importMemoryLimit))
	}
	for range b.N {
		s, _ := storetest.Open(b, kind)
		pr, pw := io.Pipe()
		generated := make(chan int, 1)
		go func() {
			n, err := writeImportFile(pw, newGenerator(10), records, true)
			pw.CloseWithError(err)
			generated <- n
		}()
		var peakHeap atomic.Uint64
		done := make(chan struct{})
		var sampler sync.WaitGroup
		sampler.Add(1)
		go func() { // the heap in use, sampled: its peak is what the input costs
			defer sampler.Done()
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peakHeap.Load() {
					peakHeap.Store(ms.HeapInuse)
				}
				select {
				case <-done:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		var progress watcher.ImportProgress
		src := watcher.ImportSource{Name: "generated", Size: -1, Open: func() (io.ReadCloser, error) { return pr, nil }}
		start := time.Now()
		rep, err := watcher.ImportSources(context.Background(), s, []watcher.ImportSource{src}, watcher.ImportOptions{Writers: writers, Progress: &progress})
		took := time.Since(start)
		close(done)
		sampler.Wait()
		writeHeapProfile(b, os.Getenv("ANNALS_IMPORT_BENCH_HEAPPROFILE"))
		if err != nil {
			b.Fatal(err)
		}
		if n := <-generated; rep.Created != n || rep.SkippedCount != 0 {
			b.Fatalf("created %d of %d, skipped %d", rep.Created, n, rep.SkippedCount)
		}
		b.ReportMetric(float64(progress.BytesRead.Load())/(1<<20), "input-MB")
		b.ReportMetric(float64(peakHeap.Load())/(1<<20), "peak-heap-MB")
		b.ReportMetric(peakRSSMB(), "peak-RSS-MB")
		b.ReportMetric(float64(rep.Created)/took.Seconds(), "runs/s")
	}
}

// writeHeapProfile writes the heap profile to path ("": none) while the
// store is still open: -memprofile is written after the benchmark's
// cleanups, when the connections and what they cache are gone.
func writeHeapProfile(b *testing.B, path string) {
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// importMemoryLimit is the soft memory limit `annals import` sets.
const importMemoryLimit = 96 << 20

// BenchmarkImportThroughput compares, on the same machine at the same
// moment, the store's own write path (eight writers of 500-run batches, as
// the harness measures it) with `annals import`'s path over a generated
// kubectl List file of the same runs, in runs per second. Runs:
//
//	ANNALS_IMPORT_BENCH_RUNS=48000 ANNALS_IMPORT_BENCH_DB=postgres go test ./bench -run '^$' -bench BenchmarkImportThroughput -benchtime 1x
func BenchmarkImportThroughput(b *testing.B) {
	records := 6000
	if v, err := strconv.Atoi(os.Getenv("ANNALS_IMPORT_BENCH_RUNS")); err == nil && v > 0 {
		records = v
	}
	kind := os.Getenv("ANNALS_IMPORT_BENCH_DB")
	if kind == "" {
		kind = "postgres"
	}
	writers := 8
	if kind == "sqlite" {
		writers = 1
	}
	path := b.TempDir() + "/runs.json"
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	n, err := writeImportFile(f, newGenerator(10), records, false)
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		direct, _ := storetest.Open(b, kind)
		res, err := ingestBatches(context.Background(), direct, newGenerator(10), n, writers)
		if err != nil {
			b.Fatal(err)
		}
		s, _ := storetest.Open(b, kind)
		sources, err := watcher.ImportPaths(path)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		rep, err := watcher.ImportSources(context.Background(), s, sources, watcher.ImportOptions{Writers: writers})
		took := time.Since(start)
		if err != nil || rep.Created != n {
			b.Fatalf("import: created %d of %d: %v", rep.Created, n, err)
		}
		b.ReportMetric(res, "store-runs/s")
		b.ReportMetric(float64(n)/took.Seconds(), "import-runs/s")
	}
}

// ingestBatches writes about records generated runs straight through
// store.UpsertRecords, batches of 500 shared by the writers, generated
// before the clock starts; it returns runs per second.
func ingestBatches(ctx context.Context, s *store.Store, gen *generator, records, writers int) (float64, error) {
	rnd := rand.New(rand.NewPCG(3, 4))
	var batches [][]store.RecordWrite
	var batch []store.RecordWrite
	total := 0
	for total < records {
		runs := gen.writes(rnd, gen.newPipeline(rnd), 2)
		batch = append(batch, runs...)
		total += len(runs)
		if len(batch) >= 500 || total >= records {
			batches = append(batches, batch)
			batch = nil
		}
	}
	queue := make(chan []store.RecordWrite, len(batches))
	for _, b := range batches {
		queue <- b
	}
	close(queue)
	errs := make(chan error, writers)
	start := time.Now()
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range queue {
				if err := s.UpsertRecords(ctx, b); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return float64(total) / time.Since(start).Seconds(), <-errs
}

// BenchmarkImportMemoryProcess is BenchmarkImportMemory through the real
// binary: it builds `annals import`, pipes the generated List into its
// standard input and reports the process's peak RSS (VmHWM, read while it
// runs), so that the figure is the command's own, not a test binary's.
//
//	ANNALS_IMPORT_BENCH_MB=1024 ANNALS_IMPORT_BENCH_DB=postgres go test ./bench -run '^$' -bench BenchmarkImportMemoryProcess -benchtime 1x
func BenchmarkImportMemoryProcess(b *testing.B) {
	records, kind := importBenchSize()
	bin := filepath.Join(b.TempDir(), "annals")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/annals-dev/annals/cmd/annals").CombinedOutput(); err != nil {
		b.Fatalf("building: %v: %s", err, out)
	}
	for range b.N {
		_, url := storetest.Open(b, kind)
		cmd := exec.Command(bin, "import", "--database-url", url, "--progress", "none", "-")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var peak atomic.Uint64 // KiB
		done := make(chan struct{})
		var sampler sync.WaitGroup
		sampler.Go(func() {
			status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
			for {
				if kb := uint64(rssOf(status) * 1024); kb > peak.Load() {
					peak.Store(kb)
				}
				select {
				case <-done:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
		n, genErr := writeImportFile(stdin, newGenerator(10), records, true)
		stdin.Close()
		err = cmd.Wait()
		took := time.Since(start)
		close(done)
		sampler.Wait()
		if genErr != nil || err != nil {
			b.Fatalf("import: %v (generator: %v)", err, genErr)
		}
		b.ReportMetric(float64(peak.Load())/1024, "peak-RSS-MB")
		b.ReportMetric(float64(n)/took.Seconds(), "runs/s")
	}
}
