package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestRecordStatsOverGraphQL runs analytics over the sample runs: failure
// hot spots of a Pipeline, daily buckets with percentiles, facets, and the
// refusals of bad arguments and of groupings that could be too large.
func TestRecordStatsOverGraphQL(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		ctx := context.Background()

		// Hot spots: the tasks of build-web that fail most, with their share.
		r := post(t, ctx, h, `{ recordStats(parent: "ci", where: {pipeline: "build-web", dataTypes: ["tekton.dev/v1.TaskRun"]},
			groupBy: [{dimension: TASK}], orderBy: [{metric: FAILED}, {metric: KEY, direction: ASC}], first: 2) {
			totalGroups groups { key { dimension value } count statusCounts { failed succeeded } successRate failureShare } } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("%+v", r.Errors)
		}
		want := `{"recordStats":{"totalGroups":3,"groups":[` +
			`{"key":[{"dimension":"TASK","value":"compile"}],"count":2,"statusCounts":{"failed":1,"succeeded":1},"successRate":0.5,"failureShare":1},` +
			`{"key":[{"dimension":"TASK","value":"fetch"}],"count":3,"statusCounts":{"failed":0,"succeeded":2},"successRate":1,"failureShare":0}]}}`
		if string(r.Data) != want {
			t.Errorf("hot spots:\n got %s\nwant %s", r.Data, want)
		}

		// Per kind and day in a zone, with percentiles: counts add up to
		// what records counts, and a group with durations has its p95.
		r = post(t, ctx, h, `{ recordStats(parent: "-", groupBy: [{dimension: KIND}, {dimension: TIME, timeField: START, unit: DAY}], timeZone: "Europe/Berlin") {
			groups { key { value time } count duration { count p50 p95 max } queueTime { count avg } lastRunTime } }
			records(parent: "-", where: {dataTypes: ["tekton.dev/v1.PipelineRun", "tekton.dev/v1.TaskRun", "tekton.dev/v1beta1.TaskRun"]}) { totalCount } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("%+v", r.Errors)
		}
		var out struct {
			RecordStats struct {
				Groups []struct {
					Count    int
					Duration struct {
						Count    int
						P95, Max *float64
					}
				}
			}
			Records struct{ TotalCount int }
		}
		if err := json.Unmarshal(r.Data, &out); err != nil {
			t.Fatal(err)
		}
		sum, withP95 := 0, 0
		for _, g := range out.RecordStats.Groups {
			sum += g.Count
			if g.Duration.Count > 0 {
				if g.Duration.P95 == nil || *g.Duration.P95 > *g.Duration.Max {
					t.Errorf("p95 missing or above the max: %s", r.Data)
				}
				withP95++
			}
		}
		if sum != out.Records.TotalCount || withP95 == 0 {
			t.Errorf("groups add up to %d, records count %d; %d groups with durations: %s", sum, out.Records.TotalCount, withP95, r.Data)
		}

		r = post(t, ctx, h, `{ recordFacets(parent: "-", dimension: TASK, prefix: "f") { value count } s: recordFacets(parent: "-", dimension: STATUS, first: 2) { value count } }`, nil)
		if want := `{"recordFacets":[{"value":"fetch","count":3}],"s":[{"value":"SUCCEEDED","count":6},{"value":"FAILED","count":3}]}`; string(r.Data) != want {
			t.Errorf("facets:\n got %s %+v\nwant %s", r.Data, r.Errors, want)
		}

		for _, c := range []struct{ query, code, message string }{
			{`{ recordStats(parent: "-", timeZone: "Mars/Olympus") { totalGroups } }`, "INVALID_ARGUMENT", "IANA time zone"},
			{`{ recordStats(parent: "-", groupBy: [{dimension: LABEL}]) { totalGroups } }`, "INVALID_ARGUMENT", "needs key"},
			{`{ recordStats(parent: "-", groupBy: [{dimension: NAMESPACE}], fill: true) { totalGroups } }`, "INVALID_ARGUMENT", "one time dimension"},
			{`{ recordStats(parent: "-", first: 0) { totalGroups } }`, "INVALID_ARGUMENT", "first must be"},
			{`{ recordFacets(parent: "-", dimension: ANNOTATION, key: "a\"b") { value } }`, "INVALID_ARGUMENT", "label key"},
			{`{ recordStats(parent: "-", groupBy: [{dimension: TIME, unit: HOUR}], fill: true, where: {started: {after: "2020-01-01T00:00:00Z", before: "2026-01-01T00:00:00Z"}}) { totalGroups } }`,
				"INVALID_ARGUMENT", "more than 10000 groups"},
			// Three dimensions of unknown size without first: up to 10,000 groups.
			{`{ recordStats(parent: "-", groupBy: [{dimension: NAMESPACE}, {dimension: PIPELINE}, {dimension: TASK}]) { groups { key { value } count successRate } } }`,
				"COMPLEXITY_LIMIT_EXCEEDED", "complexity"},
		} {
			r := post(t, ctx, h, c.query, nil)
			if r.code() != c.code || !strings.Contains(strings.ToLower(r.Errors[0].Message), strings.ToLower(c.message)) {
				t.Errorf("%s: %+v, want %s about %q", c.query, r.Errors, c.code, c.message)
			}
		}
		// The same grouping with first is priced by first, and runs.
		r = post(t, ctx, h, `{ recordStats(parent: "-", groupBy: [{dimension: NAMESPACE}, {dimension: PIPELINE}, {dimension: TASK}], first: 100) { totalGroups } }`, nil)
		if len(r.Errors) > 0 {
			t.Errorf("with first: %+v", r.Errors)
		}
	})
}

