package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestSearchLogs finds literal text in logs, within the namespaces and the
// time window asked, with line numbers, and stops at its limits.
func TestSearchLogs(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		write := func(ns, step, text string) *store.Record {
			tr := newTaskRunForLogs(t, s, ns)
			rec, err := s.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: step}, strings.NewReader(text), 0)
			if err != nil {
				t.Fatal(err)
			}
			return rec
		}
		before := time.Now().Add(-time.Minute)
		write("ci", "build", "compiling\nERROR: disk full\nerror again\n")
		write("prod", "deploy", "ERROR: prod secret\n")
		var many strings.Builder
		for i := range 150 {
			fmt.Fprintf(&many, "ERROR %d\n", i)
		}
		write("ci", "noisy", many.String())
		long := strings.Repeat("x", 70_000) + "needle" + strings.Repeat("y", 10) + "\nafter needle\n"
		write("ci", "long", long)

		type hit struct {
			step  string
			lines string // "number:text,..."
			more  bool
		}
		cases := []struct {
			name       string
			q          store.LogSearch
			want       []hit
			stoppedBy  string
			wantErrArg bool
		}{
			{name: "one namespace", q: store.LogSearch{Parent: "ci", Contains: "ERROR: "},
				want: []hit{{step: "build", lines: "2:ERROR: disk full"}}},
			{name: "scope excludes prod", q: store.LogSearch{Parent: "-", Namespaces: []string{"ci"}, Contains: "secret"}},
			{name: "all namespaces", q: store.LogSearch{Parent: "-", Contains: "secret"},
				want: []hit{{step: "deploy", lines: "1:ERROR: prod secret"}}},
			{name: "nothing visible", q: store.LogSearch{Parent: "-", Namespaces: []string{}, Contains: "ERROR"}},
			{name: "case insensitive", q: store.LogSearch{Parent: "ci", Contains: "error:", CaseInsensitive: true},
				want: []hit{{step: "build", lines: "2:ERROR: disk full"}}},
			{name: "lines capped per log", q: store.LogSearch{Parent: "ci", Contains: "ERROR 14"},
				want: []hit{{step: "noisy", lines: "15:ERROR 14,141:ERROR 140,142:ERROR 141,143:ERROR 142,144:ERROR 143,145:ERROR 144,146:ERROR 145,147:ERROR 146,148:ERROR 147,149:ERROR 148,150:ERROR 149"}}},
			{name: "long line searched in pieces, numbered once", q: store.LogSearch{Parent: "ci", Contains: "needle"},
				want: []hit{{step: "long", lines: "1:" + strings.Repeat("x", 1024) + ",2:after needle"}}},
			{name: "window before every log", q: store.LogSearch{Parent: "ci", Contains: "ERROR", UpdatedBefore: before.Add(time.Second)}},
			{name: "bytes budget", q: store.LogSearch{Parent: "ci", Contains: "zzz", MaxBytes: 1}, stoppedBy: "bytes"},
			{name: "logs limit", q: store.LogSearch{Parent: "ci", Contains: "zzz", MaxLogs: 1}, stoppedBy: "logs"},
			{name: "no text", q: store.LogSearch{Parent: "ci"}, wantErrArg: true},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				q := c.q
				q.UpdatedAfter = before
				res, err := s.SearchLogs(ctx, q)
				if c.wantErrArg {
					if !errors.Is(err, store.ErrInvalidArgument) {
						t.Fatalf("err %v, want invalid argument", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				var got []hit
				for _, m := range res.Logs {
					var lines []string
					for _, l := range m.Lines {
						lines = append(lines, strconv.Itoa(l.Number)+":"+l.Text)
					}
					got = append(got, hit{m.Step, strings.Join(lines, ","), m.MoreLines})
				}
				if fmt.Sprint(got) != fmt.Sprint(c.want) || res.StoppedBy != c.stoppedBy {
					t.Errorf("got %v stopped by %q\nwant %v stopped by %q", got, res.StoppedBy, c.want, c.stoppedBy)
				}
			})
		}
		if _, err := s.SearchLogs(ctx, store.LogSearch{Parent: "ci", Contains: "x"}); !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("no time window: %v, want invalid argument", err)
		}
	})
}

