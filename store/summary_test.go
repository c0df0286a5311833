package store_test

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// genRecord is a random Record and what the Summary API should see in it.
type genRecord struct {
	ns, result, dataType string
	created              *time.Time
	reason               *string // nil: no condition
	start, end           *time.Time
	pipeline, repo, app  *string // label, annotation, label
	status               string
}

func (g genRecord) data(uid string) json.RawMessage {
	meta := map[string]any{"name": "run-" + uid[:8], "namespace": g.ns, "uid": uid}
	if g.created != nil {
		meta["creationTimestamp"] = g.created.Format(time.RFC3339Nano)
	}
	labels := map[string]any{}
	if g.pipeline != nil {
		labels["tekton.dev/pipeline"] = *g.pipeline
	}
	if g.app != nil {
		labels["app"] = *g.app
	}
	if len(labels) > 0 {
		meta["labels"] = labels
	}
	if g.repo != nil {
		meta["annotations"] = map[string]any{"pipelinesascode.tekton.dev/repository": *g.repo}
	}
	obj := map[string]any{"metadata": meta}
	if g.dataType == store.TypeLog {
		obj["apiVersion"], obj["kind"] = "results.tekton.dev/v1alpha3", "Log"
		obj["spec"] = map[string]any{"resource": map[string]any{"kind": "TaskRun", "namespace": g.ns, "name": "tr", "uid": uid}, "step": "s"}
		obj["status"] = map[string]any{"size": 10}
	} else {
		obj["apiVersion"], obj["kind"] = "tekton.dev/v1", strings.TrimPrefix(g.dataType, "tekton.dev/v1.")
		st := map[string]any{}
		if g.reason != nil {
			st["conditions"] = []any{map[string]any{"type": "Succeeded", "status": g.status, "reason": *g.reason}}
		}
		if g.start != nil {
			st["startTime"] = g.start.Format(time.RFC3339Nano)
		}
		if g.end != nil {
			st["completionTime"] = g.end.Format(time.RFC3339Nano)
		}
		obj["status"] = st
	}
	b, _ := json.Marshal(obj)
	return b
}

// genRecords makes n Records in namespaces a, b and c: PipelineRuns,
// TaskRuns and Logs, some without creation time, condition, start or
// completion, label or annotation, over two years so that every time unit
// has several buckets.
func genRecords(rng *rand.Rand, n int) ([]genRecord, []store.RecordWrite) {
	pick := func(vals ...string) *string {
		v := vals[rng.IntN(len(vals))]
		if v == "" {
			return nil
		}
		return &v
	}
	base := time.Date(2025, 12, 28, 0, 0, 0, 0, time.UTC) // a Sunday, near month and year ends
	randTime := func() time.Time {
		t := base.Add(time.Duration(rng.Int64N(2*365*24*3600)-365*24*3600) * time.Second)
		if rng.IntN(4) == 0 {
			t = t.Add(time.Duration(rng.Int64N(1e6)) * time.Microsecond) // Kubernetes gives seconds; others may not
		}
		return t
	}
	results := map[string][]string{}
	for _, ns := range []string{"a", "b", "c"} {
		for range 3 {
			results[ns] = append(results[ns], ns+"/results/"+uuid.NewString())
		}
	}
	var gens []genRecord
	var ws []store.RecordWrite
	for range n {
		g := genRecord{ns: []string{"a", "b", "c"}[rng.IntN(3)]}
		g.result = results[g.ns][rng.IntN(3)]
		g.dataType = []string{store.TypePipelineRun, store.TypeTaskRun, store.TypeTaskRun, store.TypeLog}[rng.IntN(4)]
		if rng.IntN(8) > 0 {
			t := randTime()
			g.created = &t
		}
		if g.dataType != store.TypeLog {
			// Labels and annotations only on runs: Log records carry none,
			// and the store reads them from runs only (CEL filters too).
			if rng.IntN(3) > 0 {
				g.pipeline = pick("build", "test", "deploy", "")
			}
			if rng.IntN(2) == 0 {
				g.repo = pick("web", "api", "")
			}
			g.app = pick("x", "y", "")
			g.reason = pick("Succeeded", "Completed", "Failed", "Cancelled", "TaskRunCancelled", "Running", "Pending", "PipelineRunTimeout", "")
			g.status = map[bool]string{true: "Unknown", false: "False"}[g.reason != nil && (*g.reason == "Running" || *g.reason == "Pending")]
			if g.reason != nil && (*g.reason == "Succeeded" || *g.reason == "Completed") {
				g.status = "True"
			}
			if rng.IntN(6) > 0 {
				t := randTime()
				g.start = &t
				if rng.IntN(5) > 0 && (g.reason == nil || *g.reason != "Running") {
					var d time.Duration
					switch rng.IntN(3) {
					case 0:
						d = time.Duration(rng.Int64N(600)) * time.Second
					case 1:
						d = time.Duration(rng.Int64N(int64(30 * time.Hour)))
					case 2:
						d = time.Duration(rng.Int64N(72*3600)) * time.Second
					}
					e := t.Add(d).Truncate(time.Microsecond)
					g.end = &e
				}
			}
		}
		gens = append(gens, g)
		uid := uuid.NewString()
		ws = append(ws, store.RecordWrite{ResultName: g.result, UID: uid, DataType: g.dataType, Data: g.data(uid)})
	}
	return gens, ws
}

