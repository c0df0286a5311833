package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/graph-gophers/dataloader/v7"

	"github.com/annals-dev/annals/store"
)

// Loaders batch the store reads of one request: every nested field asks its
// loader, and the loader turns the asks of a whole level of the query into
// one store call. A fresh set serves each request, so nothing is cached
// across requests or callers.
type Loaders struct {
	resultByName    *dataloader.Loader[string, *store.Result]
	recordByName    *dataloader.Loader[string, *store.Record]
	annotations     *dataloader.Loader[store.Key, []store.Annotation]
	recordsOfResult *dataloader.Loader[nestedKey, *store.Page[*store.Record]]
	countOfResult   *dataloader.Loader[nestedKey, int]
	taskRuns        *dataloader.Loader[taskRunsKey, *store.Page[*store.Record]]
	countTaskRuns   *dataloader.Loader[taskRunsKey, int]
	pipelineRunOf   *dataloader.Loader[pipelineRunKey, *store.Record]
	logsOfTaskRun   *dataloader.Loader[store.Key, []*store.Record]
}

// Every key below names its object with its namespace (a name, or a
// store.Key): uids are unique per namespace only, so a join by uid alone
// could reach another namespace's object.

// nestedKey asks for the nested list of one parent (a Result name); Opts is
// the list's options as JSON, so that asks with the same arguments batch
// together.
type nestedKey struct {
	Parent string
	Opts   string
}

type taskRunsKey struct {
	PipelineRun *store.Record
	Opts        string
}

// pipelineRunKey finds a TaskRun's PipelineRun: by run name in the
// TaskRun's own Result.
type pipelineRunKey struct {
	ResultName, RunName string
}

// batchWait is how long a loader gathers asks before it calls the store.
const batchWait = 5 * time.Millisecond

// NewLoaders returns the loaders of one request.
func NewLoaders(s *store.Store) *Loaders {
	return &Loaders{
		resultByName: newMapLoader(s.GetResultsByName),
		recordByName: newMapLoader(s.GetRecordsByName),
		annotations:  newMapLoader(s.AnnotationsByResult),
		recordsOfResult: dataloader.NewBatchedLoader(func(ctx context.Context, keys []nestedKey) []*dataloader.Result[*store.Page[*store.Record]] {
			pages, errs := byOptions(keys, func(k nestedKey) string { return k.Opts }, func(k nestedKey) string { return k.Parent },
				func(parents []string, o store.ListOptions) (map[string]*store.Page[*store.Record], error) {
					return s.ListRecordsForResults(ctx, parents, o)
				})
			return results(keys, func(k nestedKey) (*store.Page[*store.Record], error) { return pages[k], errs[k] })
		}, dataloader.WithWait[nestedKey, *store.Page[*store.Record]](batchWait)),
		countOfResult: dataloader.NewBatchedLoader(func(ctx context.Context, keys []nestedKey) []*dataloader.Result[int] {
			counts, errs := byOptions(keys, func(k nestedKey) string { return k.Opts }, func(k nestedKey) string { return k.Parent },
				func(parents []string, o store.ListOptions) (map[string]int, error) {
					return s.CountRecordsForResults(ctx, parents, o)
				})
			return results(keys, func(k nestedKey) (int, error) { return counts[k], errs[k] })
		}, dataloader.WithWait[nestedKey, int](batchWait)),
		taskRuns: dataloader.NewBatchedLoader(func(ctx context.Context, keys []taskRunsKey) []*dataloader.Result[*store.Page[*store.Record]] {
			pages, errs := byOptions(keys, func(k taskRunsKey) string { return k.Opts }, func(k taskRunsKey) *store.Record { return k.PipelineRun },
				func(prs []*store.Record, o store.ListOptions) (map[*store.Record]*store.Page[*store.Record], error) {
					byName, err := s.ListTaskRunsForPipelineRuns(ctx, prs, o)
					out := map[*store.Record]*store.Page[*store.Record]{}
					for _, pr := range prs {
						out[pr] = byName[pr.Name]
					}
					return out, err
				})
			return results(keys, func(k taskRunsKey) (*store.Page[*store.Record], error) { return pages[k], errs[k] })
		}, dataloader.WithWait[taskRunsKey, *store.Page[*store.Record]](batchWait)),
		countTaskRuns: dataloader.NewBatchedLoader(func(ctx context.Context, keys []taskRunsKey) []*dataloader.Result[int] {
			counts, errs := byOptions(keys, func(k taskRunsKey) string { return k.Opts }, func(k taskRunsKey) *store.Record { return k.PipelineRun },
				func(prs []*store.Record, o store.ListOptions) (map[*store.Record]int, error) {
					byName, err := s.CountTaskRunsForPipelineRuns(ctx, prs, o)
					out := map[*store.Record]int{}
					for _, pr := range prs {
						out[pr] = byName[pr.Name]
					}
					return out, err
				})
			return results(keys, func(k taskRunsKey) (int, error) { return counts[k], errs[k] })
		}, dataloader.WithWait[taskRunsKey, int](batchWait)),
		logsOfTaskRun: newMapLoader(s.LogsForTaskRuns),
		pipelineRunOf: dataloader.NewBatchedLoader(func(ctx context.Context, keys []pipelineRunKey) []*dataloader.Result[*store.Record] {
			pairs := make([][2]string, len(keys))
			for i, k := range keys {
				pairs[i] = [2]string{k.ResultName, k.RunName}
			}
			found, err := s.PipelineRunRecords(ctx, pairs)
			return results(keys, func(k pipelineRunKey) (*store.Record, error) { return found[[2]string{k.ResultName, k.RunName}], err })
		}, dataloader.WithWait[pipelineRunKey, *store.Record](batchWait)),
	}
}

