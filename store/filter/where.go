package filter

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// builder accumulates AND-ed conditions.
type builder struct {
	d     Dialect
	parts []string
	args  []any
}

func (b *builder) add(sql string, args ...any) {
	b.parts = append(b.parts, sql)
	b.args = append(b.args, args...)
}

func (b *builder) in(column string, values []string) {
	if len(values) == 0 {
		return
	}
	b.add(column+" IN ("+Placeholders(len(values))+")", Args(values)...)
}

func (b *builder) timeRange(column string, r TimeRange) {
	if r.After != nil {
		b.add(column+" > ?", TimeArg(b.d, *r.After))
	}
	if r.Before != nil {
		b.add(column+" < ?", TimeArg(b.d, *r.Before))
	}
}

func (b *builder) prefix(column string, prefix *string) {
	if prefix != nil && *prefix != "" {
		b.add(column+" LIKE ? ESCAPE '\\'", escapeLike(*prefix)+"%")
	}
}

func (b *builder) expr() Expr {
	if len(b.parts) == 0 {
		return Expr{}
	}
	return Expr{SQL: "(" + strings.Join(b.parts, " AND ") + ")", Args: b.args}
}

// RecordWhereSQL translates a typed Record filter over the table alias r.
func RecordWhereSQL(w *RecordWhere, d Dialect) (Expr, error) {
	if w == nil {
		return Expr{}, nil
	}
	if err := checkStatuses(w.Statuses); err != nil {
		return Expr{}, err
	}
	b := &builder{d: d}
	if w.Namespace != nil {
		b.add("r.namespace = ?", *w.Namespace)
	}
	b.in("r.data_type", w.DataTypes)
	b.in("r.status", w.Statuses)
	b.in("r.reason", w.Reasons)
	if w.PipelineRunName != nil {
		b.add("r.pipeline_run_name = ?", *w.PipelineRunName)
	}
	if w.PipelineName != nil {
		b.add("r.pipeline_name = ?", *w.PipelineName)
	}
	if w.TaskName != nil {
		b.add("r.task_name = ?", *w.TaskName)
	}
	b.prefix("r.run_name", w.NamePrefix)
	kinds, err := kindDataTypes(w.Kinds)
	if err != nil {
		return Expr{}, err
	}
	b.in("r.data_type", kinds)
	if err := checkRunNames(w.RunNames); err != nil {
		return Expr{}, err
	}
	b.in("r.run_name", w.RunNames)
	if w.NameContains != nil && *w.NameContains != "" {
		if d == Postgres {
			// LIKE, not strpos, so that the pg_trgm index of migration 00006 serves it.
			b.add("r.run_name LIKE ? ESCAPE '\\'", "%"+escapeLike(*w.NameContains)+"%")
		} else {
			// SQLite's LIKE ignores ASCII case; instr compares exactly, as PostgreSQL's LIKE does.
			b.add("instr(r.run_name, ?) > 0", *w.NameContains)
		}
	}
	b.timeRange("r.created_at", w.Created)
	b.timeRange("r.creation_time", w.CreationTime)
	b.timeRange("r.start_time", w.Started)
	b.timeRange("r.completion_time", w.Completed)
	for i, m := range w.Labels {
		if err := checkMatch("labels", i, m); err != nil {
			return Expr{}, err
		}
		sql, args, err := labelMatchSQL(d, m)
		if err != nil {
			return Expr{}, fmt.Errorf("labels[%d]: %w", i, err)
		}
		b.add(sql, args...)
	}
	return b.expr(), nil
}

// ResultWhereSQL translates a typed Result filter over the table alias res.
func ResultWhereSQL(w *ResultWhere, d Dialect) (Expr, error) {
	if w == nil {
		return Expr{}, nil
	}
	if err := checkStatuses(w.Statuses); err != nil {
		return Expr{}, err
	}
	b := &builder{d: d}
	if w.Namespace != nil {
		b.add("res.namespace = ?", *w.Namespace)
	}
	b.in("res.summary_status", w.Statuses)
	b.in("res.summary_type", w.SummaryTypes)
	if w.NamePrefix != nil && *w.NamePrefix != "" {
		b.add("res.uid LIKE ? ESCAPE '\\'", escapeLike(*w.NamePrefix)+"%")
	}
	b.timeRange("res.created_at", w.Created)
	b.timeRange("res.updated_at", w.Updated)
	b.timeRange("res.summary_start_time", w.Started)
	b.timeRange("res.summary_end_time", w.Ended)
	for i, m := range w.Annotations {
		if err := checkMatch("annotations", i, m); err != nil {
			return Expr{}, err
		}
		const exists = "EXISTS (SELECT 1 FROM result_annotations a WHERE a.namespace = res.namespace AND a.result_uid = res.uid AND a.key = ?"
		switch m.Op {
		case LabelEquals, LabelIn:
			b.add(exists+" AND a.value IN ("+Placeholders(len(m.Values))+"))", append([]any{m.Key}, Args(m.Values)...)...)
		case LabelExists:
			b.add(exists+")", m.Key)
		case LabelNotExists:
			b.add("NOT "+exists+")", m.Key)
		}
	}
	return b.expr(), nil
}