// model computes a summary the straightforward way, Record by Record.
type modelRow struct {
	group     any // nil, int64 (Unix seconds) or string
	total     int64
	counts    map[string]int64
	lastStart *time.Time
	durations []int64
}

var summaryKeys = []string{"total", "succeeded", "failed", "cancelled", "running", "others",
	"last_runtime", "avg_duration", "min_duration", "max_duration", "total_duration"}

func modelGroup(g genRecord, groupBy string) any {
	parts := strings.Split(groupBy, " ")
	var t *time.Time
	switch {
	case parts[0] == "namespace":
		return g.ns
	case parts[0] == "pipeline":
		return g.ns + "/" + deref(g.pipeline)
	case parts[0] == "repository":
		return g.ns + "/" + deref(g.repo)
	case len(parts) == 1:
		t = g.created
	case parts[1] == "startTime":
		t = g.start
	default:
		t = g.end
	}
	if t == nil {
		return nil
	}
	u := t.UTC()
	switch parts[0] {
	case "minute":
		u = u.Truncate(time.Minute)
	case "hour":
		u = u.Truncate(time.Hour)
	case "day":
		u = time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC)
	case "week":
		u = time.Date(u.Year(), u.Month(), u.Day()-(int(u.Weekday())+6)%7, 0, 0, 0, 0, time.UTC)
	case "month":
		u = time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC)
	case "year":
		u = time.Date(u.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return u.Unix()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func modelSummary(gens []genRecord, keep func(genRecord) bool, keys []string, groupBy, orderKey string, desc bool) []store.SummaryRow {
	groups := map[any]*modelRow{}
	var order []any
	if groupBy == "" {
		groups[nil], order = &modelRow{counts: map[string]int64{}}, []any{nil}
	}
	for _, g := range gens {
		if !keep(g) {
			continue
		}
		var key any
		if groupBy != "" {
			key = modelGroup(g, groupBy)
		}
		row := groups[key]
		if row == nil {
			row = &modelRow{group: key, counts: map[string]int64{}}
			groups[key] = row
			order = append(order, key)
		}
		row.total++
		switch r := deref(g.reason); {
		case g.reason == nil:
		case r == "Succeeded" || r == "Completed":
			row.counts["succeeded"]++
		case r == "Failed" || r == "Cancelled" || r == "Running":
			row.counts[strings.ToLower(r)]++
		default:
			row.counts["others"]++
		}
		if g.start != nil && (row.lastStart == nil || g.start.After(*row.lastStart)) {
			row.lastStart = g.start
		}
		if g.start != nil && g.end != nil {
			row.durations = append(row.durations, g.end.Sub(*g.start).Microseconds())
		}
	}
	rows := make([]*modelRow, 0, len(order))
	for _, k := range order {
		rows = append(rows, groups[k])
	}
	// Ordered by the group value, nulls last; then, stably, by the key.
	slices.SortFunc(rows, func(a, b *modelRow) int { return compareModelGroup(a.group, b.group) })
	if orderKey != "" {
		slices.SortStableFunc(rows, func(a, b *modelRow) int {
			va, vb := modelSortValue(a, orderKey), modelSortValue(b, orderKey)
			var c int
			switch {
			case va == nil && vb == nil:
			case va == nil:
				c = 1
			case vb == nil:
				c = -1
			default:
				c = cmp.Compare(*va, *vb)
			}
			if desc {
				c = -c
			}
			return c
		})
	}
	var out []store.SummaryRow
	for _, r := range rows {
		row := store.SummaryRow{}
		for _, k := range keys {
			row[k] = modelValue(r, k)
		}
		if groupBy != "" {
			row["group_value"] = r.group
		}
		out = append(out, row)
	}
	return out
}

func compareModelGroup(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	switch x := a.(type) {
	case int64:
		return cmp.Compare(x, b.(int64))
	case float64:
		return cmp.Compare(x, b.(float64))
	}
	return strings.Compare(a.(string), b.(string))
}

// modelSortValue is the value a row sorts by, as a number; nil for null.
func modelSortValue(r *modelRow, key string) *float64 {
	f := func(v float64) *float64 { return &v }
	switch key {
	case "total":
		return f(float64(r.total))
	case "last_runtime":
		if r.lastStart == nil {
			return nil
		}
		return f(float64(r.lastStart.UnixMicro()))
	case "avg_duration", "min_duration", "max_duration", "total_duration":
		if len(r.durations) == 0 {
			return nil
		}
		return f(float64(modelInterval(r, key).TotalMicros()))
	}
	return f(float64(r.counts[key]))
}

func modelInterval(r *modelRow, key string) store.Interval {
	switch key {
	case "min_duration":
		return store.IntervalOf(slices.Min(r.durations))
	case "max_duration":
		return store.IntervalOf(slices.Max(r.durations))
	}
	var sum store.Interval
	for _, d := range r.durations {
		iv := store.IntervalOf(d)
		sum.Days, sum.Micros = sum.Days+iv.Days, sum.Micros+iv.Micros
	}
	if key == "avg_duration" {
		return sum.Div(int64(len(r.durations)))
	}
	return sum
}

func modelValue(r *modelRow, key string) any {
	switch key {
	case "total":
		return r.total
	case "last_runtime":
		if r.lastStart == nil {
			return nil
		}
		if r.lastStart.Nanosecond() == 0 {
			return r.lastStart.Unix()
		}
		return float64(r.lastStart.UnixMicro()) / 1e6
	case "avg_duration", "min_duration", "max_duration", "total_duration":
		if len(r.durations) == 0 {
			return nil
		}
		return modelInterval(r, key).String()
	}
	return r.counts[key]
}

var summaryGroupBys = []string{"", "minute", "hour", "day", "week", "month", "year",
	"day startTime", "week completionTime", "month startTime", "year completionTime", "hour completionTime", "minute startTime",
	"namespace", "pipeline", "repository"}

// summaryScope is a scope of the request and the model's view of it.
type summaryScope struct {
	name string
	opts func(gens []genRecord) store.SummaryOptions
	keep func(o store.SummaryOptions) func(genRecord) bool
}

var summaryScopes = []summaryScope{
	{"all", func([]genRecord) store.SummaryOptions { return store.SummaryOptions{Parent: "-"} },
		func(store.SummaryOptions) func(genRecord) bool { return func(genRecord) bool { return true } }},
	{"namespace", func([]genRecord) store.SummaryOptions { return store.SummaryOptions{Parent: "b"} },
		func(store.SummaryOptions) func(genRecord) bool { return func(g genRecord) bool { return g.ns == "b" } }},
	{"visible namespaces", func([]genRecord) store.SummaryOptions {
		return store.SummaryOptions{Parent: "-", Namespaces: []string{"a", "c"}}
	}, func(store.SummaryOptions) func(genRecord) bool { return func(g genRecord) bool { return g.ns != "b" } }},
	{"result", func(gens []genRecord) store.SummaryOptions {
		return store.SummaryOptions{Parent: "a", ResultName: gens[0].result}
	}, func(o store.SummaryOptions) func(genRecord) bool {
		return func(g genRecord) bool { return g.result == o.ResultName }
	}},
	{"filter", func([]genRecord) store.SummaryOptions {
		return store.SummaryOptions{Parent: "-", Filter: `data_type == PIPELINE_RUN || data.metadata.labels["app"] == "x"`}
	}, func(store.SummaryOptions) func(genRecord) bool {
		return func(g genRecord) bool { return g.dataType == store.TypePipelineRun || deref(g.app) == "x" }
	}},
}

// TestSummaryMatchesModel compares every key, every group_by and scope, and
// ordering by each key both ways, with the model, on both databases, over
// random Records.
func TestSummaryMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gens, ws := genRecords(rng, 400)
	gens[0].ns, gens[0].result = "a", strings.Replace(gens[0].result, gens[0].ns+"/", "a/", 1)
	if !strings.HasPrefix(ws[0].ResultName, "a/") {
		gens[0].result = "a/results/" + uuid.NewString()
		ws[0].ResultName, ws[0].Data = gens[0].result, gens[0].data(ws[0].UID)
	}
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if err := s.UpsertRecords(ctx, ws); err != nil {
			t.Fatal(err)
		}
		allKeys := strings.Join(summaryKeys, ",")
		for _, scope := range summaryScopes {
			groupBys := summaryGroupBys
			if scope.name != "all" && scope.name != "filter" {
				groupBys = []string{"", "day", "pipeline"} // scoping is the same SQL whatever the grouping
			}
			for _, groupBy := range groupBys {
				o := scope.opts(gens)
				o.Summary, o.GroupBy = allKeys, groupBy
				got, err := s.SummarizeRecords(ctx, o)
				if err != nil {
					t.Fatalf("%s, group_by %q: %v", scope.name, groupBy, err)
				}
				want := modelSummary(gens, scope.keep(o), summaryKeys, groupBy, "", false)
				if groupBy == "" {
					checkRows(t, fmt.Sprintf("%s, no group_by", scope.name), got, want)
					continue
				}
				checkRows(t, fmt.Sprintf("%s, group_by %q", scope.name, groupBy), sortedByGroup(got), want)
			}
		}
		// Ordering: each key both ways, in one form or the other (B10).
		for _, groupBy := range []string{"pipeline", "week startTime"} {
			for i, key := range summaryKeys {
				for _, desc := range []bool{false, true} {
					dir := map[bool]string{false: "ASC", true: "desc"}[desc]
					orderBy := key + " " + dir
					if i%2 == 1 {
						orderBy = dir + " " + key
					}
					{
						o := store.SummaryOptions{Summary: allKeys, GroupBy: groupBy, OrderBy: orderBy}
						got, err := s.SummarizeRecords(ctx, o)
						if err != nil {
							t.Fatalf("order_by %q: %v", orderBy, err)
						}
						want := modelSummary(gens, func(genRecord) bool { return true }, summaryKeys, groupBy, key, desc)
						checkRows(t, fmt.Sprintf("group_by %q order_by %q", groupBy, orderBy), got, want)
					}
				}
			}
		}
	})
}

