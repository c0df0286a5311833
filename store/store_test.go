package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// run builds a Tekton run object for tests.
func run(kind, ns, name, uid, status, reason string, start, end *time.Time, labels map[string]string) json.RawMessage {
	obj := map[string]any{
		"apiVersion": "tekton.dev/v1", "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": uid, "labels": labels},
	}
	st := map[string]any{}
	if status != "" {
		st["conditions"] = []any{map[string]any{"type": "Succeeded", "status": status, "reason": reason}}
	}
	if start != nil {
		st["startTime"] = start.Format(time.RFC3339)
	}
	if end != nil {
		st["completionTime"] = end.Format(time.RFC3339)
	}
	obj["status"] = st
	b, _ := json.Marshal(obj)
	return b
}

func TestResultCRUD(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		res, err := s.CreateResult(ctx, "ci", "", map[string]string{"team": "web"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateResult(ctx, "ci", res.UID, nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate create: %v, want conflict", err)
		}
		got, err := s.GetResult(ctx, res.Name)
		if err != nil || got.UID != res.UID || got.Etag() != res.Etag() {
			t.Fatalf("get: %+v %v", got, err)
		}
		if _, err := s.UpdateResultAnnotations(ctx, res.Name, map[string]string{"x": "1"}, nil, "stale-1"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale etag: %v, want conflict", err)
		}
		upd, err := s.UpdateResultAnnotations(ctx, res.Name, map[string]string{"x": "1"}, []string{"team"}, res.Etag())
		if err != nil || upd.Version != 2 || !upd.CreatedAt.Equal(res.CreatedAt) {
			t.Fatalf("update: %+v %v", upd, err)
		}
		anns, err := s.AnnotationsByResult(ctx, []store.Key{res.Key()})
		if err != nil || len(anns[res.Key()]) != 1 || anns[res.Key()][0].Key != "x" {
			t.Fatalf("annotations: %+v %v", anns, err)
		}
		if err := s.DeleteResult(ctx, res.Name, res.Etag()); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("delete with stale etag: %v", err)
		}
		if err := s.DeleteResult(ctx, res.Name, upd.Etag()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetResult(ctx, res.Name); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	})
}

func TestUpsertRecords(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		prUID, trUID := uuid.NewString(), uuid.NewString()
		resultName := store.ResultName("ci", prUID)
		start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		write := func(status string, end *time.Time) []*store.Record {
			t.Helper()
			return storetest.Upsert(t, s,
				store.RecordWrite{ResultName: resultName, UID: prUID, DataType: store.TypePipelineRun, UpdateSummary: true,
					Data: run("PipelineRun", "ci", "pr", prUID, status, "", &start, end, map[string]string{"app": "web"})},
				store.RecordWrite{ResultName: resultName, UID: trUID, DataType: store.TypeTaskRun,
					Data: run("TaskRun", "ci", "tr", trUID, status, "", &start, end, map[string]string{"tekton.dev/pipelineRun": "pr"})},
			)
		}
		first := write("Unknown", nil)
		again := write("Unknown", nil)
		if again[0].Version != first[0].Version || !again[0].UpdatedAt.Equal(first[0].UpdatedAt) {
			t.Errorf("an unchanged upsert bumped the version: %d -> %d", first[0].Version, again[0].Version)
		}
		end := start.Add(time.Minute)
		done := write("True", &end)
		if done[0].Version != first[0].Version+1 || !done[0].CreatedAt.Equal(first[0].CreatedAt) {
			t.Errorf("changed upsert: version %d created %v; want %d, %v", done[0].Version, done[0].CreatedAt, first[0].Version+1, first[0].CreatedAt)
		}
		if done[0].Status != store.StatusSucceeded || done[1].PipelineRunName != "pr" || *done[0].DurationMillis != 60000 {
			t.Errorf("derived columns: %+v / %+v", done[0], done[1])
		}
		res, err := s.GetResult(ctx, resultName)
		if err != nil {
			t.Fatal(err)
		}
		if res.SummaryStatus != store.StatusSucceeded || res.SummaryRecord != done[0].Name || res.SummaryEndTime == nil || !res.SummaryEndTime.Equal(end) {
			t.Errorf("summary: %+v", res)
		}
		page, err := s.ListRecords(ctx, store.ListOptions{Parent: "ci"})
		if err != nil || len(page.Items) != 2 {
			t.Fatalf("list: %v %v", page, err)
		}
		trs, err := s.ListTaskRunsForPipelineRuns(ctx, []*store.Record{done[0]}, store.ListOptions{})
		if err != nil || len(trs[done[0].Name].Items) != 1 || trs[done[0].Name].Items[0].UID != trUID {
			t.Fatalf("taskruns of the pipelinerun: %+v %v", trs[done[0].Name], err)
		}
		// NUL characters never reach the database.
		if err := s.UpsertRecords(ctx, []store.RecordWrite{{ResultName: resultName, UID: trUID, DataType: store.TypeTaskRun,
			Data: json.RawMessage(`{"metadata":{"name":"a\u0000b"}}`)}}); err != nil {
			t.Fatalf("NUL: %v", err)
		}
	})
}

