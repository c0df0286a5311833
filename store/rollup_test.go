package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// rollupFacets are facets the rollup serves: every dimension it keeps,
// under scopes and typed filters on its columns.
func rollupFacets() []store.FacetQuery {
	pipeline, task, ns := "build", "unit", "b"
	var out []store.FacetQuery
	for _, dim := range []store.DimensionKind{store.DimNamespace, store.DimPipelineName, store.DimTask, store.DimStatus,
		store.DimReason, store.DimDataType, store.DimKind} {
		for _, scope := range []store.ListOptions{
			{Parent: "-"},
			{Parent: "-", Namespaces: []string{"a", "c"}},
			{Parent: "-", RecordWhere: &filter.RecordWhere{Kinds: []string{"TASK_RUN"}, Statuses: []string{store.StatusFailed}}},
			{Parent: "-", RecordWhere: &filter.RecordWhere{PipelineName: &pipeline, Reasons: []string{"Failed", "Succeeded"}}},
			{Parent: "-", RecordWhere: &filter.RecordWhere{Namespace: &ns, TaskName: &task, DataTypes: []string{store.TypeTaskRun}}},
		} {
			out = append(out, store.FacetQuery{Scope: scope, Dimension: store.Dimension{Kind: dim}, Limit: 1000})
		}
	}
	out = append(out, store.FacetQuery{Scope: store.ListOptions{Parent: "-"}, Dimension: store.Dimension{Kind: store.DimTask}, Prefix: "u"})
	return out
}

// checkRollup compares every rollup facet with the same facet counted over
// the Records.
func checkRollup(t *testing.T, s *store.Store, when string) {
	t.Helper()
	ctx := context.Background()
	for _, q := range rollupFacets() {
		if !s.RollupServes(q.Scope, q.Dimension) {
			t.Fatalf("the rollup should serve %+v", q)
		}
		got, err := s.Facet(ctx, q)
		if err != nil {
			t.Fatalf("%s: facet %+v: %v", when, q, err)
		}
		s.CountWithoutRollup(true)
		want, err := s.Facet(ctx, q)
		s.CountWithoutRollup(false)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: facet of %d over %+v where %+v:\nrollup  %v\nrecords %v", when, q.Dimension.Kind, q.Scope, q.Scope.RecordWhere, got, want)
		}
	}
}

// TestRollupDifferential writes, rewrites (runs finishing, changing
// Pipeline or Task), deletes Records and whole Results, and checks after
// each step, before and after folding, that the rollup counts what
// counting the Records gives.
func TestRollupDifferential(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		s.CountWithoutRollup(false) // no background folds: the test folds
		rng := rand.New(rand.NewPCG(7, 8))
		runs, ws := genStatRuns(rng, 400)
		for chunk := range slices.Chunk(ws, 37) {
			if err := s.UpsertRecords(ctx, chunk); err != nil {
				t.Fatal(err)
			}
		}
		checkRollup(t, s, "after writing")

		for round := range 3 {
			// Rewrite a third with other statuses, Pipelines and Tasks, as
			// the watcher does when a run progresses.
			var rewrites []store.RecordWrite
			for i := range ws {
				if ws[i].UID == "" || rng.IntN(3) != 0 {
					continue
				}
				g := genOne(rng, runs[i])
				runs[i] = g
				rewrites = append(rewrites, store.RecordWrite{ResultName: ws[i].ResultName, UID: ws[i].UID, DataType: g.dataType, Data: g.data(ws[i].UID)})
			}
			if err := s.UpsertRecords(ctx, rewrites); err != nil {
				t.Fatal(err)
			}
			checkRollup(t, s, fmt.Sprintf("round %d, after rewrites", round))
			if err := s.FoldRollup(ctx); err != nil {
				t.Fatal(err)
			}
			checkRollup(t, s, fmt.Sprintf("round %d, after folding", round))
			deleteSomeRecords(t, s, rng, ws)
			checkRollup(t, s, fmt.Sprintf("round %d, after deletes", round))
		}
		// A Result's delete takes its Records with it (a cascade, as
		// retention deletes).
		if _, _, err := s.DeleteResults(ctx, []string{ws[0].ResultName}); err != nil {
			t.Fatal(err)
		}
		checkRollup(t, s, "after deleting a Result")
		if err := s.FoldRollup(ctx); err != nil {
			t.Fatal(err)
		}
		checkRollup(t, s, "after the last fold")
	})
}

