package graph

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/annals-dev/annals/store"
)

// Look-ahead: when a list of objects resolves, the fields its items select
// are read for all items at once, before any item's fields run, and kept in
// the response's Loaders under each item; then the same is done one level
// down with what was read. The statements a query costs thus follow from
// its selection set alone (one per level and per distinct arguments of a
// nested list), never from timing, page size or GOMAXPROCS, and no field
// waits for others to gather.
//
// A look-ahead that cannot read (a bad argument, a database error) keeps
// the error for the fields it served, or leaves them to read and report
// themselves. Items the caller may not see are not read ahead: the
// resolvers refuse them with the same checks.

// fieldSelections is the selection set of the field being resolved.
func fieldSelections(ctx context.Context) ast.SelectionSet {
	if fc := graphql.GetFieldContext(ctx); fc != nil {
		return fc.Field.Selections
	}
	return nil
}

// connectionNodes returns the selections on the nodes of a connection:
// under nodes and under edges.node.
func connectionNodes(op *graphql.OperationContext, connection ast.SelectionSet, connectionType, edgeType []string) ast.SelectionSet {
	var nodes ast.SelectionSet
	for _, f := range graphql.CollectFields(op, connection, connectionType) {
		switch f.Name {
		case "nodes":
			nodes = append(nodes, f.Selections...)
		case "edges":
			for _, e := range graphql.CollectFields(op, f.Selections, edgeType) {
				if e.Name == "node" {
					nodes = append(nodes, e.Selections...)
				}
			}
		}
	}
	return nodes
}

// selectsData tells whether the selection on Records asks their data.
// Lists whose Records are not asked it read them without data: typed
// fields read the RunView the store keeps beside it.
func selectsData(op *graphql.OperationContext, records ast.SelectionSet) bool {
	for _, f := range graphql.CollectFields(op, records, recordImplementors) {
		if f.Name == "data" {
			return true
		}
	}
	return false
}

// withoutData marks list options to read Records without their data when
// the connection's selection does not ask it.
func withoutData(op *graphql.OperationContext, o store.ListOptions, connection ast.SelectionSet) store.ListOptions {
	o.WithoutData = !selectsData(op, connectionNodes(op, connection, recordConnectionImplementors, recordEdgeImplementors))
	return o
}

// selectsTotalCount tells whether a connection's selection asks totalCount.
func selectsTotalCount(op *graphql.OperationContext, connection ast.SelectionSet) bool {
	for _, f := range graphql.CollectFields(op, connection, recordConnectionImplementors) {
		if f.Name == "totalCount" {
			return true
		}
	}
	return false
}

// lookAheadRecordPage looks ahead under a page of Records resolved by a
// RecordConnection field whose selections are given.
func (r *Resolver) lookAheadRecordPage(ctx context.Context, items []*store.Record, connection ast.SelectionSet) {
	op := graphql.GetOperationContext(ctx)
	r.lookAheadRecords(ctx, items, connectionNodes(op, connection, recordConnectionImplementors, recordEdgeImplementors))
}

// lookAheadResultPage is lookAheadRecordPage for a page of Results.
func (r *Resolver) lookAheadResultPage(ctx context.Context, items []*store.Result, connection ast.SelectionSet) {
	op := graphql.GetOperationContext(ctx)
	r.lookAheadResults(ctx, items, connectionNodes(op, connection, resultConnectionImplementors, resultEdgeImplementors))
}

