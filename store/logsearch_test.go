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
