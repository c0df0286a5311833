package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// statRun is one generated Record with what the model needs.
type statRun struct {
	ns, dataType, kind  string
	pipeline, task, app string // "" when missing
	repo                string
	condStatus, reason  string // condStatus "" when no condition
	created, start, end *time.Time
}

func (g statRun) status() string {
	switch g.condStatus {
	case "True":
		return store.StatusSucceeded
	case "False":
		if strings.Contains(g.reason, "Cancelled") {
			return store.StatusCancelled
		}
		return store.StatusFailed
	case "Unknown":
		return store.StatusRunning
	}
	return store.StatusUnknown
}

func (g statRun) data(uid string) json.RawMessage {
	meta := map[string]any{"name": "run-" + uid[:8], "namespace": g.ns, "uid": uid}
	if g.created != nil {
		meta["creationTimestamp"] = g.created.Format(time.RFC3339Nano)
	}
	labels := map[string]any{}
	for k, v := range map[string]string{"tekton.dev/pipeline": g.pipeline, "tekton.dev/task": g.task, "app": g.app} {
		if v != "" {
			labels[k] = v
		}
	}
	if len(labels) > 0 {
		meta["labels"] = labels
	}
	if g.repo != "" {
		meta["annotations"] = map[string]any{"pipelinesascode.tekton.dev/repository": g.repo}
	}
	obj := map[string]any{"metadata": meta}
	if g.dataType == store.TypeLog {
		obj["apiVersion"], obj["kind"] = "results.tekton.dev/v1alpha3", "Log"
		obj["spec"] = map[string]any{"resource": map[string]any{"kind": "TaskRun", "namespace": g.ns, "name": "tr", "uid": uid}, "step": "s"}
		return must(json.Marshal(obj))
	}
	version, kind, _ := strings.Cut(strings.TrimPrefix(g.dataType, "tekton.dev/"), ".")
	obj["apiVersion"], obj["kind"] = "tekton.dev/"+version, kind
	st := map[string]any{}
	if g.condStatus != "" {
		st["conditions"] = []any{map[string]any{"type": "Succeeded", "status": g.condStatus, "reason": g.reason}}
	}
	if g.start != nil {
		st["startTime"] = g.start.Format(time.RFC3339Nano)
	}
	if g.end != nil {
		st["completionTime"] = g.end.Format(time.RFC3339Nano)
	}
	obj["status"] = st
	return must(json.Marshal(obj))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// genStatRuns makes n Records around the 2026 DST changes of New York and
// Berlin (March and the turn of October/November), of both API versions,
// with missing times, labels and conditions, running runs and Logs.
func genStatRuns(rng *rand.Rand, n int) ([]statRun, []store.RecordWrite) {
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	randTime := func() *time.Time {
		base := []time.Time{time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 28, 0, 0, 0, 0, time.UTC)}[rng.IntN(2)]
		t := base.Add(time.Duration(rng.Int64N(40*24*3600)-20*24*3600) * time.Second)
		if rng.IntN(4) == 0 {
			t = t.Add(time.Duration(rng.Int64N(1e6)) * time.Microsecond)
		}
		return &t
	}
	results := map[string]string{}
	for _, ns := range []string{"a", "b", "c"} {
		results[ns] = ns + "/results/" + uuid.NewString()
	}
	var runs []statRun
	var ws []store.RecordWrite
	for range n {
		g := statRun{ns: pick("a", "b", "c")}
		g.dataType = pick(store.TypePipelineRun, store.TypeTaskRun, store.TypeTaskRun, "tekton.dev/v1beta1.PipelineRun", "tekton.dev/v1beta1.TaskRun", store.TypeLog)
		if rng.IntN(8) > 0 {
			g.created = randTime()
		}
		if g.dataType != store.TypeLog {
			g.kind = map[bool]string{true: "PIPELINE_RUN", false: "TASK_RUN"}[strings.HasSuffix(g.dataType, "PipelineRun")]
			g.pipeline = pick("build", "test", "deploy", "")
			if g.kind == "TASK_RUN" {
				g.task = pick("compile", "lint", "unit", "")
			}
			g.app = pick("x", "y", "")
			g.repo = pick("web", "api", "")
			g.condStatus = pick("True", "False", "False", "Unknown", "")
			g.reason = map[string]string{"True": "Succeeded", "False": pick("Failed", "Cancelled", "TaskRunCancelled", "PipelineRunTimeout"), "Unknown": "Running"}[g.condStatus]
			if rng.IntN(6) > 0 {
				g.start = randTime()
				if g.created != nil && rng.IntN(2) == 0 {
					s := g.created.Add(time.Duration(rng.Int64N(int64(10 * time.Minute)))).Truncate(time.Microsecond)
					g.start = &s
				}
				if g.condStatus != "Unknown" && rng.IntN(5) > 0 {
					e := g.start.Add(time.Duration(rng.Int64N(int64(3 * time.Hour)))).Truncate(time.Microsecond)
					g.end = &e
				}
			}
		}
		runs = append(runs, g)
		uid := uuid.NewString()
		ws = append(ws, store.RecordWrite{ResultName: results[g.ns], UID: uid, DataType: g.dataType, Data: g.data(uid)})
	}
	return runs, ws
}