// seed stores n PipelineRuns in namespace ns, some without completion time,
// several sharing a creation time, and returns their uids.
func seed(t *testing.T, s *store.Store, ns string, n int) []string {
	t.Helper()
	var ws []store.RecordWrite
	var uids []string
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		uid := uuid.NewString()
		uids = append(uids, uid)
		start := base.Add(time.Duration(i%7) * time.Hour)
		var end *time.Time
		if i%3 != 0 {
			e := start.Add(time.Duration(i%5) * time.Minute)
			end = &e
		}
		status := []string{"True", "False", "Unknown"}[i%3]
		ws = append(ws, store.RecordWrite{ResultName: store.ResultName(ns, uid), UID: uid, DataType: store.TypePipelineRun, UpdateSummary: true,
			Data: run("PipelineRun", ns, fmt.Sprintf("run-%03d", i), uid, status, "", &start, end, map[string]string{"app": []string{"web", "api"}[i%2]})})
	}
	if err := s.UpsertRecords(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
	return uids
}

// walk pages through a whole list and returns the uids in order.
func walk(t *testing.T, s *store.Store, o store.ListOptions, size int, backward bool, between func()) []string {
	t.Helper()
	var out []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
		opts := o
		if backward {
			opts.Last, opts.Before = size, cursor
		} else {
			opts.First, opts.After = size, cursor
		}
		page, err := s.ListRecords(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		var uids []string
		for _, r := range page.Items {
			uids = append(uids, r.UID)
		}
		if backward {
			out = append(uids, out...)
			if !page.HasPreviousPage {
				return out
			}
			cursor = page.StartCursor()
		} else {
			out = append(out, uids...)
			if !page.HasNextPage {
				return out
			}
			cursor = page.EndCursor()
		}
		if between != nil {
			between()
		}
	}
}

func TestPaginationIsExhaustive(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		const n = 23
		seed(t, s, "ci", n)
		seed(t, s, "other", 3)
		orders := []store.OrderBy{}
		for _, f := range []store.OrderField{store.OrderCreateTime, store.OrderUpdateTime, store.OrderStartTime, store.OrderCompletionTime, store.OrderDuration} {
			orders = append(orders, store.OrderBy{Field: f}, store.OrderBy{Field: f, Asc: true})
		}
		for _, order := range orders {
			o := store.ListOptions{Parent: "ci", OrderBy: order}
			want := walk(t, s, o, n+1, false, nil)
			if len(want) != n {
				t.Fatalf("%v: one page holds %d records, want %d", order, len(want), n)
			}
			for size := 1; size <= n; size++ {
				for _, backward := range []bool{false, true} {
					got := walk(t, s, o, size, backward, nil)
					if strings.Join(got, ",") != strings.Join(want, ",") {
						t.Fatalf("%v size %d backward=%v: got %d records in another order", order, size, backward, len(got))
					}
				}
			}
		}
	})
}

func TestPaginationWithInsertsBetweenPages(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		before := seed(t, s, "ci", 20)
		got := walk(t, s, store.ListOptions{Parent: "ci", OrderBy: store.OrderBy{Field: store.OrderCreateTime, Asc: true}}, 3, false, func() { seed(t, s, "ci", 1) })
		seen := map[string]int{}
		for _, uid := range got {
			seen[uid]++
		}
		for _, uid := range before {
			if seen[uid] != 1 {
				t.Errorf("record %s seen %d times", uid, seen[uid])
			}
		}
	})
}

