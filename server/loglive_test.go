package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestLogLiveAndSearchCursor: Log.live is true while a step's log is
// appended and false once it is complete (or was written whole); a
// logSearch stopped by a limit gives a cursor that continues it, and that
// opens only for the same search.
func TestLogLiveAndSearchCursor(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		ctx := context.Background()
		trName := store.RecordName("ci", "5eed0000-0000-4000-8000-000000000001", "5eed0000-0000-4000-8000-00000000000c")
		tr, err := s.GetRecord(ctx, trName)
		if err != nil {
			t.Fatal(err)
		}
		followed := store.LogWrite{UID: "5eed0000-0000-4000-8000-0000000000b1", TaskRun: tr, Step: "test", Container: "step-test"}
		if _, err := s.AppendLog(ctx, followed, 0, []byte("running tests\n"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WriteLog(ctx, store.LogWrite{UID: "5eed0000-0000-4000-8000-0000000000b2", TaskRun: tr, Step: "build", Container: "step-build"},
			strings.NewReader("built the tests\n"), 0); err != nil {
			t.Fatal(err)
		}
		live := func() map[string]bool {
			t.Helper()
			r := post(t, ctx, h, `query($n: String!) { record(name: $n) { taskRun { logs { step live } } } }`, map[string]any{"n": trName})
			var got struct {
				Record struct {
					TaskRun struct {
						Logs []struct {
							Step string
							Live bool
						}
					}
				}
			}
			json.Unmarshal(r.Data, &got)
			if len(r.Errors) > 0 {
				t.Fatalf("%+v", r.Errors)
			}
			out := map[string]bool{}
			for _, l := range got.Record.TaskRun.Logs {
				out[l.Step] = l.Live
			}
			return out
		}
		if got := live(); len(got) != 2 || !got["test"] || got["build"] {
			t.Errorf("while the test step runs: live %v, want test true, build false", got)
		}
		if _, err := s.CompleteLog(ctx, followed, false); err != nil {
			t.Fatal(err)
		}
		if got := live(); len(got) != 2 || got["test"] || got["build"] {
			t.Errorf("once complete: live %v, want both false", got)
		}

		const search = `query($c: String!, $after: String) { logSearch(parent: "ci", contains: $c, where: {updatedAfter: "2000-01-01T00:00:00Z"}, first: 1, after: $after) {
  matches { step lines { number text } } stoppedBy cursor } }`
		type page struct {
			LogSearch struct {
				Matches []struct {
					Step  string
					Lines []struct {
						Number int
						Text   string
					}
				}
				StoppedBy, Cursor *string
			}
		}
		var steps []string
		var after any
		for range 3 {
			r := post(t, ctx, h, search, map[string]any{"c": "tests", "after": after})
			var p page
			json.Unmarshal(r.Data, &p)
			if len(r.Errors) > 0 {
				t.Fatalf("%+v", r.Errors)
			}
			for _, m := range p.LogSearch.Matches {
				steps = append(steps, m.Step)
			}
			if p.LogSearch.Cursor == nil {
				break
			}
			if p.LogSearch.StoppedBy == nil || *p.LogSearch.StoppedBy != "logs" {
				t.Errorf("stopped by %v with a cursor", p.LogSearch.StoppedBy)
			}
			after = *p.LogSearch.Cursor
			if r := post(t, ctx, h, search, map[string]any{"c": "test", "after": after}); r.code() != "INVALID_ARGUMENT" {
				t.Errorf("a cursor given back with another text: %s %+v", r.Data, r.Errors)
			}
		}
		if strings.Join(steps, ",") != "build,test" && strings.Join(steps, ",") != "test,build" {
			t.Errorf("pages found steps %v, want build and test once each", steps)
		}
	})
}
