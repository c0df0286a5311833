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
	OrderCreateTime     OrderField = "CREATE_TIME" // when Annals stored the Record or Result
	OrderUpdateTime     OrderField = "UPDATE_TIME"
	OrderStartTime      OrderField = "START_TIME"
	OrderCompletionTime OrderField = "COMPLETION_TIME"
	OrderDuration       OrderField = "DURATION"
	// OrderCreationTimestamp is the object's metadata.creationTimestamp:
	// when Kubernetes created the run, also for imported runs.
	OrderCreationTimestamp OrderField = "CREATION_TIMESTAMP"
	OrderName              OrderField = "NAME"     // the run's metadata.name
	OrderStatus            OrderField = "STATUS"   // the run's status, alphabetically
	OrderPipeline          OrderField = "PIPELINE" // the Pipeline's name
)

// OrderBy sorts a list. The zero value is newest first.
type OrderBy struct {
	Field OrderField
	Asc   bool
	// UnfinishedFirst puts runs without a completion time (running or
	// pending) before the others, each group sorted by Field.
	UnfinishedFirst bool
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
	name       string // "results" or "records": part of every cursor digest
	alias      string
	from       string // table and alias
	columns    string // select list
	orders     map[OrderField]orderColumn
	unfinished string // SQL: the row is a run not yet finished
}

// keyKind is the type of a sort key, and so of its value in a cursor.
type keyKind int

const (
	keyTime keyKind = iota
	keyInt
	keyText
)

// orderColumn is what a list can be sorted by: a column or expression of
// its table, and how to read the same value from a row for the cursor.
type orderColumn struct {
	sql string
	// kind keyText sorts byte by byte on both databases: PostgreSQL
	// compares in the C collation (whatever the database's), as SQLite does.
	kind     keyKind
	nullable bool
	record   func(*Record) any // *time.Time, *int64 or *string; nil for NULL
	result   func(*Result) any
}

// nonEmpty is a text sort value: an empty text sorts as "no value", last.
func nonEmpty(s string) any {
	if s == "" {
		return nil
	}
	return &s
}

// runDataTypes are the data types whose Records are runs, for "unfinished".
var runDataTypes = slices.Concat(filter.RunKinds["PIPELINE_RUN"], filter.RunKinds["TASK_RUN"])

var (
	resultsEntity = entity{name: "results", alias: "res", from: "results AS res", columns: columnList("res", reflect.TypeFor[Result]()),
		orders: map[OrderField]orderColumn{
			OrderCreateTime:     {sql: "res.created_at", result: func(r *Result) any { return &r.CreatedAt }},
			OrderUpdateTime:     {sql: "res.updated_at", result: func(r *Result) any { return &r.UpdatedAt }},
			OrderStartTime:      {sql: "res.summary_start_time", nullable: true, result: func(r *Result) any { return r.SummaryStartTime }},
			OrderCompletionTime: {sql: "res.summary_end_time", nullable: true, result: func(r *Result) any { return r.SummaryEndTime }},
			OrderStatus:         {sql: "res.summary_status", kind: keyText, result: func(r *Result) any { return &r.SummaryStatus }},
		},
		unfinished: "res.summary_end_time IS NULL AND res.summary_type IN (" + quotedList(runDataTypes) + ")"}
	recordsEntity = entity{name: "records", alias: "r", from: "records AS r", columns: columnList("r", recordType),
		orders: map[OrderField]orderColumn{
			OrderCreateTime:        {sql: "r.created_at", record: func(r *Record) any { return &r.CreatedAt }},
			OrderUpdateTime:        {sql: "r.updated_at", record: func(r *Record) any { return &r.UpdatedAt }},
			OrderStartTime:         {sql: "r.start_time", nullable: true, record: func(r *Record) any { return r.StartTime }},
			OrderCompletionTime:    {sql: "r.completion_time", nullable: true, record: func(r *Record) any { return r.CompletionTime }},
			OrderDuration:          {sql: "r.duration_ms", nullable: true, kind: keyInt, record: func(r *Record) any { return r.DurationMillis }},
			OrderCreationTimestamp: {sql: "r.creation_time", nullable: true, record: func(r *Record) any { return r.CreationTime }},
			OrderName:              {sql: "NULLIF(r.run_name, '')", nullable: true, kind: keyText, record: func(r *Record) any { return nonEmpty(r.RunName) }},
			OrderStatus:            {sql: "r.status", kind: keyText, record: func(r *Record) any { return &r.Status }},
			OrderPipeline:          {sql: "NULLIF(r.pipeline_name, '')", nullable: true, kind: keyText, record: func(r *Record) any { return nonEmpty(r.PipelineName) }},
		},
		unfinished: "r.completion_time IS NULL AND r.data_type IN (" + quotedList(runDataTypes) + ")"}
)

