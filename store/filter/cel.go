package filter

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// Limits on filter expressions, so that one request cannot make the
// translator or the database work without bound.
const (
	MaxFilterLength = 4096
	maxNesting      = 32
)

// Summary statuses as CEL constants. Their values are the statuses the store
// derives, so `summary.status == SUCCESS` compares a column with "Succeeded".
var summaryStatusConstants = map[string]string{
	"SUCCESS":   "Succeeded",
	"FAILURE":   "Failed",
	"CANCELLED": "Cancelled",
	"RUNNING":   "Running",
	"UNKNOWN":   "Unknown",
}

// Entity names what a filter selects from.
type Entity int

const (
	Records Entity = iota
	Results
)

// Flavor is the vocabulary of a filter. Annals is the GraphQL API's;
// Tekton is that of Tekton Results' own API, whose clients send filters
// written against upstream's server:
//   - on Records, name is the record's own id (the last segment of its
//     name), parent the namespace and result_name the Result's id;
//   - on Results, parent is the namespace;
//   - contains() on a map or list of data looks for the text in its JSON,
//     as upstream does, which clients use as "has key" (labels.contains("k"))
//     and "has a result named x" (status.results.contains("x")).
type Flavor int

const (
	Annals Flavor = iota
	Tekton
)

var (
	envOnce sync.Once
	envs    map[[2]int]*cel.Env
	envErr  error
)

// Env returns the CEL environment of filters over entity e. Tests use it to
// evaluate the same expressions in memory.
func Env(e Entity) (*cel.Env, error) { return FlavorEnv(e, Annals) }

// FlavorEnv returns the CEL environment of filters of flavor f over e.
func FlavorEnv(e Entity, f Flavor) (*cel.Env, error) {
	envOnce.Do(func() {
		envs = map[[2]int]*cel.Env{}
		for _, ent := range []Entity{Records, Results} {
			for _, fl := range []Flavor{Annals, Tekton} {
				env, err := newEnv(ent, fl)
				if err != nil {
					envErr = err
					return
				}
				envs[[2]int{int(ent), int(fl)}] = env
			}
		}
	})
	return envs[[2]int{int(e), int(f)}], envErr
}

func newEnv(e Entity, f Flavor) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.ParserRecursionLimit(maxNesting),
		cel.ParserExpressionSizeLimit(MaxFilterLength),
		cel.Variable("name", cel.StringType),
		cel.Variable("uid", cel.StringType),
		cel.Variable("create_time", cel.TimestampType),
		cel.Variable("update_time", cel.TimestampType),
	}
	if f == Tekton {
		opts = append(opts, cel.Variable("parent", cel.StringType))
	}
	// The v1 data types, for data_type of Records and summary.type of Results.
	opts = append(opts,
		cel.Constant("PIPELINE_RUN", cel.StringType, types.String("tekton.dev/v1.PipelineRun")),
		cel.Constant("TASK_RUN", cel.StringType, types.String("tekton.dev/v1.TaskRun")),
	)
	if e == Records {
		if f == Annals {
			opts = append(opts, cel.Variable("parent", cel.StringType))
		} else {
			opts = append(opts, cel.Variable("result_name", cel.StringType))
		}
		return cel.NewEnv(append(opts,
			cel.Variable("data_type", cel.StringType),
			cel.Variable("data", cel.DynType),
		)...)
	}
	opts = append(opts,
		cel.Variable("annotations", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("summary", cel.MapType(cel.StringType, cel.DynType)),
		cel.Constant("TIMEOUT", cel.StringType, types.String("Timeout")),
	)
	for name, status := range summaryStatusConstants {
		opts = append(opts, cel.Constant(name, cel.StringType, types.String(status)))
	}
	return cel.NewEnv(opts...)
}

// CompileRecordFilter translates a CEL filter over Records (table alias r).
func CompileRecordFilter(expr string, d Dialect) (Expr, error) {
	return compile(Records, Annals, expr, d)
}

// CompileResultFilter translates a CEL filter over Results (table alias res).
func CompileResultFilter(expr string, d Dialect) (Expr, error) {
	return compile(Results, Annals, expr, d)
}

// Compile translates a CEL filter of flavor f over entity e.
func Compile(e Entity, f Flavor, expr string, d Dialect) (Expr, error) { return compile(e, f, expr, d) }

func compile(entity Entity, flavor Flavor, expr string, d Dialect) (Expr, error) {
	if strings.TrimSpace(expr) == "" {
		return Expr{}, nil
	}
	if len(expr) > MaxFilterLength {
		return Expr{}, fmt.Errorf("%w: the filter is %d bytes long; the limit is %d", ErrInvalid, len(expr), MaxFilterLength)
	}
	env, err := FlavorEnv(entity, flavor)
	if err != nil {
		return Expr{}, fmt.Errorf("building the CEL environment: %w", err)
	}
	checked, iss := env.Compile(expr)
	if iss.Err() != nil {
		first := iss.Errors()[0] // the rest usually follow from it
		return Expr{}, positionError(expr, first.Location.Line(), first.Location.Column()+1, first.Message)
	}
	t := &translator{d: d, entity: entity, flavor: flavor, ast: checked.NativeRep(), src: expr}
	out, err := t.condition(t.ast.Expr(), true, 0)
	if err != nil {
		return Expr{}, err
	}
	return Expr{SQL: "(" + out.sql + ")", Args: out.args}, nil
}

