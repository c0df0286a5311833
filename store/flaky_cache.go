package store

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"
)

// Whole days of flaky_segments kept in memory between FlakyTasks reads, in
// the cache of record_daily's days (rollup_daily_cache.go) under keys of
// their own: a day's segments under one scope stay valid while the day's
// version (flaky_days, bumped by the fold in the transaction that changes
// the segments) is the one they were read at. A read's first statement
// computes the partial days and the dirty keys from the Records and reads
// the versions; the whole days whose version moved are read again. The
// days are chained in Go.

// flakySegment is a row of flaky_segments, or one computed from the Records.
type flakySegment struct {
	ns, pipeline, task, rev string
	day                     int64
	n, succeeded, failed    int64
	flips                   int64
	first, last             string // outcomes of the first and last run
	lastStart               *time.Time
}

// flakyRead is a FlakyTasks read from flaky_segments: its first statement
// and the scope of the whole days.
type flakyRead struct {
	keyScope    query // on flaky_segments' columns, without the window
	stmt        string
	args        []any
	fingerprint string
}

type flakyKey struct {
	ns, pipeline, task string
	day                int64
}

func scanFlakySegment(rows *sql.Rows) (src int64, f flakySegment, err error) {
	var last sqlTime
	err = rows.Scan(&src, &f.ns, &f.pipeline, &f.task, &f.rev, &f.day, &f.n, &f.succeeded, &f.failed, &f.flips, &f.first, &f.last, &last)
	f.lastStart = last.t
	return src, f, err
}

