package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/annals-dev/annals/store/filter"
)

// The aggregation engine: a small typed spec of dimensions (what Records are
// grouped by) and metrics (what is computed per group), compiled to one SQL
// statement per dialect over the columns fillDerived keeps, so that nothing
// is aggregated by loading Records. Tekton Results' Summary API (summary.go)
// is one user; an analytics API can be another, adding dimensions and
// metrics here. Values that dialects would render differently (times,
// PostgreSQL intervals) are computed from raw integer aggregates in Go, so
// both databases give identical answers.

// DimensionKind is what a Dimension groups by.
type DimensionKind int

const (
	// DimTime truncates a time (Dimension.Time) to a unit (Dimension.Unit)
	// in UTC; Records without that time form one group with no value.
	DimTime DimensionKind = iota + 1
	DimNamespace
	// DimPipeline is "<namespace>/<tekton.dev/pipeline label>", "<namespace>/"
	// without the label, as Tekton Results' Summary groups.
	DimPipeline
	// DimRepository is "<namespace>/<pipelinesascode.tekton.dev/repository
	// annotation>", "<namespace>/" without it.
	DimRepository
	// DimLabel is the value of the label Dimension.Key; no value without it.
	DimLabel
	// DimStatus is the run status (Succeeded, Failed, Cancelled, Running,
	// Unknown; Unknown for what is not a run).
	DimStatus
	// DimReason is the reason of the Succeeded condition; no value without one.
	DimReason
	DimDataType
	// DimPipelineName is the Pipeline's name alone (the tekton.dev/pipeline
	// label, else the spec's reference); no value without one.
	DimPipelineName
	// DimTask is the Task's name (the tekton.dev/task label, else the
	// spec's reference); no value without one.
	DimTask
	// DimKind is PIPELINE_RUN or TASK_RUN, whatever the API version; no
	// value for what is not a run.
	DimKind
	// DimAnnotation is the value of the annotation Dimension.Key.
	DimAnnotation
	// DimFailedStep is the first step of a failed TaskRun that exited with
	// a non-zero code; no value for others.
	DimFailedStep
)

// TimeField is the time a DimTime dimension truncates.
type TimeField int

const (
	TimeCreation   TimeField = iota // metadata.creationTimestamp
	TimeStart                       // status.startTime
	TimeCompletion                  // status.completionTime
)

// TimeUnit is the width of a DimTime bucket. Weeks start on Monday.
type TimeUnit string

const (
	UnitMinute TimeUnit = "minute"
	UnitHour   TimeUnit = "hour"
	UnitDay    TimeUnit = "day"
	UnitWeek   TimeUnit = "week"
	UnitMonth  TimeUnit = "month"
	UnitYear   TimeUnit = "year"
)

// Dimension is one grouping of an aggregation.
type Dimension struct {
	Kind DimensionKind
	Time TimeField // DimTime
	Unit TimeUnit  // DimTime
	Key  string    // DimLabel, DimAnnotation: the key
}

// MetricKind is what a Metric computes over the Records of a group.
type MetricKind int

const (
	// MetricCount counts Records; with Metric.Reasons, only those whose
	// Succeeded condition has one of these reasons.
	MetricCount MetricKind = iota + 1
	// MetricCountOtherReasons counts Records that have a reason, not one of
	// Metric.Reasons.
	MetricCountOtherReasons
	// MetricLastStart is the latest start time.
	MetricLastStart
	// MetricMinDuration ... MetricAvgDuration aggregate completion - start of
	// the Records that have both, as PostgreSQL aggregates intervals.
	MetricMinDuration
	MetricMaxDuration
	MetricSumDuration
	MetricAvgDuration
)

// Metric is one value computed per group.
type Metric struct {
	Kind    MetricKind
	Reasons []string
}

// DefaultMaxGroups bounds the groups of one aggregation unless the caller
// sets AggregateQuery.MaxGroups.
const DefaultMaxGroups = 10000

// AggregateQuery is one aggregation: the Records of Scope (parent,
// namespaces visible to the caller, result, CEL filter and typed where, as
// ListRecords selects them; paging fields are ignored), grouped by GroupBy,
// with Metrics computed per group.
type AggregateQuery struct {
	Scope     ListOptions
	GroupBy   []Dimension
	Metrics   []Metric
	MaxGroups int // 0: DefaultMaxGroups
}

