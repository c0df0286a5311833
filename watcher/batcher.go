package watcher

import (
	"context"
	"time"

	"github.com/annals-dev/annals/store"
)

// batcher gathers the Record writes of concurrent workers into one store
// transaction (one round trip per batch), as a burst of events after a
// restart or a large PipelineRun produces them. A batch that fails is
// retried write by write, so that one bad write fails alone.
type batcher struct {
	store *store.Store
	limit int           // writes per batch
	wait  time.Duration // how long the first write waits for company
	in    chan *pendingWrite
	sizes func(n int) // observes the writes of each transaction; may be nil
}

type pendingWrite struct {
	w    store.RecordWrite
	done chan error
}

func newBatcher(s *store.Store, limit int, wait time.Duration) *batcher {
	return &batcher{store: s, limit: limit, wait: wait, in: make(chan *pendingWrite)}
}

// write stores w in the next batch and waits for it to commit.
func (b *batcher) write(ctx context.Context, w store.RecordWrite) error {
	p := &pendingWrite{w: w, done: make(chan error, 1)}
	select {
	case b.in <- p:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run forms and writes batches until ctx ends.
func (b *batcher) run(ctx context.Context) {
	for {
		var first *pendingWrite
		select {
		case first = <-b.in:
		case <-ctx.Done():
			return
		}
		batch := []*pendingWrite{first}
		timer := time.NewTimer(b.wait)
	gather:
		for len(batch) < b.limit {
			select {
			case p := <-b.in:
				batch = append(batch, p)
			case <-timer.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		timer.Stop()
		b.flush(ctx, batch)
	}
}

func (b *batcher) flush(ctx context.Context, batch []*pendingWrite) {
	writes := make([]store.RecordWrite, len(batch))
	for i, p := range batch {
		writes[i] = p.w
	}
	if b.sizes != nil {
		b.sizes(len(writes))
	}
	err := b.store.UpsertRecords(ctx, writes)
	if err == nil || len(batch) == 1 {
		for _, p := range batch {
			p.done <- err
		}
		return
	}
	for _, p := range batch {
		err := b.store.UpsertRecords(ctx, []store.RecordWrite{p.w})
		p.done <- err
	}
}
