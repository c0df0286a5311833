package graph

import (
	"context"
	"encoding/json"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/annals-dev/annals/store"
)

// prefetchTaskRuns looks ahead from a page of Records: when the selection
// asks for pipelineRun.taskRuns, the TaskRuns of every PipelineRun on the
// page are loaded in one statement now and handed to the loader. Loaders
// alone batch by a short time window, which a busy server can overrun;
// looking ahead makes the dashboard's cost independent of timing.
func (r *Resolver) prefetchTaskRuns(ctx context.Context, page []*store.Record) {
	var prs []*store.Record
	for _, rec := range page {
		if isRun(rec, "PipelineRun") {
			prs = append(prs, rec)
		}
	}
	if len(prs) == 0 {
		return
	}
	op := graphql.GetOperationContext(ctx)
	for _, field := range selectedTaskRuns(op, graphql.CollectFieldsCtx(ctx, nil)) {
		var args struct {
			First, Last   *int
			After, Before *string
			Filter        *string
			Where         *RecordWhere
			OrderBy       *Order
		}
		raw, _ := json.Marshal(field.ArgumentMap(op.Variables))
		if json.Unmarshal(raw, &args) != nil || args.After != nil || args.Before != nil {
			continue // the resolver will report the problem, or page one parent at a time
		}
		o := listArgs{args.First, args.Last, args.After, args.Before, args.Filter, args.OrderBy}.options()
		o.RecordWhere = recordWhere(args.Where)
		pages, err := r.Store.ListTaskRunsForPipelineRuns(ctx, prs, o)
		if err != nil {
			continue // the resolvers load again and report the error
		}
		loader, opts := r.loaders(ctx).taskRuns, optionsKey(o)
		for _, pr := range prs {
			loader.Prime(ctx, taskRunsKey{PipelineRun: pr, Opts: opts}, pages[pr.Name])
		}
	}
}

// selectedTaskRuns finds the pipelineRun.taskRuns fields under a Record
// connection's edges.node or nodes.
func selectedTaskRuns(op *graphql.OperationContext, connection []graphql.CollectedField) []graphql.CollectedField {
	var nodes ast.SelectionSet
	for _, f := range connection {
		switch f.Name {
		case "nodes":
			nodes = append(nodes, f.Selections...)
		case "edges":
			for _, e := range graphql.CollectFields(op, f.Selections, []string{"RecordEdge"}) {
				if e.Name == "node" {
					nodes = append(nodes, e.Selections...)
				}
			}
		}
	}
	var out []graphql.CollectedField
	for _, n := range graphql.CollectFields(op, nodes, []string{"Record", "Node"}) {
		if n.Name != "pipelineRun" {
			continue
		}
		for _, p := range graphql.CollectFields(op, n.Selections, []string{"PipelineRun"}) {
			if p.Name == "taskRuns" {
				out = append(out, p)
			}
		}
	}
	return out
}
