package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/annals-dev/annals/store/filter"
)

// Run statistics for analytics (the graph's recordStats and recordFacets),
// on the dimensions of aggregate.go. PostgreSQL computes every metric in
// one GROUP BY statement, exact percentiles with percentile_disc and time
// buckets in the caller's zone with date_trunc; SQLite, which has neither
// percentiles nor time zones, streams the few narrow columns the metrics
// need and aggregates them in Go, with the same definitions: both give
// identical answers (the differential tests hold them to one model).

// StatusCounts counts the runs of a group by status.
type StatusCounts struct {
	Succeeded, Failed, Cancelled, Running, Unknown int64
}

// Distribution summarizes a time span per run (a duration, a queue time) in
// microseconds over the runs of a group that have it. Percentiles are
// exact and discrete (PostgreSQL's percentile_disc: the smallest value whose
// cumulative share reaches the fraction, always an observed value); they are
// filled only when StatsQuery asks for them (Percentiles for durations,
// QueuePercentiles for queue times). With N zero, nothing is.
type Distribution struct {
	N                  int64
	Min, Max, Sum      int64
	P50, P90, P95, P99 int64
}

// Avg is the mean in microseconds; 0 when N is.
func (d Distribution) Avg() float64 {
	if d.N == 0 {
		return 0
	}
	return float64(d.Sum) / float64(d.N)
}

// StatsRow is one group of a StatsQuery.
type StatsRow struct {
	Groups   []GroupValue // in the order of StatsQuery.GroupBy
	Count    int64
	Statuses StatusCounts
	Duration Distribution // completion - start
	Queue    Distribution // start - metadata.creationTimestamp
	LastRun  *time.Time   // the latest start time
}

// SuccessRate is the share of finished runs (succeeded, failed or
// cancelled) that succeeded; nil when none finished.
func (r StatsRow) SuccessRate() *float64 {
	done := r.Statuses.Succeeded + r.Statuses.Failed + r.Statuses.Cancelled
	if done == 0 {
		return nil
	}
	v := float64(r.Statuses.Succeeded) / float64(done)
	return &v
}

// StatsMetric names one value of a StatsRow, to order groups by.
type StatsMetric string

const (
	StatKey         StatsMetric = "key" // the group's dimension values
	StatCount       StatsMetric = "count"
	StatSucceeded   StatsMetric = "succeeded"
	StatFailed      StatsMetric = "failed"
	StatCancelled   StatsMetric = "cancelled"
	StatRunning     StatsMetric = "running"
	StatUnknown     StatsMetric = "unknown"
	StatSuccessRate StatsMetric = "success_rate"
	StatDurationMin StatsMetric = "duration_min"
	StatDurationAvg StatsMetric = "duration_avg"
	StatDurationMax StatsMetric = "duration_max"
	StatDurationSum StatsMetric = "duration_sum"
	StatDurationP50 StatsMetric = "duration_p50"
	StatDurationP90 StatsMetric = "duration_p90"
	StatDurationP95 StatsMetric = "duration_p95"
	StatDurationP99 StatsMetric = "duration_p99"
	StatQueueMin    StatsMetric = "queue_min"
	StatQueueAvg    StatsMetric = "queue_avg"
	StatQueueMax    StatsMetric = "queue_max"
	StatQueueSum    StatsMetric = "queue_sum"
	StatQueueP50    StatsMetric = "queue_p50"
	StatQueueP90    StatsMetric = "queue_p90"
	StatQueueP95    StatsMetric = "queue_p95"
	StatQueueP99    StatsMetric = "queue_p99"
	StatLastRun     StatsMetric = "last_run"
)

var statsMetrics = []StatsMetric{StatKey, StatCount, StatSucceeded, StatFailed, StatCancelled, StatRunning, StatUnknown,
	StatSuccessRate, StatDurationMin, StatDurationAvg, StatDurationMax, StatDurationSum, StatDurationP50, StatDurationP90,
	StatDurationP95, StatDurationP99, StatQueueMin, StatQueueAvg, StatQueueMax, StatQueueSum, StatQueueP50, StatQueueP90,
	StatQueueP95, StatQueueP99, StatLastRun}

