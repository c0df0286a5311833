package store

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Whole days of record_daily kept in memory between statistics reads. A
// day's rows, added up per group and status for one scope and grouping,
// stay valid while the day's version (record_daily_days, migration 00015)
// is the one they were read at: the fold changes the version in the
// transaction that changes the rows. A read checks the versions of its days
// in its first statement and reads only the days whose version moved, so
// a 30-day chart costs its deltas and its two partial days, not 30 days of
// rows. Entries are keyed by the exact SQL and arguments of the scope, the
// caller's namespaces included: a caller only ever gets days read under its
// own scope.

// DefaultDailyCacheBytes is the memory the cached days may take when
// Options.DailyCacheBytes is 0.
const DefaultDailyCacheBytes = 64 << 20

// dayCell is a group and status of one day: the count and sorted values of
// its Records. A read's pending deltas gather in dayCells of their own.
type dayCell struct {
	dims            []sql.NullString
	key, dimsKey    string // dayCellKey, dimsKeyOf: in cached cells
	status          string
	day             int64
	n               int64
	lists           dailyLists
	duration, queue Distribution // of lists, without percentiles
	lastStart       sql.NullInt64
	// In a read's delta cells: pending deltas, and the Records of a
	// trimmed end day outside the window (out: their count and lists).
	plus, minus []dailyValues
	outN        int64
	out         dailyLists
}

func dayCellKey(dims []sql.NullString, status string, day int64) string {
	return dimsKeyOf(dims) + "\x00" + status + "\x00" + strconv.FormatInt(day, 10)
}

// dimsKeyOf renders a cell's dimension values as one comparable string.
func dimsKeyOf(dims []sql.NullString) string {
	var b strings.Builder
	for _, d := range dims {
		if d.Valid {
			b.WriteString("\x00s" + d.String)
		} else {
			b.WriteString("\x00n")
		}
	}
	return b.String()
}

// contribution is what the cell adds to its group once the changes of
// delta (nil: none) are applied; the cell itself (possibly cached, shared)
// is left as it is.
func (c *dayCell) contribution(delta *dayCell, durations, queues bool) cellContribution {
	out := cellContribution{n: c.n, duration: c.duration, queue: c.queue, lastStart: c.lastStart}
	l := c.lists
	if delta != nil {
		out.n += int64(len(delta.plus)-len(delta.minus)) - delta.outN
		l = dailyLists{durations: slices.Clone(l.durations), queues: slices.Clone(l.queues), starts: slices.Clone(l.starts)}
		l.apply(delta.plus, delta.minus)
		l.durations = removeValues(l.durations, delta.out.durations)
		l.queues = removeValues(l.queues, delta.out.queues)
		l.starts = removeValues(l.starts, delta.out.starts)
		out.duration, out.queue, out.lastStart = distributionOf(l.durations), distributionOf(l.queues), lastOf(l.starts)
	}
	if durations {
		out.durations = l.durations
	}
	if queues {
		out.queues = l.queues
	}
	return out
}

func lastOf(sorted []int64) sql.NullInt64 {
	if len(sorted) == 0 {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: sorted[len(sorted)-1], Valid: true}
}

// dayCells are the cells of one day under one scope and grouping, as of
// version.
type dayCells struct {
	version int64
	cells   []*dayCell
	// merged holds, per dimension values (dimsKeyOf), the durations and
	// queue times of all statuses together, sorted: the percentiles of a
	// group of this one day, whatever its statuses.
	merged map[string]*dailyLists
	flaky  []flakySegment // or, for flaky_segments (flaky_cache.go), its segments
	runs   []flakyRun     // or the runs of a day FlakyTasks holds in part
	bytes  int64
}

// dayCache holds dayCells up to a memory budget, least recently used out
// first. A nil dayCache holds nothing.
type dayCache struct {
	entries *lru.Cache[string, *dayCells]
	bytes   atomic.Int64
	budget  int64
}