// BenchmarkSearchLogs measures search speed on SQLite over
// ANNALS_BENCH_SEARCH_MB (default 64) MiB of logs, in 16 MiB logs of 100
// byte lines. Reported: MB/s scanned (b.SetBytes).
func BenchmarkSearchLogs(b *testing.B) {
	mb := 64
	if v, err := strconv.Atoi(os.Getenv("ANNALS_BENCH_SEARCH_MB")); err == nil && v > 0 {
		mb = v
	}
	s, _ := storetest.Open(b, "sqlite")
	ctx := context.Background()
	const logMB = 16
	line := []byte(strings.Repeat("building module ", 6) + "status ok 00000\n") // 112 bytes
	for i := range (mb + logMB - 1) / logMB {
		tr := newTaskRunForLogs(b, s, "ci")
		w := store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: "s" + strconv.Itoa(i)}
		var off int64
		buf := bytes.Repeat(line, (256<<10)/len(line))
		for off < logMB<<20 {
			p, err := s.AppendLog(ctx, w, off, buf, 0)
			if err != nil {
				b.Fatal(err)
			}
			off = p.Size
		}
		if _, err := s.CompleteLog(ctx, w, false); err != nil {
			b.Fatal(err)
		}
	}
	since := time.Now().Add(-time.Hour)
	b.ResetTimer()
	var scanned int64
	for b.Loop() {
		res, err := s.SearchLogs(ctx, store.LogSearch{Parent: "ci", Contains: "not in any line", UpdatedAfter: since})
		if err != nil || res.StoppedBy != "" {
			b.Fatal(err, res.StoppedBy)
		}
		scanned = res.BytesScanned
	}
	b.SetBytes(scanned)
}