// isPercentile tells whether ordering by m needs percentiles computed.
func (m StatsMetric) isPercentile() bool {
	return strings.HasSuffix(string(m), "_p50") || strings.HasSuffix(string(m), "_p90") ||
		strings.HasSuffix(string(m), "_p95") || strings.HasSuffix(string(m), "_p99")
}

// Value is the metric of a row as a number (times as Unix microseconds),
// and false when the group has no value for it.
func (r StatsRow) Value(m StatsMetric) (float64, bool) {
	dist := func(d Distribution, part string) (float64, bool) {
		if d.N == 0 {
			return 0, false
		}
		switch part {
		case "min":
			return float64(d.Min), true
		case "avg":
			return d.Avg(), true
		case "max":
			return float64(d.Max), true
		case "sum":
			return float64(d.Sum), true
		case "p50":
			return float64(d.P50), true
		case "p90":
			return float64(d.P90), true
		case "p95":
			return float64(d.P95), true
		case "p99":
			return float64(d.P99), true
		}
		return 0, false
	}
	switch m {
	case StatCount:
		return float64(r.Count), true
	case StatSucceeded:
		return float64(r.Statuses.Succeeded), true
	case StatFailed:
		return float64(r.Statuses.Failed), true
	case StatCancelled:
		return float64(r.Statuses.Cancelled), true
	case StatRunning:
		return float64(r.Statuses.Running), true
	case StatUnknown:
		return float64(r.Statuses.Unknown), true
	case StatSuccessRate:
		if v := r.SuccessRate(); v != nil {
			return *v, true
		}
		return 0, false
	case StatLastRun:
		if r.LastRun != nil {
			return float64(r.LastRun.UnixMicro()), true
		}
		return 0, false
	}
	if part, ok := strings.CutPrefix(string(m), "duration_"); ok {
		return dist(r.Duration, part)
	}
	if part, ok := strings.CutPrefix(string(m), "queue_"); ok {
		return dist(r.Queue, part)
	}
	return 0, false
}

// StatsOrder orders groups by a metric; groups without a value come last,
// ties by key ascending.
type StatsOrder struct {
	Metric StatsMetric
	Desc   bool
}

// StatsQuery is one statistics request: the Records of Scope (as ListRecords
// selects them; paging fields are ignored) grouped by GroupBy.
type StatsQuery struct {
	Scope   ListOptions
	GroupBy []Dimension
	// TimeZone is where DimTime buckets begin (midnight, Monday, the 1st of
	// the month, the hour of the local clock); nil is UTC.
	TimeZone *time.Location
	// Percentiles asks for P50..P99 of durations, QueuePercentiles of queue
	// times (a sort per group each, so only when asked).
	Percentiles, QueuePercentiles bool
	// Fill adds zero groups for the empty time buckets of the one DimTime
	// dimension, per combination of the other dimensions: between the
	// bounds of the Scope's where window on that time, else between the
	// first and the last bucket found.
	Fill    bool
	OrderBy []StatsOrder // default: by key ascending
	Limit   int          // at most this many groups after ordering; 0: all
	// MaxGroups bounds the groups computed (before Limit, fill included);
	// more is an error. 0: DefaultMaxGroups.
	MaxGroups int
}

func (q StatsQuery) maxGroups() int {
	if q.MaxGroups > 0 {
		return q.MaxGroups
	}
	return DefaultMaxGroups
}

func (q StatsQuery) zone() *time.Location {
	if q.TimeZone == nil {
		return time.UTC
	}
	return q.TimeZone
}

// StatsResult is the groups of a StatsQuery, ordered and limited, how many
// groups there were before the limit, and the failures of them all (the
// denominator of a failure hot spot's share).
type StatsResult struct {
	Rows        []StatsRow
	TotalGroups int
	Failed      int64 // failed runs of all groups, before the limit
	// Whether the rows' duration and queue time percentiles were computed.
	Percentiles, QueuePercentiles bool
}

var statsUnits = []TimeUnit{UnitHour, UnitDay, UnitWeek, UnitMonth}

func tooManyGroups(n int) error {
	return fmt.Errorf("%w: the grouping gives more than %d groups; narrow the filter or the time window, group by a coarser time unit or by fewer dimensions",
		ErrInvalidArgument, n)
}

