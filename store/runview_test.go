package store_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// viewJSON is a view as JSON, to compare views whatever the spacing of
// their raw values and the pointers of their times.
func viewJSON(t *testing.T, v store.RunView) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A run's view is extracted on write, read back with or without the run's
// data, stands in for data only where it exists, and is filled in for runs
// stored before views existed.
func TestRunView(t *testing.T) {
	data, err := os.ReadFile("testdata/taskrun-view.json")
	if err != nil {
		t.Fatal(err)
	}
	exitCode, completed, initializing := 0, "Completed", "PodInitializing"
	fetchStart, compileStart := mustTime(t, "2026-11-01T10:00:01Z"), mustTime(t, "2026-11-01T10:00:06Z")
	fetchEnd := mustTime(t, "2026-11-01T10:00:05+02:00")
	want := viewJSON(t, store.RunView{
		Message: "Not all Steps in the Task have finished executing",
		PodName: "build-1-compile-pod",
		Params:  []store.NameValue{{Name: "revision", Value: json.RawMessage(`"main"`)}, {Name: "flags", Value: json.RawMessage(`["-v","-race"]`)}},
		Results: []store.NameValue{{Name: "digest", Value: json.RawMessage(`"sha256:abc"`)}, {Name: "legacy", Value: json.RawMessage(`"old-style"`)}},
		Steps: []store.StepView{
			{Name: "fetch", Container: "step-fetch", ExitCode: &exitCode, Reason: &completed, StartedAt: &fetchStart, FinishedAt: &fetchEnd},
			{Name: "compile", Container: "step-compile", StartedAt: &compileStart},
			{Name: "upload", Container: "step-upload", Reason: &initializing},
		},
	})

	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		const resultUID, runUID, noteUID = "22222222-2222-4222-8222-222222222222", "11111111-1111-4111-8111-111111111111", "33333333-3333-4333-8333-333333333333"
		err := s.UpsertRecords(ctx, []store.RecordWrite{
			{ResultName: store.ResultName("ci", resultUID), UID: runUID, DataType: "tekton.dev/v1beta1.TaskRun", Data: data},
			{ResultName: store.ResultName("ci", resultUID), UID: noteUID, DataType: "example.com/v1.Note", Data: json.RawMessage(`{"text":"not a run"}`)},
		})
		if err != nil {
			t.Fatal(err)
		}
		stored, err := s.GetRecord(ctx, store.RecordName("ci", resultUID, runUID))
		if err != nil {
			t.Fatal(err)
		}
		if got := viewJSON(t, store.RunViewOf(stored)); got != want || len(stored.RunView) == 0 {
			t.Fatalf("stored view %s\nwant %s", stored.RunView, want)
		}

		// list reads both Records with and without data, and checks what
		// stands in for data, and that cursors do not change.
		list := func(step string, runDataRead bool) {
			t.Helper()
			whole, err := s.ListRecords(ctx, store.ListOptions{Parent: "ci"})
			if err != nil {
				t.Fatal(err)
			}
			lean, err := s.ListRecords(ctx, store.ListOptions{Parent: "ci", WithoutData: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(lean.Items) != 2 || len(whole.Items) != 2 {
				t.Fatalf("%s: %d and %d records", step, len(whole.Items), len(lean.Items))
			}
			// A cursor of the lean list pages the whole one: the same list.
			next, err := s.ListRecords(ctx, store.ListOptions{Parent: "ci", After: lean.Cursors[0]})
			if err != nil || len(next.Items) != 1 || next.Items[0].UID != whole.Items[1].UID {
				t.Fatalf("%s: paging with a cursor of the lean list: %v, %d records", step, err, len(next.Items))
			}
			for _, rec := range lean.Items {
				switch rec.UID {
				case noteUID:
					if string(rec.Data) != `{"text":"not a run"}` && string(rec.Data) != `{"text": "not a run"}` {
						t.Errorf("%s: a Record that is not a run lost its data: %s", step, rec.Data)
					}
				case runUID:
					if runDataRead != (len(rec.Data) > 0) {
						t.Errorf("%s: run data read: %v, want %v", step, len(rec.Data) > 0, runDataRead)
					}
					if got := viewJSON(t, store.RunViewOf(rec)); got != want {
						t.Errorf("%s: view %s\nwant %s", step, got, want)
					}
				}
			}
		}
		list("with views", false)

		if err := s.ForgetRunViews(ctx); err != nil {
			t.Fatal(err)
		}
		list("before the fill", true)

		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		filled, err := s.GetRecord(ctx, stored.Name)
		if err != nil {
			t.Fatal(err)
		}
		if string(filled.RunView) != string(stored.RunView) {
			t.Errorf("filled view %s\nwritten view %s", filled.RunView, stored.RunView)
		}
		list("after the fill", false)
	})
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
