package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/annals-dev/annals/store/filter"
)

// flaky_segments kept in memory between FlakyTasks reads, in the cache of
// record_daily's days (rollup_daily_cache.go) under keys of their own, each
// for one scope: a whole day's segments, valid while the day's version
// (flaky_days, bumped by the fold in the transaction that changes the
// segments) is the one they were read at; the whole days of a window
// chained into one segment per revision, valid while none of their
// versions moved and none of their keys is dirty; and the runs of a day a
// window holds in part, valid while the day has no dirty key and its
// version holds. A read's first statement reads the versions and the dirty
// keys, computes the dirty keys of whole days and the end days not kept
// from the Records; the whole days whose version moved are read again, and
// the days are chained and ranked in Go.

// flakySegment is a row of flaky_segments, or one computed from the Records.
type flakySegment struct {
	ns, pipeline, task, rev string
	day                     int64
	n, succeeded, failed    int64
	flips                   int64
	first, last             string // outcomes of the first and last run
	lastStart               *time.Time
}

// flakyRead is a FlakyTasks read from flaky_segments.
type flakyRead struct {
	keyScope    query // on flaky_segments' columns (and the Records'), without the window
	window      filter.TimeRange
	from, to    int64   // the whole days of the window
	edges       []int64 // the days the window holds in part
	fingerprint string  // the scope: a key of cached days
}

