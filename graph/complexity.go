package graph

import (
	"strings"

	"github.com/annals-dev/annals/store"
)

// RegexCost is what each matches() of a filter adds to an operation's cost.
// A regular expression is tested against every row the filter reaches, not
// only those of the page, and costs the database far more than a
// comparison: one alone makes an operation expensive (the default
// --expensive-cost), so regex filters run a few at a time and cannot hold
// every database connection.
const RegexCost = 5000

// LogSearchCost is the base cost of a logSearch: as much as the default
// --expensive-cost, so that searches run a few at a time.
const LogSearchCost = 5000

// Complexity makes connections cost what they may return: a page's fields
// are counted once per item it can hold (first or last, else the default
// page size), so nested connections multiply, as GitHub's API counts them.
// Regular expressions in filters add RegexCost each. The server refuses
// operations over its complexity limit before any SQL.
func Complexity() ComplexityRoot {
	var c ComplexityRoot
	c.Query.Records = func(child int, _ string, _ *string, first *int, _ *string, last *int, _ *string, filter *string, _ *RecordWhere, _ *Order) int {
		return connectionCost(child, first, last) + filterCost(filter)
	}
	c.Query.Results = func(child int, _ string, first *int, _ *string, last *int, _ *string, filter *string, _ *ResultWhere, _ *Order) int {
		return connectionCost(child, first, last) + filterCost(filter)
	}
	// Aggregations read their whole scope: a base cost, then each group
	// the grouping may return (see statsGroupEstimate) pays for its fields.
	// One the daily rollup answers reads no scope: its whole days come
	// from memory and StatsGroupsWriter writes its groups at about a fifth
	// of gqlgen's cost per field, so it pays a tenth per group, unless its
	// estimate reaches the group limit: such a grouping is refused as wide.
	// Its days are read once per scope, then kept, so it pays for each day
	// of its window; without both ends of a started window, it pays as a
	// scan.
	c.Query.RecordStats = func(child int, parent string, result *string, where *RecordWhere, filter *string, groupBy []*StatsGroupBy, timeZone *string, fill *bool, orderBy []*StatsOrder, first *int) int {
		groups := statsGroupEstimate(where, groupBy, first)
		q, err := statsQuery(groupBy, deref(timeZone), deref(fill), orderBy, first)
		q.Scope = store.ListOptions{Parent: parent, ResultName: deref(result), Filter: deref(filter), RecordWhere: recordWhere(where)}
		if days, bounded := startedDays(where); bounded && err == nil && groups < store.DefaultMaxGroups && store.DailyAnswers(q) {
			return RollupStatsCost + days*RollupDayCost + (groups*child+9)/10
		}
		return StatsCost + groups*child + filterCost(filter)
	}
	c.Query.RecordFacets = func(child int, _ string, _ *RecordWhere, filter *string, _ FacetDimension, _ *string, _ *string, first *int) int {
		return StatsCost + min(max(deref(first), 20), store.MaxFacetValues)*child + filterCost(filter)
	}
	c.Query.FlakyTasks = func(child int, _ string, _ *string, _ *RecordWhere, filter *string, first *int) int {
		return historyRowsCost(child, first) + filterCost(filter)
	}
	c.Query.PipelineRecovery = func(child int, _ string, _ *string, _ *RecordWhere, filter *string, first *int) int {
		return historyRowsCost(child, first) + filterCost(filter)
	}
	// A log search reads up to its bytes budget: expensive, so that only
	// a few run at once; each Log it may return pays for its fields.
	c.Query.LogSearch = func(child int, _ string, _ string, _ LogSearchWhere, _ *bool, first *int, _ *string) int {
		n := deref(first)
		if n <= 0 || n > store.MaxLogSearchLogs {
			n = store.MaxLogSearchLogs
		}
		return LogSearchCost + n*child
	}
	c.Query.Nodes = func(child int, ids []string) int { return 1 + len(ids)*child }
	// Each reference is a lookup and an access decision.
	c.Query.__resolve_entities = func(child int, representations []map[string]any) int { return 1 + len(representations)*child }
	c.Result.Records = func(child int, first *int, _ *string, last *int, _ *string, filter *string, _ *RecordWhere, _ *Order) int {
		return connectionCost(child, first, last) + filterCost(filter)
	}
	c.PipelineRun.TaskRuns = func(child int, first *int, _ *string, last *int, _ *string, filter *string, _ *RecordWhere, _ *Order) int {
		return connectionCost(child, first, last) + filterCost(filter)
	}
	c.Subscription.RecordChanged = func(child int, _ string, _ *RecordWhere, filter *string) int {
		return 1 + child + filterCost(filter)
	}
	c.Subscription.RecordEvents = func(child int, _ string, _ *RecordWhere, filter *string) int {
		return 1 + child + filterCost(filter)
	}
	return c
}

// filterCost charges the regular expressions of a CEL filter. Counting the
// word anywhere (even inside a string) can only overcharge.
func filterCost(filter *string) int {
	if filter == nil {
		return 0
	}
	return RegexCost * strings.Count(*filter, "matches")
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