// readFlakySegments returns the segments of rd's window: the whole days'
// (from memory where their version allows) but for dirty keys, and those
// computed from the Records. consistent is false when a fold changed a day
// between the two statements.
func (s *Store) readFlakySegments(ctx context.Context, rd *flakyRead) (segs []flakySegment, consistent bool, err error) {
	versions := map[int64]int64{}
	var days []int64
	dirty := map[flakyKey]bool{}
	if debugFlakyStmt != nil {
		debugFlakyStmt(rd.stmt, rd.args)
	}
	err = s.readRowsWithoutJIT(ctx, rd.stmt, rd.args, func(rows *sql.Rows) error {
		for rows.Next() {
			src, f, err := scanFlakySegment(rows)
			if err != nil {
				return err
			}
			switch src {
			case 1:
				segs = append(segs, f)
			case 2:
				versions[f.day] = f.n
				days = append(days, f.day)
			case 3:
				dirty[flakyKey{f.ns, f.pipeline, f.task, f.day}] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	got := map[int64]*dayCells{}
	var missing []int64
	for _, d := range days {
		if e := s.dailyCache.get(rd.fingerprint, d, versions[d]); e != nil {
			got[d] = e
		} else {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		read, readVersions, err := s.readFlakyDays(ctx, rd, slices.Min(missing), slices.Max(missing)+1)
		if err != nil {
			return nil, false, err
		}
		for _, d := range missing {
			if v, ok := readVersions[d]; !ok || v != versions[d] {
				return nil, false, nil
			}
			e := read[d]
			if e == nil {
				e = &dayCells{} // no segment of the day in this scope
			}
			e.version = versions[d]
			s.dailyCache.put(rd.fingerprint, d, e)
			got[d] = e
		}
	}
	for _, d := range days {
		for _, f := range got[d].flaky {
			if !dirty[flakyKey{f.ns, f.pipeline, f.task, f.day}] {
				segs = append(segs, f)
			}
		}
	}
	return segs, true, nil
}

// readFlakyDays reads the segments of rd's scope on days [from, to), with
// the versions of those days.
func (s *Store) readFlakyDays(ctx context.Context, rd *flakyRead, from, to int64) (map[int64]*dayCells, map[int64]int64, error) {
	scope := rd.keyScope.with("r.day >= ? AND r.day < ?", from, to)
	stmt := "SELECT 1, r.namespace, r.pipeline_name, r.task_name, r.revision, r.day, r.n, r.succeeded, r.failed, r.flips," +
		" r.first_status, r.last_status, r.last_start FROM flaky_segments AS r" + scope.whereSQL() +
		" UNION ALL SELECT 2, '', '', '', '', r.day, r.version, 0, 0, 0, '', '', NULL FROM flaky_days AS r WHERE r.day >= ? AND r.day < ?"
	days := map[int64]*dayCells{}
	versions := map[int64]int64{}
	err := s.readRows(ctx, stmt, append(slices.Clone(scope.args), from, to), func(rows *sql.Rows) error {
		for rows.Next() {
			src, f, err := scanFlakySegment(rows)
			if err != nil {
				return err
			}
			if src == 2 {
				versions[f.day] = f.n
				continue
			}
			d := days[f.day]
			if d == nil {
				d = &dayCells{}
				days[f.day] = d
			}
			d.flaky = append(d.flaky, f)
			d.bytes += int64(160 + len(f.ns) + len(f.pipeline) + len(f.task) + len(f.rev))
		}
		return nil
	})
	return days, versions, err
}

// rankFlaky chains segments by day into revisions and ranks the tasks as
// flakyRanking does: the same sums, and the same IEEE ratio of flips to
// pairs, so ties fall the same way.
func rankFlaky(segs []flakySegment, limit int) *FlakyResult {
	slices.SortStableFunc(segs, func(a, b flakySegment) int { return cmp.Compare(a.day, b.day) })
	type revision struct {
		task                        *FlakyTask
		n, succeeded, failed, flips int64
		last                        string
		lastStart                   *time.Time
	}
	later := func(a, b *time.Time) *time.Time {
		if a == nil || (b != nil && b.After(*a)) {
			return b
		}
		return a
	}
	tasks := map[[3]string]*FlakyTask{}
	revisions := map[[4]string]*revision{}
	for _, f := range segs {
		r := revisions[[4]string{f.ns, f.pipeline, f.task, f.rev}]
		if r == nil {
			t := tasks[[3]string{f.ns, f.pipeline, f.task}]
			if t == nil {
				t = &FlakyTask{Namespace: f.ns, Pipeline: f.pipeline, Task: f.task}
				tasks[[3]string{f.ns, f.pipeline, f.task}] = t
			}
			r = &revision{task: t}
			revisions[[4]string{f.ns, f.pipeline, f.task, f.rev}] = r
		} else if r.last != f.first {
			r.flips++
		}
		r.n, r.succeeded, r.failed, r.flips = r.n+f.n, r.succeeded+f.succeeded, r.failed+f.failed, r.flips+f.flips
		r.last, r.lastStart = f.last, later(r.lastStart, f.lastStart)
	}
	for _, r := range revisions {
		t := r.task
		t.Revisions++
		t.Runs, t.Succeeded, t.Failed, t.Flips, t.Pairs = t.Runs+r.n, t.Succeeded+r.succeeded, t.Failed+r.failed, t.Flips+r.flips, t.Pairs+r.n-1
		if r.succeeded > 0 && r.failed > 0 {
			t.FlakyRevisions++
			t.LastFlakyRun = later(t.LastFlakyRun, r.lastStart)
		}
	}
	var out []FlakyTask
	for _, t := range tasks {
		if t.FlakyRevisions > 0 {
			out = append(out, *t)
		}
	}
	slices.SortFunc(out, func(a, b FlakyTask) int {
		return cmp.Or(-cmp.Compare(a.FlakyRevisions, b.FlakyRevisions),
			-cmp.Compare(float64(a.Flips)/float64(a.Pairs), float64(b.Flips)/float64(b.Pairs)),
			strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Pipeline, b.Pipeline), strings.Compare(a.Task, b.Task))
	})
	return &FlakyResult{Tasks: out[:min(limit, len(out))], Total: len(out)}
}

var debugFlakyStmt func(string, []any)
