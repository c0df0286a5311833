package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/annals-dev/annals/store/filter"
)

// Run statistics per UTC day kept by the database (migration 00013):
// record_daily holds, per rollup key (rollup.go) and UTC day of the start
// time, the count, the duration and queue time summaries and every value of
// them, sorted; triggers append one signed row per changed Record to
// record_daily_deltas, and the fold merges them in. A recordStats whose
// scope, dimensions and time buckets the rollup can answer (dailyServes)
// reads, in one statement, the rows of the whole UTC days of its window, the
// pending deltas of those days, and the Records of the partial days at the
// window's ends. Its answer is the one the Records give, percentiles
// included, whether or not a fold has run.

// noStartDay is record_daily's day of Records without a start time.
const noStartDay = -2147483648

const dayMicros = int64(24 * time.Hour / time.Microsecond)

// encodeValues packs sorted microsecond values as 8-byte big-endian
// integers, the layout the migration's backfill writes.
func encodeValues(v []int64) []byte {
	out := make([]byte, 8*len(v))
	for i, x := range v {
		binary.BigEndian.PutUint64(out[8*i:], uint64(x))
	}
	return out
}

// decodeValues unpacks encodeValues' layout into dst, sorted.
func decodeValues(dst []int64, b []byte) ([]int64, error) {
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("record_daily holds a value list of %d bytes, not a multiple of 8", len(b))
	}
	start := len(dst)
	dst = slices.Grow(dst, len(b)/8)
	for i := 0; i < len(b); i += 8 {
		dst = append(dst, int64(binary.BigEndian.Uint64(b[i:])))
	}
	if !slices.IsSorted(dst[start:]) {
		slices.Sort(dst[start:])
	}
	return dst, nil
}

// removeValues takes one occurrence of each of minus (sorted) out of
// sorted values.
func removeValues(values, minus []int64) []int64 {
	if len(minus) == 0 {
		return values
	}
	out := values[:0:0]
	j := 0
	for _, v := range values {
		for j < len(minus) && minus[j] < v {
			j++ // not present: a delta for a value the row never had
		}
		if j < len(minus) && minus[j] == v {
			j++
			continue
		}
		out = append(out, v)
	}
	return out
}

// dailyValues is what a Record adds to a day of record_daily: its start,
// duration and queue time in microseconds, each when it has one.
type dailyValues struct {
	start, duration, queue sql.NullInt64
}

// dailyLists are the sorted values of one key and day.
type dailyLists struct {
	durations, queues, starts []int64
}

// apply adds the values of plus and takes out those of minus.
func (l *dailyLists) apply(plus, minus []dailyValues) {
	for _, p := range []struct {
		list *[]int64
		v    func(dailyValues) sql.NullInt64
	}{
		{&l.durations, func(v dailyValues) sql.NullInt64 { return v.duration }},
		{&l.queues, func(v dailyValues) sql.NullInt64 { return v.queue }},
		{&l.starts, func(v dailyValues) sql.NullInt64 { return v.start }},
	} {
		added := false
		for _, v := range plus {
			if x := p.v(v); x.Valid {
				*p.list, added = append(*p.list, x.Int64), true
			}
		}
		if added {
			slices.Sort(*p.list)
		}
		var out []int64
		for _, v := range minus {
			if x := p.v(v); x.Valid {
				out = append(out, x.Int64)
			}
		}
		slices.Sort(out)
		*p.list = removeValues(*p.list, out)
	}
}

// distributionOf summarizes sorted values, without percentiles.
func distributionOf(sorted []int64) Distribution {
	var d Distribution
	if len(sorted) == 0 {
		return d
	}
	d.N, d.Min, d.Max = int64(len(sorted)), sorted[0], sorted[len(sorted)-1]
	for _, v := range sorted {
		d.Sum += v
	}
	return d
}

// setPercentiles fills the percentiles of d from its sorted values.
func (d *Distribution) setPercentiles(sorted []int64) {
	d.P50, d.P90, d.P95, d.P99 = PercentileDisc(sorted, 0.5), PercentileDisc(sorted, 0.9), PercentileDisc(sorted, 0.95), PercentileDisc(sorted, 0.99)
}

