package graph

import "github.com/annals-dev/annals/store"

// Complexity makes connections cost what they may return: a page's fields
// are counted once per item it can hold (first or last, else the default
// page size), so nested connections multiply, as GitHub's API counts them.
// The server refuses operations over its complexity limit before any SQL.
func Complexity() ComplexityRoot {
	var c ComplexityRoot
	c.Query.Records = func(child int, _ string, _ *string, first *int, _ *string, last *int, _ *string, _ *string, _ *RecordWhere, _ *Order) int {
		return connectionCost(child, first, last)
	}
	c.Query.Results = func(child int, _ string, first *int, _ *string, last *int, _ *string, _ *string, _ *ResultWhere, _ *Order) int {
		return connectionCost(child, first, last)
	}
	c.Query.Nodes = func(child int, ids []string) int { return 1 + len(ids)*child }
	// Each reference is a lookup and an access decision.
	c.Query.__resolve_entities = func(child int, representations []map[string]any) int { return 1 + len(representations)*child }
	c.Result.Records = func(child int, first *int, _ *string, last *int, _ *string, _ *string, _ *RecordWhere, _ *Order) int {
		return connectionCost(child, first, last)
	}
	c.PipelineRun.TaskRuns = func(child int, first *int, _ *string, last *int, _ *string, _ *string, _ *RecordWhere, _ *Order) int {
		return connectionCost(child, first, last)
	}
	return c
}

func connectionCost(child int, first, last *int) int {
	size := store.DefaultPageSize
	switch {
	case first != nil && *first > 0:
		size = *first
	case last != nil && *last > 0:
		size = *last
	}
	// A page larger than the store allows is refused with its own message.
	return 1 + min(size, store.MaxPageSize)*child
}
