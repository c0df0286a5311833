package store_test

import (
	"cmp"
	"context"
	"database/sql"
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

// fakeRun is one randomly generated object, as the test wrote it.
type fakeRun struct {
	uid, namespace, dataType, name, pipeline, condition, reason string
	creation, start, completion                                 *time.Time
}

func (f fakeRun) kind() string {
	switch {
	case strings.HasSuffix(f.dataType, ".PipelineRun"):
		return "PipelineRun"
	case strings.HasSuffix(f.dataType, ".TaskRun"):
		return "TaskRun"
	}
	return "Thing"
}

func (f fakeRun) isRun() bool { return f.kind() != "Thing" }

// runName is the name the name filters and NAME see: a run's metadata.name;
// other types have none.
func (f fakeRun) runName() string {
	if !f.isRun() {
		return ""
	}
	return f.name
}

func (f fakeRun) data() json.RawMessage {
	meta := map[string]any{"name": f.name, "namespace": f.namespace, "uid": f.uid}
	if f.pipeline != "" {
		meta["labels"] = map[string]string{"tekton.dev/pipeline": f.pipeline}
	}
	if f.creation != nil {
		meta["creationTimestamp"] = f.creation.Format(time.RFC3339)
	}
	st := map[string]any{}
	if f.condition != "" {
		st["conditions"] = []any{map[string]any{"type": "Succeeded", "status": f.condition, "reason": f.reason}}
	}
	if f.start != nil {
		st["startTime"] = f.start.Format(time.RFC3339)
	}
	if f.completion != nil {
		st["completionTime"] = f.completion.Format(time.RFC3339)
	}
	apiVersion, _, _ := strings.Cut(f.dataType, ".")
	b, _ := json.Marshal(map[string]any{"apiVersion": apiVersion, "kind": f.kind(), "metadata": meta, "status": st})
	return b
}

// randomRuns writes n objects with few distinct names, pipelines and times,
// so that ties, empty values and missing times are common.
func randomRuns(t *testing.T, s *store.Store, rng *rand.Rand, n int) map[string]fakeRun {
	t.Helper()
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	someTime := func() *time.Time {
		if rng.IntN(4) == 0 {
			return nil
		}
		tm := base.Add(time.Duration(rng.IntN(8)) * time.Minute)
		return &tm
	}
	pick := func(options ...string) string { return options[rng.IntN(len(options))] }
	runs := map[string]fakeRun{}
	var ws []store.RecordWrite
	for range n {
		f := fakeRun{
			uid:       uuid.NewString(),
			namespace: pick("ci", "ci", "dev"),
			dataType:  pick("tekton.dev/v1.PipelineRun", "tekton.dev/v1beta1.PipelineRun", "tekton.dev/v1.TaskRun", "tekton.dev/v1beta1.TaskRun", "example.com/v1.Thing"),
			name:      pick("", "a", "a-b", "ab", "b", "B", "build-1", "build1", "build-10", "x.y"),
			pipeline:  pick("", "build", "build-x", "buildx", "deploy"),
			creation:  someTime(),
			start:     someTime(),
		}
		if f.start != nil && rng.IntN(3) > 0 {
			end := f.start.Add(time.Duration(rng.IntN(3)) * time.Minute)
			f.completion = &end
			f.condition, f.reason = pick("True", "False", "False"), pick("Succeeded", "Failed", "Cancelled")
		} else if f.start != nil {
			f.condition = "Unknown"
		}
		if !f.isRun() {
			f.pipeline = ""
		}
		runs[f.uid] = f
		ws = append(ws, store.RecordWrite{ResultName: store.ResultName(f.namespace, uuid.NewString()), UID: f.uid, DataType: f.dataType, Data: f.data()})
	}
	if err := s.UpsertRecords(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
	return runs
}

// sortValue is what a Record sorts by in Go: the reference the database's
// order is checked against. nil means "no value".
func sortValue(field store.OrderField, r *store.Record) any {
	text := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	timeOrNil := func(t *time.Time) any {
		if t == nil {
			return nil
		}
		return *t
	}
	switch field {
	case store.OrderCreateTime:
		return r.CreatedAt
	case store.OrderUpdateTime:
		return r.UpdatedAt
	case store.OrderStartTime:
		return timeOrNil(r.StartTime)
	case store.OrderCompletionTime:
		return timeOrNil(r.CompletionTime)
	case store.OrderCreationTimestamp:
		return timeOrNil(r.CreationTime)
	case store.OrderDuration:
		if r.DurationMillis == nil {
			return nil
		}
		return *r.DurationMillis
	case store.OrderName:
		return text(r.RunName)
	case store.OrderStatus:
		return r.Status
	case store.OrderPipeline:
		return text(r.PipelineName)
	}
	panic("no reference for " + field)
}

func compareValues(a, b any) int {
	switch a := a.(type) {
	case time.Time:
		return a.Compare(b.(time.Time))
	case int64:
		return cmp.Compare(a, b.(int64))
	case string:
		return strings.Compare(a, b.(string)) // byte order, as the C collation
	}
	panic(fmt.Sprintf("cannot compare %T", a))
}

// expectedOrder sorts records as the API documents it: unfinished runs
// first when asked, then by the field (missing values last), then by uid,
// both in the requested direction.
func expectedOrder(recs []*store.Record, runs map[string]fakeRun, o store.OrderBy) []string {
	sorted := slices.Clone(recs)
	unfinished := func(r *store.Record) bool { return runs[r.UID].isRun() && runs[r.UID].completion == nil }
	slices.SortFunc(sorted, func(a, b *store.Record) int {
		if o.UnfinishedFirst && unfinished(a) != unfinished(b) {
			if unfinished(a) {
				return -1
			}
			return 1
		}
		va, vb := sortValue(o.Field, a), sortValue(o.Field, b)
		if (va == nil) != (vb == nil) {
			if va == nil {
				return 1
			}
			return -1
		}
		c := 0
		if va != nil {
			c = compareValues(va, vb)
		}
		if c == 0 {
			c = strings.Compare(a.UID, b.UID)
		}
		if !o.Asc {
			c = -c
		}
		return c
	})
	uids := make([]string, len(sorted))
	for i, r := range sorted {
		uids[i] = r.UID
	}
	return uids
}

var allRecordOrders = []store.OrderField{store.OrderCreateTime, store.OrderUpdateTime, store.OrderStartTime, store.OrderCompletionTime,
	store.OrderDuration, store.OrderCreationTimestamp, store.OrderName, store.OrderStatus, store.OrderPipeline}

// TestOrdersMatchInMemorySort checks every order, both directions, with and
// without unfinished runs first, against a sort in Go, and that paging
// through it forwards and backwards returns each Record once, in that order.
func TestOrdersMatchInMemorySort(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		seed := time.Now().UnixNano()
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(uint64(seed), 16))
		runs := randomRuns(t, s, rng, 45)
		all, err := s.ListRecords(context.Background(), store.ListOptions{Parent: "-", First: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(all.Items) != len(runs) {
			t.Fatalf("listed %d records, wrote %d", len(all.Items), len(runs))
		}
		checkExtracted(t, all.Items, runs)
		for _, field := range allRecordOrders {
			for _, asc := range []bool{false, true} {
				for _, unfinishedFirst := range []bool{false, true} {
					order := store.OrderBy{Field: field, Asc: asc, UnfinishedFirst: unfinishedFirst}
					want := expectedOrder(all.Items, runs, order)
					for _, size := range []int{1, 7, 1000} {
						for _, backward := range []bool{false, true} {
							got := walk(t, s, store.ListOptions{Parent: "-", OrderBy: order}, size, backward, nil)
							if !slices.Equal(got, want) {
								t.Fatalf("%+v, pages of %d, backward %v:\n got %v\nwant %v", order, size, backward, describe(got, runs), describe(want, runs))
							}
						}
					}
				}
			}
		}
	})
}

// checkExtracted makes sure the columns the orders read hold what was written.
func checkExtracted(t *testing.T, recs []*store.Record, runs map[string]fakeRun) {
	t.Helper()
	for _, r := range recs {
		f := runs[r.UID]
		if r.RunName != f.runName() || !sameTime(r.CreationTime, f.creation) {
			t.Fatalf("record %s: name %q creation %v, wrote %q %v", r.UID, r.RunName, r.CreationTime, f.runName(), f.creation)
		}
		if f.isRun() && (r.PipelineName != f.pipeline || !sameTime(r.CompletionTime, f.completion)) {
			t.Fatalf("record %s: pipeline %q completion %v, wrote %q %v", r.UID, r.PipelineName, r.CompletionTime, f.pipeline, f.completion)
		}
	}
}

func describe(uids []string, runs map[string]fakeRun) string {
	var parts []string
	for _, u := range uids {
		f := runs[u]
		parts = append(parts, fmt.Sprintf("%s(%q,%s)", u[:4], f.name, f.pipeline))
	}
	return strings.Join(parts, " ")
}

// TestRunFiltersMatchInMemory checks kinds, runNames, nameContains and
// creationTimestamp against the same tests in Go, alone and combined.
func TestRunFiltersMatchInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		seed := time.Now().UnixNano()
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(uint64(seed), 17))
		runs := randomRuns(t, s, rng, 60)
		at := func(minute int) *time.Time {
			tm := time.Date(2026, 3, 1, 12, minute, 0, 0, time.UTC)
			return &tm
		}
		text := func(s string) *string { return &s }
		tests := []struct {
			name  string
			where filter.RecordWhere
			match func(f fakeRun) bool
		}{
			{"pipeline runs", filter.RecordWhere{Kinds: []string{"PIPELINE_RUN"}},
				func(f fakeRun) bool { return f.kind() == "PipelineRun" }},
			{"both kinds", filter.RecordWhere{Kinds: []string{"PIPELINE_RUN", "TASK_RUN"}},
				func(f fakeRun) bool { return f.isRun() }},
			{"one name", filter.RecordWhere{RunNames: []string{"a-b"}},
				func(f fakeRun) bool { return f.runName() == "a-b" }},
			{"names differing in case", filter.RecordWhere{RunNames: []string{"b", "build-10"}},
				func(f fakeRun) bool { return f.runName() == "b" || f.runName() == "build-10" }},
			{"contains", filter.RecordWhere{NameContains: text("build-1")},
				func(f fakeRun) bool { return strings.Contains(f.runName(), "build-1") }},
			{"contains is case-sensitive", filter.RecordWhere{NameContains: text("B")},
				func(f fakeRun) bool { return strings.Contains(f.runName(), "B") }},
			{"contains a LIKE wildcard literally", filter.RecordWhere{NameContains: text("_")},
				func(f fakeRun) bool { return strings.Contains(f.runName(), "_") }},
			{"contains a dot", filter.RecordWhere{NameContains: text(".")},
				func(f fakeRun) bool { return strings.Contains(f.runName(), ".") }},
			{"created by Kubernetes in a window", filter.RecordWhere{CreationTime: filter.TimeRange{After: at(2), Before: at(6)}},
				func(f fakeRun) bool {
					return f.creation != nil && f.creation.After(*at(2)) && f.creation.Before(*at(6))
				}},
			{"task runs named build in a namespace", filter.RecordWhere{Kinds: []string{"TASK_RUN"}, NameContains: text("build"), Namespace: text("ci")},
				func(f fakeRun) bool {
					return f.kind() == "TaskRun" && strings.Contains(f.runName(), "build") && f.namespace == "ci"
				}},
			{"v1beta1 data type", filter.RecordWhere{DataTypes: []string{"tekton.dev/v1beta1.TaskRun"}},
				func(f fakeRun) bool { return f.dataType == "tekton.dev/v1beta1.TaskRun" }},
		}
		for _, tt := range tests {
			var want []string
			for uid, f := range runs {
				if tt.match(f) {
					want = append(want, uid)
				}
			}
			slices.Sort(want)
			where := tt.where
			got := walk(t, s, store.ListOptions{Parent: "-", RecordWhere: &where, OrderBy: store.OrderBy{Field: store.OrderName, Asc: true}}, 4, false, nil)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s: got %d records, want %d:\n got %v\nwant %v", tt.name, len(got), len(want), describe(got, runs), describe(want, runs))
			}
			n, err := s.CountRecords(context.Background(), store.ListOptions{Parent: "-", RecordWhere: &where})
			if err != nil || n != len(want) {
				t.Errorf("%s: count %d (%v), want %d", tt.name, n, err, len(want))
			}
		}
	})
}