func sortedByGroup(rows []store.SummaryRow) []store.SummaryRow {
	out := slices.Clone(rows)
	slices.SortStableFunc(out, func(a, b store.SummaryRow) int { return compareModelGroup(a["group_value"], b["group_value"]) })
	return out
}

func checkRows(t *testing.T, what string, got, want []store.SummaryRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d rows, want %d", what, len(got), len(want))
		return
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			for _, k := range slices.Sorted(maps.Keys(want[i])) {
				if !reflect.DeepEqual(got[i][k], want[i][k]) {
					t.Errorf("%s: row %d (group %v): %s = %#v, want %#v", what, i, want[i]["group_value"], k, got[i][k], want[i][k])
				}
			}
			if len(got[i]) != len(want[i]) {
				t.Errorf("%s: row %d keys %v, want %v", what, i, slices.Sorted(maps.Keys(got[i])), slices.Sorted(maps.Keys(want[i])))
			}
			return
		}
	}
}

// TestSummaryMatchesTektonResultsSQL runs, on PostgreSQL, the aggregates as
// Tekton Results writes them (over the JSON of data, with PostgreSQL's own
// interval arithmetic and text) beside SummarizeRecords on the same Records.
func TestSummaryMatchesTektonResultsSQL(t *testing.T) {
	s, url := storetest.Open(t, "postgres")
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	_, ws := genRecords(rng, 300)
	if err := s.UpsertRecords(ctx, ws); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	const (
		reason    = "(data->'status'->'conditions'->0->>'reason')"
		duration  = "(data->'status'->>'completionTime')::timestamptz - (data->'status'->>'startTime')::timestamptz"
		startTime = "(data->'status'->>'startTime')::timestamptz"
		ns        = "data->'metadata'->>'namespace'"
	)
	selects := map[string]string{
		"total":          "COUNT(*)",
		"succeeded":      "COUNT(CASE WHEN " + reason + " IN ('Succeeded', 'Completed') THEN 1 END)",
		"failed":         "COUNT(CASE WHEN " + reason + " = 'Failed' THEN 1 END)",
		"cancelled":      "COUNT(CASE WHEN " + reason + " = 'Cancelled' THEN 1 END)",
		"running":        "COUNT(CASE WHEN " + reason + " = 'Running' THEN 1 END)",
		"others":         "COUNT(CASE WHEN " + reason + " NOT IN ('Failed', 'Succeeded', 'Cancelled', 'Running', 'Completed') THEN 1 END)",
		"last_runtime":   "MAX(EXTRACT(EPOCH FROM " + startTime + "))::float8",
		"avg_duration":   "AVG(" + duration + ")::text",
		"min_duration":   "MIN(" + duration + ")::text",
		"max_duration":   "MAX(" + duration + ")::text",
		"total_duration": "SUM(" + duration + ")::text",
	}
	groups := map[string]string{
		"namespace":  ns,
		"pipeline":   "CONCAT(" + ns + ", '/', data->'metadata'->'labels'->>'tekton.dev/pipeline')",
		"repository": "CONCAT(" + ns + ", '/', data->'metadata'->'annotations'->>'pipelinesascode.tekton.dev/repository')",
	}
	for _, g := range summaryGroupBys {
		parts := strings.Split(g, " ")
		switch {
		case g == "" || groups[g] != "":
		case len(parts) == 1:
			groups[g] = "EXTRACT(EPOCH FROM date_trunc('" + g + "', (data->'metadata'->>'creationTimestamp')::timestamptz))::bigint"
		default:
			groups[g] = "EXTRACT(EPOCH FROM date_trunc('" + parts[0] + "', (data->'status'->>'" + parts[1] + "')::timestamptz))::bigint"
		}
	}
	for _, groupBy := range summaryGroupBys {
		for _, filter := range []string{"", `data_type == PIPELINE_RUN`} {
			cols := make([]string, len(summaryKeys))
			for i, k := range summaryKeys {
				cols[i] = selects[k]
			}
			q := "SELECT " + strings.Join(cols, ", ")
			if groupBy != "" {
				q += ", " + groups[groupBy] + " AS group_value"
			}
			q += " FROM records"
			if filter != "" {
				q += " WHERE data_type = 'tekton.dev/v1.PipelineRun'"
			}
			if groupBy != "" {
				q += " GROUP BY group_value"
			}
			want := queryUpstream(t, db, q, groupBy != "")
			got, err := s.SummarizeRecords(ctx, store.SummaryOptions{Summary: strings.Join(summaryKeys, ","), GroupBy: groupBy, Filter: filter})
			if err != nil {
				t.Fatal(err)
			}
			checkRows(t, fmt.Sprintf("group_by %q filter %q", groupBy, filter), normalize(sortedByGroup(got)), sortedByGroup(want))
		}
	}
}

