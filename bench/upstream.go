package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// Side by side: the same five pieces of work done through the Tekton
// Results REST API (an upstream server's, and Annals' own under
// /apis/results.tekton.dev/v1alpha2/) and through Annals' GraphQL, with the
// same clients, printed as one table with throughput ratios. Without an
// upstream address the table compares Annals' GraphQL with Annals' REST:
// the same protocol as upstream, served by Annals.
//
// Each target finds its own inputs (the newest PipelineRun's namespace, a
// sample of record names) through its own API, so an upstream server only
// needs to hold the same runs: for instance, upstream's API server over a
// database its watcher filled from the cluster that fed Annals.

// restPrefix is the path of the Tekton Results REST API on a server.
const restPrefix = "/apis/results.tekton.dev/v1alpha2/"

const (
	pipelineRunFilter = `data_type=="tekton.dev/v1.PipelineRun"`
	taskRunFilter     = `data_type=="tekton.dev/v1.TaskRun"`
	failedFilter      = pipelineRunFilter + ` && data.status.conditions[0].reason=="Failed"`
	labelFilter       = `data.metadata.labels["app"]=="web"`
	pagesPerWalk      = 20
)

// SideBySide is one piece of work measured on every target: units per
// second and latencies of a whole unit (a dashboard tree, one lookup, a
// walk of 20 pages), and how many HTTP calls a unit took.
type SideBySide struct {
	Work     string       `json:"work"`
	Upstream *QueryResult `json:"upstream_rest,omitempty"`
	REST     QueryResult  `json:"annals_rest"`
	GraphQL  QueryResult  `json:"annals_graphql"`
	// CallsREST and CallsGraphQL are the HTTP calls of one unit.
	CallsREST    int `json:"calls_rest"`
	CallsGraphQL int `json:"calls_graphql"`
}

// restClient speaks the Tekton Results REST API as its clients do: GET
// with query parameters, an optional bearer token, JSON answers whose
// records carry their data base64-encoded.
type restClient struct {
	base  string // scheme://host[:port], without the API prefix
	token string
	http  *http.Client
}

// restList is the part of a ListRecords answer the workloads read.
type restList struct {
	Records []struct {
		Name string `json:"name"`
	} `json:"records"`
	NextPageToken string `json:"next_page_token"`
}