// check refuses what cannot be computed, before any SQL.
func (q StatsQuery) check() error {
	times := 0
	for _, d := range q.GroupBy {
		if d.Kind == DimTime {
			times++
			if !slices.Contains(statsUnits, d.Unit) {
				return fmt.Errorf("%w: unknown time unit %q: give hour, day, week or month", ErrInvalidArgument, d.Unit)
			}
		}
	}
	if q.Fill && times != 1 {
		return fmt.Errorf("%w: filling empty time buckets needs exactly one time dimension in the grouping, not %d", ErrInvalidArgument, times)
	}
	for _, o := range q.OrderBy {
		if !slices.Contains(statsMetrics, o.Metric) {
			return fmt.Errorf("%w: unknown metric %q to order by", ErrInvalidArgument, o.Metric)
		}
	}
	if len(q.GroupBy) > 4 {
		return fmt.Errorf("%w: group by at most 4 dimensions, not %d", ErrInvalidArgument, len(q.GroupBy))
	}
	if from, to, ok := q.fillWindow(); ok && q.Fill {
		d := q.GroupBy[q.timeDim()]
		if n := estimateBuckets(from, to, d.Unit); n > q.maxGroups() {
			return tooManyGroups(q.maxGroups())
		}
	}
	return nil
}

func (q StatsQuery) timeDim() int {
	return slices.IndexFunc(q.GroupBy, func(d Dimension) bool { return d.Kind == DimTime })
}

// fillWindow is the where window on the time of the time dimension, when
// both its bounds are given.
func (q StatsQuery) fillWindow() (from, to time.Time, ok bool) {
	i := q.timeDim()
	if i < 0 || q.Scope.RecordWhere == nil {
		return
	}
	var r filter.TimeRange
	switch q.GroupBy[i].Time {
	case TimeCreation:
		r = q.Scope.RecordWhere.Created
	case TimeStart:
		r = q.Scope.RecordWhere.Started
	case TimeCompletion:
		r = q.Scope.RecordWhere.Completed
	}
	if r.After == nil || r.Before == nil {
		return
	}
	return *r.After, *r.Before, true
}

func estimateBuckets(from, to time.Time, unit TimeUnit) int {
	width := map[TimeUnit]time.Duration{UnitHour: time.Hour, UnitDay: 23 * time.Hour, UnitWeek: 7*24*time.Hour - time.Hour, UnitMonth: 28 * 24 * time.Hour}[unit]
	if !to.After(from) {
		return 0
	}
	return int(to.Sub(from)/width) + 1
}

// BucketStart is the start of the time bucket of t in loc: the local hour
// (the instant less the minutes and seconds past the local hour, so the two
// hours a clock shows twice when it goes back stay apart), the local
// midnight, the Monday of the week, the 1st of the month.
func BucketStart(t time.Time, unit TimeUnit, loc *time.Location) time.Time {
	l := t.In(loc)
	switch unit {
	case UnitMinute:
		return t.Add(-time.Duration(l.Second())*time.Second - time.Duration(l.Nanosecond())).UTC()
	case UnitHour:
		return t.Add(-time.Duration(l.Minute())*time.Minute - time.Duration(l.Second())*time.Second - time.Duration(l.Nanosecond())).UTC()
	case UnitDay:
		return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc).UTC()
	case UnitWeek:
		back := (int(l.Weekday()) + 6) % 7
		return time.Date(l.Year(), l.Month(), l.Day()-back, 0, 0, 0, 0, loc).UTC()
	case UnitMonth:
		return time.Date(l.Year(), l.Month(), 1, 0, 0, 0, 0, loc).UTC()
	case UnitYear:
		return time.Date(l.Year(), 1, 1, 0, 0, 0, 0, loc).UTC()
	}
	return t.UTC()
}

// nextBucket is the start of the bucket after the one starting at b.
func nextBucket(b time.Time, unit TimeUnit, loc *time.Location) time.Time {
	l := b.In(loc)
	switch unit {
	case UnitHour:
		return b.Add(time.Hour)
	case UnitDay:
		return time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc).UTC()
	case UnitWeek:
		return time.Date(l.Year(), l.Month(), l.Day()+7, 0, 0, 0, 0, loc).UTC()
	case UnitMonth:
		return time.Date(l.Year(), l.Month()+1, 1, 0, 0, 0, 0, loc).UTC()
	}
	return b.Add(time.Hour)
}