func newDayCache(budget int64) *dayCache {
	if budget < 0 {
		return nil
	}
	if budget == 0 {
		budget = DefaultDailyCacheBytes
	}
	c := &dayCache{budget: budget}
	// The count bound is only a backstop; the byte budget decides.
	c.entries, _ = lru.NewWithEvict(1<<20, func(_ string, d *dayCells) { c.bytes.Add(-d.bytes) })
	return c
}

func (c *dayCache) get(fingerprint string, day, version int64) *dayCells {
	if c == nil {
		return nil
	}
	if d, ok := c.entries.Get(fingerprint + "\x00" + strconv.FormatInt(day, 10)); ok && d.version == version {
		return d
	}
	return nil
}

// peek returns the entry of a day whatever its version, or nil.
func (c *dayCache) peek(fingerprint string, day int64) *dayCells {
	if c == nil {
		return nil
	}
	d, _ := c.entries.Peek(fingerprint + "\x00" + strconv.FormatInt(day, 10))
	return d
}

// remove forgets the entry of a day.
func (c *dayCache) remove(fingerprint string, day int64) {
	if c != nil {
		c.entries.Remove(fingerprint + "\x00" + strconv.FormatInt(day, 10))
	}
}

func (c *dayCache) put(fingerprint string, day int64, d *dayCells) {
	if c == nil || d.bytes > c.budget/4 {
		return
	}
	key := fingerprint + "\x00" + strconv.FormatInt(day, 10)
	d.bytes += int64(len(key))
	c.entries.Remove(key) // so that the byte count forgets the old entry
	c.entries.Add(key, d)
	c.bytes.Add(d.bytes)
	for c.bytes.Load() > c.budget {
		if _, _, ok := c.entries.RemoveOldest(); !ok {
			break
		}
	}
}