// lookAheadRecords reads, for every Record of recs, what sel asks of it:
// its Result, the TaskRuns of a PipelineRun, the owner and logs of a TaskRun.
func (r *Resolver) lookAheadRecords(ctx context.Context, recs []*store.Record, sel ast.SelectionSet) {
	if len(recs) == 0 || len(sel) == 0 {
		return
	}
	op := graphql.GetOperationContext(ctx)
	var wantResult, wantPipelineRun, wantTaskRun bool
	var resultSel, pipelineRunSel, taskRunSel ast.SelectionSet
	for _, f := range graphql.CollectFields(op, sel, recordImplementors) {
		switch f.Name {
		case "result":
			wantResult, resultSel = true, append(resultSel, f.Selections...)
		case "pipelineRun":
			wantPipelineRun, pipelineRunSel = true, append(pipelineRunSel, f.Selections...)
		case "taskRun":
			wantTaskRun, taskRunSel = true, append(taskRunSel, f.Selections...)
		}
	}
	if wantResult {
		r.lookAheadResultOf(ctx, recs, resultSel)
	}
	if wantPipelineRun {
		r.lookAheadPipelineRuns(ctx, runsOf(recs, "PipelineRun"), pipelineRunSel)
	}
	if wantTaskRun {
		r.lookAheadTaskRuns(ctx, runsOf(recs, "TaskRun"), taskRunSel)
	}
}

func runsOf(recs []*store.Record, kind string) []*store.Record {
	var out []*store.Record
	for _, rec := range recs {
		if isRun(rec, kind) {
			out = append(out, rec)
		}
	}
	return out
}

// lookAheadResultOf reads the Results of recs in one statement.
func (r *Resolver) lookAheadResultOf(ctx context.Context, recs []*store.Record, sel ast.SelectionSet) {
	recs = allowed(ctx, r, recs, func(rec *store.Record) string { return rec.Namespace }, resResults, verbGet)
	if len(recs) == 0 {
		return
	}
	names := distinct(recs, func(rec *store.Record) string { return rec.ResultName })
	found, err := readBatch(ctx, names, r.Store.GetResultsByName)
	l := r.loaders(ctx)
	for _, rec := range recs {
		l.resultOf.put(rec, found[rec.ResultName], err)
	}
	if err != nil {
		return
	}
	var results []*store.Result
	for _, name := range names {
		if res := found[name]; res != nil {
			results = append(results, res)
		}
	}
	r.lookAheadResults(ctx, results, sel)
}

// lookAheadPipelineRuns reads the TaskRuns (and their counts) of PipelineRun
// Records: one statement per distinct taskRuns arguments.
func (r *Resolver) lookAheadPipelineRuns(ctx context.Context, prs []*store.Record, sel ast.SelectionSet) {
	if len(prs) == 0 {
		return
	}
	op := graphql.GetOperationContext(ctx)
	var lists []graphql.CollectedField
	for _, f := range graphql.CollectFields(op, sel, pipelineRunImplementors) {
		if f.Name == "taskRuns" {
			lists = append(lists, f)
		}
	}
	if len(lists) == 0 {
		return
	}
	prs = allowed(ctx, r, prs, func(rec *store.Record) string { return rec.Namespace }, resRecords, verbList)
	if len(prs) == 0 {
		return
	}
	l := r.loaders(ctx)
	for _, g := range byArguments(ctx, lists, (*executionContext).field_PipelineRun_taskRuns_args) {
		pages, err := r.Store.ListTaskRunsForPipelineRuns(ctx, prs, withoutData(op, g.opts, g.sel))
		var children []*store.Record
		for _, pr := range prs {
			l.taskRuns.put(nestedKey[*store.Record]{pr, g.key}, pages[pr.Name], err)
			if page := pages[pr.Name]; page != nil {
				children = append(children, page.Items...)
			}
		}
		if selectsTotalCount(op, g.sel) {
			counts, err := r.Store.CountTaskRunsForPipelineRuns(ctx, prs, g.opts)
			for _, pr := range prs {
				l.taskRunCount.put(nestedKey[*store.Record]{pr, g.key}, counts[pr.Name], err)
			}
		}
		if err == nil {
			r.lookAheadRecordPage(ctx, children, g.sel)
		}
	}
}

