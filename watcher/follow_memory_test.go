package watcher_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annals-dev/annals/store/storetest"
	"github.com/annals-dev/annals/watcher"
)

// generatedLogs serves, for every container, a log of size bytes made up
// on the fly (100-byte lines), as fast as it is read: the load of many
// TaskRuns writing big logs, without holding any of them.
type generatedLogs struct {
	size int64
	read atomic.Int64
}

func (g *generatedLogs) Open(context.Context, string, string, string) (io.ReadCloser, error) {
	return io.NopCloser(&generatedLog{g: g, left: g.size}), nil
}

type generatedLog struct {
	g    *generatedLogs
	left int64
	n    int
}

var generatedLine = strings.Repeat("compiling module with some output ", 2) + "and a counter 0000000000000000000000\n"

func (l *generatedLog) Read(p []byte) (int, error) {
	if l.left == 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && l.left > 0 {
		c := copy(p[n:min(len(p), n+int(l.left))], generatedLine[l.n%len(generatedLine):])
		l.n, n, l.left = l.n+c, n+c, l.left-int64(c)
	}
	l.g.read.Add(int64(n))
	return n, nil
}

// TestFollowMemory is the memory harness of followed logs: N running
// TaskRuns (ANNALS_LOG_MEMORY_TASKRUNS) each stream a log of
// ANNALS_LOG_MEMORY_MB MiB into SQLite, and it reports the peak heap and
// RSS of this process (the watcher, its store, the generator and the
// in-memory Kubernetes clients). Skipped unless asked for.
func TestFollowMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ANNALS_LOG_MEMORY_TASKRUNS"))
	mb, _ := strconv.Atoi(os.Getenv("ANNALS_LOG_MEMORY_MB"))
	if n <= 0 || mb <= 0 {
		t.Skip("set ANNALS_LOG_MEMORY_TASKRUNS and ANNALS_LOG_MEMORY_MB to run")
	}
	env := fakeKube()
	s, _ := storetest.Open(t, "sqlite")
	ns := "memory"
	gen := &generatedLogs{size: int64(mb) << 20}
	for i := range n {
		runningTaskRun(t, env, ns, fmt.Sprintf("big-%03d", i))
	}
	var peakHeap, peakRSS, peakSys, peakStacks, peakIdle uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
			peakRSS = max(peakRSS, rssBytes())
			peakSys, peakStacks = max(peakSys, ms.Sys), max(peakStacks, ms.StackInuse)
			peakIdle = max(peakIdle, ms.HeapIdle-ms.HeapReleased)
			if path := os.Getenv("ANNALS_LOG_MEMORY_PROFILE"); path != "" && ms.HeapInuse == peakHeap && gen.read.Load() > 0 {
				if f, err := os.Create(path); err == nil {
					pprof.WriteHeapProfile(f) // the heap at its peak so far
					f.Close()
				}
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	baseRSS := rssBytes() // the test binary, the fake cluster and the store, before any follower
	start := time.Now()
	startWatcher(t, env, s, watcher.Config{Namespaces: []string{ns}, Logs: true, LiveLogInterval: 2 * time.Second, LogLimit: 0, LogFollowers: n}, gen, nil)
	total := int64(n) * gen.size
	eventually(t, time.Hour, func() (bool, string) { return gen.read.Load() >= total, "" })
	elapsed := time.Since(start)
	close(stopSampling)
	<-sampled
	t.Logf("%d TaskRuns x %d MiB streamed in %s (%.0f MiB/s); peak heap in use %.1f MiB, peak RSS %.1f MiB (VmHWM %.1f MiB)",
		n, mb, elapsed.Round(time.Second), float64(total)/(1<<20)/elapsed.Seconds(), float64(peakHeap)/(1<<20), float64(peakRSS)/(1<<20), float64(hwmBytes())/(1<<20))
	// Where RSS goes beyond the heap in use: the Go runtime's own (Sys
	// counts what it mapped; idle heap not yet returned) and, the rest,
	// memory outside Go's heap (the SQLite library's allocations).
	t.Logf("RSS before the watcher started %.1f MiB; peak Go runtime mapped %.1f MiB, idle heap kept %.1f MiB, stacks %.1f MiB",
		float64(baseRSS)/(1<<20), float64(peakSys)/(1<<20), float64(peakIdle)/(1<<20), float64(peakStacks)/(1<<20))
}

func rssBytes() uint64 { return procStatus("VmRSS:") }
func hwmBytes() uint64 { return procStatus("VmHWM:") }

func procStatus(field string) uint64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			kb, _ := strconv.ParseUint(strings.Fields(l)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