// percentileFractions are the percentiles of a Distribution.
var percentileFractions = []float64{0.5, 0.9, 0.95, 0.99}

// PercentileDisc is PostgreSQL's percentile_disc over sorted values: the
// value at position ceil(f*n) (1-based), the first when that is 0.
func PercentileDisc(sorted []int64, f float64) int64 {
	n := len(sorted)
	return sorted[min(int(percentileRank(f, int64(n))), n)-1]
}

// Stats computes q. Groups are keyed by their dimension values; see
// StatsQuery for order, limit, fill and the cap.
func (s *Store) Stats(ctx context.Context, q StatsQuery) (*StatsResult, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	for _, o := range q.OrderBy {
		if o.Metric.isPercentile() {
			if strings.HasPrefix(string(o.Metric), "queue_") {
				q.QueuePercentiles = true
			} else {
				q.Percentiles = true
			}
		}
	}
	var rows []StatsRow
	var err error
	if s.dailyServes(q) {
		rows, err = s.statsDaily(ctx, q)
		defer s.foldRollupSoon()
	} else if s.dialect == filter.Postgres {
		rows, err = s.statsPostgres(ctx, q)
	} else {
		rows, err = s.statsStreamed(ctx, q)
	}
	if err != nil {
		return nil, err
	}
	if q.Fill {
		if rows, err = q.fill(rows); err != nil {
			return nil, err
		}
	}
	sortStats(rows, q.OrderBy)
	res := &StatsResult{TotalGroups: len(rows), Rows: rows, Percentiles: q.Percentiles, QueuePercentiles: q.QueuePercentiles}
	for _, r := range rows {
		res.Failed += r.Statuses.Failed
	}
	if q.Limit > 0 && len(rows) > q.Limit {
		res.Rows = rows[:q.Limit]
	}
	return res, nil
}

// groupKey renders dimension values as one comparable string.
func groupKey(groups []GroupValue) string {
	var b strings.Builder
	for _, g := range groups {
		switch {
		case g.Null:
			b.WriteString("\x00n")
		case !g.Time.IsZero():
			b.WriteString("\x00t" + strconv.FormatInt(g.Time.UnixMicro(), 10))
		default:
			b.WriteString("\x00s" + g.Text)
		}
	}
	return b.String()
}

