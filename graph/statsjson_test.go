package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/google/uuid"

	"github.com/annals-dev/annals/graph"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// statsSelections select StatsGroup fields every way a query can: every
// field, aliases, a response key asked twice, named and inline fragments
// (on the type and on nested types), @skip and @include, __typename.
var statsSelections = []string{
	`groups { key { value } count statusCounts { succeeded failed } successRate duration { p95 } }`,
	`groups { __typename key { __typename dimension value time } count statusCounts { __typename succeeded failed cancelled running unknown }
	  successRate failureShare duration { __typename count min avg max sum p50 p90 p95 p99 } queueTime { count min avg max sum p50 p90 p95 p99 } lastRunTime }
	  totalGroups`,
	`totalGroups groups { n: count c: count count k: key { v: value value d: dimension } s: statusCounts { f: failed } d: duration { p50 avg } }`,
	`groups { ...G ... on StatsGroup { lastRunTime key { ...K } } statusCounts { ... on StatusCounts { running } } }
	fragment G on StatsGroup { count successRate queueTime { ...D } }
	fragment K on StatsKey { value time }
	fragment D on DurationStats { max p99 }`,
	`groups { count @skip(if: $yes) successRate @include(if: $yes) key @include(if: $no) { value } duration { p90 @skip(if: $no) sum } }`,
}

// TestStatsGroupsWriter serves the same statistics queries through gqlgen
// alone and with StatsGroupsWriter: the responses must be the same bytes.
func TestStatsGroupsWriter(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		seedStatsRuns(t, s)
		newHandler := func(writer bool) http.Handler {
			h := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{Store: s}, Complexity: graph.Complexity()}))
			h.AddTransport(transport.POST{})
			h.Use(graph.PerResponseLoaders{Store: s})
			if writer {
				h.Use(graph.StatsGroupsWriter{})
			}
			return h
		}
		plain, written := newHandler(false), newHandler(true)
		groupings := []string{
			`[{dimension: PIPELINE}, {dimension: TIME, timeField: START, unit: DAY}]`,
			`[{dimension: STATUS}, {dimension: NAMESPACE}]`,
			`[{dimension: LABEL, key: "team"}, {dimension: KIND}]`, // runs without the label: null values
			`[]`,
			`[{dimension: TASK}, {dimension: TIME, timeField: COMPLETION, unit: HOUR}]`,
		}
		args := []string{
			``,
			`, where: {started: {after: "2026-03-02T00:00:00Z", before: "2026-03-06T12:00:00Z"}}`,
			`, orderBy: [{metric: DURATION_P95}], first: 3`,
			`, where: {started: {after: "2026-03-01T00:00:00Z", before: "2026-03-09T00:00:00Z"}}, fill: true`,
			`, where: {pipeline: "no-such-pipeline"}`, // no group
		}
		n := 0
		for gi, groupBy := range groupings {
			for ai, arg := range args {
				if arg != "" && (gi+ai)%2 == 1 && ai != 3 {
					continue
				}
				if ai == 3 && gi != 0 {
					continue // fill needs the time dimension
				}
				for _, sel := range statsSelections {
					vars, fragments := "", ""
					if strings.Contains(sel, "$") {
						vars = "($yes: Boolean = true, $no: Boolean = false)"
					}
					if i := strings.Index(sel, "fragment"); i >= 0 {
						sel, fragments = sel[:i], sel[i:] // defined after the operation
					}
					query := fmt.Sprintf("query%s { recordStats(parent: \"-\", groupBy: %s%s) { %s } }\n%s", vars, groupBy, arg, sel, fragments)
					want, got := serve(t, plain, query), serve(t, written, query)
					if !bytes.Equal(want, got) {
						t.Fatalf("%s\ngqlgen:             %s\nStatsGroupsWriter:  %s", query, want, got)
					}
					if bytes.Contains(want, []byte(`"errors"`)) {
						t.Fatalf("%s: %s", query, want)
					}
					n++
				}
			}
		}
		if n < 50 {
			t.Fatalf("only %d queries compared", n)
		}
	})
}

func serve(t *testing.T, h http.Handler, query string) []byte {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s: %d %s", query, rec.Code, rec.Body)
	}
	return rec.Body.Bytes()
}

// seedStatsRuns writes PipelineRuns and TaskRuns over ten days of March
// 2026 in three namespaces: every status, some without a start or end,
// some without a team label, v1 and v1beta1.
func seedStatsRuns(t *testing.T, s *store.Store) {
	rng := rand.New(rand.NewPCG(5, 6))
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var ws []store.RecordWrite
	for i := range 300 {
		ns := fmt.Sprintf("team-%d", i%3)
		uid := uuid.NewString()
		kind, dataType := "PipelineRun", store.TypePipelineRun
		if i%3 == 1 {
			kind, dataType = "TaskRun", store.TypeTaskRun
		}
		apiVersion := "tekton.dev/v1"
		if i%7 == 0 {
			apiVersion = "tekton.dev/v1beta1"
			dataType = "tekton.dev/v1beta1." + kind
		}
		labels := map[string]string{"tekton.dev/pipeline": fmt.Sprintf("pipeline-%d", rng.IntN(4)), "tekton.dev/task": fmt.Sprintf("task-%d", rng.IntN(3))}
		if rng.IntN(4) > 0 {
			labels["team"] = fmt.Sprintf("t%d", rng.IntN(2))
		}
		created := base.Add(time.Duration(rng.Int64N(int64(10 * 24 * time.Hour))))
		status := map[string]any{}
		if rng.IntN(10) > 0 {
			start := created.Add(time.Duration(rng.IntN(300)) * time.Second)
			status["startTime"] = start
			cond := map[string]any{"type": "Succeeded", "status": "Unknown", "reason": "Running"}
			switch rng.IntN(4) {
			case 0, 1:
				cond = map[string]any{"type": "Succeeded", "status": "True", "reason": "Succeeded"}
			case 2:
				cond = map[string]any{"type": "Succeeded", "status": "False", "reason": "Failed"}
			}
			if cond["status"] != "Unknown" {
				status["completionTime"] = start.Add(time.Duration(1+rng.IntN(3600)) * time.Second)
			}
			status["conditions"] = []any{cond}
		}
		data, _ := json.Marshal(map[string]any{"apiVersion": apiVersion, "kind": kind,
			"metadata": map[string]any{"name": fmt.Sprintf("run-%d", i), "namespace": ns, "uid": uid, "labels": labels,
				"creationTimestamp": created}, "status": status})
		ws = append(ws, store.RecordWrite{ResultName: store.ResultName(ns, uid), UID: uid, DataType: dataType, Data: data, UpdateSummary: kind == "PipelineRun"})
	}
	if err := s.UpsertRecords(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
}