// translator walks one type-checked CEL expression.
type translator struct {
	d      Dialect
	entity Entity
	flavor Flavor
	ast    *celast.AST
	src    string
}

// sqlPart is a piece of SQL and the arguments of its placeholders, in order.
type sqlPart struct {
	sql  string
	args []any
}

func part(sql string, args ...any) sqlPart { return sqlPart{sql, args} }

// kind is the SQL type of a scalar operand.
type kind int

const (
	kString kind = iota
	kNumber
	kBool
	kTime
	kNull
)

func (k kind) String() string {
	return [...]string{"string", "number", "bool", "timestamp", "null"}[k]
}

// operand is what a CEL sub-expression denotes: a typed SQL scalar (NULL
// when the value is missing), a path into a JSON column, a constant, a list
// of constants, or a map without a key yet.
type operand struct {
	scalar   *sqlPart
	kind     kind
	jsonTime bool // a time parsed from JSON text; on SQLite compared at millisecond precision

	json *jsonRef

	literal   ref.Val
	list      []ref.Val
	isSummary bool // the summary of a Result: needs a field
	isAnnots  bool // the annotations of a Result: needs a key
}

type jsonRef struct {
	column string
	path   []pathElem
}

type pathElem struct {
	key     string
	index   int
	isIndex bool
}

func (t *translator) fail(e celast.Expr, format string, args ...any) error {
	loc := t.ast.SourceInfo().GetStartLocation(e.ID())
	return positionError(t.src, loc.Line(), loc.Column()+1, fmt.Sprintf(format, args...))
}

// condition translates a boolean expression. positive tells whether the
// expression sits under an even number of negations: there SQL's NULL and
// FALSE both reject a row, which allows index-friendly forms.
func (t *translator) condition(e celast.Expr, positive bool, depth int) (sqlPart, error) {
	if depth > maxNesting {
		return sqlPart{}, t.fail(e, "the filter nests deeper than %d levels", maxNesting)
	}
	if e.Kind() == celast.CallKind {
		call := e.AsCall()
		args := call.Args()
		switch call.FunctionName() {
		case operators.LogicalAnd, operators.LogicalOr:
			l, err := t.condition(args[0], positive, depth+1)
			if err != nil {
				return sqlPart{}, err
			}
			r, err := t.condition(args[1], positive, depth+1)
			if err != nil {
				return sqlPart{}, err
			}
			op := " AND "
			if call.FunctionName() == operators.LogicalOr {
				op = " OR "
			}
			return part("("+l.sql+op+r.sql+")", append(l.args, r.args...)...), nil
		case operators.LogicalNot:
			inner, err := t.condition(args[0], !positive, depth+1)
			if err != nil {
				return sqlPart{}, err
			}
			return part("NOT ("+inner.sql+")", inner.args...), nil
		case operators.Equals:
			return t.equality(e, args[0], args[1], positive)
		case operators.NotEquals:
			eq, err := t.equality(e, args[0], args[1], false)
			if err != nil {
				return sqlPart{}, err
			}
			return part("NOT ("+eq.sql+")", eq.args...), nil
		case operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
			return t.ordering(e, call.FunctionName(), args[0], args[1])
		case operators.In:
			return t.membership(e, args[0], args[1])
		case overloads.StartsWith, overloads.EndsWith, overloads.Contains, overloads.Matches:
			if !call.IsMemberFunction() {
				return sqlPart{}, t.fail(e, "write %s as a method: field.%s(\"text\")", call.FunctionName(), call.FunctionName())
			}
			return t.stringTest(e, call.FunctionName(), call.Target(), args[0])
		}
		return sqlPart{}, t.fail(e, "unsupported operation %q in a filter", displayName(call.FunctionName()))
	}
	if e.Kind() == celast.SelectKind && e.AsSelect().IsTestOnly() {
		return t.has(e)
	}
	op, err := t.operand(e, depth+1)
	if err != nil {
		return sqlPart{}, err
	}
	switch {
	case op.literal != nil:
		if b, ok := op.literal.(types.Bool); ok {
			if b {
				return part("(1 = 1)"), nil
			}
			return part("(1 = 0)"), nil
		}
	case op.json != nil:
		// A JSON field used as a condition must hold a boolean.
		return t.jsonCase(op.json, kBool, t.jsonBool(op.json), sqlPart{sql: "NULL"}), nil
	case op.scalar != nil && op.kind == kBool:
		return *op.scalar, nil
	}
	return sqlPart{}, t.fail(e, "this expression is not a condition: compare it with a value")
}

