package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// spreadOverDays moves the start of each run to one of five days, keeping
// its time of day, so that runs of one task span days and some share times.
func spreadOverDays(rng *rand.Rand, runs []histRun) {
	for i := range runs {
		if runs[i].start != nil {
			t := runs[i].start.AddDate(0, 0, rng.IntN(5))
			runs[i].start = &t
		}
	}
}

// flakyScopes are the scopes the segments must answer as the Records do:
// none, namespaces, Pipeline and task filters, windows with partial days at
// either end or both, on midnight, within one day, open at either side.
func flakyScopes() []store.ListOptions {
	at := func(day, h, m int) *time.Time {
		t := time.Date(2026, 5, 1+day, h, m, 0, 0, time.UTC)
		return &t
	}
	str := func(s string) *string { return &s }
	started := func(after, before *time.Time) *filter.RecordWhere {
		return &filter.RecordWhere{Started: filter.TimeRange{After: after, Before: before}}
	}
	return []store.ListOptions{
		{Parent: "-"},
		{Parent: "b"},
		{Parent: "-", Namespaces: []string{"a"}},
		{Parent: "-", Namespaces: []string{}},
		{Parent: "-", RecordWhere: &filter.RecordWhere{PipelineName: str("build")}},
		{Parent: "-", RecordWhere: &filter.RecordWhere{TaskName: str("unit"), Namespace: str("a")}},
		{Parent: "-", RecordWhere: started(at(1, 3, 0), nil)},
		{Parent: "-", RecordWhere: started(nil, at(3, 4, 30))},
		{Parent: "-", RecordWhere: started(at(1, 3, 17), at(3, 4, 30))},
		{Parent: "-", RecordWhere: started(at(1, 0, 0), at(4, 0, 0))},
		{Parent: "-", RecordWhere: started(at(2, 1, 0), at(2, 9, 0))},
		{Parent: "a", RecordWhere: &filter.RecordWhere{PipelineName: str("test"), Started: filter.TimeRange{After: at(0, 5, 0), Before: at(4, 2, 0)}}},
	}
}

// checkFlakySegments compares FlakyTasks read from the segments with the
// statement over the Records and with the model, in every scope.
func checkFlakySegments(t *testing.T, s *store.Store, runs []histRun, step string) {
	t.Helper()
	ctx := context.Background()
	for _, o := range flakyScopes() {
		if !s.FlakyServes(o) {
			t.Fatalf("%s: the segments do not serve %+v", step, o)
		}
		got, err := s.FlakyTasks(ctx, store.FlakyQuery{Scope: o, Limit: store.MaxAnalyticsRows})
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		s.CountWithoutRollup(true)
		want, err := s.FlakyTasks(ctx, store.FlakyQuery{Scope: o, Limit: store.MaxAnalyticsRows})
		s.CountWithoutRollup(false)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if got.Total != want.Total || !reflect.DeepEqual(fmtFlaky(got.Tasks), fmtFlaky(want.Tasks)) {
			t.Errorf("%s, scope %+v where %+v:\nsegments %d %v\nrecords  %d %v", step, o, o.RecordWhere, got.Total, fmtFlaky(got.Tasks),
				want.Total, fmtFlaky(want.Tasks))
		}
		if o.Parent == "-" && o.Namespaces == nil && o.RecordWhere == nil {
			model := modelFlaky(runs, histScope{})
			if len(model) == 0 {
				t.Fatalf("%s: no flaky task to compare", step)
			}
			if !reflect.DeepEqual(fmtFlaky(got.Tasks), fmtFlaky(model)) {
				t.Errorf("%s: segments differ from the model\n got %v\nwant %v", step, fmtFlaky(got.Tasks), fmtFlaky(model))
			}
		}
	}
	// Smaller limits rank the same.
	for _, limit := range []int{1, 3} {
		got, err := s.FlakyTasks(ctx, store.FlakyQuery{Scope: store.ListOptions{Parent: "-"}, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		all, _ := s.FlakyTasks(ctx, store.FlakyQuery{Scope: store.ListOptions{Parent: "-"}, Limit: store.MaxAnalyticsRows})
		if !reflect.DeepEqual(fmtFlaky(got.Tasks), fmtFlaky(all.Tasks[:min(limit, len(all.Tasks))])) {
			t.Errorf("%s, first %d: %v", step, limit, fmtFlaky(got.Tasks))
		}
	}
}

// TestFlakySegmentsDifferential writes TaskRuns before their PipelineRuns,
// rewrites runs (outcomes, starts moved to other days or dropped,
// PipelineRun revisions changed, given or taken away), deletes runs and
// whole Results, and checks after each step, before and after a fold, that
// FlakyTasks from the segments equals FlakyTasks over the Records.
func TestFlakySegmentsDifferential(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		s.CountWithoutRollup(false) // no background folds: the test folds
		rng := rand.New(rand.NewPCG(16, 16))
		runs := genHistory(rng, 300)
		spreadOverDays(rng, runs)
		fold := func() {
			t.Helper()
			if err := s.FoldRollup(ctx); err != nil {
				t.Fatal(err)
			}
		}
		step := func(name string, stored []histRun, foldToo bool) {
			t.Helper()
			checkFlakySegments(t, s, stored, name+", nothing folded")
			if foldToo {
				fold()
				checkFlakySegments(t, s, stored, name+", folded")
			}
		}

		// TaskRuns first, folded, then their PipelineRuns: the TaskRuns'
		// revision becomes their PipelineRun's.
		var taskRuns, pipelineRuns []histRun
		for _, h := range runs {
			if h.isTaskRun() {
				taskRuns = append(taskRuns, h)
			} else {
				pipelineRuns = append(pipelineRuns, h)
			}
		}
		writeHistory(t, s, taskRuns)
		step("TaskRuns written", taskRuns, true)
		writeHistory(t, s, pipelineRuns)
		step("PipelineRuns written", runs, true)

		for round := range 3 {
			var rewritten []histRun
			for i := range runs {
				h := &runs[i]
				if round == 2 && h.isTaskRun() && h.start != nil && h.start.Day() == 2 && (h.condStatus == "True" || h.condStatus == "False") {
					// Every outcome of a day the windows end in flips.
					h.condStatus, h.reason = map[string]string{"True": "False", "False": "True"}[h.condStatus], "Flipped"
					rewritten = append(rewritten, *h)
					continue
				}
				switch rng.IntN(12) {
				case 0: // another outcome
					h.condStatus, h.reason = map[bool]string{true: "True", false: "False"}[rng.IntN(2) == 0], "Done"
				case 1: // another start, maybe another day, maybe none
					if rng.IntN(4) == 0 {
						h.start = nil
					} else {
						st := time.Date(2026, 5, 1+rng.IntN(5), rng.IntN(24), rng.IntN(60), 0, 0, time.UTC)
						h.start = &st
					}
				case 2: // a PipelineRun's revision changes, appears or goes
					if !h.isTaskRun() {
						sha := []string{"c1", "c4", ""}[rng.IntN(3)]
						h.annotations, h.labels = nil, nil
						h.params = []any{map[string]any{"name": "revision", "value": sha}}
						h.rev = sha
					}
				default:
					continue
				}
				rewritten = append(rewritten, *h)
			}
			writeHistory(t, s, rewritten)
			if round == 2 {
				// Folded before any read: only the versions tell that days
				// kept in memory changed.
				fold()
			}
			step(fmt.Sprintf("round %d, rewritten", round), runs, round == 0)

			var kept []histRun
			for _, h := range runs {
				if rng.IntN(15) == 0 {
					if err := s.DeleteRecord(ctx, store.RecordName(h.ns, strings.TrimPrefix(h.result, h.ns+"/results/"), h.uid), ""); err != nil {
						t.Fatal(err)
					}
					continue
				}
				kept = append(kept, h)
			}
			runs = kept
			step(fmt.Sprintf("round %d, deleted", round), runs, true)
		}

		// Whole Results go, the PipelineRun with its TaskRuns.
		var results []string
		for _, h := range runs {
			if !h.isTaskRun() && !slices.Contains(results, h.result) && len(results) < 15 {
				results = append(results, h.result)
			}
		}
		if _, _, err := s.DeleteResults(ctx, results); err != nil {
			t.Fatal(err)
		}
		runs = slices.DeleteFunc(runs, func(h histRun) bool { return slices.Contains(results, h.result) })
		step("Results deleted", runs, true)
	})
}

