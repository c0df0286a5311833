package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// dailyQueries are statistics record_daily answers: its dimensions and UTC
// buckets of the start time, under scopes on its columns and start windows
// that hold whole days, partial days at either end, or only part of a day.
func dailyQueries() []store.StatsQuery {
	d := func(k store.DimensionKind) store.Dimension { return store.Dimension{Kind: k} }
	start := func(u store.TimeUnit) store.Dimension {
		return store.Dimension{Kind: store.DimTime, Time: store.TimeStart, Unit: u}
	}
	at := func(s string) *time.Time { t := must(time.Parse(time.RFC3339Nano, s)); return &t }
	windows := []filter.TimeRange{
		{},
		{After: at("2026-03-10T07:30:00.5Z"), Before: at("2026-03-25T18:00:00Z")},
		{After: at("2026-03-10T00:00:00Z"), Before: at("2026-04-01T00:00:00Z")}, // midnights
		{After: at("2026-10-20T00:00:00Z")},
		{Before: at("2026-03-15T12:00:00Z")},
		{After: at("2026-03-12T01:00:00Z"), Before: at("2026-03-12T23:00:00Z")}, // inside one day
		// Ends late and early in their days: read inside, not trimmed.
		{After: at("2026-03-11T20:00:00Z"), Before: at("2026-03-20T03:00:00.25Z")},
		// Two adjacent days, one trimmed, one read inside.
		{After: at("2026-03-21T03:00:00Z"), Before: at("2026-03-22T03:00:00Z")},
	}
	pipeline := "build"
	groupings := [][]store.Dimension{
		nil, {d(store.DimStatus)}, {d(store.DimReason)}, {d(store.DimNamespace)}, {d(store.DimTask)}, {d(store.DimDataType)},
		{d(store.DimPipelineName), start(store.UnitDay)}, {d(store.DimNamespace), d(store.DimKind), d(store.DimStatus)},
		{start(store.UnitWeek)}, {start(store.UnitMonth), d(store.DimKind)}, {start(store.UnitDay), d(store.DimTask)},
	}
	var out []store.StatsQuery
	for wi, w := range windows {
		scopes := []store.ListOptions{
			{Parent: "-", RecordWhere: &filter.RecordWhere{Started: w}},
			{Parent: "-", Namespaces: []string{"a", "c"}, RecordWhere: &filter.RecordWhere{Started: w, Kinds: []string{"PIPELINE_RUN"}}},
			{Parent: "b", RecordWhere: &filter.RecordWhere{Started: w, PipelineName: &pipeline, Statuses: []string{store.StatusFailed, store.StatusSucceeded}}},
		}
		for si, scope := range scopes {
			for gi, g := range groupings {
				if (wi+si+gi)%2 == 0 && gi > 0 { // half the combinations, every grouping and scope seen
					continue
				}
				out = append(out, store.StatsQuery{Scope: scope, GroupBy: g, Percentiles: (wi+gi)%3 != 0, QueuePercentiles: (wi+gi)%3 == 1})
			}
		}
	}
	return out
}

// checkDaily compares every daily query with the same query computed over
// the Records (which TestStatsDifferential holds to a model).
func checkDaily(t *testing.T, s *store.Store, when string) {
	t.Helper()
	for _, q := range dailyQueries() {
		checkDailyQuery(t, s, q, when)
	}
}

// checkDailyQuery compares q read from record_daily with q computed over
// the Records.
func checkDailyQuery(t *testing.T, s *store.Store, q store.StatsQuery, when string) {
	t.Helper()
	ctx := context.Background()
	{
		if !s.DailyServes(q) {
			t.Fatalf("record_daily should serve %+v", q)
		}
		got, err := s.Stats(ctx, q)
		if err != nil {
			t.Fatalf("%s: %+v: %v", when, q, err)
		}
		s.CountWithoutRollup(true)
		want, err := s.Stats(ctx, q)
		s.CountWithoutRollup(false)
		if err != nil {
			t.Fatal(err)
		}
		render := func(res *store.StatsResult) []string {
			var out []string
			for _, r := range res.Rows {
				out = append(out, renderKey(r.Groups)+" "+renderRow(r))
			}
			slices.Sort(out)
			return out
		}
		g, w := render(got), render(want)
		if !slices.Equal(g, w) {
			for i := range max(len(g), len(w)) {
				var a, b string
				if i < len(g) {
					a = g[i]
				}
				if i < len(w) {
					b = w[i]
				}
				if a != b {
					t.Errorf("%s: %+v by %+v where %+v, first difference:\ndaily   %s\nrecords %s", when, q.Scope, q.GroupBy, q.Scope.RecordWhere, a, b)
					break
				}
			}
		}
	}
}