// TestSearchLogsContinues: a search stopped by any of its limits gives a
// cursor that continues it where it stopped (mid-log, mid-chunk), so that
// following cursors returns every matching line exactly once; the cursor
// opens only with the scope and query it was given for.
func TestSearchLogsContinues(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		since := time.Now().Add(-time.Minute)
		want := map[string]bool{} // "uid:line" of every matching line in ci
		write := func(ns, text string) string {
			tr := newTaskRunForLogs(t, s, ns)
			uid := uuid.NewString()
			if _, err := s.WriteLog(ctx, store.LogWrite{UID: uid, TaskRun: tr, Step: "s"}, strings.NewReader(text), 0); err != nil {
				t.Fatal(err)
			}
			if ns == "ci" {
				for i, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
					if strings.Contains(l, "hit") {
						want[uid+":"+strconv.Itoa(i+1)] = true
					}
				}
			}
			return uid
		}
		// One log of more than a chunk, with a line longer than a search
		// piece (a match in two of its pieces), then enough logs of 99
		// matches each to pass the 1,000 matches of one search.
		var big strings.Builder
		for i := 1; i <= 1000; i++ {
			switch {
			case i == 500:
				big.WriteString(strings.Repeat("x", 70_000) + "hit" + strings.Repeat("y", 70_000) + "hit\n")
			case i%11 == 0:
				fmt.Fprintf(&big, "%04d a hit %s\n", i, strings.Repeat("-", 290))
			default:
				fmt.Fprintf(&big, "%04d nothing %s\n", i, strings.Repeat("-", 290))
			}
		}
		write("ci", big.String())
		for range 11 {
			var l strings.Builder
			for i := range 120 {
				if i%120 < 99 {
					fmt.Fprintf(&l, "line %d hit\n", i)
				} else {
					fmt.Fprintf(&l, "line %d\n", i)
				}
			}
			write("ci", l.String())
		}
		write("prod", "a hit in prod\n")

		base := store.LogSearch{Parent: "ci", Contains: "hit", UpdatedAfter: since}
		for _, c := range []struct {
			name      string
			q         store.LogSearch
			stoppedBy string // of the first page
		}{
			{"time", store.LogSearch{Deadline: time.Now()}, "time"},
			{"bytes", store.LogSearch{MaxBytes: 5_000}, "bytes"},
			{"logs", store.LogSearch{MaxLogs: 1}, "logs"},
			{"matches", store.LogSearch{}, "matches"},
		} {
			t.Run(c.name, func(t *testing.T) {
				q := base
				q.Deadline, q.MaxBytes, q.MaxLogs = c.q.Deadline, c.q.MaxBytes, c.q.MaxLogs
				got := map[string]bool{}
				pages := 0
				for {
					pages++
					if pages > 5000 {
						t.Fatal("the search makes no progress")
					}
					res, err := s.SearchLogs(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if pages == 1 && res.StoppedBy != c.stoppedBy {
						t.Errorf("first page stopped by %q, want %q", res.StoppedBy, c.stoppedBy)
					}
					if (res.Cursor == "") != (res.StoppedBy == "") {
						t.Fatalf("page %d: cursor %q stopped by %q", pages, res.Cursor, res.StoppedBy)
					}
					for _, m := range res.Logs {
						if m.Log.Namespace != "ci" {
							t.Fatalf("a log of namespace %s", m.Log.Namespace)
						}
						for _, l := range m.Lines {
							k := m.Log.UID + ":" + strconv.Itoa(l.Number)
							if got[k] {
								t.Fatalf("page %d: line %s again", pages, k)
							}
							got[k] = true
						}
					}
					if res.Cursor == "" {
						break
					}
					q.After = res.Cursor
					if c.name == "time" {
						q.Deadline = time.Now()
					}
				}
				if len(got) != len(want) {
					t.Errorf("%d pages: %d matching lines, want %d", pages, len(got), len(want))
				}
				for k := range want {
					if !got[k] {
						t.Errorf("line %s not found", k)
						break
					}
				}
				if pages < 2 {
					t.Errorf("%d page: the limit did not stop the search", pages)
				}
			})
		}

		first, err := s.SearchLogs(ctx, store.LogSearch{Parent: "-", Namespaces: []string{"ci"}, Contains: "hit", UpdatedAfter: since, MaxLogs: 1})
		if err != nil || first.Cursor == "" {
			t.Fatalf("%v, cursor %q", err, first.Cursor)
		}
		for name, q := range map[string]store.LogSearch{
			"another scope":     {Parent: "-", Namespaces: []string{"ci", "prod"}, Contains: "hit"},
			"no scope":          {Parent: "-", Contains: "hit"},
			"another parent":    {Parent: "prod", Namespaces: []string{"ci"}, Contains: "hit"},
			"another text":      {Parent: "-", Namespaces: []string{"ci"}, Contains: "hi"},
			"case insensitive":  {Parent: "-", Namespaces: []string{"ci"}, Contains: "hit", CaseInsensitive: true},
			"another window":    {Parent: "-", Namespaces: []string{"ci"}, Contains: "hit", UpdatedAfter: since.Add(-time.Second)},
			"changed cursor":    {Parent: "-", Namespaces: []string{"ci"}, Contains: "hit", After: first.Cursor[:len(first.Cursor)-2] + "AA"},
			"not a cursor":      {Parent: "-", Namespaces: []string{"ci"}, Contains: "hit", After: "bm90IGEgY3Vyc29y"},
			"a list's cursor":   {Parent: "-", Namespaces: []string{"ci"}, Contains: "hit", After: listCursor(t, s)},
			"another before":    {Parent: "-", Namespaces: []string{"ci"}, Contains: "hit", UpdatedBefore: time.Now().Add(time.Hour)},
			"first is not part": {}, // the control: the same query opens it
		} {
			if q.Contains == "" {
				q = store.LogSearch{Parent: "-", Namespaces: []string{"ci"}, Contains: "hit", MaxLogs: 5}
			}
			if q.UpdatedAfter.IsZero() {
				q.UpdatedAfter = since
			}
			if q.After == "" {
				q.After = first.Cursor
			}
			_, err := s.SearchLogs(ctx, q)
			if name == "first is not part" {
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
				continue
			}
			if !errors.Is(err, store.ErrInvalidArgument) {
				t.Errorf("%s: %v, want invalid argument", name, err)
			}
		}
	})
}

// listCursor is a cursor of a records list: not one of a log search.
func listCursor(t *testing.T, s *store.Store) string {
	t.Helper()
	page, err := s.ListRecords(context.Background(), store.ListOptions{Parent: "ci", First: 1})
	if err != nil || len(page.Cursors) == 0 {
		t.Fatalf("%v, %d cursors", err, len(page.Cursors))
	}
	return page.Cursors[0]
}
