package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/util/workqueue"

	"github.com/annals-dev/annals/store"
)

// TestPermanentErrorsAreNotRetried drives the real workqueue: a run the
// store refuses as invalid, or that cannot be grouped, is tried once,
// logged, counted and forgotten; a run failing for a passing reason is
// retried until it succeeds.
func TestPermanentErrorsAreNotRetried(t *testing.T) {
	w := &Watcher{
		log:     slog.New(slog.DiscardHandler),
		metrics: NewMetrics(prometheus.NewRegistry()),
		queue: workqueue.NewTypedRateLimitingQueue[runKey](
			workqueue.NewTypedItemExponentialFailureRateLimiter[runKey](time.Millisecond, 10*time.Millisecond)),
	}
	var mu sync.Mutex
	attempts := map[string]int{}
	reconcile := func(k runKey) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[k.Name]++
		switch k.Name {
		case "refused":
			return fmt.Errorf("storing %s: %w", k, store.ErrInvalidArgument)
		case "ungroupable":
			return permanentError{errors.New("metadata.uid is required")}
		case "flaky":
			if attempts[k.Name] < 3 {
				return errors.New("database: connection refused")
			}
		}
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			k, quit := w.queue.Get()
			if quit {
				return
			}
			w.finish(context.Background(), k, reconcile(k))
			w.queue.Done(k)
		}
	}()
	for _, name := range []string{"refused", "ungroupable", "flaky"} {
		w.queue.Add(runKey{kindTaskRun, "ci", name})
	}
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return attempts[name]
	}
	for deadline := time.Now().Add(10 * time.Second); count("flaky") < 3 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	// Fifty times the longest backoff: a retried run would have come back.
	time.Sleep(500 * time.Millisecond)
	w.queue.ShutDown()
	<-done
	if count("refused") != 1 || count("ungroupable") != 1 || count("flaky") != 3 {
		t.Errorf("attempts %v; want refused and ungroupable once, flaky until it worked (3)", attempts)
	}
	if n := testutil.ToFloat64(w.metrics.givenUp.WithLabelValues(kindTaskRun)); n != 2 {
		t.Errorf("runs given up: %v, want 2", n)
	}
	if n := w.queue.NumRequeues(runKey{kindTaskRun, "ci", "refused"}); n != 0 {
		t.Errorf("the refused run is still tracked for retries (%d)", n)
	}
}