func displayName(fn string) string {
	if name, ok := operators.FindReverse(fn); ok {
		return name
	}
	return fn
}

// operand resolves a non-boolean expression.
func (t *translator) operand(e celast.Expr, depth int) (operand, error) {
	if depth > maxNesting {
		return operand{}, t.fail(e, "the filter nests deeper than %d levels", maxNesting)
	}
	switch e.Kind() {
	case celast.LiteralKind:
		lit := e.AsLiteral()
		if s, ok := lit.(types.String); ok && strings.ContainsRune(string(s), 0) {
			return operand{}, t.fail(e, "a string holding a NUL character cannot match anything: stored data never holds NUL")
		}
		switch lit.(type) {
		case types.String, types.Int, types.Uint, types.Double, types.Bool, types.Null:
			return operand{literal: lit}, nil
		}
		return operand{}, t.fail(e, "constants of type %s are not supported", lit.Type().(ref.Type).TypeName())
	case celast.ListKind:
		var values []ref.Val
		for _, el := range e.AsList().Elements() {
			if el.Kind() != celast.LiteralKind {
				return operand{}, t.fail(el, "lists may hold only constants")
			}
			values = append(values, el.AsLiteral())
		}
		return operand{list: values}, nil
	case celast.IdentKind:
		return t.ident(e)
	case celast.SelectKind:
		sel := e.AsSelect()
		base, err := t.operand(sel.Operand(), depth+1)
		if err != nil {
			return operand{}, err
		}
		return t.field(e, base, pathElem{key: sel.FieldName()})
	case celast.CallKind:
		call := e.AsCall()
		switch call.FunctionName() {
		case operators.Index:
			base, err := t.operand(call.Args()[0], depth+1)
			if err != nil {
				return operand{}, err
			}
			key := call.Args()[1]
			if key.Kind() != celast.LiteralKind {
				return operand{}, t.fail(key, "an index must be a constant string or number")
			}
			switch v := key.AsLiteral().(type) {
			case types.String:
				if strings.ContainsRune(string(v), 0) {
					return operand{}, t.fail(key, "a key holding a NUL character cannot match anything: stored data never holds NUL")
				}
				return t.field(e, base, pathElem{key: string(v)})
			case types.Int:
				return t.field(e, base, pathElem{index: int(v), isIndex: true})
			case types.Uint:
				return t.field(e, base, pathElem{index: int(v), isIndex: true})
			}
			return operand{}, t.fail(key, "an index must be a constant string or number")
		case overloads.TypeConvertTimestamp:
			return t.timestamp(e, call.Args()[0], depth)
		case overloads.Size:
			target := call.Target()
			if !call.IsMemberFunction() {
				target = call.Args()[0]
			}
			return t.size(e, target, depth)
		}
		return operand{}, t.fail(e, "unsupported function %q in a filter", displayName(call.FunctionName()))
	}
	return operand{}, t.fail(e, "unsupported expression in a filter")
}

// column is a field of a filter that maps onto a table column.
type column struct {
	sql  string
	kind kind
}

var (
	recordColumns = map[string]column{
		"name": {"r.name", kString}, "uid": {"r.uid", kString}, "parent": {"r.result_name", kString},
		"data_type": {"r.data_type", kString}, "create_time": {"r.created_at", kTime}, "update_time": {"r.updated_at", kTime},
	}
	resultColumns = map[string]column{
		"name": {"res.name", kString}, "uid": {"res.uid", kString},
		"create_time": {"res.created_at", kTime}, "update_time": {"res.updated_at", kTime},
	}
	// Tekton Results' names where they differ from Annals' (see Flavor).
	tektonRecordColumns = map[string]column{
		"name": {"r.uid", kString}, "parent": {"r.namespace", kString}, "result_name": {"r.result_uid", kString},
	}
	tektonResultColumns = map[string]column{"parent": {"res.namespace", kString}}
	summaryColumns      = map[string]column{
		"status": {"res.summary_status", kString}, "type": {"res.summary_type", kString}, "record": {"res.summary_record", kString},
		"start_time": {"res.summary_start_time", kTime}, "end_time": {"res.summary_end_time", kTime},
	}
)