// get fetches path (under the API prefix) with query q and decodes the
// answer into out, when out is not nil; any status but 200 is an error.
func (c *restClient) get(ctx context.Context, path string, q url.Values, out any) error {
	u := c.base + restPrefix + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %.300s", u, resp.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// listRecords lists the Records under parent (a namespace or "-") and
// result (a result id or "-"), newest first, as tkn-results asks.
func (c *restClient) listRecords(ctx context.Context, parent, result, filter string, pageSize int, pageToken string) (restList, error) {
	q := url.Values{"page_size": {fmt.Sprint(pageSize)}, "order_by": {"create_time desc"}}
	if filter != "" {
		q.Set("filter", filter)
	}
	if pageToken != "" {
		q.Set("page_token", pageToken)
	}
	var out restList
	err := c.get(ctx, "parents/"+parent+"/results/"+result+"/records", q, &out)
	return out, err
}

// resultOf splits a record name "<ns>/results/<result>/records/<id>" into
// its namespace and result id.
func resultOf(recordName string) (namespace, result string, err error) {
	parts := strings.Split(recordName, "/")
	if len(parts) != 5 || parts[1] != "results" || parts[3] != "records" {
		return "", "", fmt.Errorf("%q is not a record name", recordName)
	}
	return parts[0], parts[2], nil
}

// targetInputs are what a target's workloads ask about: the namespace of
// its newest PipelineRun and a sample of its record names.
type targetInputs struct {
	namespace string
	names     []string
}

// discover reads a target's inputs through its REST API.
func discover(ctx context.Context, c *restClient) (targetInputs, error) {
	runs, err := c.listRecords(ctx, "-", "-", pipelineRunFilter, 100, "")
	if err != nil {
		return targetInputs{}, err
	}
	tasks, err := c.listRecords(ctx, "-", "-", taskRunFilter, 100, "")
	if err != nil {
		return targetInputs{}, err
	}
	if len(runs.Records) == 0 {
		return targetInputs{}, fmt.Errorf("%s holds no PipelineRuns", c.base)
	}
	in := targetInputs{}
	if in.namespace, _, err = resultOf(runs.Records[0].Name); err != nil {
		return targetInputs{}, err
	}
	for _, r := range append(runs.Records, tasks.Records...) {
		in.names = append(in.names, r.Name)
	}
	return in, nil
}

// unit is one piece of work: it returns how many HTTP calls it made.
type unit func(ctx context.Context, rnd *rand.Rand) (calls int, err error)

// restWork are the five workloads through the REST API.
func restWork(c *restClient, in targetInputs) map[string]unit {
	return map[string]unit{
		// A dashboard over REST: the page of PipelineRuns, then the TaskRuns
		// of each one's Result, one call after another.
		"dashboard tree": func(ctx context.Context, _ *rand.Rand) (int, error) {
			runs, err := c.listRecords(ctx, in.namespace, "-", pipelineRunFilter, 50, "")
			if err != nil {
				return 1, err
			}
			calls := 1
			for _, r := range runs.Records {
				ns, result, err := resultOf(r.Name)
				if err != nil {
					return calls, err
				}
				calls++
				if _, err := c.listRecords(ctx, ns, result, taskRunFilter, 20, ""); err != nil {
					return calls, err
				}
			}
			return calls, nil
		},
		"get one record by name": func(ctx context.Context, rnd *rand.Rand) (int, error) {
			return 1, c.get(ctx, "parents/"+in.names[rnd.IntN(len(in.names))], nil, nil)
		},
		"failed-PipelineRun filter": func(ctx context.Context, _ *rand.Rand) (int, error) {
			_, err := c.listRecords(ctx, "-", "-", failedFilter, 50, "")
			return 1, err
		},
		"label filter": func(ctx context.Context, _ *rand.Rand) (int, error) {
			_, err := c.listRecords(ctx, "-", "-", labelFilter, 50, "")
			return 1, err
		},
		"20 pages of 50": func(ctx context.Context, _ *rand.Rand) (int, error) {
			token := ""
			for page := range pagesPerWalk {
				list, err := c.listRecords(ctx, "-", "-", "", 50, token)
				if err != nil || list.NextPageToken == "" {
					return page + 1, err
				}
				token = list.NextPageToken
			}
			return pagesPerWalk, nil
		},
	}
}

// recordFields is what a REST record carries besides its name, asked of
// GraphQL so that both answer with the same content.
const recordFields = `name dataType data createTime updateTime etag`

// graphqlWork are the same workloads through Annals' GraphQL. The
// dashboard asks the typed view of the tree in one request; the others
// ask the same content as the REST answers.
func graphqlWork(client *http.Client, endpoint string, in targetInputs) map[string]unit {
	one := func(name string, body func(rnd *rand.Rand) map[string]any) unit {
		return func(ctx context.Context, rnd *rand.Rand) (int, error) {
			return 1, post(ctx, client, endpoint, name, body(rnd), nil)
		}
	}
	page := `query($c: String) { records(parent: "-", first: 50, after: $c, orderBy: {field: CREATE_TIME, direction: DESC}) {
  pageInfo { hasNextPage endCursor } nodes { ` + recordFields + ` } } }`
	return map[string]unit{
		"dashboard tree": one("side_dashboard", func(*rand.Rand) map[string]any {
			return map[string]any{"query": dashboardQuery, "variables": map[string]any{"ns": in.namespace}}
		}),
		"get one record by name": one("side_record", func(rnd *rand.Rand) map[string]any {
			return map[string]any{"query": `query($n: String!) { record(name: $n) { ` + recordFields + ` } }`,
				"variables": map[string]any{"n": in.names[rnd.IntN(len(in.names))]}}
		}),
		"failed-PipelineRun filter": one("side_failed", func(*rand.Rand) map[string]any {
			return map[string]any{"query": `{ records(parent: "-", first: 50, orderBy: {field: CREATE_TIME, direction: DESC},
  where: {dataTypes: ["tekton.dev/v1.PipelineRun"], reasons: ["Failed"]}) { nodes { ` + recordFields + ` } } }`}
		}),
		"label filter": one("side_label", func(*rand.Rand) map[string]any {
			return map[string]any{"query": `{ records(parent: "-", first: 50, orderBy: {field: CREATE_TIME, direction: DESC},
  where: {labels: [{key: "app", values: ["web"]}]}) { nodes { ` + recordFields + ` } } }`}
		}),
		"20 pages of 50": func(ctx context.Context, _ *rand.Rand) (int, error) {
			var cursor any
			for n := range pagesPerWalk {
				var out struct {
					Data struct {
						Records struct {
							PageInfo struct {
								HasNextPage bool
								EndCursor   string
							}
						}
					}
				}
				if err := post(ctx, client, endpoint, "side_pages", map[string]any{"query": page, "variables": map[string]any{"c": cursor}}, &out); err != nil {
					return n + 1, err
				}
				if !out.Data.Records.PageInfo.HasNextPage {
					return n + 1, nil
				}
				cursor = out.Data.Records.PageInfo.EndCursor
			}
			return pagesPerWalk, nil
		},
	}
}

// sideBySideWork lists the workloads in table order, and how many units of
// each a client set runs: whole trees and walks are many calls each.
var sideBySideWork = []struct {
	name     string
	perUnits int // divides the request budget
}{
	{"dashboard tree", 10},
	{"get one record by name", 1},
	{"failed-PipelineRun filter", 1},
	{"label filter", 1},
	{"20 pages of 50", 20},
}

// compareSideBySide drives every workload against Annals' GraphQL, Annals'
// REST API and, when upstream is set, the upstream REST API, each from
// clients concurrent clients.
func compareSideBySide(ctx context.Context, httpClient *http.Client, annalsBase, upstream, upstreamToken string, clients, requests int) ([]SideBySide, error) {
	annalsREST := &restClient{base: annalsBase, http: httpClient}
	annalsInputs, err := discover(ctx, annalsREST)
	if err != nil {
		return nil, fmt.Errorf("annals: %w", err)
	}
	targets := map[string]map[string]unit{
		"rest":    restWork(annalsREST, annalsInputs),
		"graphql": graphqlWork(httpClient, annalsBase+"/graphql", annalsInputs),
	}
	if upstream != "" {
		up := &restClient{base: strings.TrimSuffix(upstream, "/"), token: upstreamToken, http: httpClient}
		upInputs, err := discover(ctx, up)
		if err != nil {
			return nil, fmt.Errorf("upstream: %w", err)
		}
		targets["upstream"] = restWork(up, upInputs)
	}
	var rows []SideBySide
	for _, w := range sideBySideWork {
		units := max(clients, requests/w.perUnits)
		row := SideBySide{Work: w.name}
		row.REST, row.CallsREST = drive(ctx, w.name, targets["rest"][w.name], clients, units)
		row.GraphQL, row.CallsGraphQL = drive(ctx, w.name, targets["graphql"][w.name], clients, units)
		if work, ok := targets["upstream"]; ok {
			res, _ := drive(ctx, w.name, work[w.name], clients, units)
			row.Upstream = &res
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// drive runs units of work from clients concurrent clients and returns
// their latencies and the most HTTP calls one unit made.
func drive(ctx context.Context, name string, work unit, clients, units int) (QueryResult, int) {
	var mostCalls atomic.Int64
	res := measure(name, clients, units, func(rnd *rand.Rand) error {
		calls, err := work(ctx, rnd)
		maxOf(&mostCalls, int64(calls))
		return err
	})
	return res, int(mostCalls.Load())
}

// printSideBySide writes the comparison as a Markdown table: units per
// second and p95 per target, and the ratio of Annals' GraphQL to the
// baseline (upstream's REST when measured, else Annals' own REST).
func printSideBySide(w io.Writer, rows []SideBySide) {
	if len(rows) == 0 {
		return
	}
	withUpstream := rows[0].Upstream != nil
	cell := func(q QueryResult) string {
		errs := ""
		if q.Errors > 0 {
			errs = fmt.Sprintf(", %d errors", q.Errors)
		}
		return fmt.Sprintf("%.1f/s, p95 %.1f ms%s", q.PerSec, q.P95ms, errs)
	}
	ratio := func(a, b QueryResult) string {
		if b.PerSec == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1fx", a.PerSec/b.PerSec)
	}
	if withUpstream {
		fmt.Fprintln(w, "\n| work | upstream REST | Annals REST | Annals GraphQL | GraphQL / upstream | Annals REST / upstream | calls (REST, GraphQL) |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
		for _, r := range rows {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %d, %d |\n", r.Work, cell(*r.Upstream), cell(r.REST), cell(r.GraphQL),
				ratio(r.GraphQL, *r.Upstream), ratio(r.REST, *r.Upstream), r.CallsREST, r.CallsGraphQL)
		}
		return
	}
	fmt.Fprintln(w, "\n| work | Annals REST | Annals GraphQL | GraphQL / REST | calls (REST, GraphQL) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d, %d |\n", r.Work, cell(r.REST), cell(r.GraphQL), ratio(r.GraphQL, r.REST), r.CallsREST, r.CallsGraphQL)
	}
}