// compareGroupKeys orders keys: nulls last, times by instant, text bytewise.
func compareGroupKeys(a, b []GroupValue) int {
	for i := range a {
		x, y := a[i], b[i]
		if c := cmp.Compare(boolInt(x.Null), boolInt(y.Null)); c != 0 || x.Null {
			if c != 0 {
				return c
			}
			continue
		}
		if c := x.Time.Compare(y.Time); c != 0 {
			return c
		}
		if c := strings.Compare(x.Text, y.Text); c != 0 {
			return c
		}
	}
	return 0
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sortStats(rows []StatsRow, order []StatsOrder) {
	slices.SortStableFunc(rows, func(a, b StatsRow) int {
		for _, o := range order {
			if o.Metric == StatKey {
				c := compareGroupKeys(a.Groups, b.Groups)
				if o.Desc {
					c = -c
				}
				if c != 0 {
					return c
				}
				continue
			}
			x, okx := a.Value(o.Metric)
			y, oky := b.Value(o.Metric)
			if c := cmp.Compare(boolInt(!okx), boolInt(!oky)); c != 0 {
				return c // no value last, whatever the direction
			}
			c := cmp.Compare(x, y)
			if o.Desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return compareGroupKeys(a.Groups, b.Groups)
	})
}

// fill adds the missing buckets of each series as zero groups.
func (q StatsQuery) fill(rows []StatsRow) ([]StatsRow, error) {
	ti := q.timeDim()
	unit, loc := q.GroupBy[ti].Unit, q.zone()
	from, to, windowed := q.fillWindow()
	if windowed {
		from = BucketStart(from, unit, loc)
	} else {
		first := true
		for _, r := range rows {
			if g := r.Groups[ti]; !g.Null {
				if first || g.Time.Before(from) {
					from = g.Time
				}
				if first || g.Time.After(to) {
					to = g.Time
				}
				first = false
			}
		}
		if first {
			return rows, nil
		}
		to = to.Add(time.Nanosecond) // the last bucket is in
	}
	have := map[string]bool{}
	series := map[string][]GroupValue{}
	var seriesOrder []string
	for _, r := range rows {
		have[groupKey(r.Groups)] = true
		other := slices.Clone(r.Groups)
		other[ti] = GroupValue{}
		k := groupKey(other)
		if _, ok := series[k]; !ok {
			series[k] = other
			seriesOrder = append(seriesOrder, k)
		}
	}
	if len(series) == 0 && len(q.GroupBy) == 1 {
		// No Records at all: the one series of a grouping by time alone.
		series[""], seriesOrder = []GroupValue{{}}, []string{""}
	}
	for _, k := range seriesOrder {
		base := series[k]
		for b := from; b.Before(to); b = nextBucket(b, unit, loc) {
			g := slices.Clone(base)
			g[ti] = GroupValue{Time: b}
			if !have[groupKey(g)] {
				rows = append(rows, StatsRow{Groups: g})
				if len(rows) > q.maxGroups() {
					return nil, tooManyGroups(q.maxGroups())
				}
			}
		}
	}
	return rows, nil
}

// statsTimeColumns are the columns of the DimTime fields.
var statsTimeColumns = map[TimeField]string{TimeCreation: "r.creation_time", TimeStart: "r.start_time", TimeCompletion: "r.completion_time"}

// queueSQL is start - creation in microseconds on PostgreSQL (EXTRACT gives
// an exact numeric).
const queueSQL = "CAST(EXTRACT(EPOCH FROM r.start_time - r.creation_time) * 1000000 AS bigint)"

// statsPostgres computes every group in one statement.
func (s *Store) statsPostgres(ctx context.Context, q StatsQuery) ([]StatsRow, error) {
	p, err := s.countPlan(recordsEntity, q.Scope)
	if err != nil {
		return nil, err
	}
	var cols []string
	var args []any
	zone := q.zone().String()
	for _, d := range q.GroupBy {
		if d.Kind == DimTime {
			col := statsTimeColumns[d.Time]
			var bucket string
			if d.Unit == UnitHour {
				// The instant less the time past the local hour.
				bucket = col + " - ((" + col + " AT TIME ZONE CAST(? AS text)) - date_trunc('hour', " + col + " AT TIME ZONE CAST(? AS text)))"
				args = append(args, zone, zone)
			} else {
				bucket = "date_trunc('" + string(d.Unit) + "', " + col + ", CAST(? AS text))"
				args = append(args, zone)
			}
			cols = append(cols, "CAST(EXTRACT(EPOCH FROM "+bucket+") * 1000000 AS bigint)")
			continue
		}
		expr, dargs, err := statsDimensionSQL(s.dialect, d)
		if err != nil {
			return nil, err
		}
		cols = append(cols, expr)
		args = append(args, dargs...)
	}
	cols = append(cols, "COUNT(*)")
	for _, st := range []string{StatusSucceeded, StatusFailed, StatusCancelled, StatusRunning, StatusUnknown} {
		cols = append(cols, "COUNT(CASE WHEN r.status = ? THEN 1 END)")
		args = append(args, st)
	}
	for i, v := range []string{"r.duration_us", queueSQL} {
		cols = append(cols, "COUNT("+v+")", "MIN("+v+")", "MAX("+v+")", "CAST(SUM("+v+") AS bigint)")
		if []bool{q.Percentiles, q.QueuePercentiles}[i] {
			cols = append(cols, "CAST(percentile_disc(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY "+v+") AS text)")
		} else {
			cols = append(cols, "NULL")
		}
	}
	cols = append(cols, "MAX(r.start_time)")
	stmt := "SELECT " + strings.Join(cols, ", ") + " FROM " + recordsEntity.from + p.base.whereSQL()
	args = append(args, p.base.args...)
	if n := len(q.GroupBy); n > 0 {
		ordinals := make([]string, n)
		for i := range ordinals {
			ordinals[i] = strconv.Itoa(i + 1)
		}
		stmt += " GROUP BY " + strings.Join(ordinals, ", ") + " LIMIT ?"
		args = append(args, q.maxGroups()+1)
	}
	var out []StatsRow
	err = s.readRows(ctx, stmt, args, func(rows *sql.Rows) error {
		for rows.Next() {
			if len(out) == q.maxGroups() {
				return tooManyGroups(q.maxGroups())
			}
			dims := make([]any, len(q.GroupBy))
			times := make([]sql.NullInt64, len(q.GroupBy))
			texts := make([]sql.NullString, len(q.GroupBy))
			for i, d := range q.GroupBy {
				if d.Kind == DimTime {
					dims[i] = &times[i]
				} else {
					dims[i] = &texts[i]
				}
			}
			var row StatsRow
			var dist [2][4]sql.NullInt64
			var pct [2]sql.NullString
			var last sqlTime
			dest := append(dims, &row.Count, &row.Statuses.Succeeded, &row.Statuses.Failed, &row.Statuses.Cancelled,
				&row.Statuses.Running, &row.Statuses.Unknown)
			for i := range 2 {
				dest = append(dest, &dist[i][0], &dist[i][1], &dist[i][2], &dist[i][3], &pct[i])
			}
			dest = append(dest, &last)
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			row.Groups = make([]GroupValue, len(q.GroupBy))
			for i, d := range q.GroupBy {
				switch {
				case d.Kind == DimTime && times[i].Valid:
					row.Groups[i].Time = time.UnixMicro(times[i].Int64).UTC()
				case d.Kind != DimTime && texts[i].Valid:
					row.Groups[i].Text = texts[i].String
				default:
					row.Groups[i].Null = true
				}
			}
			for i, target := range []*Distribution{&row.Duration, &row.Queue} {
				target.N, target.Min, target.Max, target.Sum = dist[i][0].Int64, dist[i][1].Int64, dist[i][2].Int64, dist[i][3].Int64
				if pct[i].Valid {
					parts := strings.Split(strings.Trim(pct[i].String, "{}"), ",")
					if len(parts) != 4 {
						return fmt.Errorf("reading percentiles %q", pct[i].String)
					}
					for j, ptr := range []*int64{&target.P50, &target.P90, &target.P95, &target.P99} {
						if *ptr, err = strconv.ParseInt(parts[j], 10, 64); err != nil {
							return fmt.Errorf("reading percentiles %q: %w", pct[i].String, err)
						}
					}
				}
			}
			row.LastRun = last.t
			out = append(out, row)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(q.GroupBy) == 0 && len(out) == 0 {
		out = []StatsRow{{}}
	}
	return out, nil
}

// statsAcc gathers one group on the streamed path.
type statsAcc struct {
	row  StatsRow
	seen int64 // values of the percentile pass read so far
}

func (d *Distribution) add(v int64) {
	if d.N == 0 || v < d.Min {
		d.Min = v
	}
	if d.N == 0 || v > d.Max {
		d.Max = v
	}
	d.N++
	d.Sum += v
}

// statsStreamed reads the Records' narrow columns and aggregates in Go,
// holding one accumulator per group, never the Records: percentiles take
// one more pass per distribution over its values sorted by SQLite (which
// spills a large sort to disk), picking each group's value at its rank.
func (s *Store) statsStreamed(ctx context.Context, q StatsQuery) ([]StatsRow, error) {
	p, err := s.countPlan(recordsEntity, q.Scope)
	if err != nil {
		return nil, err
	}
	var dimCols []string
	var dimArgs []any
	for _, d := range q.GroupBy {
		if d.Kind == DimTime {
			dimCols = append(dimCols, statsTimeColumns[d.Time])
			continue
		}
		expr, dargs, err := statsDimensionSQL(s.dialect, d)
		if err != nil {
			return nil, err
		}
		dimCols = append(dimCols, expr)
		dimArgs = append(dimArgs, dargs...)
	}
	loc := q.zone()
	n := len(q.GroupBy)
	groups := map[string]*statsAcc{}
	var order []string
	// scan reads rows of the dimension columns then extra, and hands each
	// row's group key and values to use.
	scan := func(stmt string, args []any, extra []any, use func(gv []GroupValue, key string) error) error {
		return s.readRows(ctx, stmt, args, func(rows *sql.Rows) error {
			times := make([]sqlTime, n)
			texts := make([]sql.NullString, n)
			dest := make([]any, n, n+len(extra))
			for i, d := range q.GroupBy {
				if d.Kind == DimTime {
					dest[i] = &times[i]
				} else {
					dest[i] = &texts[i]
				}
			}
			dest = append(dest, extra...)
			for rows.Next() {
				if err := rows.Scan(dest...); err != nil {
					return err
				}
				gv := make([]GroupValue, n)
				for i, d := range q.GroupBy {
					switch {
					case d.Kind == DimTime && times[i].t != nil:
						gv[i].Time = BucketStart(*times[i].t, d.Unit, loc)
					case d.Kind != DimTime && texts[i].Valid:
						gv[i].Text = texts[i].String
					default:
						gv[i].Null = true
					}
				}
				if err := use(gv, groupKey(gv)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	var status string
	var duration sql.NullInt64
	var created, started sqlTime
	stmt := "SELECT " + strings.Join(append(slices.Clone(dimCols), "r.status", "r.duration_us", "r.creation_time", "r.start_time"), ", ") +
		" FROM " + recordsEntity.from + p.base.whereSQL()
	err = scan(stmt, append(slices.Clone(dimArgs), p.base.args...), []any{&status, &duration, &created, &started}, func(gv []GroupValue, k string) error {
		a := groups[k]
		if a == nil {
			if len(groups) == q.maxGroups() {
				return tooManyGroups(q.maxGroups())
			}
			a = &statsAcc{row: StatsRow{Groups: gv}}
			groups[k] = a
			order = append(order, k)
		}
		a.row.Count++
		switch status {
		case StatusSucceeded:
			a.row.Statuses.Succeeded++
		case StatusFailed:
			a.row.Statuses.Failed++
		case StatusCancelled:
			a.row.Statuses.Cancelled++
		case StatusRunning:
			a.row.Statuses.Running++
		default:
			a.row.Statuses.Unknown++
		}
		if duration.Valid {
			a.row.Duration.add(duration.Int64)
		}
		if created.t != nil && started.t != nil {
			a.row.Queue.add(started.t.Sub(*created.t).Microseconds())
		}
		if started.t != nil && (a.row.LastRun == nil || started.t.After(*a.row.LastRun)) {
			t := *started.t
			a.row.LastRun = &t
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if q.Percentiles || q.QueuePercentiles {
		queue := epochMicrosSQL(s.dialect, "r.start_time") + " - " + epochMicrosSQL(s.dialect, "r.creation_time")
		for _, pass := range []struct {
			expr   string
			dist   func(*StatsRow) *Distribution
			wanted bool
		}{
			{"r.duration_us", func(r *StatsRow) *Distribution { return &r.Duration }, q.Percentiles},
			{queue, func(r *StatsRow) *Distribution { return &r.Queue }, q.QueuePercentiles},
		} {
			if !pass.wanted {
				continue
			}
			for _, a := range groups {
				a.seen = 0
				d := pass.dist(&a.row)
				// A rank a concurrent delete leaves unread keeps the maximum.
				d.P50, d.P90, d.P95, d.P99 = d.Max, d.Max, d.Max, d.Max
			}
			var v int64
			scope := p.base.with(pass.expr + " IS NOT NULL")
			stmt := "SELECT " + strings.Join(append(slices.Clone(dimCols), pass.expr), ", ") + " FROM " + recordsEntity.from +
				scope.whereSQL() + " ORDER BY " + strconv.Itoa(n+1)
			err := scan(stmt, append(slices.Clone(dimArgs), scope.args...), []any{&v}, func(_ []GroupValue, k string) error {
				a := groups[k]
				if a == nil {
					return nil // written since the first pass
				}
				a.seen++
				d := pass.dist(&a.row)
				for i, ptr := range []*int64{&d.P50, &d.P90, &d.P95, &d.P99} {
					if a.seen == percentileRank(percentileFractions[i], d.N) {
						*ptr = v
					}
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	out := make([]StatsRow, 0, len(order))
	for _, k := range order {
		out = append(out, groups[k].row)
	}
	if len(q.GroupBy) == 0 && len(out) == 0 {
		out = []StatsRow{{}}
	}
	return out, nil
}

// percentileRank is the 1-based rank percentile_disc picks among n sorted
// values: ceil(f*n), at least 1.
func percentileRank(f float64, n int64) int64 {
	return max(int64(math.Ceil(f*float64(n))), 1)
}

// statsDimensionSQL is the per-Record expression of a non-time dimension.
func statsDimensionSQL(d filter.Dialect, dim Dimension) (string, []any, error) {
	switch dim.Kind {
	case DimPipelineName:
		return "NULLIF(r.pipeline_name, '')", nil, nil
	case DimTask:
		return "NULLIF(r.task_name, '')", nil, nil
	case DimFailedStep:
		return "NULLIF(r.failed_step, '')", nil, nil
	case DimKind:
		return "CASE WHEN r.data_type LIKE 'tekton.dev/%.PipelineRun' THEN 'PIPELINE_RUN' WHEN r.data_type LIKE 'tekton.dev/%.TaskRun' THEN 'TASK_RUN' END", nil, nil
	case DimAnnotation:
		if err := checkLabelKey(dim.Key); err != nil {
			return "", nil, fmt.Errorf("annotation: %w", err)
		}
		if d == filter.Postgres {
			return "(r.data -> 'metadata' -> 'annotations' ->> CAST(? AS text))", []any{dim.Key}, nil
		}
		return "json_extract(r.data, ?)", []any{`$.metadata.annotations."` + dim.Key + `"`}, nil
	case DimTime:
		return "", nil, fmt.Errorf("%w: a time dimension has no plain expression", ErrInvalidArgument)
	}
	return dimensionSQL(d, dim)
}

// FacetQuery asks for the distinct values of one dimension among the
// Records of Scope, with how many Records have each.
type FacetQuery struct {
	Scope     ListOptions
	Dimension Dimension // any but DimTime
	Prefix    string    // only values starting with it (case-sensitive)
	Limit     int       // 0: 20
}

// FacetValue is one value of a facet.
type FacetValue struct {
	Value string
	Count int64
}

// MaxFacetValues bounds FacetQuery.Limit.
const MaxFacetValues = 1000

// Facet lists the most frequent values of a dimension (Records without one
// are not counted), most frequent first, ties by value bytewise.
func (s *Store) Facet(ctx context.Context, q FacetQuery) ([]FacetValue, error) {
	if q.Limit == 0 {
		q.Limit = 20
	}
	if q.Limit < 0 || q.Limit > MaxFacetValues {
		return nil, fmt.Errorf("%w: a facet lists 1 to %d values, not %d", ErrInvalidArgument, MaxFacetValues, q.Limit)
	}
	p, err := s.countPlan(recordsEntity, q.Scope)
	if err != nil {
		return nil, err
	}
	expr, dargs, err := statsDimensionSQL(s.dialect, q.Dimension)
	if err != nil {
		return nil, err
	}
	base := p.base
	base.conds = slices.Clone(base.conds)
	base.args = slices.Clone(base.args)
	base.where(expr+" IS NOT NULL", dargs...)
	if q.Prefix != "" {
		args := append(slices.Clone(dargs), utf8.RuneCountInString(q.Prefix), q.Prefix)
		base.where("substr("+expr+", 1, ?) = ?", args...)
	}
	collate := ""
	if s.dialect == filter.Postgres {
		collate = ` COLLATE "C"`
	}
	from, count, having := recordsEntity.from, "COUNT(*)", ""
	if s.rollupServes(q.Scope, q.Dimension) {
		// Counts kept by the database (rollup.go); a key whose Records are
		// all gone may still be there with a count of zero until a fold.
		from, count, having = rollupFrom, "CAST(SUM(r.n) AS bigint)", " HAVING SUM(r.n) > 0"
		if allNamespaces(q.Scope) && q.Dimension.Kind != DimNamespace {
			from = rollupAllFrom
		}
		defer s.foldRollupSoon()
	}
	stmt := "SELECT v, n FROM (SELECT " + expr + " AS v, " + count + " AS n FROM " + from + base.whereSQL() +
		" GROUP BY 1" + having + ") AS f ORDER BY n DESC, v" + collate + " LIMIT ?"
	args := append(append(slices.Clone(dargs), base.args...), q.Limit)
	var out []FacetValue
	err = s.readRows(ctx, stmt, args, func(rows *sql.Rows) error {
		for rows.Next() {
			var v FacetValue
			if err := rows.Scan(&v.Value, &v.Count); err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}
