package graph

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"

	"github.com/annals-dev/annals/store"
)

// Loaders hold the nested reads of one response, filled ahead of time by
// looking at the query: when a list resolves (a page of Records, the
// TaskRuns of a page of PipelineRuns, the nodes of nodes(ids)), the fields
// its items select are read for all items at once, one statement per level
// and per distinct arguments, and kept here under the parent object they
// belong to. A nested resolver then finds its value without a statement and
// without waiting. Batches are made by the shape of the query, never by a
// clock, so a query costs the same statements under any load.
//
// Values are keyed by the parent object itself (its pointer), not by its
// name: a value is found only under the list that read it, so sibling
// fields resolving concurrently never change each other's statement count.
// A parent that no list looked ahead for (a single record(name), a
// mutation's result) misses and reads its own value, and when that value is
// a list, looks ahead under it in turn. A fresh set serves each response, so
// nothing is cached across requests or callers.
type Loaders struct {
	resultOf      memo[*store.Record, *store.Result]
	annotations   memo[*store.Result, []store.Annotation]
	records       memo[nestedKey[*store.Result], *store.Page[*store.Record]]
	recordCount   memo[nestedKey[*store.Result], int]
	taskRuns      memo[nestedKey[*store.Record], *store.Page[*store.Record]]
	taskRunCount  memo[nestedKey[*store.Record], int]
	pipelineRunOf memo[*store.Record, *store.Record]
	logsOf        memo[*store.Record, []*store.Record]

	entitiesMu sync.Mutex
	entities   map[*graphql.FieldContext]*entityBatch
}

// nestedKey names a nested list: its parent and its list options as JSON
// (what the arguments of the field asked).
type nestedKey[P comparable] struct {
	Parent P
	Opts   string
}

// NewLoaders returns the loaders of one response.
func NewLoaders() *Loaders {
	return &Loaders{entities: map[*graphql.FieldContext]*entityBatch{}}
}

// memo is a concurrency-safe map of values read ahead, with the error of
// the statement that read them (a failed look-ahead reports its error at
// every field it served rather than reading again).
type memo[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]memoEntry[V]
}

type memoEntry[V any] struct {
	value V
	err   error
}

// put keeps the first value for k: a response shows one value per parent.
func (m *memo[K, V]) put(k K, v V, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[K]memoEntry[V]{}
	}
	if _, ok := m.m[k]; !ok {
		m.m[k] = memoEntry[V]{v, err}
	}
}

func (m *memo[K, V]) get(k K) (V, error, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[k]
	return e.value, e.err, ok
}

// getOr returns the value read ahead for k or, when none was, reads it with
// read and keeps it; found tells which.
func (m *memo[K, V]) getOr(k K, read func() (V, error)) (v V, err error, found bool) {
	if v, err, ok := m.get(k); ok {
		return v, err, true
	}
	v, err = read()
	m.put(k, v, err)
	return v, err, false
}

type loadersKey struct{}

// PerResponseLoaders gives each response its own loaders: a query one set,
// and each message of a subscription a fresh one, so that no message reads
// rows kept for another.
type PerResponseLoaders struct{ Store *store.Store }

func (PerResponseLoaders) ExtensionName() string                   { return "PerResponseLoaders" }
func (PerResponseLoaders) Validate(graphql.ExecutableSchema) error { return nil }

func (l PerResponseLoaders) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	return next(context.WithValue(ctx, loadersKey{}, NewLoaders()))
}

// loadersFrom returns the response's loaders, or fresh ones when none were
// set (they then serve one resolver only, which is correct, just unbatched).
func loadersFrom(ctx context.Context) *Loaders {
	if l, ok := ctx.Value(loadersKey{}).(*Loaders); ok {
		return l
	}
	return NewLoaders()
}