// statsModel groups runs the straightforward way.
func statsModel(runs []statRun, dims []store.Dimension, loc *time.Location, keep func(statRun) bool) map[string]store.StatsRow {
	value := func(g statRun, d store.Dimension) store.GroupValue {
		text := func(s string) store.GroupValue {
			if s == "" {
				return store.GroupValue{Null: true}
			}
			return store.GroupValue{Text: s}
		}
		switch d.Kind {
		case store.DimStatus:
			return store.GroupValue{Text: g.status()}
		case store.DimReason:
			return text(g.reason)
		case store.DimNamespace:
			return store.GroupValue{Text: g.ns}
		case store.DimPipelineName:
			return text(g.pipeline)
		case store.DimTask:
			return text(g.task)
		case store.DimKind:
			return text(g.kind)
		case store.DimLabel:
			return text(g.app)
		case store.DimAnnotation:
			return text(g.repo)
		case store.DimTime:
			t := map[store.TimeField]*time.Time{store.TimeCreation: g.created, store.TimeStart: g.start, store.TimeCompletion: g.end}[d.Time]
			if t == nil {
				return store.GroupValue{Null: true}
			}
			// The model's own bucketing: local midnight (or hour) found by
			// walking back from the local wall time.
			l := t.In(loc)
			switch d.Unit {
			case store.UnitHour:
				return store.GroupValue{Time: t.Add(-time.Duration(l.Minute()*60+l.Second())*time.Second - time.Duration(l.Nanosecond())).UTC()}
			case store.UnitDay:
				return store.GroupValue{Time: time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc).UTC()}
			case store.UnitWeek:
				for l.Weekday() != time.Monday {
					l = l.AddDate(0, 0, -1)
				}
				return store.GroupValue{Time: time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc).UTC()}
			case store.UnitMonth:
				return store.GroupValue{Time: time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc).UTC()}
			}
		}
		panic(d.Kind)
	}
	type acc struct {
		row               store.StatsRow
		durations, queues []int64
	}
	groups := map[string]*acc{}
	for _, g := range runs {
		if keep != nil && !keep(g) {
			continue
		}
		var gv []store.GroupValue
		for _, d := range dims {
			gv = append(gv, value(g, d))
		}
		k := renderKey(gv)
		a := groups[k]
		if a == nil {
			a = &acc{row: store.StatsRow{Groups: gv}}
			groups[k] = a
		}
		a.row.Count++
		switch g.status() {
		case store.StatusSucceeded:
			a.row.Statuses.Succeeded++
		case store.StatusFailed:
			a.row.Statuses.Failed++
		case store.StatusCancelled:
			a.row.Statuses.Cancelled++
		case store.StatusRunning:
			a.row.Statuses.Running++
		default:
			a.row.Statuses.Unknown++
		}
		if g.start != nil && g.end != nil {
			a.durations = append(a.durations, g.end.Sub(*g.start).Microseconds())
		}
		if g.start != nil && g.created != nil {
			a.queues = append(a.queues, g.start.Truncate(time.Microsecond).Sub(g.created.Truncate(time.Microsecond)).Microseconds())
		}
		if g.start != nil && (a.row.LastRun == nil || g.start.After(*a.row.LastRun)) {
			t := g.start.Truncate(time.Microsecond).UTC()
			a.row.LastRun = &t
		}
	}
	out := map[string]store.StatsRow{}
	for k, a := range groups {
		for _, p := range []struct {
			d      *store.Distribution
			values []int64
		}{{&a.row.Duration, a.durations}, {&a.row.Queue, a.queues}} {
			if len(p.values) == 0 {
				continue
			}
			v := slices.Sorted(slices.Values(p.values))
			p.d.N, p.d.Min, p.d.Max = int64(len(v)), v[0], v[len(v)-1]
			for _, x := range v {
				p.d.Sum += x
			}
			// percentile_disc by its definition: the first value whose
			// cumulative share reaches the fraction.
			disc := func(f float64) int64 {
				for i, x := range v {
					if float64(i+1)/float64(len(v)) >= f-1e-12 {
						return x
					}
				}
				return v[len(v)-1]
			}
			p.d.P50, p.d.P90, p.d.P95, p.d.P99 = disc(0.5), disc(0.9), disc(0.95), disc(0.99)
		}
		out[k] = a.row
	}
	return out
}