// TestFlakySegmentsScope keeps scopes the segments cannot answer on the
// statement over the Records.
func TestFlakySegmentsScope(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		str := func(s string) *string { return &s }
		for _, o := range []store.ListOptions{
			{Parent: "-", RecordWhere: &filter.RecordWhere{Statuses: []string{store.StatusFailed}}},
			{Parent: "-", RecordWhere: &filter.RecordWhere{DataTypes: []string{store.TypeTaskRun}}},
			{Parent: "-", RecordWhere: &filter.RecordWhere{Kinds: []string{"TASK_RUN"}}},
			{Parent: "-", RecordWhere: &filter.RecordWhere{Reasons: []string{"Failed"}}},
			{Parent: "-", RecordWhere: &filter.RecordWhere{NamePrefix: str("run-")}},
			{Parent: "-", Filter: `data.metadata.name == "x"`},
			{Parent: "-", RecordWhere: &filter.RecordWhere{Completed: filter.TimeRange{After: &time.Time{}}}},
		} {
			if s.FlakyServes(o) {
				t.Errorf("the segments serve %+v where %+v", o, o.RecordWhere)
			}
		}
	})
}

// TestFlakySegmentsConcurrent reads FlakyTasks from several goroutines
// while runs are rewritten and folded, for the race detector and the
// readers' shared memory, then checks that the answer settles on the
// Records'.
func TestFlakySegmentsConcurrent(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		s.CountWithoutRollup(false)
		rng := rand.New(rand.NewPCG(7, 7))
		runs := genHistory(rng, 120)
		spreadOverDays(rng, runs)
		writeHistory(t, s, runs)
		scopes := flakyScopes()
		done := make(chan struct{})
		errs := make(chan error, 8)
		for g := range 8 {
			go func() {
				for i := 0; ; i++ {
					select {
					case <-done:
						errs <- nil
						return
					default:
					}
					if _, err := s.FlakyTasks(ctx, store.FlakyQuery{Scope: scopes[(g+i)%len(scopes)]}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for round := range 5 {
			var rewritten []histRun
			for i := range runs {
				if rng.IntN(5) == 0 {
					runs[i].condStatus, runs[i].reason = map[bool]string{true: "True", false: "False"}[rng.IntN(2) == 0], "Done"
					rewritten = append(rewritten, runs[i])
				}
			}
			writeHistory(t, s, rewritten)
			if round%2 == 0 {
				if err := s.FoldRollup(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		close(done)
		for range 8 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		checkFlakySegments(t, s, runs, "after concurrent reads")
	})
}