func (t *translator) ident(e celast.Expr) (operand, error) {
	name := e.AsIdent()
	columns, tekton := recordColumns, tektonRecordColumns
	if t.entity == Results {
		columns, tekton = resultColumns, tektonResultColumns
	}
	c, ok := columns[name]
	if t.flavor == Tekton {
		if tc, found := tekton[name]; found {
			c, ok = tc, true
		}
	}
	if ok {
		p := part(c.sql)
		return operand{scalar: &p, kind: c.kind}, nil
	}
	switch {
	case t.entity == Records && name == "data":
		return operand{json: &jsonRef{column: "r.data"}}, nil
	case name == "PIPELINE_RUN":
		return operand{literal: types.String("tekton.dev/v1.PipelineRun")}, nil
	case name == "TASK_RUN":
		return operand{literal: types.String("tekton.dev/v1.TaskRun")}, nil
	case t.entity == Results && name == "summary":
		return operand{isSummary: true}, nil
	case t.entity == Results && name == "annotations":
		return operand{isAnnots: true}, nil
	case t.entity == Results && name == "TIMEOUT":
		return operand{}, t.fail(e, "TIMEOUT is not a summary status in Annals: timed-out runs are FAILURE; filter Records on data.status.conditions[0].reason instead")
	}
	if status, ok := summaryStatusConstants[name]; ok && t.entity == Results {
		return operand{literal: types.String(status)}, nil
	}
	return operand{}, t.fail(e, "unknown field %q", name)
}

// field selects a key or index of base.
func (t *translator) field(e celast.Expr, base operand, el pathElem) (operand, error) {
	switch {
	case base.json != nil:
		if err := checkPathElem(t.d, el); err != nil {
			return operand{}, t.fail(e, "%v", err)
		}
		path := append(append([]pathElem{}, base.json.path...), el)
		if t.entity == Records && base.json.column == "r.data" && len(path) == 3 && !el.isIndex &&
			path[0].key == "metadata" && path[1].key == "labels" && !path[0].isIndex && !path[1].isIndex {
			// Labels are copied to their own indexed column on write.
			p := part(labelValue(t.d), el.key)
			return operand{scalar: &p, kind: kString, json: &jsonRef{column: "r.data", path: path}}, nil
		}
		return operand{json: &jsonRef{column: base.json.column, path: path}}, nil
	case base.isSummary && !el.isIndex && el.key == "annotations" && t.flavor == Tekton:
		return operand{json: &jsonRef{column: "res.summary_annotations"}}, nil
	case base.isSummary && !el.isIndex:
		c, ok := summaryColumns[el.key]
		if !ok {
			return operand{}, t.fail(e, "unknown summary field %q: use status, type, record, start_time or end_time", el.key)
		}
		p := part(c.sql)
		return operand{scalar: &p, kind: c.kind}, nil
	case base.isAnnots && !el.isIndex:
		p := part("(SELECT a.value FROM result_annotations a WHERE a.namespace = res.namespace AND a.result_uid = res.uid AND a.key = ?)", el.key)
		return operand{scalar: &p, kind: kString}, nil
	}
	return operand{}, t.fail(e, "this value has no fields or indexes")
}

func (t *translator) timestamp(e, arg celast.Expr, depth int) (operand, error) {
	if arg.Kind() == celast.LiteralKind {
		s, ok := arg.AsLiteral().(types.String)
		if !ok {
			return operand{}, t.fail(arg, "timestamp() takes an RFC 3339 string")
		}
		ts, err := time.Parse(time.RFC3339Nano, string(s))
		if err != nil {
			return operand{}, t.fail(arg, "timestamp(%q) is not RFC 3339, e.g. \"2026-01-02T15:04:05Z\"", string(s))
		}
		return operand{literal: types.Timestamp{Time: ts}}, nil
	}
	inner, err := t.operand(arg, depth+1)
	if err != nil {
		return operand{}, err
	}
	if inner.json == nil || inner.scalar != nil {
		return operand{}, t.fail(e, "timestamp() takes a constant or a string field of data")
	}
	return t.jsonAsTime(inner.json), nil
}

// jsonAsTime reads the JSON value at j as a timestamp: RFC 3339 text
// becomes a time; anything else, or nothing, is NULL (CEL: an error).
func (t *translator) jsonAsTime(j *jsonRef) operand {
	text := t.jsonText(j)
	var p sqlPart
	if t.d == Postgres {
		// Only well-formed RFC 3339 text is cast, so that one malformed row
		// cannot fail the whole query (CEL makes that row an error instead).
		p = part("(CASE WHEN "+t.jsonTypeIs(j, kString).sql+" AND "+text.sql+
			` ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+){0,1}([Zz]|[+-][0-9]{2}:[0-9]{2})$'`+
			" THEN ("+text.sql+")::timestamptz END)", concatArgs(t.jsonTypeIs(j, kString), text, text)...)
	} else {
		p = part("(CASE WHEN "+t.jsonTypeIs(j, kString).sql+" AND "+text.sql+
			" GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][Tt][0-9][0-9]:[0-9][0-9]:[0-9][0-9]*' THEN strftime('%Y-%m-%d %H:%M:%f', "+text.sql+") END)",
			concatArgs(t.jsonTypeIs(j, kString), text, text)...)
	}
	return operand{scalar: &p, kind: kTime, jsonTime: true}
}

