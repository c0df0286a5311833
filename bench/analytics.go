package main

import (
	"math/rand/v2"
	"time"
)

// Analytics queries of a dashboard over the last 30 days: the trend chart
// (per Pipeline and day: counts, success rate, p95 duration), filter
// dropdowns (facets), flaky tasks and recovery times.

const statsTrendQuery = `query($after: Time!, $before: Time!) {
  recordStats(parent: "-", where: {dataTypes: ["tekton.dev/v1.PipelineRun"], started: {after: $after, before: $before}},
              groupBy: [{dimension: PIPELINE}, {dimension: TIME, timeField: START, unit: DAY}]) {
    totalGroups groups { key { value } count statusCounts { succeeded failed } successRate duration { p95 } } } }`

func analyticsQueries(gen *generator) []query {
	window := func() map[string]any {
		now := time.Now().UTC()
		return map[string]any{"after": now.Add(-30 * 24 * time.Hour).Format(time.RFC3339), "before": now.Format(time.RFC3339)}
	}
	return []query{
		{"g_stats_30d_pipeline_day", func(*rand.Rand) map[string]any {
			return map[string]any{"query": statsTrendQuery, "variables": window()}
		}},
		{"g_facet_pipeline_ns", func(rnd *rand.Rand) map[string]any {
			return map[string]any{"query": `query($ns: String!) { recordFacets(parent: $ns, dimension: PIPELINE) { value count } }`,
				"variables": map[string]any{"ns": gen.namespaces[rnd.IntN(len(gen.namespaces))]}}
		}},
		{"g_facet_pipeline_all", func(*rand.Rand) map[string]any {
			return map[string]any{"query": `{ recordFacets(parent: "-", dimension: PIPELINE) { value count } }`}
		}},
		{"g_flaky_30d", func(*rand.Rand) map[string]any {
			return map[string]any{"query": `query($after: Time!, $before: Time!) { flakyTasks(parent: "-", where: {started: {after: $after, before: $before}}) {
  totalCount tasks { namespace pipeline task flakyRevisions flipRate } } }`, "variables": window()}
		}},
		{"g_recovery_30d", func(*rand.Rand) map[string]any {
			return map[string]any{"query": `query($after: Time!, $before: Time!) { pipelineRecovery(parent: "-", where: {started: {after: $after, before: $before}}) {
  totalCount pipelines { namespace pipeline recoveries mean median max currentlyFailing } } }`, "variables": window()}
		}},
	}
}
