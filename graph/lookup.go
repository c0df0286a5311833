package graph

import (
	"context"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"

	"github.com/annals-dev/annals/store"
)

// entityBatch is the one read of the references of an _entities field:
// gqlgen resolves each reference on its own goroutine, so the first to
// arrive reads them all (one statement per entity type) while the others
// wait for it, whatever the order in which they are scheduled.
type entityBatch struct {
	once       sync.Once
	records    map[string]*store.Record
	results    map[string]*store.Result
	recordsErr error
	resultsErr error
}

// entities returns the batch of the _entities field ctx resolves under, read
// on first use, or nil outside _entities.
func (r *Resolver) entities(ctx context.Context) *entityBatch {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Object != "Query" || fc.Field.Name != "_entities" {
		return nil
	}
	l := r.loaders(ctx)
	l.entitiesMu.Lock()
	b := l.entities[fc]
	if b == nil {
		b = &entityBatch{}
		l.entities[fc] = b
	}
	l.entitiesMu.Unlock()
	b.once.Do(func() { r.readEntities(ctx, fc, b) })
	return b
}

// readEntities reads every reference of an _entities field that its
// resolver will accept (a valid name the caller may get), then looks
// ahead under them.
func (r *Resolver) readEntities(ctx context.Context, fc *graphql.FieldContext, b *entityBatch) {
	reps, _ := fc.Args["representations"].([]map[string]any)
	type ref struct{ typ, name, namespace string }
	var refs []ref
	for _, rep := range reps {
		typ, _ := rep["__typename"].(string)
		// As the generated code does: by id when given, else by name.
		var name string
		var err error
		if id, ok := rep["id"].(string); ok {
			name, err = entityName(id, typ)
		} else if name, ok = rep["name"].(string); !ok {
			continue
		}
		switch {
		case err != nil:
			continue
		case typ == "Record":
			_, _, _, err = store.ParseRecordName(name)
		case typ == "Result":
			_, _, err = store.ParseResultName(name)
		default:
			continue
		}
		if err == nil {
			namespace, _, _ := strings.Cut(name, "/")
			refs = append(refs, ref{typ, name, namespace})
		}
	}
	// Each resolver checks its own reference too; asking here once per
	// namespace and type, all at once, keeps unreadable references out of
	// the statement without serializing the checks of many namespaces.
	type check struct{ namespace, resource string }
	var checks []check
	for _, f := range refs {
		resource := resRecords
		if f.typ == "Result" {
			resource = resResults
		}
		checks = append(checks, check{f.namespace, resource})
	}
	checks = distinct(checks, func(c check) check { return c })
	allowedChecks := make([]bool, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { allowedChecks[i] = r.allow(ctx, c.namespace, c.resource, verbGet) == nil })
	}
	wg.Wait()
	ok := map[check]bool{}
	for i, c := range checks {
		ok[c] = allowedChecks[i]
	}
	var recordNames, resultNames []string
	for _, f := range refs {
		if f.typ == "Record" && ok[check{f.namespace, resRecords}] {
			recordNames = append(recordNames, f.name)
		} else if f.typ == "Result" && ok[check{f.namespace, resResults}] {
			resultNames = append(resultNames, f.name)
		}
	}
	recordNames = distinct(recordNames, func(s string) string { return s })
	resultNames = distinct(resultNames, func(s string) string { return s })
	if len(recordNames) > 0 {
		b.records, b.recordsErr = readBatch(ctx, recordNames, r.Store.GetRecordsByName)
	}
	if len(resultNames) > 0 {
		b.results, b.resultsErr = readBatch(ctx, resultNames, r.Store.GetResultsByName)
	}
	r.lookAheadRecords(ctx, found(recordNames, b.records), fc.Field.Selections)
	r.lookAheadResults(ctx, found(resultNames, b.results), fc.Field.Selections)
}

// found lists the values of m under names, in order, leaving out the missing.
func found[V any](names []string, m map[string]*V) []*V {
	var out []*V
	for _, n := range names {
		if v := m[n]; v != nil {
			out = append(out, v)
		}
	}
	return out
}

// recordByName reads one Record (nil when there is none): from the batch
// of an _entities field, or with a statement of its own.
func (r *Resolver) recordByName(ctx context.Context, name string) (*store.Record, error) {
	if b := r.entities(ctx); b != nil {
		return b.records[name], b.recordsErr
	}
	found, err := r.Store.GetRecordsByName(ctx, []string{name})
	return found[name], err
}

// resultByName reads one Result (nil when there is none), as recordByName.
func (r *Resolver) resultByName(ctx context.Context, name string) (*store.Result, error) {
	if b := r.entities(ctx); b != nil {
		return b.results[name], b.resultsErr
	}
	found, err := r.Store.GetResultsByName(ctx, []string{name})
	return found[name], err
}

// annotationsOf returns a Result's annotations, read ahead or on their own.
func (r *Resolver) annotationsOf(ctx context.Context, res *store.Result) ([]store.Annotation, error) {
	anns, err, _ := r.loaders(ctx).annotations.getOr(res, func() ([]store.Annotation, error) {
		found, err := r.Store.AnnotationsByResult(ctx, []store.Key{res.Key()})
		return found[res.Key()], err
	})
	return anns, err
}