// queryUpstream reads rows of the Tekton Results query into SummaryRows,
// numbers as float64 (as they travel in JSON).
func queryUpstream(t *testing.T, db *sql.DB, q string, grouped bool) []store.SummaryRow {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []store.SummaryRow
	for rows.Next() {
		vals := make([]any, len(summaryKeys)+1)
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if !grouped {
			ptrs = ptrs[:len(summaryKeys)]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := store.SummaryRow{}
		for i, k := range summaryKeys {
			row[k] = jsonNumber(vals[i])
		}
		if grouped {
			row["group_value"] = jsonNumber(vals[len(summaryKeys)])
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonNumber(v any) any {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case []byte:
		return string(x)
	}
	return v
}

// normalize makes every number a float64, as JSON carries it.
func normalize(rows []store.SummaryRow) []store.SummaryRow {
	for _, r := range rows {
		for k, v := range r {
			r[k] = jsonNumber(v)
		}
	}
	return rows
}

func TestSummaryRowsAndErrors(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		start := time.Date(2026, 10, 2, 8, 0, 0, 0, time.UTC)
		end := start.Add(8*time.Minute + 5*time.Second)
		for i, ns := range []string{"a", "b", "c"} {
			storetest.Upsert(t, s, store.RecordWrite{ResultName: ns + "/results/" + uuid.NewString(), UID: uuid.NewString(), DataType: store.TypePipelineRun,
				Data: run("PipelineRun", ns, fmt.Sprint("r", i), "", "True", "Succeeded", &start, &end, nil)})
		}
		for _, c := range []struct {
			name string
			o    store.SummaryOptions
			want []store.SummaryRow
		}{
			{"no summary means total (B3)", store.SummaryOptions{}, []store.SummaryRow{{"total": int64(3)}}},
			{"nothing matches, one row", store.SummaryOptions{Summary: "total,avg_duration,last_runtime", Parent: "nowhere"},
				[]store.SummaryRow{{"total": int64(0), "avg_duration": nil, "last_runtime": nil}}},
			{"nothing matches, grouped: no rows", store.SummaryOptions{Summary: "total", GroupBy: "namespace", Parent: "nowhere"}, []store.SummaryRow{}},
			{"order_by without group_by is not checked", store.SummaryOptions{Summary: "total", OrderBy: "bogus"}, []store.SummaryRow{{"total": int64(3)}}},
			{"a key twice is one key", store.SummaryOptions{Summary: "total,total,max_duration"},
				[]store.SummaryRow{{"total": int64(3), "max_duration": "00:08:05"}}},
			{"documented order form (B10)", store.SummaryOptions{Summary: "total", GroupBy: "namespace", OrderBy: "DESC total"},
				[]store.SummaryRow{{"total": int64(1), "group_value": "a"}, {"total": int64(1), "group_value": "b"}, {"total": int64(1), "group_value": "c"}}},
		} {
			got, err := s.SummarizeRecords(ctx, c.o)
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if got == nil {
				got = []store.SummaryRow{}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
			}
		}
		for _, c := range []struct {
			o    store.SummaryOptions
			want string
		}{
			{store.SummaryOptions{Summary: "total,bogus"}, "invalid aggregate query: bogus"},
			{store.SummaryOptions{Summary: "total,,failed"}, "invalid aggregate query: "},
			{store.SummaryOptions{Summary: "total, failed"}, "invalid aggregate query:  failed"},
			{store.SummaryOptions{GroupBy: "decade"}, "group_by does not recognize decade"},
			{store.SummaryOptions{GroupBy: "day creationTime"}, "group_by does not recognize creationTime"},
			{store.SummaryOptions{GroupBy: "day startTime utc"}, "group_by does not recognize day startTime utc"},
			{store.SummaryOptions{GroupBy: "namespace startTime"}, "group_by does not recognize namespace startTime"},
			{store.SummaryOptions{GroupBy: "Day"}, "group_by does not recognize Day"},
			{store.SummaryOptions{GroupBy: "day", OrderBy: "total"}, "order_by does not recognize total"},
			{store.SummaryOptions{GroupBy: "day", OrderBy: "total upwards"}, "order_by does not recognize total upwards"},
			{store.SummaryOptions{GroupBy: "day", OrderBy: "total  ASC"}, "order_by does not recognize total  ASC"},
			{store.SummaryOptions{GroupBy: "day", OrderBy: "failed ASC"}, "field name failed is not allowed, must be one of summary"},
			{store.SummaryOptions{GroupBy: "day", OrderBy: "desc failed"}, "field name failed is not allowed, must be one of summary"},
			{store.SummaryOptions{GroupBy: "day", OrderBy: "group_value asc"}, "field name group_value is not allowed, must be one of summary"},
			{store.SummaryOptions{Filter: "nonsense =="}, "invalid argument"},
			{store.SummaryOptions{Parent: "Not A Namespace"}, "invalid argument"},
			{store.SummaryOptions{GroupBy: "namespace", MaxGroups: 2}, "the grouping gives more than 2 groups; narrow the filter or the time window, or group by a coarser unit"},
		} {
			_, err := s.SummarizeRecords(ctx, c.o)
			if !errors.Is(err, store.ErrInvalidArgument) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%+v: %v, want invalid argument %q", c.o, err, c.want)
				continue
			}
			var se *store.SummaryError
			if errors.As(err, &se) && se.Message != c.want {
				t.Errorf("%+v: %q, want exactly %q", c.o, se.Message, c.want)
			}
		}
		// At the cap exactly, every group comes back.
		if rows, err := s.SummarizeRecords(ctx, store.SummaryOptions{GroupBy: "namespace", MaxGroups: 3}); err != nil || len(rows) != 3 {
			t.Errorf("3 groups with a cap of 3: %v, %v", rows, err)
		}
	})
}
