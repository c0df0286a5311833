package watcher

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestBatcherSharesTransactionsAndIsolatesFailures: concurrent writes go
// out in fewer transactions than writes, and a bad write fails alone.
func TestBatcherSharesTransactionsAndIsolatesFailures(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		b := newBatcher(s, 200, 20*time.Millisecond)
		var mu sync.Mutex
		var batches []int
		b.sizes = func(n int) { mu.Lock(); batches = append(batches, n); mu.Unlock() }
		go b.run(ctx)

		const n = 40
		uids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			uids[i] = uuid.NewString()
			data := fmt.Sprintf(`{"kind":"TaskRun","metadata":{"name":"tr-%d","namespace":"ci","uid":%q}}`, i, uids[i])
			if i == 7 {
				data = `{"broken": ` // not JSON: this write alone must fail
			}
			wg.Go(func() {
				errs[i] = b.write(ctx, store.RecordWrite{ResultName: store.ResultName("ci", uids[i]), UID: uids[i], DataType: store.TypeTaskRun,
					Data: []byte(data), UpdateSummary: true})
			})
		}
		wg.Wait()
		stored, err := s.GetRecordsByUID(ctx, "ci", uids)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if (i == 7) != (errs[i] != nil) || (i == 7) == (stored[uids[i]] != nil) {
				t.Errorf("write %d: error %v, stored %v", i, errs[i], stored[uids[i]] != nil)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(batches) >= n {
			t.Errorf("%d transactions for %d concurrent writes: %v", len(batches), n, batches)
		}
	})
}