// fillScope makes the caller the one reader that fills the cached days of
// a scope and returns the function that ends it; or, when another reader
// is filling them, waits for it to finish and returns nil: the caller then
// looks in the cache again.
func (s *Store) fillScope(fingerprint string) (release func()) {
	v, _ := s.fills.LoadOrStore(fingerprint, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	if mu.TryLock() {
		return func() {
			mu.Unlock()
			s.fills.CompareAndDelete(fingerprint, mu)
		}
	}
	mu.Lock()
	mu.Unlock() //nolint:staticcheck // waited for the reader filling the days
	return nil
}

// wholeDaysOf returns the cells of the whole days of rd that have rows,
// in the order of days, as of versions (read by the first statement):
// from memory where the version is the same, else read. consistent is
// false when a day read no longer has its version.
func (s *Store) wholeDaysOf(ctx context.Context, rd *dailyRead, versions map[int64]int64, days []int64) ([]*dayCells, bool, error) {
	got := make(map[int64]*dayCells, len(days))
	var missing []int64
	look := func() {
		missing = missing[:0]
		for _, d := range days {
			if e := s.dailyCache.get(rd.fingerprint, d, versions[d]); e != nil {
				got[d] = e
			} else {
				missing = append(missing, d)
			}
		}
	}
	look()
	if len(missing) > 0 && s.dailyCache != nil {
		// Readers of a scope whose days are not kept wait for one of them
		// to read them, rather than all read the same days at once (16
		// dashboards after a restart), then look again.
		if release := s.fillScope(rd.fingerprint); release != nil {
			defer release()
		} else {
			look()
		}
	}
	if len(missing) > 0 {
		read, readVersions, err := s.readDays(ctx, rd, slices.Min(missing), slices.Max(missing)+1)
		if err != nil {
			return nil, false, err
		}
		for _, d := range missing {
			if v, ok := readVersions[d]; !ok || v != versions[d] {
				return nil, false, nil
			}
			e := read[d]
			if e == nil {
				e = &dayCells{} // no row of the day in this scope
			}
			e.version = versions[d]
			s.dailyCache.put(rd.fingerprint, d, e)
			got[d] = e
		}
	}
	out := make([]*dayCells, 0, len(days))
	for _, d := range days {
		out = append(out, got[d])
	}
	return out, true, nil
}

// readDays reads the record_daily rows of rd's scope on days [from, to),
// added up per group, status and day, with the versions of those days.
func (s *Store) readDays(ctx context.Context, rd *dailyRead, from, to int64) (map[int64]*dayCells, map[int64]int64, error) {
	scope := rd.keyScope.with("r.day >= ? AND r.day < ?", from, to)
	var ordinals []string
	for i := range rd.nDims + 2 {
		ordinals = append(ordinals, strconv.Itoa(2+i))
	}
	stmt := "SELECT " + srcSQL(srcDay) + ", " + rd.dims + "r.status, r.day, CAST(SUM(r.n) AS bigint), " +
		s.concatLists("r.durs") + ", " + s.concatLists("r.queues") + ", " + s.concatLists("r.starts") +
		" FROM " + rd.table.name + " AS r" + scope.whereSQL() + " GROUP BY " + strings.Join(ordinals, ", ") +
		" UNION ALL SELECT " + srcSQL(srcVersion) + ", " + strings.Repeat("NULL, ", rd.nDims) + "'', r.day, r.version, NULL, NULL, NULL" +
		" FROM record_daily_days AS r WHERE r.day >= ? AND r.day < ?"
	args := append(append(slices.Clone(rd.dimArgs), scope.args...), from, to)
	days := map[int64]*dayCells{}
	versions := map[int64]int64{}
	err := s.readRows(ctx, stmt, args, func(rows *sql.Rows) error {
		for rows.Next() {
			var src int64
			c := &dayCell{dims: make([]sql.NullString, rd.nDims)}
			var durs, queues, starts []byte
			dest := []any{&src}
			for i := range c.dims {
				dest = append(dest, &c.dims[i])
			}
			if err := rows.Scan(append(dest, &c.status, &c.day, &c.n, &durs, &queues, &starts)...); err != nil {
				return err
			}
			if src == srcVersion {
				versions[c.day] = c.n
				continue
			}
			var err error
			if c.lists.durations, err = decodeValues(nil, durs); err != nil {
				return err
			}
			if c.lists.queues, err = decodeValues(nil, queues); err != nil {
				return err
			}
			if c.lists.starts, err = decodeValues(nil, starts); err != nil {
				return err
			}
			c.duration, c.queue, c.lastStart = distributionOf(c.lists.durations), distributionOf(c.lists.queues), lastOf(c.lists.starts)
			c.dimsKey = dimsKeyOf(c.dims)
			c.key = c.dimsKey + "\x00" + c.status + "\x00" + strconv.FormatInt(c.day, 10)
			d := days[c.day]
			if d == nil {
				d = &dayCells{}
				days[c.day] = d
			}
			d.cells = append(d.cells, c)
			d.bytes += 8*int64(len(c.lists.durations)+len(c.lists.queues)+len(c.lists.starts)) + 128
		}
		return nil
	})
	for _, d := range days {
		d.merge()
	}
	return days, versions, err
}

// merge fills d.merged.
func (d *dayCells) merge() {
	byDims := map[string][]*dayCell{}
	for _, c := range d.cells {
		byDims[c.dimsKey] = append(byDims[c.dimsKey], c)
	}
	d.merged = make(map[string]*dailyLists, len(byDims))
	for k, cells := range byDims {
		var durs, queues [][]int64
		for _, c := range cells {
			durs, queues = append(durs, c.lists.durations), append(queues, c.lists.queues)
		}
		l := &dailyLists{durations: mergeInto(nil, durs), queues: mergeInto(nil, queues)}
		d.merged[k] = l
		d.bytes += 8 * int64(len(l.durations)+len(l.queues))
	}
}
