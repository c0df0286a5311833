package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

func newTaskRunForLogs(t testing.TB, s *store.Store, ns string) *store.Record {
	t.Helper()
	trUID := uuid.NewString()
	return storetest.Upsert(t, s, store.RecordWrite{ResultName: store.ResultName(ns, trUID), UID: trUID, DataType: store.TypeTaskRun, UpdateSummary: true,
		Data: run("TaskRun", ns, "tr-"+trUID[:8], trUID, "Unknown", "", nil, nil, nil)})[0]
}

func readStoredLog(t *testing.T, s *store.Store, ns, uid string) (*store.Record, string) {
	t.Helper()
	recs, err := s.GetRecordsByUID(context.Background(), ns, []string{uid})
	if err != nil || recs[uid] == nil {
		t.Fatalf("log %s: %v (found %v)", uid, err, recs[uid] != nil)
	}
	rc, err := s.OpenLog(context.Background(), recs[uid])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return recs[uid], string(b)
}

// TestAppendLog appends a log in pieces that cross chunk boundaries, and
// reads it back whole, by range and by tail.
func TestAppendLog(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		tr := newTaskRunForLogs(t, s, "ci")
		w := store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: "build", Container: "step-build"}
		var want bytes.Buffer
		for i := range 25000 {
			fmt.Fprintf(&want, "line %05d of the build\n", i) // 24 bytes a line, 600,000 bytes
		}
		var offset int64
		// Pieces of uneven sizes: some fill the partial chunk, some span two chunks.
		for _, n := range []int{10, 262_134, 1, 300_000, 37_855} {
			p, err := s.AppendLog(ctx, w, offset, want.Bytes()[offset:offset+int64(n)], 0)
			if err != nil {
				t.Fatalf("append %d bytes at %d: %v", n, offset, err)
			}
			offset += int64(n)
			if !p.Live || p.Size != offset || p.Truncated {
				t.Fatalf("after appending up to %d: %+v", offset, p)
			}
		}
		if offset != int64(want.Len()) {
			t.Fatalf("test appended %d of %d bytes", offset, want.Len())
		}
		rec, got := readStoredLog(t, s, "ci", w.UID)
		if got != want.String() {
			t.Fatalf("stored %d bytes, want %d; differ from byte %d", len(got), want.Len(), firstDiff(got, want.String()))
		}
		if part, err := s.ReadLogRange(ctx, rec, 262_140, 10); err != nil || string(part) != want.String()[262_140:262_150] {
			t.Errorf("range across a chunk boundary: %q %v", part, err)
		}
		if tail, _ := s.TailLog(ctx, rec, 1); string(tail) != "line 24999 of the build\n" {
			t.Errorf("tail: %q", tail)
		}
		if rec.OwnerUID != tr.UID || rec.ResultUID != tr.ResultUID || rec.DataType != store.TypeLog {
			t.Errorf("log record: %+v", rec)
		}
		if size, _ := s.LogSize(ctx, rec.Key()); size != int64(want.Len()) {
			t.Errorf("LogSize %d", size)
		}

		// Appending from anywhere but the end is refused and changes nothing.
		for _, at := range []int64{0, offset - 1, offset + 1} {
			if _, err := s.AppendLog(ctx, w, at, []byte("again\n"), 0); !errors.Is(err, store.ErrConflict) {
				t.Errorf("append at %d of %d: %v, want a conflict", at, offset, err)
			}
		}
		if done, err := s.CompleteLog(ctx, w, false); err != nil || done == nil {
			t.Fatalf("complete: %v", err)
		}
		p, err := s.LogProgressOf(ctx, rec.Key())
		if err != nil || p.Live || p.Size != offset || p.Truncated || !p.Available {
			t.Errorf("after completing: %+v %v", p, err)
		}
		if _, err := s.AppendLog(ctx, w, offset, []byte("late\n"), 0); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "complete") {
			t.Errorf("append to a complete log: %v, want a conflict saying it is complete", err)
		}
		if _, err := s.CompleteLog(ctx, w, true); err != nil {
			t.Errorf("completing twice: %v", err)
		}
		if _, again := readStoredLog(t, s, "ci", w.UID); again != want.String() {
			t.Errorf("the log changed after it was complete")
		}
	})
}

// TestAppendLogEdges covers the limit, NUL bytes, completing early or
// empty, and logs written whole.
func TestAppendLogEdges(t *testing.T) {
	cases := []struct {
		name    string
		appends []string
		limit   int64
		// complete: call CompleteLog at the end, with truncated = cut.
		complete, cut bool
		want          string
		wantLive      bool
		wantTruncated bool
	}{
		{name: "under the limit", appends: []string{"ab", "cd"}, limit: 10, want: "abcd", wantLive: true},
		{name: "exactly the limit", appends: []string{"abcde", "fghij"}, limit: 10, want: "abcdefghij", wantLive: true},
		{name: "over the limit", appends: []string{"abcdef", "ghijkl"}, limit: 10,
			want: "abcdefghij\n[annals: log truncated at 10 bytes]\n", wantTruncated: true},
		{name: "NUL bytes dropped", appends: []string{"a\x00b", "\x00\x00c"}, want: "abc", wantLive: true},
		{name: "completed", appends: []string{"done\n"}, complete: true, want: "done\n"},
		{name: "completed empty", complete: true, want: ""},
		{name: "cut by deletion", appends: []string{"half"}, complete: true, cut: true,
			want: "half\n[annals: log truncated at 4 bytes: its TaskRun was deleted while it was read]\n", wantTruncated: true},
	}
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		tr := newTaskRunForLogs(t, s, "ci")
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				w := store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: "s", Container: "step-s"}
				var offset int64
				for _, a := range c.appends {
					p, err := s.AppendLog(ctx, w, offset, []byte(a), c.limit)
					if err != nil {
						t.Fatalf("append %q at %d: %v", a, offset, err)
					}
					offset = p.Size
				}
				if c.complete {
					if _, err := s.CompleteLog(ctx, w, c.cut); err != nil {
						t.Fatal(err)
					}
				}
				_, got := readStoredLog(t, s, "ci", w.UID)
				p, err := s.LogProgressOf(ctx, store.Key{Namespace: "ci", UID: w.UID})
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want || p.Live != c.wantLive || p.Truncated != c.wantTruncated {
					t.Errorf("stored %q live=%v truncated=%v; want %q live=%v truncated=%v", got, p.Live, p.Truncated, c.want, c.wantLive, c.wantTruncated)
				}
			})
		}

		// A log written whole is complete: it takes no appends.
		whole, err := s.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: "w"}, strings.NewReader("whole\n"), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendLog(ctx, store.LogWrite{UID: whole.UID, TaskRun: tr, Step: "w"}, 6, []byte("more"), 0); !errors.Is(err, store.ErrConflict) {
			t.Errorf("append to a log written whole: %v, want a conflict", err)
		}
		// A Log belongs to a TaskRun of its own namespace.
		other := *tr
		other.Namespace = "elsewhere"
		if _, err := s.AppendLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: &other, Step: "x"}, 0, []byte("x"), 0); !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("log under another namespace's Result: %v, want invalid argument", err)
		}
		if p, err := s.LogProgressOf(ctx, store.Key{Namespace: "ci", UID: uuid.NewString()}); err != nil || p.Exists {
			t.Errorf("progress of a log never written: %+v %v", p, err)
		}
	})
}

func firstDiff(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