// merge adds the summary o (without percentiles) to d.
func (d *Distribution) merge(o Distribution) {
	if o.N == 0 {
		return
	}
	if d.N == 0 || o.Min < d.Min {
		d.Min = o.Min
	}
	if d.N == 0 || o.Max > d.Max {
		d.Max = o.Max
	}
	d.N += o.N
	d.Sum += o.Sum
}

// dailyServes tells whether record_daily answers q (DailyAnswers) and is
// read.
func (s *Store) dailyServes(q StatsQuery) bool {
	return !s.rollup.ignored && DailyAnswers(q)
}

// DailyAnswers tells whether record_daily answers q exactly: the rollup's
// scope conditions, a start time window, dimensions on the rollup's
// columns and, for time, buckets of UTC days, weeks or months of the start.
// Such a query reads no Records but those of two partial days, and the
// API prices it accordingly.
func DailyAnswers(q StatsQuery) bool {
	if !rollupScope(q.Scope, true) {
		return false
	}
	for _, d := range q.GroupBy {
		switch d.Kind {
		case DimNamespace, DimPipelineName, DimTask, DimStatus, DimReason, DimDataType, DimKind:
		case DimTime:
			if d.Time != TimeStart || (d.Unit != UnitDay && d.Unit != UnitWeek && d.Unit != UnitMonth) {
				return false
			}
			if q.TimeZone != nil && q.TimeZone.String() != "UTC" {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// clusterWide tells whether q reads every namespace and groups by none, so
// that record_daily_all answers it.
func clusterWide(q StatsQuery) bool {
	return allNamespaces(q.Scope) && !slices.ContainsFunc(q.GroupBy, func(d Dimension) bool { return d.Kind == DimNamespace })
}

// wholeDays is the range [from, to) of UTC days entirely inside the start
// window w, and the instants where that range begins and ends (nil: open).
func wholeDays(w filter.TimeRange) (from, to int64, fromT, toT *time.Time) {
	from, to = noStartDay, 1<<40
	if w.After == nil && w.Before == nil {
		return
	}
	from++ // a window leaves out Records without a start time
	if w.After != nil {
		// The day after the one holding After: a Record exactly at After is
		// outside the window, so even a window starting at midnight does not
		// hold that day whole.
		from = floorDiv(w.After.UnixMicro(), dayMicros) + 1
		t := time.UnixMicro(from * dayMicros).UTC()
		fromT = &t
	}
	if w.Before != nil {
		to = floorDiv(w.Before.UnixMicro(), dayMicros)
		t := time.UnixMicro(to * dayMicros).UTC()
		toT = &t
	}
	return
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// The parts of a daily read's first statement select, after the
// dimensions, the key (dailyKeyColumns; only the status in added-up parts),
// the day, the count (a delta's sign, a day's version), the last start, the
// duration and queue summaries with their packed lists (NULL where not
// needed), and the start times.
const dailyKeyColumns = "r.data_type, r.namespace, r.pipeline_name, r.task_name, r.status, r.reason"

// Sources of the rows of a daily read.
const (
	srcDelta   = 1 // a pending delta, one per changed Record
	srcEdge    = 2 // Records of a partial day at an end of the window, added up
	srcDay     = 3 // record_daily rows of a whole day, added up per group and status
	srcVersion = 4 // a day's version
	srcOutside = 5 // Records of a trimmed end day outside the window, added up
)

// srcSQL is a source as the first column of its part.
func srcSQL(src int) string { return strconv.Itoa(src) }

// statsDaily computes q from record_daily; q must be one dailyServes
// accepts. The whole days of the window come from memory where their
// version allows (rollup_daily_cache.go), else from record_daily; their
// pending deltas and the partial days at the window's ends are read every
// time.
func (s *Store) statsDaily(ctx context.Context, q StatsQuery) ([]StatsRow, error) {
	var window filter.TimeRange
	byDay := q.Scope
	if w := q.Scope.RecordWhere; w != nil {
		window = w.Started
		c := *w
		c.Started = filter.TimeRange{}
		byDay.RecordWhere = &c
	}
	keyPlan, err := s.countPlan(recordsEntity, byDay)
	if err != nil {
		return nil, err
	}
	fullPlan, err := s.countPlan(recordsEntity, q.Scope)
	if err != nil {
		return nil, err
	}
	rd := &dailyRead{q: q, table: dailyTableOf(clusterWide(q)), keyScope: keyPlan.base, fullScope: fullPlan.base}
	var dimCols []string
	for _, d := range q.GroupBy {
		if d.Kind == DimTime {
			continue
		}
		expr, dargs, err := statsDimensionSQL(s.dialect, d)
		if err != nil {
			return nil, err
		}
		dimCols = append(dimCols, expr)
		rd.dimArgs = append(rd.dimArgs, dargs...)
	}
	rd.nDims = len(dimCols)
	if len(dimCols) > 0 {
		rd.dims = strings.Join(dimCols, ", ") + ", "
	}
	rd.from, rd.to, rd.fromT, rd.toT = wholeDays(window)
	rd.trimEnds(window, time.Now())
	rd.fingerprint = fmt.Sprintf("%s\x00%s\x00%#v\x00%s\x00%#v", rd.table.name, rd.dims, rd.dimArgs, rd.keyScope.whereSQL(), rd.keyScope.args)

	// A fold between the two statements shows as a changed version; the
	// read starts again then (folds are seconds apart).
	for attempt := 0; ; attempt++ {
		rows, consistent, err := s.readDaily(ctx, rd)
		if err != nil || consistent {
			return rows, err
		}
		if attempt == 4 {
			return nil, fmt.Errorf("%w: the daily statistics changed under five reads in a row; try again", ErrUnavailable)
		}
	}
}

// betweenDailyStatements, when set by a test, runs between the two
// statements of a daily read.
var betweenDailyStatements func()

// dailyRead is a statsDaily read: its query and the SQL of its parts.
type dailyRead struct {
	q          StatsQuery
	table      dailyTable
	dims       string // the dimension expressions, each followed by ", "
	dimArgs    []any
	nDims      int
	keyScope   query // on record_daily's columns, without the window
	fullScope  query // on records, with the window
	from, to   int64 // the whole days read (the window's, and trimmed end days)
	fromT, toT *time.Time
	// trimStart and trimEnd are the window's After and Before when their
	// day is read whole and the Records of it outside the window taken out
	// (trimEnds).
	trimStart, trimEnd *time.Time
	fingerprint        string // the table, dimensions and scope: a key of cached days
}

// trimEnds chooses, for each end of the window inside a day, the cheaper
// of two exact ways to count that day's part: the Records inside the window
// (an index range), or the whole day (from memory, usually) less the
// Records outside it. The smaller part of the day is read; a window that
// ends now has nothing after its end, so today is read whole. A window
// within one day is read inside.
func (rd *dailyRead) trimEnds(w filter.TimeRange, now time.Time) {
	if w.After != nil && w.Before != nil && floorDiv(w.After.UnixMicro(), dayMicros) == floorDiv(w.Before.UnixMicro(), dayMicros) {
		return
	}
	if w.After != nil {
		after := w.After.UnixMicro()
		if outside, inside := after-(rd.from-1)*dayMicros, rd.from*dayMicros-after; outside < inside {
			rd.from--
			rd.trimStart = w.After
		}
	}
	if w.Before != nil {
		before := w.Before.UnixMicro()
		inside, outside := before-rd.to*dayMicros, (rd.to+1)*dayMicros-before
		if !w.Before.Before(now) {
			outside = 0
		}
		if inside > 0 && outside < inside {
			rd.to++
			rd.trimEnd = w.Before
		}
	}
}

// readDaily reads rd once; consistent is false when a fold changed a day
// between its two statements.
func (s *Store) readDaily(ctx context.Context, rd *dailyRead) (out []StatsRow, consistent bool, err error) {
	q := rd.q
	percentiles := q.Percentiles || q.QueuePercentiles
	keyColumns := dailyKeyColumns
	if rd.table.all {
		keyColumns = strings.Replace(dailyKeyColumns, "r.namespace", "''", 1)
	}
	start := epochMicrosSQL(s.dialect, "r.start_time")
	queue := start + " - " + epochMicrosSQL(s.dialect, "r.creation_time")
	day := "CAST(floor(CAST(strftime('%s', r.start_time) AS INTEGER) / 86400.0) AS INTEGER)"
	if s.dialect == filter.Postgres {
		queue = queueSQL
		day = "CAST(floor(EXTRACT(EPOCH FROM r.start_time) / 86400) AS bigint)"
	}
	// A typed NULL list: PostgreSQL types two untyped NULLs as text.
	noList := "NULL"
	if s.dialect == filter.Postgres {
		noList = "CAST(NULL AS bytea)"
	}
	dayRange := rd.keyScope.with("r.day >= ? AND r.day < ?", rd.from, rd.to)
	// Pending deltas of the whole days.
	stmt := "SELECT " + srcSQL(srcDelta) + ", " + rd.dims + keyColumns + ", r.day, r.sign, r.start_us, " +
		"CASE WHEN r.duration_us IS NULL THEN 0 ELSE 1 END, r.duration_us, r.duration_us, COALESCE(r.duration_us, 0), " + noList + ", " +
		"CASE WHEN r.queue_us IS NULL THEN 0 ELSE 1 END, r.queue_us, r.queue_us, COALESCE(r.queue_us, 0), " + noList + ", " + noList +
		" FROM record_daily_deltas AS r" + dayRange.whereSQL()
	args := append(slices.Clone(rd.dimArgs), dayRange.args...)
	// The Records of trimmed end days outside the window, taken out of
	// their day as deltas are.
	var outside []string
	var outsideArgs [][]any
	if rd.trimStart != nil {
		dayStart := time.UnixMicro((rd.from) * dayMicros).UTC()
		outside = append(outside, "r.start_time >= ? AND r.start_time <= ?")
		outsideArgs = append(outsideArgs, []any{filter.TimeArg(s.dialect, dayStart), filter.TimeArg(s.dialect, *rd.trimStart)})
	}
	if rd.trimEnd != nil {
		dayEnd := time.UnixMicro(rd.to * dayMicros).UTC()
		outside = append(outside, "r.start_time >= ? AND r.start_time < ?")
		outsideArgs = append(outsideArgs, []any{filter.TimeArg(s.dialect, *rd.trimEnd), filter.TimeArg(s.dialect, dayEnd)})
	}
	for i, cond := range outside {
		scope := rd.keyScope.with(cond, outsideArgs[i]...)
		stmt += " UNION ALL SELECT " + srcSQL(srcOutside) + ", " + rd.dims + "'', '', '', '', r.status, '', " + day + ", COUNT(*), NULL, " +
			"0, NULL, NULL, 0, " + s.packValues("r.duration_us") + ", 0, NULL, NULL, 0, " + s.packValues(queue) + ", " + s.packValues(start) +
			" FROM " + recordsEntity.from + scope.whereSQL() + rd.groupBy()
		args = append(append(args, rd.dimArgs...), scope.args...)
	}
	// Records of the partial days at the ends of the window, each end its
	// own range of the start time index, added up per group, status and
	// day by the database.
	var edges []string
	var edgeArgs [][]any
	switch {
	case rd.fromT == nil && rd.toT == nil:
	case rd.from >= rd.to:
		edges = []string{"1 = 1"} // no whole day: every Record of the window
		edgeArgs = [][]any{nil}
	default:
		if rd.fromT != nil && rd.trimStart == nil {
			edges = append(edges, "r.start_time < ?")
			edgeArgs = append(edgeArgs, []any{filter.TimeArg(s.dialect, *rd.fromT)})
		}
		if rd.toT != nil && rd.trimEnd == nil {
			edges = append(edges, "r.start_time >= ?")
			edgeArgs = append(edgeArgs, []any{filter.TimeArg(s.dialect, *rd.toT)})
		}
	}
	edgeDurs, edgeQueues := "NULL", "NULL"
	if q.Percentiles {
		edgeDurs = s.packValues("r.duration_us")
	}
	if q.QueuePercentiles {
		edgeQueues = s.packValues(queue)
	}
	groupBy := rd.groupBy()
	for i, edge := range edges {
		edgeScope := rd.fullScope.with(edge, edgeArgs[i]...)
		stmt += " UNION ALL SELECT " + srcSQL(srcEdge) + ", " + rd.dims + "'', '', '', '', r.status, '', " + day + ", COUNT(*), MAX(" + start + "), " +
			"COUNT(r.duration_us), MIN(r.duration_us), MAX(r.duration_us), COALESCE(CAST(SUM(r.duration_us) AS bigint), 0), " + edgeDurs + ", " +
			"COUNT(" + queue + "), MIN(" + queue + "), MAX(" + queue + "), COALESCE(CAST(SUM(" + queue + ") AS bigint), 0), " + edgeQueues + ", NULL" +
			" FROM " + recordsEntity.from + edgeScope.whereSQL() + groupBy
		args = append(append(args, rd.dimArgs...), edgeScope.args...)
	}
	// The versions of the whole days that have rows.
	stmt += " UNION ALL SELECT " + srcSQL(srcVersion) + ", " + strings.Repeat("NULL, ", rd.nDims) + "'', '', '', '', '', '', r.day, r.version, " +
		"NULL, 0, NULL, NULL, 0, NULL, 0, NULL, NULL, 0, NULL, NULL FROM record_daily_days AS r WHERE r.day >= ? AND r.day < ?"
	args = append(args, rd.from, rd.to)

	versions := map[int64]int64{}
	var dayOrder []int64
	deltas := map[string]*dayCell{}
	var deltaOrder []string
	var edgeRows []*dailyRow
	// deltaCell is the cell of r's key and day among the changes read.
	deltaCell := func(r *dailyRow) *dayCell {
		k := dayCellKey(r.dims, r.key[4], r.day.Int64)
		c := deltas[k]
		if c == nil {
			c = &dayCell{dims: r.dims, status: r.key[4], day: r.day.Int64}
			deltas[k] = c
			deltaOrder = append(deltaOrder, k)
		}
		return c
	}
	err = s.readRows(ctx, stmt, args, func(rows *sql.Rows) error {
		for rows.Next() {
			var r dailyRow
			r.dims = make([]sql.NullString, rd.nDims)
			dest := []any{&r.src}
			for i := range r.dims {
				dest = append(dest, &r.dims[i])
			}
			dest = append(dest, &r.key[0], &r.key[1], &r.key[2], &r.key[3], &r.key[4], &r.key[5], &r.day, &r.n, &r.lastStart,
				&r.dur.n, &r.dur.min, &r.dur.max, &r.dur.sum, &r.durs, &r.queue.n, &r.queue.min, &r.queue.max, &r.queue.sum, &r.queues,
				&r.starts)
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			switch r.src {
			case srcVersion:
				versions[r.day.Int64] = r.n
				dayOrder = append(dayOrder, r.day.Int64)
			case srcEdge:
				edgeRows = append(edgeRows, &r)
			case srcOutside:
				c := deltaCell(&r)
				c.outN += r.n
				for _, l := range []struct {
					to   *[]int64
					from []byte
				}{{&c.out.durations, r.durs}, {&c.out.queues, r.queues}, {&c.out.starts, r.starts}} {
					had := len(*l.to)
					list, err := decodeValues(*l.to, l.from)
					if err != nil {
						return err
					}
					if had > 0 {
						slices.Sort(list) // removeValues takes one sorted list
					}
					*l.to = list
				}
			case srcDelta:
				c := deltaCell(&r)
				v := dailyValues{start: r.lastStart, duration: r.dur.min, queue: r.queue.min}
				if r.n < 0 {
					c.minus = append(c.minus, v)
				} else {
					c.plus = append(c.plus, v)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if betweenDailyStatements != nil {
		betweenDailyStatements()
	}
	days, consistent, err := s.wholeDaysOf(ctx, rd, versions, dayOrder)
	if err != nil || !consistent {
		return nil, false, err
	}

	groups := map[string]*dailyGroup{}
	var groupOrder []string
	add := func(dims []sql.NullString, status string, day int64, c cellContribution, src *dayCells, dimsKey string) error {
		if c.n <= 0 {
			return nil // every Record of the cell left it since its last fold
		}
		gv := make([]GroupValue, len(q.GroupBy))
		j := 0
		for i, d := range q.GroupBy {
			if d.Kind == DimTime {
				switch {
				case day != noStartDay:
					gv[i].Time = BucketStart(time.UnixMicro(day*dayMicros), d.Unit, time.UTC)
				default:
					gv[i].Null = true
				}
				continue
			}
			if t := dims[j]; t.Valid {
				gv[i].Text = t.String
			} else {
				gv[i].Null = true
			}
			j++
		}
		gk := groupKey(gv)
		g := groups[gk]
		if g == nil {
			if len(groups) == q.maxGroups() {
				return tooManyGroups(q.maxGroups())
			}
			g = &dailyGroup{row: StatsRow{Groups: gv}}
			groups[gk] = g
			groupOrder = append(groupOrder, gk)
		}
		g.add(status, c)
		g.from(src, dimsKey)
		return nil
	}
	type dayDims struct {
		day  *dayCells
		dims string
	}
	touched := map[dayDims]bool{}
	for _, d := range days {
		for _, c := range d.cells {
			delta := deltas[c.key]
			delete(deltas, c.key)
			src := d // an untouched cell: its day's merged lists hold it
			if delta != nil {
				// Even when the cell adds nothing in the end, the day's
				// merged lists of its dimension values hold too much.
				src = nil
				touched[dayDims{d, c.dimsKey}] = true
			}
			if err := add(c.dims, c.status, c.day, c.contribution(delta, q.Percentiles, q.QueuePercentiles), src, c.dimsKey); err != nil {
				return nil, false, err
			}
		}
	}
	for _, k := range deltaOrder {
		if c := deltas[k]; c != nil { // a cell no row of its day holds yet
			if err := add(c.dims, c.status, c.day, (&dayCell{}).contribution(c, q.Percentiles, q.QueuePercentiles), nil, ""); err != nil {
				return nil, false, err
			}
		}
	}
	for _, r := range edgeRows {
		contrib, err := r.contribution(percentiles)
		if err != nil {
			return nil, false, err
		}
		if err := add(r.dims, r.key[4], r.day.Int64, contrib, nil, ""); err != nil {
			return nil, false, err
		}
	}
	out = make([]StatsRow, 0, len(groupOrder))
	var scratch []int64
	for _, k := range groupOrder {
		if g := groups[k]; g.src != nil && touched[dayDims{g.src, g.srcDims}] {
			g.src = nil
		}
		out = append(out, groups[k].finish(q.Percentiles, q.QueuePercentiles, &scratch))
	}
	if len(q.GroupBy) == 0 && len(out) == 0 {
		out = []StatsRow{{}}
	}
	return out, true, nil
}

// groupBy is the GROUP BY of an added-up part: the dimensions, the status
// and the day, by their positions in dailyRow's layout.
func (rd *dailyRead) groupBy() string {
	var ordinals []string
	for i := range rd.nDims {
		ordinals = append(ordinals, strconv.Itoa(2+i))
	}
	return " GROUP BY " + strings.Join(append(ordinals, strconv.Itoa(2+rd.nDims+4), strconv.Itoa(2+rd.nDims+6)), ", ")
}

// summary is the count, minimum, maximum and sum of a row's values.
type summary struct {
	n, sum   int64
	min, max sql.NullInt64
}

func (s summary) distribution() Distribution {
	return Distribution{N: s.n, Min: s.min.Int64, Max: s.max.Int64, Sum: s.sum}
}

// dailyRow is one row of a daily read's first statement: a pending delta
// (srcDelta: n its sign, the summaries its one value), the Records of a
// partial day added up per group, status and day (srcEdge, their lists
// concatenated), or a day's version (srcVersion, in n).
type dailyRow struct {
	src                  int64
	dims                 []sql.NullString
	key                  [6]string // data type, namespace, Pipeline, Task, status, reason
	day                  sql.NullInt64
	n                    int64
	lastStart            sql.NullInt64
	dur, queue           summary
	durs, queues, starts []byte
}

// cellContribution is what one cell adds to its group.
type cellContribution struct {
	n                 int64
	duration, queue   Distribution // without percentiles
	durations, queues []int64      // sorted; only when percentiles are asked for
	lastStart         sql.NullInt64
}

// contribution is what an added-up row of Records (a partial day) adds to
// its group; its lists are decoded only for percentiles.
func (r *dailyRow) contribution(percentiles bool) (cellContribution, error) {
	out := cellContribution{n: r.n, duration: r.dur.distribution(), queue: r.queue.distribution(), lastStart: r.lastStart}
	if !percentiles {
		return out, nil
	}
	var err error
	if out.durations, err = decodeValues(nil, r.durs); err != nil {
		return out, err
	}
	out.queues, err = decodeValues(nil, r.queues)
	return out, err
}

// dailyGroup gathers the cells of one output group.
type dailyGroup struct {
	row               StatsRow
	durations, queues [][]int64
	// src, when every cell of the group came untouched from the cells of
	// one cached day with the dimension values srcDims (a group of a day),
	// holds their lists merged already.
	src     *dayCells
	srcDims string
	mixed   bool
}

// from notes where a cell added to g came from: src nil for anything but
// an untouched cached cell.
func (g *dailyGroup) from(src *dayCells, dims string) {
	switch {
	case g.mixed:
	case src == nil || (g.src != nil && (g.src != src || g.srcDims != dims)):
		g.mixed, g.src = true, nil
	default:
		g.src, g.srcDims = src, dims
	}
}

func (g *dailyGroup) add(status string, c cellContribution) {
	r := &g.row
	r.Count += c.n
	switch status {
	case StatusSucceeded:
		r.Statuses.Succeeded += c.n
	case StatusFailed:
		r.Statuses.Failed += c.n
	case StatusCancelled:
		r.Statuses.Cancelled += c.n
	case StatusRunning:
		r.Statuses.Running += c.n
	default:
		r.Statuses.Unknown += c.n
	}
	r.Duration.merge(c.duration)
	r.Queue.merge(c.queue)
	if c.lastStart.Valid {
		t := time.UnixMicro(c.lastStart.Int64).UTC()
		if r.LastRun == nil || t.After(*r.LastRun) {
			r.LastRun = &t
		}
	}
	if len(c.durations) > 0 {
		g.durations = append(g.durations, c.durations)
	}
	if len(c.queues) > 0 {
		g.queues = append(g.queues, c.queues)
	}
}

// finish sets the percentiles asked for, merging the group's lists in
// scratch (reused from group to group: a 620-group answer would otherwise
// allocate every value again).
func (g *dailyGroup) finish(durations, queues bool, scratch *[]int64) StatsRow {
	for _, p := range []struct {
		lists  [][]int64
		d      *Distribution
		wanted bool
	}{{g.durations, &g.row.Duration, durations}, {g.queues, &g.row.Queue, queues}} {
		if !p.wanted {
			continue
		}
		all := p.lists
		if g.src != nil {
			merged := g.src.merged[g.srcDims]
			all = [][]int64{merged.durations}
			if p.d == &g.row.Queue {
				all = [][]int64{merged.queues}
			}
		} else if len(all) > 1 {
			*scratch = mergeInto(*scratch, p.lists)
			all = [][]int64{*scratch}
		}
		if len(all) == 1 && len(all[0]) > 0 {
			p.d.setPercentiles(all[0])
		}
	}
	return g.row
}

// concatLists is the aggregate that concatenates packed lists.
func (s *Store) concatLists(col string) string {
	if s.dialect == filter.Postgres {
		return "string_agg(" + col + ", ''::bytea)"
	}
	return "unhex(group_concat(hex(" + col + "), ''))"
}

// packValues is the aggregate that packs values as record_daily's lists
// (unsorted; decodeValues sorts).
func (s *Store) packValues(expr string) string {
	if s.dialect == filter.Postgres {
		return "string_agg(int8send(" + expr + "), ''::bytea)"
	}
	return "unhex(group_concat(CASE WHEN " + expr + " IS NOT NULL THEN printf('%016x', " + expr + ") END, ''))"
}

// mergeInto merges sorted lists into dst's memory: by picking the
// smallest head for a few lists, by sorting their concatenation for many.
func mergeInto(dst []int64, lists [][]int64) []int64 {
	dst = dst[:0]
	if len(lists) > 8 {
		for _, l := range lists {
			dst = append(dst, l...)
		}
		slices.Sort(dst)
		return dst
	}
	var heads [8]int
	for {
		best := -1
		for i, l := range lists {
			if heads[i] < len(l) && (best < 0 || l[heads[i]] < lists[best][heads[best]]) {
				best = i
			}
		}
		if best < 0 {
			return dst
		}
		dst = append(dst, lists[best][heads[best]])
		heads[best]++
	}
}
