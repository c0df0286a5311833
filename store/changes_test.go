package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

func upsertTaskRun(t *testing.T, s *store.Store, ns string) string {
	t.Helper()
	uid := uuid.NewString()
	err := s.UpsertRecords(context.Background(), []store.RecordWrite{{ResultName: store.ResultName(ns, uid), UID: uid, DataType: store.TypeTaskRun,
		UpdateSummary: true, Data: run("TaskRun", ns, "tr", uid, "True", "", nil, nil, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

func nextChange(t *testing.T, ch <-chan store.Change) store.Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no change within 10s")
	}
	return store.Change{}
}

// TestChangesReachSubscribersOfEveryProcess: a write through one store
// reaches subscribers of another store on the same database (another API
// replica, with the watcher writing) on PostgreSQL, and of the same store
// on SQLite.
func TestChangesReachSubscribersOfEveryProcess(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			writer, url := storetest.Open(t, kind)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			reader := writer
			if kind == "postgres" {
				var err error
				if reader, err = store.Open(ctx, url, store.Options{}); err != nil {
					t.Fatal(err)
				}
				defer reader.Close()
				if err := reader.Ready(ctx); err != nil {
					t.Fatal(err)
				}
			}
			ch, err := reader.Subscribe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			uid := upsertTaskRun(t, writer, "ci")
			if c := nextChange(t, ch); c.UID != uid || c.Namespace != "ci" {
				t.Errorf("change %+v, want %s in ci", c, uid)
			}
			recs, err := reader.MatchingRecords(ctx, store.ListOptions{Parent: "ci", Filter: `data.status.conditions[0].status == "True"`}, []store.Key{{Namespace: "ci", UID: uid}, {Namespace: "ci", UID: uuid.NewString()}})
			if err != nil || len(recs) != 1 || recs[0].UID != uid {
				t.Errorf("matching records: %v %v", recs, err)
			}
			if recs, _ := reader.MatchingRecords(ctx, store.ListOptions{Parent: "prod"}, []store.Key{{Namespace: "ci", UID: uid}}); len(recs) != 0 {
				t.Errorf("a change in ci matched a subscription to prod")
			}
		})
	}
}

// TestSlowSubscriberIsDropped: a subscriber that reads nothing is cut off
// once its buffer is full; one that keeps reading goes on.
func TestSlowSubscriberIsDropped(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	ctx := context.Background()
	slow, _ := s.Subscribe(ctx)
	sub, cancel := context.WithCancel(ctx)
	defer cancel()
	fast, _ := s.Subscribe(sub)
	write := func(n int) {
		ws := make([]store.RecordWrite, 0, n)
		for range n {
			uid := uuid.NewString()
			ws = append(ws, store.RecordWrite{ResultName: store.ResultName("ci", uid), UID: uid, DataType: store.TypeTaskRun, Data: []byte(`{}`)})
		}
		if err := s.UpsertRecords(ctx, ws); err != nil {
			t.Fatal(err)
		}
	}
	write(store.SubscriberBuffer) // fills both buffers
	for range store.SubscriberBuffer {
		nextChange(t, fast)
	}
	write(1) // one more than the slow one can hold
	nextChange(t, fast)
	n := 0
	for range slow {
		n++
	}
	if n != store.SubscriberBuffer {
		t.Errorf("the slow subscriber got %d changes before being dropped, want %d", n, store.SubscriberBuffer)
	}
}

// TestDeletesAreAnnounced: deleting a Record, a Result (its Records by
// cascade) and Results by retention announce each Record with its name
// and data type, on both databases; a delete that fails announces nothing.
func TestDeletesAreAnnounced(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			s, _ := storetest.Open(t, kind)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			written := map[string]*store.Record{}
			for range 4 {
				uid := upsertTaskRun(t, s, "ci")
				recs, err := s.GetRecordsByUID(ctx, "ci", []string{uid})
				if err != nil {
					t.Fatal(err)
				}
				written[uid] = recs[uid]
			}
			var uids []string
			for uid := range written {
				uids = append(uids, uid)
			}
			ch, err := s.Subscribe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			expectDeleted := func(how string, uid string) {
				t.Helper()
				want := store.Change{UID: uid, Namespace: "ci", Deleted: true, Name: written[uid].Name, DataType: store.TypeTaskRun}
				if c := nextChange(t, ch); c != want {
					t.Errorf("%s: change %+v, want %+v", how, c, want)
				}
			}
			if err := s.DeleteRecord(ctx, written[uids[0]].Name, "stale-1"); err == nil {
				t.Fatal("a stale etag deleted the record")
			}
			if err := s.DeleteRecord(ctx, written[uids[0]].Name, ""); err != nil {
				t.Fatal(err)
			}
			expectDeleted("deleteRecord", uids[0]) // and not before: the stale delete announced nothing
			if err := s.DeleteResult(ctx, written[uids[1]].ResultName, ""); err != nil {
				t.Fatal(err)
			}
			expectDeleted("deleteResult", uids[1])
			if _, _, err := s.DeleteResults(ctx, []string{written[uids[2]].ResultName, written[uids[3]].ResultName}); err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for range 2 {
				c := nextChange(t, ch)
				got[c.UID] = c.Deleted && c.Name == written[c.UID].Name
			}
			if !got[uids[2]] || !got[uids[3]] {
				t.Errorf("retention's delete announced %v, want both records deleted", got)
			}
		})
	}
}

func TestDeletedMatches(t *testing.T) {
	ci := "ci"
	deleted := store.Change{UID: "u", Namespace: "ci", Deleted: true, Name: "ci/results/r/records/u", DataType: "tekton.dev/v1beta1.TaskRun"}
	tests := []struct {
		name string
		o    store.ListOptions
		want bool
	}{
		{"every namespace", store.ListOptions{Parent: "-"}, true},
		{"its namespace", store.ListOptions{Parent: "ci"}, true},
		{"another namespace", store.ListOptions{Parent: "prod"}, false},
		{"caller may not list it", store.ListOptions{Parent: "-", Namespaces: []string{"prod"}}, false},
		{"its Result", store.ListOptions{Parent: "ci", ResultName: "ci/results/r"}, true},
		{"another Result", store.ListOptions{Parent: "ci", ResultName: "ci/results/r2"}, false},
		{"its kind in another version", store.ListOptions{RecordWhere: &filter.RecordWhere{Kinds: []string{"TASK_RUN"}}}, true},
		{"another kind", store.ListOptions{RecordWhere: &filter.RecordWhere{Kinds: []string{"PIPELINE_RUN"}}}, false},
		{"another data type", store.ListOptions{RecordWhere: &filter.RecordWhere{DataTypes: []string{store.TypeTaskRun}}}, false},
		{"where namespace", store.ListOptions{RecordWhere: &filter.RecordWhere{Namespace: &ci}}, true},
		{"statuses cannot be tested: passes", store.ListOptions{RecordWhere: &filter.RecordWhere{Statuses: []string{"Failed"}}}, true},
	}
	for _, tt := range tests {
		if got := store.DeletedMatches(tt.o, deleted); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	written := deleted
	written.Deleted = false
	if store.DeletedMatches(store.ListOptions{}, written) {
		t.Error("a write matched as a delete")
	}
}