func renderKey(gv []store.GroupValue) string {
	var parts []string
	for _, g := range gv {
		switch {
		case g.Null:
			parts = append(parts, "<null>")
		case !g.Time.IsZero():
			parts = append(parts, g.Time.UTC().Format(time.RFC3339))
		default:
			parts = append(parts, g.Text)
		}
	}
	return strings.Join(parts, "|")
}

func renderRow(r store.StatsRow) string {
	last := "-"
	if r.LastRun != nil {
		last = r.LastRun.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("n=%d %+v dur=%+v queue=%+v last=%s", r.Count, r.Statuses, r.Duration, r.Queue, last)
}

// TestStatsDifferential compares every metric under many groupings and
// time zones with the model, on both databases.
func TestStatsDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	runs, ws := genStatRuns(rng, 600)
	newYork := must(time.LoadLocation("America/New_York"))
	berlin := must(time.LoadLocation("Europe/Berlin"))
	kolkata := must(time.LoadLocation("Asia/Kolkata"))
	d := func(k store.DimensionKind) store.Dimension { return store.Dimension{Kind: k} }
	day := func(f store.TimeField) store.Dimension {
		return store.Dimension{Kind: store.DimTime, Time: f, Unit: store.UnitDay}
	}
	groupings := [][]store.Dimension{
		nil,
		{d(store.DimStatus)}, {d(store.DimReason)}, {d(store.DimNamespace)}, {d(store.DimPipelineName)}, {d(store.DimTask)},
		{d(store.DimKind)}, {{Kind: store.DimLabel, Key: "app"}},
		{{Kind: store.DimAnnotation, Key: "pipelinesascode.tekton.dev/repository"}},
		{d(store.DimPipelineName), d(store.DimTask)}, {d(store.DimNamespace), d(store.DimKind), d(store.DimStatus)},
		{day(store.TimeCreation)}, {day(store.TimeStart), d(store.DimPipelineName)}, {day(store.TimeCompletion)},
		{{Kind: store.DimTime, Time: store.TimeStart, Unit: store.UnitHour}},
		{{Kind: store.DimTime, Time: store.TimeCreation, Unit: store.UnitWeek}, d(store.DimKind)},
		{{Kind: store.DimTime, Time: store.TimeStart, Unit: store.UnitMonth}},
	}
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if err := s.UpsertRecords(ctx, ws); err != nil {
			t.Fatal(err)
		}
		for _, loc := range []*time.Location{time.UTC, newYork, berlin, kolkata} {
			for _, dims := range groupings {
				if loc != time.UTC && !slices.ContainsFunc(dims, func(d store.Dimension) bool { return d.Kind == store.DimTime }) {
					continue
				}
				want := statsModel(runs, dims, loc, nil)
				if len(dims) == 0 && len(want) == 0 {
					want[""] = store.StatsRow{}
				}
				res, err := s.Stats(ctx, store.StatsQuery{GroupBy: dims, TimeZone: loc, Percentiles: true, QueuePercentiles: true})
				if err != nil {
					t.Fatalf("%v %+v: %v", loc, dims, err)
				}
				got := map[string]store.StatsRow{}
				for _, r := range res.Rows {
					got[renderKey(r.Groups)] = r
				}
				if len(got) != len(want) || res.TotalGroups != len(want) {
					t.Errorf("%v %+v: %d groups (total %d), want %d", loc, dims, len(got), res.TotalGroups, len(want))
				}
				for k, w := range want {
					if g, ok := got[k]; !ok || renderRow(g) != renderRow(w) {
						t.Errorf("%v %+v group %q:\n got %s\nwant %s", loc, dims, k, renderRow(got[k]), renderRow(w))
					}
				}
			}
		}

		// A scope: one namespace and a status filter, as lists take them.
		scope := store.ListOptions{Parent: "-", Namespaces: []string{"a", "c"}, RecordWhere: &filter.RecordWhere{Statuses: []string{store.StatusFailed, store.StatusSucceeded}}}
		want := statsModel(runs, []store.Dimension{d(store.DimNamespace)}, time.UTC, func(g statRun) bool {
			return (g.ns == "a" || g.ns == "c") && (g.status() == store.StatusFailed || g.status() == store.StatusSucceeded)
		})
		res, err := s.Stats(ctx, store.StatsQuery{Scope: scope, GroupBy: []store.Dimension{d(store.DimNamespace)}, Percentiles: true, QueuePercentiles: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) != len(want) {
			t.Fatalf("scoped: %d groups, want %d", len(res.Rows), len(want))
		}
		for _, r := range res.Rows {
			if renderRow(r) != renderRow(want[renderKey(r.Groups)]) {
				t.Errorf("scoped %s: got %s want %s", renderKey(r.Groups), renderRow(r), renderRow(want[renderKey(r.Groups)]))
			}
		}
	})
}