// TestRunHistoryAnalyticsOverGraphQL asks the sample runs for step hot
// spots, flaky tasks and recovery times, and refuses bad limits: compile
// of build-web succeeded, then failed at step build, at the same revision
// (main), and build-web's last run failed.
func TestRunHistoryAnalyticsOverGraphQL(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		ctx := context.Background()
		for _, c := range []struct{ name, query, want string }{
			{"step hot spots", `{ recordStats(parent: "-", where: {dataTypes: ["tekton.dev/v1.TaskRun", "tekton.dev/v1beta1.TaskRun"], statuses: [FAILED]},
				groupBy: [{dimension: TASK}, {dimension: FAILED_STEP}], orderBy: [{metric: FAILED}], first: 10) { groups { key { value } failed: statusCounts { failed } failureShare } } }`,
				`{"recordStats":{"groups":[{"key":[{"value":"backup-db"},{"value":"build"}],"failed":{"failed":1},"failureShare":0.5},` +
					`{"key":[{"value":"compile"},{"value":"build"}],"failed":{"failed":1},"failureShare":0.5}]}}`},
			{"failed steps facet", `{ recordFacets(parent: "ci", dimension: FAILED_STEP) { value count } }`, `{"recordFacets":[{"value":"build","count":1}]}`},
			{"flaky tasks", `{ flakyTasks(parent: "-") { totalCount tasks { namespace pipeline task revisions flakyRevisions runs succeeded failed flips flipRate } } }`,
				`{"flakyTasks":{"totalCount":1,"tasks":[{"namespace":"ci","pipeline":"build-web","task":"compile","revisions":1,"flakyRevisions":1,` +
					`"runs":2,"succeeded":1,"failed":1,"flips":1,"flipRate":1}]}}`},
			{"recovery", `{ pipelineRecovery(parent: "-") { totalCount pipelines { namespace pipeline recoveries mean median max currentlyFailing failingSince } } }`,
				`{"pipelineRecovery":{"totalCount":1,"pipelines":[{"namespace":"ci","pipeline":"build-web","recoveries":0,"mean":null,"median":null,"max":null,` +
					`"currentlyFailing":true,"failingSince":"2026-03-02T09:03:00Z"}]}}`},
		} {
			r := post(t, ctx, h, c.query, nil)
			if string(r.Data) != c.want || len(r.Errors) > 0 {
				t.Errorf("%s:\n got %s %+v\nwant %s", c.name, r.Data, r.Errors, c.want)
			}
		}
		for _, q := range []string{`{ flakyTasks(parent: "-", first: 0) { totalCount } }`, `{ pipelineRecovery(parent: "-", first: 1001) { totalCount } }`} {
			r := post(t, ctx, h, q, nil)
			if r.code() != "INVALID_ARGUMENT" || len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, "first must be 1 to 1000") {
				t.Errorf("%s: %+v, want INVALID_ARGUMENT about first", q, r.Errors)
			}
		}
	})
}