func (t *translator) size(e, target celast.Expr, depth int) (operand, error) {
	inner, err := t.operand(target, depth+1)
	if err != nil {
		return operand{}, err
	}
	var p sqlPart
	switch {
	case inner.scalar != nil && inner.kind == kString:
		p = part("length("+inner.scalar.sql+")", inner.scalar.args...)
	case inner.isAnnots:
		p = part("(SELECT count(*) FROM result_annotations a WHERE a.namespace = res.namespace AND a.result_uid = res.uid)")
	case inner.json != nil && t.d == Postgres:
		x := t.jsonValue(inner.json)
		p = part("(CASE jsonb_typeof("+x.sql+") WHEN 'string' THEN length("+x.sql+" #>> '{}') WHEN 'array' THEN jsonb_array_length("+x.sql+
			") WHEN 'object' THEN (SELECT count(*) FROM jsonb_object_keys("+x.sql+")) END)", concatArgs(x, x, x, x)...)
	case inner.json != nil:
		path, err := sqliteJSONPath(inner.json.path)
		if err != nil {
			return operand{}, t.fail(e, "%v", err)
		}
		c := inner.json.column
		p = part("(CASE json_type("+c+", ?) WHEN 'text' THEN length(json_extract("+c+", ?)) WHEN 'array' THEN json_array_length("+c+
			", ?) WHEN 'object' THEN (SELECT count(*) FROM json_each("+c+", ?)) END)", path, path, path, path)
	default:
		return operand{}, t.fail(e, "size() takes a string, a list or a map")
	}
	return operand{scalar: &p, kind: kNumber}, nil
}

// literalKind tells the SQL kind of a constant.
func literalKind(v ref.Val) (kind, bool) {
	switch v.(type) {
	case types.String:
		return kString, true
	case types.Int, types.Uint, types.Double:
		return kNumber, true
	case types.Bool:
		return kBool, true
	case types.Timestamp:
		return kTime, true
	case types.Null:
		return kNull, true
	}
	return 0, false
}

// literalArg turns a constant into a bound argument for a value of kind k.
func (t *translator) literalArg(v ref.Val, jsonTime bool) any {
	switch x := v.(type) {
	case types.String:
		return string(x)
	case types.Int:
		return float64(x)
	case types.Uint:
		return float64(x)
	case types.Double:
		return float64(x)
	case types.Bool:
		return bool(x)
	case types.Timestamp:
		if jsonTime && t.d == SQLite {
			return x.Time.UTC().Format("2006-01-02 15:04:05.000")
		}
		return TimeArg(t.d, x.Time)
	}
	return nil
}

// sides orders a comparison as (field, constant) and tells whether it flipped.
func (t *translator) sides(e, a, b celast.Expr) (field operand, constant ref.Val, flipped bool, err error) {
	l, err := t.operand(a, 1)
	if err != nil {
		return operand{}, nil, false, err
	}
	r, err := t.operand(b, 1)
	if err != nil {
		return operand{}, nil, false, err
	}
	switch {
	case l.literal == nil && r.literal != nil:
		return l, r.literal, false, nil
	case l.literal != nil && r.literal == nil:
		return r, l.literal, true, nil
	}
	return operand{}, nil, false, t.fail(e, "compare a field with a constant (comparing two fields or two constants is not supported)")
}

func (t *translator) equality(e, a, b celast.Expr, positive bool) (sqlPart, error) {
	f, c, _, err := t.sides(e, a, b)
	if err != nil {
		return sqlPart{}, err
	}
	ck, ok := literalKind(c)
	if !ok {
		return sqlPart{}, t.fail(e, "unsupported constant")
	}
	if ck == kTime && f.json != nil && f.scalar == nil {
		f = t.jsonAsTime(f.json) // as Tekton Results does: data.status.completionTime > timestamp("...")
	}
	if f.scalar != nil {
		if ck == kNull {
			// A present column is never null in CEL's eyes; absent is an error.
			return part("(CASE WHEN "+f.scalar.sql+" IS NULL THEN NULL ELSE (1 = 0) END)", f.scalar.args...), nil
		}
		if ck != f.kind && !(f.kind == kNumber && ck == kNumber) {
			if f.json != nil && f.kind == kString {
				// A label compared with a non-string: false when present.
				return part("(CASE WHEN "+f.scalar.sql+" IS NULL THEN NULL ELSE (1 = 0) END)", f.scalar.args...), nil
			}
			return sqlPart{}, t.fail(e, "cannot compare a %s field with a %s", f.kind, ck)
		}
		if positive && t.d == Postgres && f.json != nil && f.kind == kString {
			// A label equality in a positive position: containment, which
			// the GIN index on labels serves.
			return part("r.labels @> ?::jsonb", jsonObject(f.json.path[2].key, string(c.(types.String)))), nil
		}
		return part("("+f.scalar.sql+" = ?)", append(f.scalar.args, t.literalArg(c, f.jsonTime))...), nil
	}
	if f.json == nil {
		return sqlPart{}, t.fail(e, "this value cannot be compared")
	}
	if ck == kNull {
		typ := t.jsonType(f.json)
		return part("(CASE WHEN "+typ.sql+" IS NULL THEN NULL ELSE "+t.jsonTypeIs(f.json, kNull).sql+" END)", concatArgs(typ, t.jsonTypeIs(f.json, kNull))...), nil
	}
	val := t.jsonScalar(f.json, ck)
	return t.jsonCase(f.json, ck, part("("+val.sql+" = ?)", append(val.args, t.literalArg(c, false))...), part("(1 = 0)")), nil
}