// flakyRun is a run of an end day, as its segment needs it.
type flakyRun struct {
	ns, pipeline, task, rev string
	status, uid             string
	start                   time.Time
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
// (from memory where their version allows) but for dirty keys, those of
// dirty keys computed from the Records, and those of the end days' runs in
// the window (the runs kept in memory while the day has no dirty key and
// its version holds). consistent is false when a fold or a write changed a
// day between two statements or since it was kept.
func (s *Store) readFlakySegments(ctx context.Context, rd *flakyRead) (segs []flakySegment, consistent bool, err error) {
	ends := map[int64]*dayCells{}
	var compute []int64
	peek := func() {
		clear(ends)
		compute = compute[:0]
		for _, e := range rd.edges {
			if c := s.dailyCache.peek(rd.fingerprint+"\x00runs", e); c != nil {
				ends[e] = c
			} else {
				compute = append(compute, e)
			}
		}
	}
	peek()
	if len(compute) > 0 && s.dailyCache != nil {
		// Readers of a scope whose end days are not kept wait for one of
		// them to read them, rather than all read the same days at once
		// (16 dashboards after a restart: 2 s each instead of 0.3 s). A
		// day that is dirty is not kept; readers then read it each.
		if release := s.fillScope(rd.fingerprint); release != nil {
			defer release()
		} else {
			peek()
		}
	}
	stmt, args := s.flakyStatement(rd, compute)
	versions := map[int64]int64{}
	var days []int64
	dirty := map[flakyKey]bool{}
	dirtyDays := map[int64]bool{}
	read := map[int64]*dayCells{}
	err = s.readRowsWithoutJIT(ctx, stmt, args, func(rows *sql.Rows) error {
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
				if f.day >= rd.from && f.day < rd.to {
					days = append(days, f.day)
				}
			case 3:
				dirty[flakyKey{f.ns, f.pipeline, f.task, f.day}] = true
				dirtyDays[f.day] = true
			case 4:
				c := read[f.day]
				if c == nil {
					c = &dayCells{}
					read[f.day] = c
				}
				c.runs = append(c.runs, flakyRun{ns: f.ns, pipeline: f.pipeline, task: f.task, rev: f.rev, status: f.first, uid: f.last, start: *f.lastStart})
				c.bytes += int64(160 + len(f.ns) + len(f.pipeline) + len(f.task) + len(f.rev) + len(f.last))
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	for e, c := range ends {
		if c.version != versions[e] || dirtyDays[e] {
			s.dailyCache.remove(rd.fingerprint+"\x00runs", e)
			return nil, false, nil
		}
	}
	for _, e := range compute {
		c := read[e]
		if c == nil {
			c = &dayCells{}
		}
		slices.SortFunc(c.runs, func(a, b flakyRun) int {
			return cmp.Or(strings.Compare(a.ns, b.ns), strings.Compare(a.pipeline, b.pipeline), strings.Compare(a.task, b.task),
				strings.Compare(a.rev, b.rev), a.start.Compare(b.start), strings.Compare(a.uid, b.uid))
		})
		c.version = versions[e] // 0: the day has no version yet
		if !dirtyDays[e] {
			s.dailyCache.put(rd.fingerprint+"\x00runs", e, c)
		}
		ends[e] = c
	}
	for e, c := range ends {
		segs = append(segs, flakyEndSegments(c.runs, e, rd.window)...)
	}
	// The whole days chained into one segment per revision, kept while no
	// day's version moved and none of their keys is dirty: a dashboard's
	// sliding window then merges a few thousand segments, not a month's.
	sumKey := rd.fingerprint + "\x00sum\x00" + strconv.FormatInt(rd.to, 10)
	h := fnv.New64a()
	for _, d := range days {
		h.Write(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(d)), uint64(versions[d])))
	}
	sumVersion := int64(h.Sum64())
	clean := !slices.ContainsFunc(slices.Collect(maps.Keys(dirty)), func(k flakyKey) bool { return k.day >= rd.from && k.day < rd.to })
	if e := s.dailyCache.get(sumKey, rd.from, sumVersion); clean && e != nil {
		return append(segs, e.flaky...), true, nil
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
	var whole []flakySegment
	for _, d := range days {
		for _, f := range got[d].flaky {
			if !dirty[flakyKey{f.ns, f.pipeline, f.task, f.day}] {
				whole = append(whole, f)
			}
		}
	}
	if clean {
		whole = chainFlaky(whole, rd.from)
		e := &dayCells{version: sumVersion, flaky: whole}
		for _, f := range whole {
			e.bytes += int64(160 + len(f.ns) + len(f.pipeline) + len(f.task) + len(f.rev))
		}
		s.dailyCache.put(sumKey, rd.from, e)
	}
	return append(segs, whole...), true, nil
}

// chainFlaky chains segments by day into one per namespace, Pipeline,
// task and revision, placed on day: the sums, the flips inside and
// between days, the first and last outcome and the last start.
func chainFlaky(segs []flakySegment, day int64) []flakySegment {
	slices.SortStableFunc(segs, func(a, b flakySegment) int { return cmp.Compare(a.day, b.day) })
	at := map[[4]string]int{}
	var out []flakySegment
	for _, f := range segs {
		k := [4]string{f.ns, f.pipeline, f.task, f.rev}
		i, ok := at[k]
		if !ok {
			f.day = day
			at[k] = len(out)
			out = append(out, f)
			continue
		}
		g := &out[i]
		if g.last != f.first {
			g.flips++
		}
		g.n, g.succeeded, g.failed, g.flips = g.n+f.n, g.succeeded+f.succeeded, g.failed+f.failed, g.flips+f.flips
		g.last, g.lastStart = f.last, later(g.lastStart, f.lastStart)
	}
	return out
}

// later is the later of two times, nil for none.
func later(a, b *time.Time) *time.Time {
	if a == nil || (b != nil && b.After(*a)) {
		return b
	}
	return a
}

// flakyEndSegments are the segments of day's runs (sorted by key,
// revision, start and uid) that start inside window, as the filter bounds
// a start: after its After, before its Before, to the microsecond.
func flakyEndSegments(runs []flakyRun, day int64, window filter.TimeRange) []flakySegment {
	var out []flakySegment
	var f *flakySegment
	for _, r := range runs {
		if a := window.After; a != nil && !r.start.After(a.UTC().Truncate(time.Microsecond)) {
			continue
		}
		if b := window.Before; b != nil && !r.start.Before(b.UTC().Truncate(time.Microsecond)) {
			continue
		}
		if f == nil || f.ns != r.ns || f.pipeline != r.pipeline || f.task != r.task || f.rev != r.rev {
			out = append(out, flakySegment{ns: r.ns, pipeline: r.pipeline, task: r.task, rev: r.rev, day: day, first: r.status})
			f = &out[len(out)-1]
		} else if f.last != r.status {
			f.flips++
		}
		f.n++
		switch r.status {
		case StatusSucceeded:
			f.succeeded++
		case StatusFailed:
			f.failed++
		}
		start := r.start
		f.last, f.lastStart = r.status, &start
	}
	return out
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
	tasks := map[[3]string]*FlakyTask{}
	for _, r := range chainFlaky(segs, 0) {
		t := tasks[[3]string{r.ns, r.pipeline, r.task}]
		if t == nil {
			t = &FlakyTask{Namespace: r.ns, Pipeline: r.pipeline, Task: r.task}
			tasks[[3]string{r.ns, r.pipeline, r.task}] = t
		}
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