func TestRunFiltersRefuseBadInput(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		tests := []struct {
			name     string
			o        store.ListOptions
			mentions string
		}{
			{"short data type", store.ListOptions{RecordWhere: &filter.RecordWhere{DataTypes: []string{"PipelineRun"}}}, "tekton.dev/v1.PipelineRun"},
			{"unknown kind", store.ListOptions{RecordWhere: &filter.RecordWhere{Kinds: []string{"PIPELINE"}}}, "PIPELINE_RUN or TASK_RUN"},
			{"empty run name", store.ListOptions{RecordWhere: &filter.RecordWhere{RunNames: []string{"a", ""}}}, "runNames[1]"},
			{"too many run names", store.ListOptions{RecordWhere: &filter.RecordWhere{RunNames: make([]string, filter.MaxRunNames+1)}}, "at most"},
			{"results by name", store.ListOptions{OrderBy: store.OrderBy{Field: store.OrderName}}, "CREATE_TIME"},
		}
		for _, tt := range tests {
			var err error
			if tt.name == "results by name" {
				_, err = s.ListResults(context.Background(), tt.o)
			} else {
				_, err = s.ListRecords(context.Background(), tt.o)
			}
			if !errors.Is(err, store.ErrInvalidArgument) || !strings.Contains(err.Error(), tt.mentions) {
				t.Errorf("%s: err = %v, want invalid argument mentioning %q", tt.name, err, tt.mentions)
			}
		}
	})
}