func (t *translator) ordering(e celast.Expr, fn string, a, b celast.Expr) (sqlPart, error) {
	f, c, flipped, err := t.sides(e, a, b)
	if err != nil {
		return sqlPart{}, err
	}
	op := map[string]string{operators.Less: "<", operators.LessEquals: "<=", operators.Greater: ">", operators.GreaterEquals: ">="}[fn]
	if flipped {
		op = map[string]string{"<": ">", "<=": ">=", ">": "<", ">=": "<="}[op]
	}
	ck, _ := literalKind(c)
	if ck == kBool || ck == kNull {
		return sqlPart{}, t.fail(e, "%s values cannot be ordered", ck)
	}
	if ck == kTime && f.json != nil && f.scalar == nil {
		f = t.jsonAsTime(f.json)
	}
	collate := ""
	if ck == kString && t.d == Postgres {
		collate = ` COLLATE "C"` // CEL orders strings by code point
	}
	if f.scalar != nil {
		if ck != f.kind {
			return sqlPart{}, t.fail(e, "cannot order a %s field against a %s", f.kind, ck)
		}
		return part("("+f.scalar.sql+collate+" "+op+" ?)", append(f.scalar.args, t.literalArg(c, f.jsonTime))...), nil
	}
	if f.json == nil {
		return sqlPart{}, t.fail(e, "this value cannot be ordered")
	}
	val := t.jsonScalar(f.json, ck)
	return t.jsonCase(f.json, ck, part("("+val.sql+collate+" "+op+" ?)", append(val.args, t.literalArg(c, false))...), part("NULL")), nil
}

func (t *translator) membership(e, elem, container celast.Expr) (sqlPart, error) {
	el, err := t.operand(elem, 1)
	if err != nil {
		return sqlPart{}, err
	}
	set, err := t.operand(container, 1)
	if err != nil {
		return sqlPart{}, err
	}
	switch {
	case set.list != nil && el.literal == nil:
		return t.inList(e, el, set.list)
	case el.literal != nil && set.isAnnots:
		key, ok := el.literal.(types.String)
		if !ok {
			return sqlPart{}, t.fail(e, "annotation keys are strings")
		}
		return part("EXISTS (SELECT 1 FROM result_annotations a WHERE a.namespace = res.namespace AND a.result_uid = res.uid AND a.key = ?)", string(key)), nil
	case el.literal != nil && set.json != nil && set.scalar == nil:
		key, ok := el.literal.(types.String)
		if !ok {
			return sqlPart{}, t.fail(e, "only a constant string can be looked for in a map or list of data")
		}
		return t.jsonContains(e, set.json, string(key))
	}
	return sqlPart{}, t.fail(e, "`in` takes a field and a list of constants (x in [\"a\", \"b\"]), or a constant key and a map")
}

func (t *translator) inList(e celast.Expr, f operand, list []ref.Val) (sqlPart, error) {
	var k kind
	for i, v := range list {
		vk, ok := literalKind(v)
		if !ok || vk == kNull || vk == kTime || (i > 0 && vk != k) {
			return sqlPart{}, t.fail(e, "a list after `in` must hold constants of one type (strings, numbers or booleans)")
		}
		k = vk
	}
	args := make([]any, len(list))
	for i, v := range list {
		args[i] = t.literalArg(v, false)
	}
	if f.scalar != nil {
		if len(list) == 0 {
			return part("(CASE WHEN "+f.scalar.sql+" IS NULL THEN NULL ELSE (1 = 0) END)", f.scalar.args...), nil
		}
		if k != f.kind {
			if f.json != nil {
				return part("(CASE WHEN "+f.scalar.sql+" IS NULL THEN NULL ELSE (1 = 0) END)", f.scalar.args...), nil
			}
			return sqlPart{}, t.fail(e, "cannot look for a %s field in a list of %s", f.kind, k)
		}
		return part("("+f.scalar.sql+" IN ("+Placeholders(len(list))+"))", append(append([]any{}, f.scalar.args...), args...)...), nil
	}
	if f.json == nil {
		return sqlPart{}, t.fail(e, "this value cannot be looked for in a list")
	}
	if len(list) == 0 {
		typ := t.jsonType(f.json)
		return part("(CASE WHEN "+typ.sql+" IS NULL THEN NULL ELSE (1 = 0) END)", typ.args...), nil
	}
	val := t.jsonScalar(f.json, k)
	return t.jsonCase(f.json, k, part("("+val.sql+" IN ("+Placeholders(len(list))+"))", append(val.args, args...)...), part("(1 = 0)")), nil
}