// labelMatchSQL tests the labels JSON column of records.
func labelMatchSQL(d Dialect, m LabelMatch) (string, []any, error) {
	if d == Postgres && m.Op == LabelEquals {
		// Containment uses the GIN index on labels.
		return "r.labels @> ?::jsonb", []any{jsonObject(m.Key, m.Values[0])}, nil
	}
	key := m.Key
	switch m.Op {
	case LabelEquals, LabelIn:
		return labelValue(d) + " IN (" + Placeholders(len(m.Values)) + ")", append([]any{key}, Args(m.Values)...), nil
	case LabelExists:
		return labelValue(d) + " IS NOT NULL", []any{key}, nil
	default:
		return labelValue(d) + " IS NULL", []any{key}, nil
	}
}

func labelValue(d Dialect) string { return LabelValue(d, "r") }

// LabelValue is the SQL of one label's value on the records table aliased
// alias (NULL when absent), with the key as its one argument. On SQLite the
// key is matched by json_each rather than written into a JSON path, so that
// any key can be looked up.
func LabelValue(d Dialect, alias string) string {
	if d == Postgres {
		return "(" + alias + ".labels ->> ?::text)"
	}
	return "(SELECT l.value FROM json_each(" + alias + ".labels) AS l WHERE l.key = ? AND l.type = 'text')"
}

// kindDataTypes lists the data types of kinds, refusing unknown kinds.
func kindDataTypes(kinds []string) ([]string, error) {
	var out []string
	for _, k := range kinds {
		types, ok := RunKinds[k]
		if !ok {
			known := slices.Sorted(maps.Keys(RunKinds))
			return nil, fmt.Errorf("%w: unknown kind %q: use %s", ErrInvalid, k, strings.Join(known, " or "))
		}
		out = append(out, types...)
	}
	return out, nil
}

func checkRunNames(names []string) error {
	if len(names) > MaxRunNames {
		return fmt.Errorf("%w: runNames holds %d names, at most %d: split the query or use nameContains", ErrInvalid, len(names), MaxRunNames)
	}
	for i, n := range names {
		if n == "" {
			return fmt.Errorf("%w: runNames[%d] is empty: give the run's metadata.name", ErrInvalid, i)
		}
	}
	return nil
}

func checkStatuses(statuses []string) error {
	for _, s := range statuses {
		if !slices.Contains(Statuses, s) {
			return fmt.Errorf("%w: unknown status %q: use one of %s", ErrInvalid, s, strings.Join(Statuses, ", "))
		}
	}
	return nil
}

func checkMatch(field string, i int, m LabelMatch) error {
	if m.Key == "" {
		return fmt.Errorf("%w: %s[%d]: key is empty", ErrInvalid, field, i)
	}
	switch m.Op {
	case LabelEquals:
		if len(m.Values) != 1 {
			return fmt.Errorf("%w: %s[%d] (%s): EQUALS takes exactly one value, got %d", ErrInvalid, field, i, m.Key, len(m.Values))
		}
	case LabelIn:
		if len(m.Values) == 0 {
			return fmt.Errorf("%w: %s[%d] (%s): IN takes at least one value", ErrInvalid, field, i, m.Key)
		}
	case LabelExists, LabelNotExists:
		if len(m.Values) != 0 {
			return fmt.Errorf("%w: %s[%d] (%s): %s takes no values", ErrInvalid, field, i, m.Key, m.Op)
		}
	default:
		return fmt.Errorf("%w: %s[%d] (%s): unknown operator %q: use EQUALS, IN, EXISTS or NOT_EXISTS", ErrInvalid, field, i, m.Key, m.Op)
	}
	return nil
}

// Placeholders is "?, ?, ..." for n bound values.
func Placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// Args turns a slice into bound arguments.
func Args[T any](values []T) []any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = v
	}
	return out
}

// escapeLike escapes LIKE's wildcards so that a user's text matches literally.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