// TestResultOrders pages through Results by status and with unfinished runs
// first, against a sort in Go.
func TestResultOrders(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		seed(t, s, "ci", 17)
		all, err := s.ListResults(context.Background(), store.ListOptions{Parent: "ci", First: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, order := range []store.OrderBy{{Field: store.OrderStatus}, {Field: store.OrderStatus, Asc: true},
			{Field: store.OrderStartTime, UnfinishedFirst: true}, {Field: store.OrderCreateTime, Asc: true, UnfinishedFirst: true}} {
			want := slices.Clone(all.Items)
			slices.SortFunc(want, func(a, b *store.Result) int {
				if order.UnfinishedFirst && (a.SummaryEndTime == nil) != (b.SummaryEndTime == nil) {
					if a.SummaryEndTime == nil {
						return -1
					}
					return 1
				}
				var c int
				switch order.Field {
				case store.OrderStatus:
					c = strings.Compare(a.SummaryStatus, b.SummaryStatus)
				case store.OrderStartTime:
					c = a.SummaryStartTime.Compare(*b.SummaryStartTime) // seed starts every run
				case store.OrderCreateTime:
					c = a.CreatedAt.Compare(b.CreatedAt)
				}
				if c == 0 {
					c = strings.Compare(a.UID, b.UID)
				}
				if !order.Asc {
					c = -c
				}
				return c
			})
			for _, backward := range []bool{false, true} {
				var got []*store.Result
				cursor := ""
				for {
					o := store.ListOptions{Parent: "ci", OrderBy: order, First: 3, After: cursor}
					if backward {
						o = store.ListOptions{Parent: "ci", OrderBy: order, Last: 3, Before: cursor}
					}
					page, err := s.ListResults(context.Background(), o)
					if err != nil {
						t.Fatal(err)
					}
					if backward {
						got = append(page.Items, got...)
						if !page.HasPreviousPage {
							break
						}
						cursor = page.StartCursor()
					} else {
						got = append(got, page.Items...)
						if !page.HasNextPage {
							break
						}
						cursor = page.EndCursor()
					}
				}
				if !slices.EqualFunc(got, want, func(a, b *store.Result) bool { return a.UID == b.UID }) {
					t.Errorf("%+v backward %v: results in another order", order, backward)
				}
			}
		}
	})
}

// TestNameSearchIndexOnPostgres: migration 00006 creates the trigram index
// of nameContains, and the planner uses it once the table is big enough to
// make a scan the worse choice.
func TestNameSearchIndexOnPostgres(t *testing.T) {
	s, url := storetest.Open(t, "postgres")
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'records_run_name_trgm'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("trigram index: %d (%v)", n, err)
	}
	var ws []store.RecordWrite
	for i := range 2000 {
		uid := uuid.NewString()
		ws = append(ws, store.RecordWrite{ResultName: store.ResultName("ci", uid), UID: uid, DataType: store.TypeTaskRun,
			Data: run("TaskRun", "ci", fmt.Sprintf("build-%05d", i), uid, "True", "", nil, nil, nil)})
	}
	if err := s.UpsertRecords(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("ANALYZE records"); err != nil {
		t.Fatal(err)
	}
	text := "build-01234"
	plan, err := s.ExplainRecords(context.Background(), store.ListOptions{RecordWhere: &filter.RecordWhere{NameContains: &text}})
	if err != nil || !strings.Contains(plan, "records_run_name_trgm") {
		t.Errorf("nameContains does not use the trigram index (%v):\n%s", err, plan)
	}
}