// jsonContains is `key in data.x`: a key of an object or an element of a list.
func (t *translator) jsonContains(e celast.Expr, j *jsonRef, key string) (sqlPart, error) {
	if t.d == Postgres {
		x := t.jsonValue(j)
		elem, _ := json.Marshal([]string{key})
		return part("(CASE jsonb_typeof("+x.sql+") WHEN 'object' THEN ("+x.sql+" -> ?::text) IS NOT NULL WHEN 'array' THEN "+x.sql+" @> ?::jsonb END)",
			concatArgs(x, x, part("", key), x, part("", string(elem)))...), nil
	}
	path, err := sqliteJSONPath(j.path)
	if err != nil {
		return sqlPart{}, t.fail(e, "%v", err)
	}
	keyPath, err := sqliteJSONPath(append(append([]pathElem{}, j.path...), pathElem{key: key}))
	if err != nil {
		return sqlPart{}, t.fail(e, "%v", err)
	}
	c := j.column
	return part("(CASE json_type("+c+", ?) WHEN 'object' THEN json_type("+c+", ?) IS NOT NULL WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each("+c+
		", ?) AS el WHERE el.type = 'text' AND el.value = ?) END)", path, keyPath, path, key), nil
}

func (t *translator) stringTest(e celast.Expr, fn string, target, arg celast.Expr) (sqlPart, error) {
	f, err := t.operand(target, 1)
	if err != nil {
		return sqlPart{}, err
	}
	a, err := t.operand(arg, 1)
	if err != nil {
		return sqlPart{}, err
	}
	lit, ok := a.literal.(types.String)
	if !ok {
		return sqlPart{}, t.fail(arg, "%s takes a constant string", fn)
	}
	s := string(lit)
	var text sqlPart
	switch {
	case f.scalar != nil && f.kind == kString:
		text = *f.scalar
	case f.scalar == nil && f.json != nil:
		text = t.jsonText(f.json)
	default:
		return sqlPart{}, t.fail(e, "%s applies to strings", fn)
	}
	var test sqlPart
	switch fn {
	case overloads.StartsWith:
		if t.d == Postgres {
			test = part("("+text.sql+" LIKE ? ESCAPE '\\')", append(text.args, escapeLike(s)+"%")...)
		} else {
			// SQLite's LIKE ignores ASCII case; substr compares exactly.
			test = part("(substr("+text.sql+", 1, ?) = ?)", append(text.args, utf8.RuneCountInString(s), s)...)
		}
	case overloads.EndsWith:
		if t.d == Postgres {
			test = part("("+text.sql+" LIKE ? ESCAPE '\\')", append(text.args, "%"+escapeLike(s))...)
		} else if s == "" {
			test = part("(length("+text.sql+") >= 0)", text.args...) // NULL, like CEL's error, when absent
		} else {
			test = part("(length("+text.sql+") >= ? AND substr("+text.sql+", -?) = ?)",
				concatArgs(text, part("", utf8.RuneCountInString(s)), text, part("", utf8.RuneCountInString(s), s))...)
		}
	case overloads.Contains:
		test = part("(strpos("+text.sql+", ?) > 0)", append(text.args, s)...)
		if t.d == SQLite {
			test.sql = "(instr(" + text.sql + ", ?) > 0)"
		}
	case overloads.Matches:
		pattern, err := PostgresRegex(s)
		if err != nil {
			return sqlPart{}, t.fail(arg, "%v", err)
		}
		if t.d == SQLite {
			return sqlPart{}, t.fail(e, "matches() is not supported on the embedded SQLite database: use startsWith, endsWith or contains, or run Annals on PostgreSQL")
		}
		test = part("("+text.sql+" ~ ?)", append(text.args, pattern)...)
	}
	if f.scalar != nil {
		return test, nil
	}
	if fn == overloads.Contains && t.flavor == Tekton {
		// Upstream searches the JSON text of maps and lists too (B6); a
		// missing value gives NULL, which matches nothing.
		return test, nil
	}
	return t.jsonCase(f.json, kString, test, part("NULL")), nil
}

// has is has(x.field): the field exists in a JSON object.
func (t *translator) has(e celast.Expr) (sqlPart, error) {
	sel := e.AsSelect()
	base, err := t.operand(sel.Operand(), 1)
	if err != nil {
		return sqlPart{}, err
	}
	if base.json == nil || base.scalar != nil {
		return sqlPart{}, t.fail(e, "has() applies to fields of data")
	}
	child := &jsonRef{column: base.json.column, path: append(append([]pathElem{}, base.json.path...), pathElem{key: sel.FieldName()})}
	if err := checkPathElem(t.d, child.path[len(child.path)-1]); err != nil {
		return sqlPart{}, t.fail(e, "%v", err)
	}
	parentType := t.jsonType(base.json)
	childType := t.jsonType(child)
	return part("(CASE WHEN "+parentType.sql+" = 'object' THEN "+childType.sql+" IS NOT NULL END)", concatArgs(parentType, childType)...), nil
}

