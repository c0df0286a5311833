package graph

import (
	"context"
	"time"

	"github.com/graph-gophers/dataloader/v7"
)

// readBatch reads keys in one batch through a dataloader sized to them: the
// batch is dispatched when the last key is queued, so it never waits on the
// loader's timer and its statement count does not depend on scheduling.
// The loader also folds duplicate keys and hands each caller its own value.
func readBatch[V any](ctx context.Context, keys []string, get func(context.Context, []string) (map[string]V, error)) (map[string]V, error) {
	keys = distinct(keys, func(k string) string { return k })
	out := make(map[string]V, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	batch := func(ctx context.Context, ks []string) []*dataloader.Result[V] {
		found, err := get(ctx, ks)
		results := make([]*dataloader.Result[V], len(ks))
		for i, k := range ks {
			results[i] = &dataloader.Result[V]{Data: found[k], Error: err}
		}
		return results
	}
	loader := dataloader.NewBatchedLoader(batch,
		dataloader.WithBatchCapacity[string, V](len(keys)),
		// Never reached: the batch is full, and dispatched, once LoadMany
		// has queued every key.
		dataloader.WithWait[string, V](time.Hour))
	values, errs := loader.LoadMany(ctx, keys)()
	for i, k := range keys {
		if len(errs) > i && errs[i] != nil {
			return nil, errs[i]
		}
		out[k] = values[i]
	}
	return out, nil
}