// deleteSomeRecords deletes about a tenth of the Records of ws one by
// one, blanking their UIDs.
func deleteSomeRecords(t *testing.T, s *store.Store, rng *rand.Rand, ws []store.RecordWrite) {
	t.Helper()
	for i := range ws {
		if ws[i].UID != "" && rng.IntN(10) == 0 {
			name := store.RecordName(ws[i].ResultName[:1], uidOf(ws[i].ResultName), ws[i].UID)
			if err := s.DeleteRecord(context.Background(), name, ""); err != nil {
				t.Fatal(err)
			}
			ws[i].UID = ""
		}
	}
}

// genOne is another version of a run: same namespace, data type and
// Result, other status, Pipeline and Task.
func genOne(rng *rand.Rand, g statRun) statRun {
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	if g.kind == "" {
		return g
	}
	g.pipeline = pick("build", "test", "deploy", "")
	if g.kind == "TASK_RUN" {
		g.task = pick("compile", "lint", "unit", "")
	}
	g.condStatus = pick("True", "False", "Unknown", "")
	g.reason = map[string]string{"True": "Succeeded", "False": pick("Failed", "Cancelled"), "Unknown": "Running"}[g.condStatus]
	return g
}

// uidOf is the uid part of a Result name.
func uidOf(resultName string) string { return resultName[len(resultName)-36:] }

// TestRollupConcurrentWritesAndFolds writes from several goroutines while
// others fold, then checks the counts: folds and triggers never lose or
// double a delta, and writers never deadlock on the rollup.
func TestRollupConcurrentWritesAndFolds(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		s.CountWithoutRollup(false)
		rng := rand.New(rand.NewPCG(9, 10))
		_, ws := genStatRuns(rng, 600)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for w := range 4 {
			wg.Go(func() {
				for i := w * 10; i < len(ws); i += 4 * 10 {
					if err := s.UpsertRecords(ctx, ws[i:min(i+10, len(ws))]); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		for range 2 {
			wg.Go(func() {
				for range 10 {
					if err := s.FoldRollup(ctx); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		checkRollup(t, s, "after concurrent writes and folds")
	})
}

// TestRollupServesOnlyItsColumns: a filter on anything the rollup does not
// keep must count Records. A field added to RecordWhere fails this test
// until rollupServes decides about it.
func TestRollupServesOnlyItsColumns(t *testing.T) {
	served := []string{"Namespace", "DataTypes", "Statuses", "Reasons", "PipelineName", "TaskName", "Kinds"}
	notServed := []string{"Labels", "PipelineRunName", "NamePrefix", "RunNames", "NameContains", "Created", "CreationTime", "Started", "Completed"}
	typ := reflect.TypeFor[filter.RecordWhere]()
	for i := range typ.NumField() {
		if name := typ.Field(i).Name; !slices.Contains(served, name) && !slices.Contains(notServed, name) {
			t.Errorf("RecordWhere.%s is new: teach rollupServes about it, then list it here", name)
		}
	}
	s, _ := storetest.Open(t, "sqlite")
	dim := store.Dimension{Kind: store.DimPipelineName}
	for _, name := range notServed {
		w := filter.RecordWhere{}
		f := reflect.ValueOf(&w).Elem().FieldByName(name)
		switch f.Kind() {
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
			if f.Elem().Kind() == reflect.String {
				f.Elem().SetString("x")
			}
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.Struct: // a time range
			f.Field(0).Set(reflect.New(f.Field(0).Type().Elem()))
		}
		if s.RollupServes(store.ListOptions{RecordWhere: &w}, dim) {
			t.Errorf("a filter on %s must not read the rollup", name)
		}
	}
	for _, o := range []store.ListOptions{{Filter: "true"}, {ResultName: "a/results/" + uuid.NewString()}} {
		if s.RollupServes(o, dim) {
			t.Errorf("%+v must not read the rollup", o)
		}
	}
	for _, d := range []store.Dimension{{Kind: store.DimLabel, Key: "app"}, {Kind: store.DimAnnotation, Key: "a"}, {Kind: store.DimFailedStep}, {Kind: store.DimPipeline}} {
		if s.RollupServes(store.ListOptions{}, d) {
			t.Errorf("dimension %d must not read the rollup", d.Kind)
		}
	}
}