// --- JSON access, per dialect. Paths are always bound arguments. ---

// checkPathElem refuses a path step that cannot be bound: CEL has no
// negative indexes, and SQLite JSON paths cannot quote a key holding a
// double quote or NUL. Steps are checked as paths are built, so the SQL
// helpers below never meet a bad one.
func checkPathElem(d Dialect, el pathElem) error {
	if el.isIndex && el.index < 0 {
		return fmt.Errorf("negative list index %d", el.index)
	}
	if !el.isIndex && d == SQLite && strings.ContainsAny(el.key, "\"\x00") {
		return fmt.Errorf("the key %q holds a double quote or NUL, which SQLite JSON paths cannot address", el.key)
	}
	return nil
}

// pathArg is the bound argument addressing j: a text[] on PostgreSQL, a
// JSON path on SQLite.
func (t *translator) pathArg(j *jsonRef) any {
	if t.d == Postgres {
		path := make([]string, len(j.path))
		for i, el := range j.path {
			if el.isIndex {
				path[i] = strconv.Itoa(el.index)
			} else {
				path[i] = el.key
			}
		}
		return path
	}
	path, _ := sqliteJSONPath(j.path) // steps were checked when added
	return path
}

func (t *translator) jsonValue(j *jsonRef) sqlPart {
	return part("("+j.column+" #> ?::text[])", t.pathArg(j))
}

func (t *translator) jsonType(j *jsonRef) sqlPart {
	if t.d == Postgres {
		return part("jsonb_typeof("+j.column+" #> ?::text[])", t.pathArg(j))
	}
	return part("json_type("+j.column+", ?)", t.pathArg(j))
}

func (t *translator) jsonTypeIs(j *jsonRef, k kind) sqlPart {
	typ := t.jsonType(j)
	var test string
	switch {
	case t.d == Postgres:
		test = map[kind]string{kString: "= 'string'", kNumber: "= 'number'", kBool: "= 'boolean'", kNull: "= 'null'"}[k]
	default:
		test = map[kind]string{kString: "= 'text'", kNumber: "IN ('integer', 'real')", kBool: "IN ('true', 'false')", kNull: "= 'null'"}[k]
	}
	return part("("+typ.sql+" "+test+")", typ.args...)
}

func (t *translator) jsonText(j *jsonRef) sqlPart {
	if t.d == Postgres {
		return part("("+j.column+" #>> ?::text[])", t.pathArg(j))
	}
	return part("json_extract("+j.column+", ?)", t.pathArg(j))
}

func (t *translator) jsonBool(j *jsonRef) sqlPart {
	if t.d == Postgres {
		return part("(("+j.column+" #> ?::text[]) = 'true'::jsonb)", t.pathArg(j))
	}
	return part("(json_type("+j.column+", ?) = 'true')", t.pathArg(j))
}

// jsonScalar is the value at j as SQL of kind k (valid where the type is k).
func (t *translator) jsonScalar(j *jsonRef, k kind) sqlPart {
	switch k {
	case kNumber:
		if t.d == Postgres {
			return part("("+j.column+" #>> ?::text[])::double precision", t.pathArg(j))
		}
		return t.jsonText(j)
	case kBool:
		return t.jsonBool(j)
	}
	return t.jsonText(j)
}

// jsonCase evaluates then where the value at j has kind k, NULL where it is
// missing (CEL: an error) and otherwise for other types.
func (t *translator) jsonCase(j *jsonRef, k kind, then, otherwise sqlPart) sqlPart {
	typ := t.jsonType(j)
	is := t.jsonTypeIs(j, k)
	return part("(CASE WHEN "+typ.sql+" IS NULL THEN NULL WHEN "+is.sql+" THEN "+then.sql+" ELSE "+otherwise.sql+" END)",
		concatArgs(typ, is, then, otherwise)...)
}

func concatArgs(parts ...sqlPart) []any {
	var out []any
	for _, p := range parts {
		out = append(out, p.args...)
	}
	return out
}

// sqliteJSONPath writes a SQLite JSON path with every key quoted, so that
// keys holding dots or slashes (app.kubernetes.io/name) address one key.
func sqliteJSONPath(path []pathElem) (string, error) {
	var b strings.Builder
	b.WriteString("$")
	for _, el := range path {
		if err := checkPathElem(SQLite, el); err != nil {
			return "", err
		}
		if el.isIndex {
			fmt.Fprintf(&b, "[%d]", el.index)
		} else {
			b.WriteString(`."` + el.key + `"`)
		}
	}
	return b.String(), nil
}

func jsonObject(key, value string) string {
	b, _ := json.Marshal(map[string]string{key: value})
	return string(b)
}