// TestDailyRollupDifferential writes, rewrites (runs starting, finishing,
// moving to another day, Pipeline or status), deletes Records and whole
// Results, and checks after each step, before and after folding, that
// statistics read from record_daily equal those computed from the Records.
func TestDailyRollupDifferential(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		s.CountWithoutRollup(false) // no background folds: the test folds
		rng := rand.New(rand.NewPCG(21, 22))
		runs, ws := genStatRuns(rng, 500)
		for chunk := range slices.Chunk(ws, 41) {
			if err := s.UpsertRecords(ctx, chunk); err != nil {
				t.Fatal(err)
			}
		}
		checkDaily(t, s, "after writing, nothing folded")
		if err := s.FoldRollup(ctx); err != nil {
			t.Fatal(err)
		}
		checkDaily(t, s, "after the first fold")
		for round := range 3 {
			var rewrites []store.RecordWrite
			for i := range ws {
				if ws[i].UID == "" || rng.IntN(3) != 0 {
					continue
				}
				g := genOne(rng, runs[i])
				if g.kind != "" && rng.IntN(2) == 0 {
					// Another start (maybe another day) and end.
					s := time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(10*24*3600)) * time.Second)
					g.start = &s
					if e := s.Add(time.Duration(rng.Int64N(int64(2 * time.Hour)))); g.condStatus != "Unknown" {
						g.end = &e
					} else {
						g.end = nil
					}
				}
				runs[i] = g
				rewrites = append(rewrites, store.RecordWrite{ResultName: ws[i].ResultName, UID: ws[i].UID, DataType: g.dataType, Data: g.data(ws[i].UID)})
			}
			if err := s.UpsertRecords(ctx, rewrites); err != nil {
				t.Fatal(err)
			}
			checkDaily(t, s, fmt.Sprintf("round %d, after rewrites", round))
			if round != 1 {
				if err := s.FoldRollup(ctx); err != nil {
					t.Fatal(err)
				}
				checkDaily(t, s, fmt.Sprintf("round %d, after folding", round))
			}
			deleteSomeRecords(t, s, rng, ws)
			checkDaily(t, s, fmt.Sprintf("round %d, after deletes", round))
		}
		if _, _, err := s.DeleteResults(ctx, []string{ws[0].ResultName}); err != nil {
			t.Fatal(err)
		}
		checkDaily(t, s, "after deleting a Result")
		if err := s.FoldRollup(ctx); err != nil {
			t.Fatal(err)
		}
		checkDaily(t, s, "after the last fold")
	})
}

// TestDailyReadAcrossAFold folds between the two statements of a daily
// read: the days the second statement reads no longer match the deltas the
// first one saw, and the read must start again rather than count a run
// twice or not at all.
func TestDailyReadAcrossAFold(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		s.CountWithoutRollup(false)
		rng := rand.New(rand.NewPCG(31, 32))
		runs, ws := genStatRuns(rng, 300)
		if err := s.UpsertRecords(ctx, ws); err != nil {
			t.Fatal(err)
		}
		if err := s.FoldRollup(ctx); err != nil {
			t.Fatal(err)
		}
		q := store.StatsQuery{Scope: store.ListOptions{Parent: "-", RecordWhere: &filter.RecordWhere{}}, Percentiles: true,
			GroupBy: []store.Dimension{{Kind: store.DimPipelineName}, {Kind: store.DimTime, Time: store.TimeStart, Unit: store.UnitDay}}}
		// Rewrites the first statement sees as pending deltas, folded into
		// the rows before the second statement reads them.
		var rewrites []store.RecordWrite
		for i := range ws {
			if rng.IntN(3) == 0 {
				g := genOne(rng, runs[i])
				rewrites = append(rewrites, store.RecordWrite{ResultName: ws[i].ResultName, UID: ws[i].UID, DataType: g.dataType, Data: g.data(ws[i].UID)})
			}
		}
		if err := s.UpsertRecords(ctx, rewrites); err != nil {
			t.Fatal(err)
		}
		calls := 0
		store.BetweenDailyStatements(func() {
			if calls++; calls == 1 {
				if err := s.FoldRollup(ctx); err != nil {
					t.Error(err)
				}
			}
		})
		defer store.BetweenDailyStatements(nil)
		checkDailyQuery(t, s, q, "a fold between the statements")
		if calls < 2 {
			t.Errorf("the read ran its first statement %d times; a fold between its statements should make it start again", calls)
		}
	})
}