// GroupValue is the value of one dimension for a group. Null is set when the
// Records of the group have no value (no such time, label...); otherwise Time
// (the start of the bucket, in UTC) is set for DimTime and Text for the others.
type GroupValue struct {
	Null bool
	Time time.Time
	Text string
}

// MetricValue is the value of one metric for a group: Count for counts; Time
// for MetricLastStart and Duration for durations, nil when no Record of the
// group has the value.
type MetricValue struct {
	Count    int64
	Time     *time.Time
	Duration *Interval
}

// AggregateRow is one group: its dimension values, in the order of
// AggregateQuery.GroupBy, and its metric values, in the order of Metrics.
type AggregateRow struct {
	Groups []GroupValue
	Values []MetricValue
}

// Aggregate computes q in one statement. Without dimensions it returns one
// row, even when no Record matches; with dimensions, one row per group, in
// no particular order, and an error when there are more than MaxGroups.
func (s *Store) Aggregate(ctx context.Context, q AggregateQuery) ([]AggregateRow, error) {
	stmt, args, decode, err := s.compileAggregate(q)
	if err != nil {
		return nil, err
	}
	var out []AggregateRow
	err = s.readRows(ctx, stmt, args, func(rows *sql.Rows) error {
		for rows.Next() {
			if len(q.GroupBy) > 0 && len(out) == q.maxGroups() {
				return fmt.Errorf("%w: the grouping gives more than %d groups; narrow the filter or the time window, or group by a coarser unit",
					ErrInvalidArgument, q.maxGroups())
			}
			row, err := decode(rows)
			if err != nil {
				return err
			}
			out = append(out, row)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (q AggregateQuery) maxGroups() int {
	if q.MaxGroups > 0 {
		return q.MaxGroups
	}
	return DefaultMaxGroups
}

// rowDecoder reads one result row of a compiled aggregation.
type rowDecoder func(*sql.Rows) (AggregateRow, error)

// compileAggregate writes the statement of q: the select list holds one
// column per dimension, then the raw aggregates of each metric.
func (s *Store) compileAggregate(q AggregateQuery) (string, []any, rowDecoder, error) {
	if len(q.Metrics) == 0 {
		return "", nil, nil, fmt.Errorf("%w: an aggregation needs at least one metric", ErrInvalidArgument)
	}
	p, err := s.countPlan(recordsEntity, q.Scope)
	if err != nil {
		return "", nil, nil, err
	}
	var cols []string
	var args []any
	for _, d := range q.GroupBy {
		sqlText, dargs, err := dimensionSQL(s.dialect, d)
		if err != nil {
			return "", nil, nil, err
		}
		cols = append(cols, sqlText)
		args = append(args, dargs...)
	}
	var widths []int // raw columns per metric
	for _, m := range q.Metrics {
		mcols, margs, err := metricSQL(m)
		if err != nil {
			return "", nil, nil, err
		}
		cols = append(cols, mcols...)
		args = append(args, margs...)
		widths = append(widths, len(mcols))
	}
	stmt := "SELECT " + strings.Join(cols, ", ") + " FROM " + recordsEntity.from + p.base.whereSQL()
	args = append(args, p.base.args...)
	if n := len(q.GroupBy); n > 0 {
		ordinals := make([]string, n)
		for i := range ordinals {
			ordinals[i] = fmt.Sprint(i + 1)
		}
		// One row past the cap tells that the cap is passed.
		stmt += " GROUP BY " + strings.Join(ordinals, ", ") + " LIMIT ?"
		args = append(args, q.maxGroups()+1)
	}
	dims, metrics := q.GroupBy, q.Metrics
	decode := func(rows *sql.Rows) (AggregateRow, error) {
		dest := make([]any, len(cols))
		groupVals := make([]sql.NullString, len(dims))
		groupTimes := make([]sql.NullInt64, len(dims))
		for i, d := range dims {
			if d.Kind == DimTime {
				dest[i] = &groupTimes[i]
			} else {
				dest[i] = &groupVals[i]
			}
		}
		raw := make([]any, len(cols)-len(dims))
		k := 0
		for i, m := range metrics {
			for range widths[i] {
				if m.Kind == MetricLastStart {
					raw[k] = new(sqlTime)
				} else {
					raw[k] = new(sql.NullInt64)
				}
				dest[len(dims)+k] = raw[k]
				k++
			}
		}
		if err := rows.Scan(dest...); err != nil {
			return AggregateRow{}, err
		}
		row := AggregateRow{Groups: make([]GroupValue, len(dims)), Values: make([]MetricValue, len(metrics))}
		for i, d := range dims {
			switch {
			case d.Kind == DimTime && groupTimes[i].Valid:
				row.Groups[i].Time = time.Unix(groupTimes[i].Int64, 0).UTC()
			case d.Kind != DimTime && groupVals[i].Valid:
				row.Groups[i].Text = groupVals[i].String
			default:
				row.Groups[i].Null = true
			}
		}
		k = 0
		for i, m := range metrics {
			row.Values[i] = metricValue(m, raw[k:k+widths[i]])
			k += widths[i]
		}
		return row, nil
	}
	return stmt, args, decode, nil
}

// dimensionSQL is the per-Record expression of a dimension.
func dimensionSQL(d filter.Dialect, dim Dimension) (string, []any, error) {
	switch dim.Kind {
	case DimTime:
		col := map[TimeField]string{TimeCreation: "r.creation_time", TimeStart: "r.start_time", TimeCompletion: "r.completion_time"}[dim.Time]
		if col == "" {
			return "", nil, fmt.Errorf("%w: unknown time field %d", ErrInvalidArgument, dim.Time)
		}
		return timeBucketSQL(d, col, dim.Unit)
	case DimNamespace:
		return "r.namespace", nil, nil
	case DimPipeline:
		return "r.namespace || '/' || COALESCE(" + labelSQL(d) + ", '')", []any{labelArg(d, "tekton.dev/pipeline")}, nil
	case DimRepository:
		return "r.namespace || '/' || r.repository", nil, nil
	case DimLabel:
		if err := checkLabelKey(dim.Key); err != nil {
			return "", nil, err
		}
		return labelSQL(d), []any{labelArg(d, dim.Key)}, nil
	case DimStatus:
		return "r.status", nil, nil
	case DimReason:
		return "NULLIF(r.reason, '')", nil, nil
	case DimDataType:
		return "r.data_type", nil, nil
	}
	return "", nil, fmt.Errorf("%w: unknown dimension %d", ErrInvalidArgument, dim.Kind)
}

// labelSQL reads one label, its key bound as labelArg.
func labelSQL(d filter.Dialect) string {
	if d == filter.Postgres {
		return "(r.labels ->> CAST(? AS text))"
	}
	return "json_extract(r.labels, ?)"
}

func labelArg(d filter.Dialect, key string) string {
	if d == filter.Postgres {
		return key
	}
	return `$."` + key + `"`
}

// checkLabelKey accepts Kubernetes label keys (an optional DNS prefix and a
// name), which also keeps a key from escaping its quotes in a JSON path.
func checkLabelKey(key string) error {
	if key == "" || len(key) > 317 {
		return fmt.Errorf("%w: label key %q: give a Kubernetes label key such as tekton.dev/pipeline", ErrInvalidArgument, key)
	}
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./", c)) {
			return fmt.Errorf("%w: label key %q has %q: a Kubernetes label key has letters, digits, '-', '_', '.' and one '/'", ErrInvalidArgument, key, c)
		}
	}
	return nil
}

// timeBucketSQL truncates a time column to the start of its unit in UTC, as
// Unix seconds. PostgreSQL's date_trunc works on the wall time AT TIME ZONE
// UTC, whatever the session's time zone; SQLite's strftime reads the TEXT
// times (always UTC) and its modifiers find the start of the day, the
// Monday of the week, the month or the year.
func timeBucketSQL(d filter.Dialect, col string, unit TimeUnit) (string, []any, error) {
	switch unit {
	case UnitMinute, UnitHour, UnitDay, UnitWeek, UnitMonth, UnitYear:
	default:
		return "", nil, fmt.Errorf("%w: unknown time unit %q: give minute, hour, day, week, month or year", ErrInvalidArgument, unit)
	}
	if d == filter.Postgres {
		return "CAST(EXTRACT(EPOCH FROM date_trunc('" + string(unit) + "', " + col + " AT TIME ZONE 'UTC')) AS bigint)", nil, nil
	}
	var expr string
	switch unit {
	case UnitMinute:
		expr = "strftime('%s', strftime('%Y-%m-%d %H:%M:00', " + col + "))"
	case UnitHour:
		expr = "strftime('%s', strftime('%Y-%m-%d %H:00:00', " + col + "))"
	case UnitDay:
		expr = "strftime('%s', " + col + ", 'start of day')"
	case UnitWeek:
		// Back six days, then forward to a Monday: the Monday on or before.
		expr = "strftime('%s', " + col + ", 'start of day', '-6 days', 'weekday 1')"
	case UnitMonth:
		expr = "strftime('%s', " + col + ", 'start of month')"
	case UnitYear:
		expr = "strftime('%s', " + col + ", 'start of year')"
	}
	return "CAST(" + expr + " AS INTEGER)", nil, nil
}

// usecsPerDay splits durations into days and the rest, as PostgreSQL's
// timestamp subtraction does (justify_hours), so that sums and averages add
// the parts separately as it does.
const usecsPerDay = 86_400_000_000

// metricSQL is the raw aggregates of a metric, read back by metricValue.
func metricSQL(m Metric) ([]string, []any, error) {
	reasons := func() (string, []any) {
		return "(" + filter.Placeholders(len(m.Reasons)) + ")", filter.Args(m.Reasons)
	}
	switch m.Kind {
	case MetricCount:
		if len(m.Reasons) == 0 {
			return []string{"COUNT(*)"}, nil, nil
		}
		in, args := reasons()
		return []string{"COUNT(CASE WHEN r.reason IN " + in + " THEN 1 END)"}, args, nil
	case MetricCountOtherReasons:
		if len(m.Reasons) == 0 {
			return []string{"COUNT(CASE WHEN r.reason <> '' THEN 1 END)"}, nil, nil
		}
		in, args := reasons()
		return []string{"COUNT(CASE WHEN r.reason <> '' AND r.reason NOT IN " + in + " THEN 1 END)"}, args, nil
	case MetricLastStart:
		return []string{"MAX(r.start_time)"}, nil, nil
	case MetricMinDuration:
		return []string{"MIN(r.duration_us)"}, nil, nil
	case MetricMaxDuration:
		return []string{"MAX(r.duration_us)"}, nil, nil
	case MetricSumDuration, MetricAvgDuration:
		day := fmt.Sprint(usecsPerDay)
		return []string{
			"CAST(SUM(r.duration_us / " + day + ") AS BIGINT)",
			"CAST(SUM(r.duration_us % " + day + ") AS BIGINT)",
			"COUNT(r.duration_us)",
		}, nil, nil
	}
	return nil, nil, fmt.Errorf("%w: unknown metric %d", ErrInvalidArgument, m.Kind)
}

// metricValue turns the raw aggregates of a metric into its value.
func metricValue(m Metric, raw []any) MetricValue {
	num := func(i int) sql.NullInt64 { return *raw[i].(*sql.NullInt64) }
	switch m.Kind {
	case MetricCount, MetricCountOtherReasons:
		return MetricValue{Count: num(0).Int64}
	case MetricLastStart:
		return MetricValue{Time: raw[0].(*sqlTime).t}
	case MetricMinDuration, MetricMaxDuration:
		if v := num(0); v.Valid {
			iv := IntervalOf(v.Int64)
			return MetricValue{Duration: &iv}
		}
	case MetricSumDuration, MetricAvgDuration:
		days, rest, n := num(0), num(1), num(2)
		if n.Int64 == 0 {
			return MetricValue{}
		}
		iv := Interval{Days: days.Int64, Micros: rest.Int64}
		if m.Kind == MetricAvgDuration {
			iv = iv.Div(n.Int64)
		}
		return MetricValue{Duration: &iv}
	}
	return MetricValue{}
}

// sqliteTimeText is how bun writes times into SQLite TEXT columns.
const sqliteTimeText = "2006-01-02 15:04:05.999999-07:00"

// sqlTime scans a nullable time: PostgreSQL gives time.Time, SQLite the TEXT
// it stores (an aggregate loses the column's declared type).
type sqlTime struct{ t *time.Time }

func (st *sqlTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		st.t = nil
		return nil
	case time.Time:
		t := x.UTC()
		st.t = &t
		return nil
	case []byte:
		return st.Scan(string(x))
	case string:
		t, err := time.Parse(sqliteTimeText, x)
		if err != nil {
			return fmt.Errorf("reading time %q: %w", x, err)
		}
		t = t.UTC()
		st.t = &t
		return nil
	}
	return fmt.Errorf("reading a time from %T", v)
}