func TestBadListInput(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "ci", 5)
		page, err := s.ListRecords(ctx, store.ListOptions{Parent: "ci", First: 2})
		if err != nil {
			t.Fatal(err)
		}
		cursor := page.EndCursor()
		tampered := cursor[:len(cursor)-2] + "AA"
		if cursor[len(cursor)-2:] == "AA" {
			tampered = cursor[:len(cursor)-2] + "BB"
		}
		tests := []struct {
			name string
			o    store.ListOptions
		}{
			{"page too large", store.ListOptions{First: 100000}},
			{"negative", store.ListOptions{First: -1}},
			{"tampered cursor", store.ListOptions{Parent: "ci", After: tampered}},
			{"garbage cursor", store.ListOptions{Parent: "ci", After: "not a cursor"}},
			{"cursor of another query", store.ListOptions{Parent: "ci", After: cursor, Filter: `data_type == "x"`}},
			{"cursor of another namespace", store.ListOptions{Parent: "other", After: cursor}},
			{"bad namespace", store.ListOptions{Parent: "Not_A_Namespace"}},
			{"bad filter", store.ListOptions{Filter: `nonsense ==`}},
			{"unknown field", store.ListOptions{Filter: `colour == "red"`}},
			{"bad status", store.ListOptions{RecordWhere: &filter.RecordWhere{Statuses: []string{"Done"}}}},
		}
		for _, tt := range tests {
			if _, err := s.ListRecords(ctx, tt.o); !errors.Is(err, store.ErrInvalidArgument) {
				t.Errorf("%s: err = %v, want invalid argument", tt.name, err)
			}
		}
	})
}

func TestNestedListsCostOneStatement(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		var names []string
		for _, uid := range seed(t, s, "ci", 12) {
			names = append(names, store.ResultName("ci", uid))
		}
		ctx, n := store.CountStatements(context.Background())
		pages, err := s.ListRecordsForResults(ctx, names, store.ListOptions{First: 1})
		if err != nil {
			t.Fatal(err)
		}
		if n.Load() != 1 {
			t.Errorf("%d statements for %d parents, want 1", n.Load(), len(names))
		}
		for _, name := range names {
			if len(pages[name].Items) != 1 {
				t.Errorf("result %s: %d records", name, len(pages[name].Items))
			}
		}
		// The cursor of a nested page continues with the single-parent list.
		next, err := s.ListRecords(context.Background(), store.ListOptions{ResultName: names[0], After: pages[names[0]].EndCursor()})
		if err != nil || len(next.Items) != 0 {
			t.Errorf("next nested page: %v %v", next, err)
		}
	})
}

func TestNamespaces(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if ns, err := s.Namespaces(ctx); err != nil || len(ns) != 0 {
			t.Fatalf("empty store: %v %v", ns, err)
		}
		for _, ns := range []string{"prod", "ci", "prod", "dev"} {
			seed(t, s, ns, 2)
		}
		if ns, err := s.Namespaces(ctx); err != nil || strings.Join(ns, ",") != "ci,dev,prod" {
			t.Errorf("namespaces: %v %v", ns, err)
		}
	})
}

// An import reports what each upsert did: created, updated (the data
// changed) or unchanged; a uid written twice in one call counts once.
func TestUpsertRecordsCounted(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		prUID, trUID, otherUID := uuid.NewString(), uuid.NewString(), uuid.NewString()
		resultName := store.ResultName("ci", prUID)
		start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
		end := start.Add(time.Minute)
		pr := func(status string, end *time.Time) store.RecordWrite {
			return store.RecordWrite{ResultName: resultName, UID: prUID, DataType: store.TypePipelineRun, UpdateSummary: true,
				Data: run("PipelineRun", "ci", "pr", prUID, status, "", &start, end, nil)}
		}
		tr := func(uid, status string) store.RecordWrite {
			return store.RecordWrite{ResultName: resultName, UID: uid, DataType: store.TypeTaskRun,
				Data: run("TaskRun", "ci", "tr-"+uid[:4], uid, status, "", &start, nil, map[string]string{"tekton.dev/pipelineRun": "pr"})}
		}
		for _, step := range []struct {
			name   string
			writes []store.RecordWrite
			want   store.UpsertCounts
		}{
			{"first", []store.RecordWrite{pr("Unknown", nil), tr(trUID, "Unknown")}, store.UpsertCounts{Created: 2}},
			{"again", []store.RecordWrite{pr("Unknown", nil), tr(trUID, "Unknown")}, store.UpsertCounts{Unchanged: 2}},
			{"finished and a new one", []store.RecordWrite{pr("True", &end), tr(trUID, "Unknown"), tr(otherUID, "True")},
				store.UpsertCounts{Created: 1, Updated: 1, Unchanged: 1}},
			{"the same uid twice", []store.RecordWrite{tr(trUID, "False"), tr(trUID, "True")}, store.UpsertCounts{Updated: 1}},
		} {
			got, err := s.UpsertRecordsCounted(ctx, step.writes)
			if err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			if got != step.want {
				t.Errorf("%s: %+v, want %+v", step.name, got, step.want)
			}
		}
	})
}
