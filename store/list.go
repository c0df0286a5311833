package store

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/annals-dev/annals/store/filter"
)

// OrderField is what a list is sorted by; ties are broken by uid.
type OrderField string

const (
	OrderCreateTime     OrderField = "CREATE_TIME"
	OrderUpdateTime     OrderField = "UPDATE_TIME"
	OrderStartTime      OrderField = "START_TIME"
	OrderCompletionTime OrderField = "COMPLETION_TIME"
	OrderDuration       OrderField = "DURATION"
)

// OrderBy sorts a list. The zero value is newest first.
type OrderBy struct {
	Field OrderField
	Asc   bool
}

// ListOptions select one page of Results or Records.
type ListOptions struct {
	Parent      string   // a namespace, or "-" (or "") for every namespace
	Namespaces  []string // nil: no restriction; else only these namespaces are visible
	ResultName  string   // Records only: the Records of this Result
	Filter      string   // a CEL expression (see package filter)
	RecordWhere *filter.RecordWhere
	ResultWhere *filter.ResultWhere
	OrderBy     OrderBy
	First, Last int // at most one; 0 means DefaultPageSize from the start
	After       string
	Before      string

	// FilterFlavor is the vocabulary of Filter: Annals' (GraphQL) or
	// Tekton Results' (its REST and gRPC API).
	FilterFlavor filter.Flavor

	// WithoutData reads Records without their data where their RunView
	// stands in for it (typed views only); it changes no cursor.
	WithoutData bool `json:"-"`

	pipelineRun string // TaskRuns of this PipelineRun (run name) only; set by ListTaskRunsForPipelineRuns
	keys        []Key  // only these Records; set by MatchingRecords
}

// Page is one page of a list, with a cursor per item.
type Page[T any] struct {
	Items           []T
	Cursors         []string
	HasNextPage     bool
	HasPreviousPage bool
}

// StartCursor is the cursor of the first item, "" on an empty page.
func (p *Page[T]) StartCursor() string {
	if len(p.Cursors) == 0 {
		return ""
	}
	return p.Cursors[0]
}

// EndCursor is the cursor of the last item, "" on an empty page.
func (p *Page[T]) EndCursor() string {
	if len(p.Cursors) == 0 {
		return ""
	}
	return p.Cursors[len(p.Cursors)-1]
}

// entity describes the table a list reads.
type entity struct {
	name    string // "results" or "records": part of every cursor digest
	from    string // table and alias
	columns string // select list
	orders  map[OrderField]orderColumn
}

type orderColumn struct {
	sql      string
	nullable bool
	isInt    bool
}

var (
	resultsEntity = entity{name: "results", from: "results AS res", columns: columnList("res", reflect.TypeFor[Result]()),
		orders: map[OrderField]orderColumn{
			OrderCreateTime:     {sql: "res.created_at"},
			OrderUpdateTime:     {sql: "res.updated_at"},
			OrderStartTime:      {sql: "res.summary_start_time", nullable: true},
			OrderCompletionTime: {sql: "res.summary_end_time", nullable: true},
		}}
	recordsEntity = entity{name: "records", from: "records AS r", columns: columnList("r", recordType),
		orders: map[OrderField]orderColumn{
			OrderCreateTime:     {sql: "r.created_at"},
			OrderUpdateTime:     {sql: "r.updated_at"},
			OrderStartTime:      {sql: "r.start_time", nullable: true},
			OrderCompletionTime: {sql: "r.completion_time", nullable: true},
			OrderDuration:       {sql: "r.duration_ms", nullable: true, isInt: true},
		}}
)

// columnList lists the columns of a model from its bun tags, qualified by alias.
func columnList(alias string, t reflect.Type) string {
	var cols []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("bun")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || strings.HasPrefix(tag, "table:") || name == "-" {
			continue
		}
		cols = append(cols, alias+"."+name)
	}
	return strings.Join(cols, ", ")
}

// query is a list query being assembled: conditions with ? placeholders.
type query struct {
	conds []string
	args  []any
}

