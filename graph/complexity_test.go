package graph_test

import (
	"context"
	"testing"

	"github.com/99designs/gqlgen/complexity"
	"github.com/vektah/gqlparser/v2"

	"github.com/annals-dev/annals/graph"
)

// TestRecordStatsCost: a statistics query the daily rollup answers (the
// dashboard trend) is priced by its days and output and stays under the
// expensive threshold (5,000 by default); the same grouping over the
// Records (a label, a CEL filter, another time field), a window of ten
// years, or one without both ends is priced as a scan or more.
func TestRecordStatsCost(t *testing.T) {
	es := graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{}, Complexity: graph.Complexity()})
	const selection = `{ totalGroups groups { key { value } count statusCounts { succeeded failed } successRate duration { p95 } } }`
	window := `where: {dataTypes: ["tekton.dev/v1.PipelineRun"], started: {after: "2026-10-31T00:00:00Z", before: "2026-11-30T00:00:00Z"}}`
	for _, c := range []struct {
		name, args string
		cheap      bool
	}{
		{"trend by Pipeline and day", window + `, groupBy: [{dimension: PIPELINE}, {dimension: TIME, unit: DAY}]`, true},
		{"trend in UTC given", window + `, groupBy: [{dimension: PIPELINE}, {dimension: TIME, unit: DAY}], timeZone: "UTC"`, true},
		{"in another zone", window + `, groupBy: [{dimension: PIPELINE}, {dimension: TIME, unit: DAY}], timeZone: "Europe/Berlin"`, false},
		{"by a label", window + `, groupBy: [{dimension: LABEL, key: "app"}, {dimension: TIME, unit: DAY}]`, false},
		{"with a CEL filter", window + `, filter: "data.spec.timeout == '1h'", groupBy: [{dimension: PIPELINE}, {dimension: TIME, unit: DAY}]`, false},
		{"by completion day", window + `, groupBy: [{dimension: PIPELINE}, {dimension: TIME, timeField: COMPLETION, unit: DAY}]`, false},
		{"wide: up to the group limit", `groupBy: [{dimension: NAMESPACE}, {dimension: PIPELINE}, {dimension: TASK}]`, false},
		{"ten years of days", `where: {started: {after: "2016-11-30T00:00:00Z", before: "2026-11-30T00:00:00Z"}}, groupBy: [{dimension: STATUS}]`, false},
	} {
		doc, err := gqlparser.LoadQuery(es.Schema(), `{ recordStats(parent: "-", `+c.args+`) `+selection+` }`)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		cost := complexity.Calculate(context.Background(), es, doc.Operations[0], nil)
		if (cost < 5000) != c.cheap {
			t.Errorf("%s: cost %d; want it %s 5,000", c.name, cost, map[bool]string{true: "under", false: "at or over"}[c.cheap])
		}
	}
	// Without both ends of a window every day of history may be read: the
	// scan's base price, not the rollup's.
	doc, err := gqlparser.LoadQuery(es.Schema(), `{ recordStats(parent: "-", groupBy: [{dimension: STATUS}]) `+selection+` }`)
	if err != nil {
		t.Fatal(err)
	}
	if cost := complexity.Calculate(context.Background(), es, doc.Operations[0], nil); cost < graph.StatsCost {
		t.Errorf("a grouping over all history costs %d, less than a scan's %d", cost, graph.StatsCost)
	}
}