// TestStatsOrderLimitFill orders groups by metrics, limits them, fills
// empty buckets across a DST change and refuses too many groups.
func TestStatsOrderLimitFill(t *testing.T) {
	newYork := must(time.LoadLocation("America/New_York"))
	at := func(s string) *time.Time { t := must(time.Parse(time.RFC3339, s)); return &t }
	runs := []statRun{
		// Around New York's spring change (2026-03-08): days of 24, 23, 24 hours.
		{ns: "a", dataType: store.TypePipelineRun, pipeline: "build", condStatus: "True", reason: "Succeeded", created: at("2026-03-07T05:00:00Z"), start: at("2026-03-07T05:00:10Z"), end: at("2026-03-07T05:10:10Z")},
		{ns: "a", dataType: store.TypePipelineRun, pipeline: "build", condStatus: "False", reason: "Failed", created: at("2026-03-08T04:59:59Z"), start: at("2026-03-08T05:00:00Z"), end: at("2026-03-08T05:00:30Z")},
		{ns: "a", dataType: store.TypePipelineRun, pipeline: "test", condStatus: "True", reason: "Succeeded", created: at("2026-03-10T03:59:59Z"), start: at("2026-03-10T04:00:00Z"), end: at("2026-03-10T06:00:00Z")},
		{ns: "a", dataType: store.TypePipelineRun, pipeline: "test", condStatus: "True", reason: "Succeeded", created: at("2026-03-10T04:00:00Z"), start: at("2026-03-10T04:00:01Z"), end: at("2026-03-10T04:00:02Z")},
	}
	var ws []store.RecordWrite
	result := "a/results/" + uuid.NewString()
	for _, g := range runs {
		uid := uuid.NewString()
		ws = append(ws, store.RecordWrite{ResultName: result, UID: uid, DataType: g.dataType, Data: g.data(uid)})
	}
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if err := s.UpsertRecords(ctx, ws); err != nil {
			t.Fatal(err)
		}
		startDay := store.Dimension{Kind: store.DimTime, Time: store.TimeStart, Unit: store.UnitDay}
		from, to := at("2026-03-06T12:00:00Z"), at("2026-03-11T04:00:00Z")
		res, err := s.Stats(ctx, store.StatsQuery{GroupBy: []store.Dimension{startDay}, TimeZone: newYork, Fill: true,
			Scope: store.ListOptions{RecordWhere: &filter.RecordWhere{Started: filter.TimeRange{After: from, Before: to}}}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range res.Rows {
			got = append(got, fmt.Sprintf("%s=%d", r.Groups[0].Time.Format(time.RFC3339), r.Count))
		}
		// Local midnights: EST (-5) until the 8th, EDT (-4) from the 9th.
		want := "2026-03-06T05:00:00Z=0 2026-03-07T05:00:00Z=1 2026-03-08T05:00:00Z=1 2026-03-09T04:00:00Z=0 2026-03-10T04:00:00Z=2"
		if strings.Join(got, " ") != want {
			t.Errorf("filled days in New York:\n got %s\nwant %s", strings.Join(got, " "), want)
		}

		pipeline := store.Dimension{Kind: store.DimPipelineName}
		for _, c := range []struct {
			order []store.StatsOrder
			limit int
			want  string
		}{
			{nil, 0, "build test"},
			{[]store.StatsOrder{{Metric: store.StatSuccessRate}}, 0, "build test"},
			{[]store.StatsOrder{{Metric: store.StatSuccessRate, Desc: true}}, 1, "test"},
			{[]store.StatsOrder{{Metric: store.StatDurationP95, Desc: true}}, 0, "test build"},
			{[]store.StatsOrder{{Metric: store.StatKey, Desc: true}}, 0, "test build"},
			{[]store.StatsOrder{{Metric: store.StatCount, Desc: true}, {Metric: store.StatKey, Desc: true}}, 0, "test build"},
		} {
			res, err := s.Stats(ctx, store.StatsQuery{GroupBy: []store.Dimension{pipeline}, OrderBy: c.order, Limit: c.limit})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range res.Rows {
				names = append(names, r.Groups[0].Text)
			}
			if strings.Join(names, " ") != c.want || res.TotalGroups != 2 {
				t.Errorf("order %+v limit %d: %v (of %d), want %s", c.order, c.limit, names, res.TotalGroups, c.want)
			}
		}

		for _, c := range []struct {
			q    store.StatsQuery
			want string
		}{
			{store.StatsQuery{GroupBy: []store.Dimension{pipeline, {Kind: store.DimTime, Time: store.TimeStart, Unit: store.UnitHour}}, MaxGroups: 2}, "more than 2 groups"},
			{store.StatsQuery{GroupBy: []store.Dimension{startDay}, Fill: true, MaxGroups: 3}, "more than 3 groups"},
			{store.StatsQuery{GroupBy: []store.Dimension{startDay}, Fill: true, MaxGroups: 100,
				Scope: store.ListOptions{RecordWhere: &filter.RecordWhere{Started: filter.TimeRange{After: from, Before: at("2027-03-01T00:00:00Z")}}}}, "more than 100 groups"},
			{store.StatsQuery{GroupBy: []store.Dimension{pipeline}, Fill: true}, "exactly one time dimension"},
			{store.StatsQuery{GroupBy: []store.Dimension{{Kind: store.DimTime, Unit: store.UnitMinute}}}, "give hour, day, week or month"},
			{store.StatsQuery{OrderBy: []store.StatsOrder{{Metric: "speed"}}}, "unknown metric"},
			{store.StatsQuery{GroupBy: []store.Dimension{{Kind: store.DimAnnotation, Key: `x"]`}}}, "annotation"},
		} {
			if _, err := s.Stats(ctx, c.q); !errors.Is(err, store.ErrInvalidArgument) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%+v: %v, want invalid argument about %q", c.q, err, c.want)
			}
		}
	})
}

