package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
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