func (q *query) where(sql string, args ...any) {
	q.conds = append(q.conds, sql)
	q.args = append(q.args, args...)
}

func (q *query) whereSQL() string {
	if len(q.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.conds, " AND ")
}

// plan is a validated list request.
type plan struct {
	ent    entity
	opts   ListOptions
	order  orderColumn
	asc    bool // direction of the scan: the requested order, reversed for last/before
	limit  int
	back   bool // paging backwards (last/before)
	digest []byte
	base   query // every condition except the cursor

	digestOf func(resultName, pipelineRun string) []byte // digests of the per-parent lists a batch stands for
}

func (s *Store) plan(ent entity, o ListOptions) (*plan, error) {
	if s.sealer == nil {
		return nil, fmt.Errorf("the database is not migrated: run 'annals migrate'")
	}
	p := &plan{ent: ent, opts: o}
	if o.First < 0 || o.Last < 0 {
		return nil, fmt.Errorf("%w: first and last cannot be negative", ErrInvalidArgument)
	}
	if o.First > 0 && o.Last > 0 {
		return nil, fmt.Errorf("%w: give first or last, not both", ErrInvalidArgument)
	}
	if o.First > MaxPageSize || o.Last > MaxPageSize {
		return nil, fmt.Errorf("%w: a page holds at most %d items; ask for fewer and follow the cursors", ErrInvalidArgument, MaxPageSize)
	}
	if o.After != "" && o.Before != "" {
		return nil, fmt.Errorf("%w: give after or before, not both", ErrInvalidArgument)
	}
	p.limit = max(o.First, o.Last)
	if p.limit == 0 {
		p.limit = DefaultPageSize
	}
	p.back = o.Last > 0 || o.Before != ""
	field := o.OrderBy.Field
	if field == "" {
		field = OrderCreateTime
	}
	col, ok := ent.orders[field]
	if !ok {
		return nil, fmt.Errorf("%w: %s cannot be ordered by %s", ErrInvalidArgument, ent.name, field)
	}
	p.order = col
	p.asc = o.OrderBy.Asc != p.back

	alias := "r"
	if ent.name == "results" {
		alias = "res"
	}
	parent := o.Parent
	if parent == "" {
		parent = "-"
	}
	if parent != "-" {
		if err := checkNamespace(parent); err != nil {
			return nil, err
		}
		p.base.where(alias+".namespace = ?", parent)
	}
	if o.Namespaces != nil {
		if len(o.Namespaces) == 0 {
			p.base.where("1 = 0")
		} else {
			p.base.where(alias+".namespace IN ("+filter.Placeholders(len(o.Namespaces))+")", filter.Args(o.Namespaces)...)
		}
	}
	if o.ResultName != "" {
		if ent.name != "records" {
			return nil, fmt.Errorf("%w: resultName applies to records only", ErrInvalidArgument)
		}
		ns, uid, err := ParseResultName(o.ResultName)
		if err != nil {
			return nil, err
		}
		if parent != "-" && parent != ns {
			return nil, fmt.Errorf("%w: result %q is not in namespace %q", ErrInvalidArgument, o.ResultName, parent)
		}
		p.base.where("r.namespace = ? AND r.result_uid = ?", ns, uid)
	}
	if o.pipelineRun != "" {
		p.base.where("r.pipeline_run_name = ?", o.pipelineRun)
		p.base.where("r.data_type IN (?, ?)", TypeTaskRun, "tekton.dev/v1beta1.TaskRun")
	}
	if len(o.keys) > 0 {
		cond, args := keysSQL(alias+".namespace", alias+".uid", o.keys)
		p.base.where(cond, args...)
	}
	var cel, where filter.Expr
	var err error
	if ent.name == "records" {
		cel, err = filter.Compile(filter.Records, o.FilterFlavor, o.Filter, s.dialect)
		if err == nil {
			where, err = filter.RecordWhereSQL(o.RecordWhere, s.dialect)
		}
	} else {
		cel, err = filter.Compile(filter.Results, o.FilterFlavor, o.Filter, s.dialect)
		if err == nil {
			where, err = filter.ResultWhereSQL(o.ResultWhere, s.dialect)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	for _, e := range []filter.Expr{cel, where} {
		if !e.IsZero() {
			p.base.where(e.SQL, e.Args...)
		}
	}
	namespaces := slices.Clone(o.Namespaces)
	slices.Sort(namespaces)
	p.digestOf = func(resultName, pipelineRun string) []byte {
		return digest(ent.name, parent, namespaces, o.Namespaces == nil, resultName, pipelineRun, o.Filter, o.FilterFlavor, o.RecordWhere, o.ResultWhere, field, o.OrderBy.Asc)
	}
	p.digest = p.digestOf(o.ResultName, o.pipelineRun)
	return p, nil
}

// orderSQL sorts in the scan direction; rows without a sort value come
// last in the requested order, so first when paging backwards.
func (p *plan) orderSQL() string {
	dir := " DESC"
	if p.asc {
		dir = " ASC"
	}
	uidCol := strings.SplitN(p.order.sql, ".", 2)[0] + ".uid"
	if !p.order.nullable {
		return p.order.sql + dir + ", " + uidCol + dir
	}
	nulls := " NULLS LAST"
	if p.back {
		nulls = " NULLS FIRST"
	}
	return p.order.sql + dir + nulls + ", " + uidCol + dir
}

// afterSQL is the condition "strictly after pos in the scan order".
func (p *plan) afterSQL(d filter.Dialect, pos cursorPos) (string, []any) {
	col := p.order.sql
	uidCol := strings.SplitN(col, ".", 2)[0] + ".uid"
	op := "<"
	if p.asc {
		op = ">"
	}
	nullsLast := !p.back
	var val any
	switch {
	case pos.Time != nil:
		val = filter.TimeArg(d, *pos.Time)
	case pos.Int != nil:
		val = *pos.Int
	}
	if val != nil {
		cond := "(" + col + ", " + uidCol + ") " + op + " (?, ?)"
		if !p.order.nullable {
			return cond, []any{val, pos.UID}
		}
		if nullsLast {
			return "((" + col + " IS NOT NULL AND " + cond + ") OR " + col + " IS NULL)", []any{val, pos.UID}
		}
		return "(" + col + " IS NOT NULL AND " + cond + ")", []any{val, pos.UID}
	}
	if nullsLast {
		return "(" + col + " IS NULL AND " + uidCol + " " + op + " ?)", []any{pos.UID}
	}
	return "((" + col + " IS NULL AND " + uidCol + " " + op + " ?) OR " + col + " IS NOT NULL)", []any{pos.UID}
}

// position reads the sort key of a row for its cursor.
func (p *plan) position(sortTime *time.Time, sortInt *int64, uid string) cursorPos {
	pos := cursorPos{UID: uid}
	if p.order.isInt {
		pos.Int = sortInt
	} else {
		pos.Time = sortTime
	}
	return pos
}

func (s *Store) cursorCondition(p *plan, cursor string) (string, []any, error) {
	pos, err := s.sealer.open(p.digest, cursor)
	if err != nil {
		return "", nil, err
	}
	sql, args := p.afterSQL(s.dialect, pos)
	return sql, args, nil
}

// ListResults returns one page of Results.
func (s *Store) ListResults(ctx context.Context, o ListOptions) (*Page[*Result], error) {
	p, err := s.plan(resultsEntity, o)
	if err != nil {
		return nil, err
	}
	return listPage(ctx, s, p, func(r *Result) cursorPos {
		var t *time.Time
		switch p.order.sql {
		case "res.created_at":
			t = &r.CreatedAt
		case "res.updated_at":
			t = &r.UpdatedAt
		case "res.summary_start_time":
			t = r.SummaryStartTime
		case "res.summary_end_time":
			t = r.SummaryEndTime
		}
		return p.position(t, nil, r.UID)
	})
}

// ListRecords returns one page of Records.
func (s *Store) ListRecords(ctx context.Context, o ListOptions) (*Page[*Record], error) {
	p, err := s.plan(recordsEntity, o)
	if err != nil {
		return nil, err
	}
	return listPage(ctx, s, p, func(r *Record) cursorPos { return p.position(recordSortTime(p, r), r.DurationMillis, r.UID) })
}

func recordSortTime(p *plan, r *Record) *time.Time {
	switch p.order.sql {
	case "r.created_at":
		return &r.CreatedAt
	case "r.updated_at":
		return &r.UpdatedAt
	case "r.start_time":
		return r.StartTime
	case "r.completion_time":
		return r.CompletionTime
	}
	return nil
}

// pageQuery is the statement of one page: the plan's conditions, the
// cursor's, the order, and one row more than the page to tell if more follow.
func (s *Store) pageQuery(p *plan) (string, []any, error) {
	q := p.base
	q.conds = slices.Clone(q.conds)
	q.args = slices.Clone(q.args)
	cursor := p.opts.After
	if p.back {
		cursor = p.opts.Before
	}
	if cursor != "" {
		cond, args, err := s.cursorCondition(p, cursor)
		if err != nil {
			return "", nil, err
		}
		q.where(cond, args...)
	}
	sql := "SELECT " + p.columns() + " FROM " + p.ent.from + q.whereSQL() + " ORDER BY " + p.orderSQL() + " LIMIT ?"
	return sql, append(q.args, p.limit+1), nil
}

// ExplainRecords returns the database's plan for the statement of a
// ListRecords call, for the benchmark and for operators tuning indexes.
func (s *Store) ExplainRecords(ctx context.Context, o ListOptions) (string, error) {
	p, err := s.plan(recordsEntity, o)
	if err != nil {
		return "", err
	}
	sql, args, err := s.pageQuery(p)
	if err != nil {
		return "", err
	}
	explain := "EXPLAIN "
	if s.dialect == filter.SQLite {
		explain = "EXPLAIN QUERY PLAN "
	}
	rows, err := s.db.DB.QueryContext(ctx, s.rebind(explain+sql), args...)
	if err != nil {
		return "", dbError(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return "", dbError(err)
		}
		fmt.Fprintln(&out, vals[len(vals)-1])
	}
	return out.String(), dbError(rows.Err())
}

func listPage[T any](ctx context.Context, s *Store, p *plan, pos func(*T) cursorPos) (*Page[*T], error) {
	sql, args, err := s.pageQuery(p)
	if err != nil {
		return nil, err
	}
	var rows []*T
	if err := s.queryRows(ctx, &rows, sql, args...); err != nil {
		return nil, err
	}
	page := &Page[*T]{}
	more := len(rows) > p.limit
	if more {
		rows = rows[:p.limit]
	}
	if p.back {
		slices.Reverse(rows)
		page.HasPreviousPage, page.HasNextPage = more, p.opts.Before != ""
	} else {
		page.HasNextPage, page.HasPreviousPage = more, p.opts.After != ""
	}
	page.Items = rows
	for _, r := range rows {
		page.Cursors = append(page.Cursors, s.sealer.seal(p.digest, pos(r)))
	}
	return page, nil
}

// countPlan is the plan of a count: the list's conditions without paging.
func (s *Store) countPlan(ent entity, o ListOptions) (*plan, error) {
	o.First, o.Last, o.After, o.Before = 0, 0, "", ""
	return s.plan(ent, o)
}

// CountResults counts the Results a list would page through.
func (s *Store) CountResults(ctx context.Context, o ListOptions) (int, error) {
	return s.count(ctx, resultsEntity, o)
}

// CountRecords counts the Records a list would page through.
func (s *Store) CountRecords(ctx context.Context, o ListOptions) (int, error) {
	return s.count(ctx, recordsEntity, o)
}

func (s *Store) count(ctx context.Context, ent entity, o ListOptions) (int, error) {
	p, err := s.countPlan(ent, o)
	if err != nil {
		return 0, err
	}
	var n []int
	if err := s.queryRows(ctx, &n, "SELECT count(*) FROM "+ent.from+p.base.whereSQL(), p.base.args...); err != nil {
		return 0, err
	}
	return n[0], nil
}

var recordType = reflect.TypeFor[Record]()