// TestFacets lists distinct values with counts under a scope and prefix.
func TestFacets(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	runs, ws := genStatRuns(rng, 300)
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if err := s.UpsertRecords(ctx, ws); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			dim    store.Dimension
			prefix string
			scope  []string
			value  func(statRun) string
		}{
			{store.Dimension{Kind: store.DimPipelineName}, "", nil, func(g statRun) string { return g.pipeline }},
			{store.Dimension{Kind: store.DimTask}, "", []string{"b"}, func(g statRun) string { return g.task }},
			{store.Dimension{Kind: store.DimTask}, "u", nil, func(g statRun) string { return g.task }},
			{store.Dimension{Kind: store.DimNamespace}, "", []string{"a", "b"}, func(g statRun) string { return g.ns }},
			{store.Dimension{Kind: store.DimStatus}, "", nil, func(g statRun) string { return g.status() }},
			{store.Dimension{Kind: store.DimLabel, Key: "app"}, "", nil, func(g statRun) string { return g.app }},
			{store.Dimension{Kind: store.DimKind}, "", nil, func(g statRun) string { return g.kind }},
		} {
			counts := map[string]int64{}
			for _, g := range runs {
				v := c.value(g)
				if v != "" && strings.HasPrefix(v, c.prefix) && (c.scope == nil || slices.Contains(c.scope, g.ns)) {
					counts[v]++
				}
			}
			var want []store.FacetValue
			for v, n := range counts {
				want = append(want, store.FacetValue{Value: v, Count: n})
			}
			slices.SortFunc(want, func(a, b store.FacetValue) int {
				if a.Count != b.Count {
					return int(b.Count - a.Count)
				}
				return strings.Compare(a.Value, b.Value)
			})
			got, err := s.Facet(ctx, store.FacetQuery{Scope: store.ListOptions{Parent: "-", Namespaces: c.scope}, Dimension: c.dim, Prefix: c.prefix})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("facet %+v prefix %q scope %v:\n got %v\nwant %v", c.dim, c.prefix, c.scope, got, want)
			}
		}
		if _, err := s.Facet(ctx, store.FacetQuery{Dimension: store.Dimension{Kind: store.DimNamespace}, Limit: 5000}); !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("facet of 5000 values: %v, want invalid argument", err)
		}
	})
}