// quotedList is constant strings as an SQL list; only for constants of this
// package, never for user input.
func quotedList(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = "'" + v + "'"
	}
	return strings.Join(quoted, ", ")
}

// recordUnfinished and resultUnfinished are entity.unfinished read from a row.
func recordUnfinished(r *Record) bool {
	return r.CompletionTime == nil && slices.Contains(runDataTypes, r.DataType)
}

func resultUnfinished(r *Result) bool {
	return r.SummaryEndTime == nil && slices.Contains(runDataTypes, r.SummaryType)
}

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
	keys   []sortKey // what the scan sorts by: [unfinished rank,] the order's column, uid
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
		return nil, fmt.Errorf("%w: %s cannot be ordered by %s: use %s", ErrInvalidArgument, ent.name, field, orderNames(ent))
	}
	p.order = col
	p.keys = sortKeys(ent, col, o.OrderBy, p.back, s.dialect)
	if o.RecordWhere != nil {
		if err := checkDataTypes(o.RecordWhere.DataTypes); err != nil {
			return nil, err
		}
	}

	alias := ent.alias
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
		parts := []any{ent.name, parent, namespaces, o.Namespaces == nil, resultName, pipelineRun, o.Filter, o.FilterFlavor, o.RecordWhere, o.ResultWhere, field, o.OrderBy.Asc}
		if o.OrderBy.UnfinishedFirst {
			parts = append(parts, "unfinishedFirst") // only when set: cursors of earlier versions still open
		}
		return digest(parts...)
	}
	p.digest = p.digestOf(o.ResultName, o.pipelineRun)
	return p, nil
}

// sortKey is one key of a scan's order, in the scan's direction.
type sortKey struct {
	sql        string
	kind       keyKind
	nullable   bool
	asc        bool // direction of the scan: the requested one, reversed for last/before
	nullsAfter bool // NULLs follow the values in the scan (they come last in the requested order)
}

// sortKeys are the keys of an order: the column, then uid to break ties;
// with UnfinishedFirst, a rank (0 unfinished, 1 finished) before them,
// ascending whatever the direction.
func sortKeys(ent entity, col orderColumn, o OrderBy, back bool, d filter.Dialect) []sortKey {
	colSQL := col.sql
	if col.kind == keyText && d == filter.Postgres {
		colSQL += ` COLLATE "C"`
	}
	keys := []sortKey{
		{sql: colSQL, kind: col.kind, nullable: col.nullable, asc: o.Asc != back, nullsAfter: col.nullable && !back},
		{sql: ent.alias + ".uid", kind: keyText, asc: o.Asc != back},
	}
	if o.UnfinishedFirst {
		rank := sortKey{sql: "(CASE WHEN " + ent.unfinished + " THEN 0 ELSE 1 END)", kind: keyInt, asc: !back}
		keys = append([]sortKey{rank}, keys...)
	}
	return keys
}