// lookAheadTaskRuns reads the owning PipelineRuns and the logs of TaskRun
// Records, one statement each.
func (r *Resolver) lookAheadTaskRuns(ctx context.Context, trs []*store.Record, sel ast.SelectionSet) {
	if len(trs) == 0 {
		return
	}
	op := graphql.GetOperationContext(ctx)
	var wantOwner, wantLogs bool
	var ownerSel, logsSel ast.SelectionSet
	for _, f := range graphql.CollectFields(op, sel, taskRunImplementors) {
		switch f.Name {
		case "pipelineRun":
			wantOwner, ownerSel = true, append(ownerSel, f.Selections...)
		case "logs":
			wantLogs, logsSel = true, append(logsSel, f.Selections...)
		}
	}
	l := r.loaders(ctx)
	if wantOwner {
		owned := allowed(ctx, r, trs, func(rec *store.Record) string { return rec.Namespace }, resRecords, verbGet)
		var withOwner []*store.Record
		for _, tr := range owned {
			if tr.PipelineRunName != "" {
				withOwner = append(withOwner, tr)
			}
		}
		if len(withOwner) > 0 {
			ownerOf := func(tr *store.Record) [2]string { return [2]string{tr.ResultName, tr.PipelineRunName} }
			pairs := distinct(withOwner, ownerOf)
			found, err := r.Store.PipelineRunRecords(ctx, pairs, !selectsData(op, ownerSel))
			for _, tr := range withOwner {
				l.pipelineRunOf.put(tr, found[ownerOf(tr)], err)
			}
			if err == nil {
				var owners []*store.Record
				for _, p := range pairs {
					if pr := found[p]; pr != nil {
						owners = append(owners, pr)
					}
				}
				r.lookAheadRecords(ctx, owners, ownerSel)
			}
		}
	}
	if wantLogs {
		withLogs := allowed(ctx, r, trs, func(rec *store.Record) string { return rec.Namespace }, resLogs, verbGet)
		if len(withLogs) > 0 {
			keys := distinct(withLogs, (*store.Record).Key)
			found, err := r.Store.LogsForTaskRuns(ctx, keys)
			var logRecords []*store.Record
			for _, tr := range withLogs {
				l.logsOf.put(tr, found[tr.Key()], err)
				logRecords = append(logRecords, found[tr.Key()]...)
			}
			if err == nil {
				r.lookAheadLogs(ctx, logRecords, logsSel)
			}
		}
	}
}

// lookAheadLogs looks ahead under Log.record.
func (r *Resolver) lookAheadLogs(ctx context.Context, logRecords []*store.Record, sel ast.SelectionSet) {
	var recordSel ast.SelectionSet
	for _, f := range graphql.CollectFields(graphql.GetOperationContext(ctx), sel, logImplementors) {
		if f.Name == "record" {
			recordSel = append(recordSel, f.Selections...)
		}
	}
	r.lookAheadRecords(ctx, logRecords, recordSel)
}

// lookAheadResults reads, for every Result of results, its annotations and
// its nested records lists.
func (r *Resolver) lookAheadResults(ctx context.Context, results []*store.Result, sel ast.SelectionSet) {
	if len(results) == 0 || len(sel) == 0 {
		return
	}
	op := graphql.GetOperationContext(ctx)
	var wantAnnotations bool
	var lists []graphql.CollectedField
	for _, f := range graphql.CollectFields(op, sel, resultImplementors) {
		switch f.Name {
		case "annotations", "annotation":
			wantAnnotations = true
		case "records":
			lists = append(lists, f)
		}
	}
	l := r.loaders(ctx)
	if wantAnnotations {
		keys := distinct(results, (*store.Result).Key)
		found, err := r.Store.AnnotationsByResult(ctx, keys)
		for _, res := range results {
			l.annotations.put(res, found[res.Key()], err)
		}
	}
	if len(lists) == 0 {
		return
	}
	listed := allowed(ctx, r, results, func(res *store.Result) string { return res.Namespace }, resRecords, verbList)
	if len(listed) == 0 {
		return
	}
	names := distinct(listed, func(res *store.Result) string { return res.Name })
	for _, g := range byArguments(ctx, lists, (*executionContext).field_Result_records_args) {
		pages, err := r.Store.ListRecordsForResults(ctx, names, withoutData(op, g.opts, g.sel))
		var children []*store.Record
		for _, res := range listed {
			l.records.put(nestedKey[*store.Result]{res, g.key}, pages[res.Name], err)
			if page := pages[res.Name]; page != nil {
				children = append(children, page.Items...)
			}
		}
		if selectsTotalCount(op, g.sel) {
			counts, err := r.Store.CountRecordsForResults(ctx, names, g.opts)
			for _, res := range listed {
				l.recordCount.put(nestedKey[*store.Result]{res, g.key}, counts[res.Name], err)
			}
		}
		if err == nil {
			r.lookAheadRecordPage(ctx, children, g.sel)
		}
	}
}