// newMapLoader batches a store lookup by key that returns a map.
func newMapLoader[K comparable, V any](get func(context.Context, []K) (map[K]V, error)) *dataloader.Loader[K, V] {
	return dataloader.NewBatchedLoader(func(ctx context.Context, keys []K) []*dataloader.Result[V] {
		found, err := get(ctx, keys)
		return results(keys, func(k K) (V, error) { return found[k], err })
	}, dataloader.WithWait[K, V](batchWait))
}

// results lays out a batch's answers in the order of its keys.
func results[K any, V any](keys []K, get func(K) (V, error)) []*dataloader.Result[V] {
	out := make([]*dataloader.Result[V], len(keys))
	for i, k := range keys {
		v, err := get(k)
		out[i] = &dataloader.Result[V]{Data: v, Error: err}
	}
	return out
}

// byOptions splits a batch by list options (asks with different arguments
// cannot share a statement) and calls list once per distinct options.
func byOptions[K comparable, P comparable, V any](keys []K, optsOf func(K) string, parentOf func(K) P,
	list func([]P, store.ListOptions) (map[P]V, error)) (map[K]V, map[K]error) {
	groups := map[string][]K{}
	for _, k := range keys {
		groups[optsOf(k)] = append(groups[optsOf(k)], k)
	}
	values, errs := map[K]V{}, map[K]error{}
	for optsJSON, group := range groups {
		var o store.ListOptions
		err := json.Unmarshal([]byte(optsJSON), &o)
		var found map[P]V
		if err == nil {
			parents := make([]P, len(group))
			for i, k := range group {
				parents[i] = parentOf(k)
			}
			found, err = list(parents, o)
		}
		for _, k := range group {
			values[k], errs[k] = found[parentOf(k)], err
		}
	}
	return values, errs
}

func optionsKey(o store.ListOptions) string {
	b, err := json.Marshal(o)
	if err != nil {
		panic(fmt.Sprintf("list options do not encode: %v", err)) // plain data: cannot happen
	}
	return string(b)
}

type loadersKey struct{}

// PerResponseLoaders gives each response its own loaders: a query one set,
// and each message of a subscription a fresh one, so that no message reads
// rows cached for another.
type PerResponseLoaders struct{ Store *store.Store }

func (PerResponseLoaders) ExtensionName() string                   { return "PerResponseLoaders" }
func (PerResponseLoaders) Validate(graphql.ExecutableSchema) error { return nil }

func (l PerResponseLoaders) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	return next(context.WithValue(ctx, loadersKey{}, NewLoaders(l.Store)))
}

// loadersFrom returns the request's loaders, or fresh ones when none were set.
func loadersFrom(ctx context.Context, s *store.Store) *Loaders {
	if l, ok := ctx.Value(loadersKey{}).(*Loaders); ok {
		return l
	}
	return NewLoaders(s)
}