func orderNames(ent entity) string {
	var names []string
	for f := range ent.orders {
		names = append(names, string(f))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// orderSQL sorts in the scan direction; rows without a sort value come
// last in the requested order, so first when paging backwards.
func (p *plan) orderSQL() string {
	parts := make([]string, len(p.keys))
	for i, k := range p.keys {
		parts[i] = k.sql + map[bool]string{true: " ASC", false: " DESC"}[k.asc]
		if k.nullable {
			parts[i] += map[bool]string{true: " NULLS LAST", false: " NULLS FIRST"}[k.nullsAfter]
		}
	}
	return strings.Join(parts, ", ")
}

// afterSQL is the condition "strictly after pos in the scan order".
func (p *plan) afterSQL(d filter.Dialect, pos cursorPos) (string, []any) {
	return p.after(0, p.cursorArgs(d, pos))
}

// cursorArgs are the values of pos as bound arguments, one per key, nil
// for a NULL.
func (p *plan) cursorArgs(d filter.Dialect, pos cursorPos) []any {
	vals := make([]any, len(p.keys))
	i := 0
	if p.opts.OrderBy.UnfinishedFirst {
		vals[0] = pos.rank()
		i++
	}
	switch {
	case pos.Time != nil:
		vals[i] = filter.TimeArg(d, *pos.Time)
	case pos.Int != nil:
		vals[i] = *pos.Int
	case pos.Text != nil:
		vals[i] = *pos.Text
	}
	vals[len(vals)-1] = pos.UID
	return vals
}

// after is "strictly after vals in the scan order" over keys i and
// following: lexicographic, where a NULL is after every value of its key
// when nullsAfter and before them otherwise.
func (p *plan) after(i int, vals []any) (string, []any) {
	k := p.keys[i]
	op := map[bool]string{true: " > ", false: " < "}[k.asc]
	if vals[i] == nil {
		rest, args := p.after(i+1, vals)
		cond := "(" + k.sql + " IS NULL AND " + rest + ")"
		if !k.nullsAfter {
			cond = "(" + cond + " OR " + k.sql + " IS NOT NULL)"
		}
		return cond, args
	}
	var cond string
	var args []any
	switch {
	case i == len(p.keys)-1:
		cond, args = k.sql+op+"?", []any{vals[i]}
	case p.tupleFrom(i):
		// A row value comparison, which indexes on (column, uid) serve.
		cols := make([]string, 0, len(p.keys)-i)
		for _, key := range p.keys[i:] {
			cols = append(cols, key.sql)
		}
		cond = "(" + strings.Join(cols, ", ") + ")" + op + "(" + filter.Placeholders(len(cols)) + ")"
		args = slices.Clone(vals[i:])
	default:
		rest, restArgs := p.after(i+1, vals)
		cond = "(" + k.sql + op + "? OR (" + k.sql + " = ? AND " + rest + "))"
		args = append([]any{vals[i], vals[i]}, restArgs...)
	}
	if k.nullable {
		cond = "(" + k.sql + " IS NOT NULL AND " + cond + ")"
		if k.nullsAfter {
			cond = "(" + cond + " OR " + k.sql + " IS NULL)"
		}
	}
	return cond, args
}

// tupleFrom tells whether keys i and following compare as one row value:
// all in one direction, none after i nullable.
func (p *plan) tupleFrom(i int) bool {
	for _, k := range p.keys[i+1:] {
		if k.asc != p.keys[i].asc || k.nullable {
			return false
		}
	}
	return true
}

// position is the cursor of a row: its value of the order's column, its
// rank when unfinished runs come first, and its uid.
func (p *plan) position(value any, unfinished bool, uid string) cursorPos {
	pos := cursorPos{UID: uid}
	switch v := value.(type) {
	case *time.Time:
		pos.Time = v
	case *int64:
		pos.Int = v
	case *string:
		pos.Text = v
	}
	if p.opts.OrderBy.UnfinishedFirst {
		pos.Unfinished = &unfinished
	}
	return pos
}

func (p *plan) recordPosition(r *Record) cursorPos {
	return p.position(p.order.record(r), recordUnfinished(r), r.UID)
}

func (p *plan) resultPosition(r *Result) cursorPos {
	return p.position(p.order.result(r), resultUnfinished(r), r.UID)
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
	return listPage(ctx, s, p, p.resultPosition)
}

// ListRecords returns one page of Records.
func (s *Store) ListRecords(ctx context.Context, o ListOptions) (*Page[*Record], error) {
	p, err := s.plan(recordsEntity, o)
	if err != nil {
		return nil, err
	}
	return listPage(ctx, s, p, p.recordPosition)
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