// listGroup is the nested list fields (aliases) of one level that share
// their arguments, so one statement serves them all.
type listGroup struct {
	opts store.ListOptions
	key  string
	sel  ast.SelectionSet
}

// argsParser is gqlgen's own parser of a field's arguments, so that the
// look-ahead reads exactly what the resolver will be asked (defaults,
// variables and coercion included).
type argsParser func(*executionContext, context.Context, map[string]any) (map[string]any, error)

// byArguments groups nested list fields by their list options, in query
// order. A field whose arguments do not parse is left to its resolver,
// which reports the problem.
func byArguments(ctx context.Context, fields []graphql.CollectedField, parse argsParser) []*listGroup {
	op := graphql.GetOperationContext(ctx)
	ec := newExecutionContext(op, &executableSchema{}, nil)
	var groups []*listGroup
	byKey := map[string]*listGroup{}
	for _, f := range fields {
		args, err := parse(ec, ctx, f.ArgumentMap(op.Variables))
		if err != nil {
			continue
		}
		o := nestedListOptions(args["first"].(*int), args["after"].(*string), args["last"].(*int), args["before"].(*string),
			args["filter"].(*string), args["where"].(*RecordWhere), args["orderBy"].(*Order))
		key := optionsKey(o)
		g := byKey[key]
		if g == nil {
			g = &listGroup{opts: o, key: key}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.sel = append(g.sel, f.Selections...)
	}
	return groups
}

// nestedListOptions are the list options of a nested Record list
// (Result.records, PipelineRun.taskRuns), for the resolver and the
// look-ahead alike.
func nestedListOptions(first *int, after *string, last *int, before *string, filter *string, where *RecordWhere, orderBy *Order) store.ListOptions {
	o := listArgs{first, last, after, before, filter, orderBy}.options()
	o.RecordWhere = recordWhere(where)
	return o
}

func optionsKey(o store.ListOptions) string {
	b, err := json.Marshal(o)
	if err != nil {
		panic(fmt.Sprintf("list options do not encode: %v", err)) // plain data: cannot happen
	}
	return string(b)
}

// allowed keeps the items in whose namespace the caller may do verb on
// resource, asking once per namespace.
func allowed[T any](ctx context.Context, r *Resolver, items []T, namespaceOf func(T) string, resource, verb string) []T {
	decided := map[string]bool{}
	out := items[:0:0]
	for _, it := range items {
		ns := namespaceOf(it)
		ok, seen := decided[ns]
		if !seen {
			ok = r.allow(ctx, ns, resource, verb) == nil
			decided[ns] = ok
		}
		if ok {
			out = append(out, it)
		}
	}
	return out
}

// distinct returns the distinct keys of items, in order of first appearance.
func distinct[T any, K comparable](items []T, keyOf func(T) K) []K {
	seen := make(map[K]bool, len(items))
	var out []K
	for _, it := range items {
		if k := keyOf(it); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}
