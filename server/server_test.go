package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
	"github.com/annals-dev/annals/watcher"
)

// gqlResponse is a GraphQL response with errors kept apart.
type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func (r gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// post sends one GraphQL request through h with ctx.
func post(t testing.TB, ctx context.Context, h http.Handler, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req := httptest.NewRequest(http.MethodPost, "http://localhost/graphql", bytes.NewReader(body)).WithContext(ctx)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out gqlResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("status %d, body %q: %v", rec.Code, rec.Body.String(), err)
	}
	return out
}

// fixture returns a server over a store holding the runs of watcher/testdata.
func fixture(t *testing.T, s *store.Store) http.Handler {
	t.Helper()
	f, err := os.Open("../watcher/testdata/runs.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := watcher.Import(context.Background(), s, f); err != nil {
		t.Fatal(err)
	}
	return server.New(server.Config{Store: s, Introspection: true, Logger: quiet})
}

const dashboard = `query($first: Int!) {
  records(parent: "ci", where: {dataTypes: ["tekton.dev/v1.PipelineRun"]}, first: $first, orderBy: {field: START_TIME, direction: DESC}) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      name
      result { name summary { status annotations { key value } } annotations { key value } }
      pipelineRun { name status reason pipelineName duration params { name value }
        taskRuns(first: 20, orderBy: {field: START_TIME, direction: ASC}) { totalCount nodes { name taskRun {
          name status taskName steps { name container exitCode startedAt finishedAt }
          pipelineRun { name }
        } } }
      }
    } }
  }
}`

func TestDashboardQuery(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		resp := post(t, context.Background(), h, dashboard, map[string]any{"first": 50})
		if len(resp.Errors) > 0 {
			t.Fatalf("errors: %+v", resp.Errors)
		}
		var got struct {
			Records struct {
				TotalCount int
				Edges      []struct {
					Node struct {
						Name        string
						PipelineRun struct {
							Name, Status, PipelineName string
							TaskRuns                   struct {
								TotalCount int
								Nodes      []struct {
									TaskRun struct {
										Name, Status string
										Steps        []struct {
											Name     string
											ExitCode *int
										}
										PipelineRun struct{ Name string }
									}
								}
							}
						}
					}
				}
			}
		}
		if err := json.Unmarshal(resp.Data, &got); err != nil {
			t.Fatal(err)
		}
		if got.Records.TotalCount != 3 || len(got.Records.Edges) != 3 {
			t.Fatalf("want the 3 PipelineRuns of namespace ci, got %d (%d edges)", got.Records.TotalCount, len(got.Records.Edges))
		}
		// Newest start first: the running one, the failed one, the succeeded one.
		wantStatus := []string{"RUNNING", "FAILED", "SUCCEEDED"}
		wantTaskRuns := []int{1, 2, 3}
		for i, e := range got.Records.Edges {
			pr := e.Node.PipelineRun
			if pr.Status != wantStatus[i] || pr.PipelineName != "build-web" || len(pr.TaskRuns.Nodes) != wantTaskRuns[i] || pr.TaskRuns.TotalCount != wantTaskRuns[i] {
				t.Errorf("pipelinerun %d: %+v", i, pr)
			}
			for _, tr := range pr.TaskRuns.Nodes {
				if tr.TaskRun.PipelineRun.Name != e.Node.Name || len(tr.TaskRun.Steps) == 0 {
					t.Errorf("taskrun %s: owner %q, %d steps", tr.TaskRun.Name, tr.TaskRun.PipelineRun.Name, len(tr.TaskRun.Steps))
				}
			}
		}
		failed := got.Records.Edges[1].Node.PipelineRun.TaskRuns.Nodes[1].TaskRun
		if failed.Status != "FAILED" || failed.Steps[len(failed.Steps)-1].ExitCode == nil || *failed.Steps[len(failed.Steps)-1].ExitCode != 2 {
			t.Errorf("failed taskrun: %+v", failed)
		}
	})
}

// The dashboard costs the same number of SQL statements whatever the page size.
func TestDashboardStatementCount(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		counts := map[int]int64{}
		for _, first := range []int{1, 2, 3, 50} {
			ctx, n := store.CountStatements(context.Background())
			if resp := post(t, ctx, h, dashboard, map[string]any{"first": first}); len(resp.Errors) > 0 {
				t.Fatalf("errors: %+v", resp.Errors)
			}
			counts[first] = n.Load()
		}
		for first, n := range counts {
			if n != counts[1] {
				t.Errorf("page size %d costs %d statements, page size 1 costs %d", first, n, counts[1])
			}
		}
		// records, count, results, annotations, taskRuns, taskRun counts
		// (one per PipelineRun: counts of one parent's filtered list), owners.
		t.Logf("dashboard query: %d SQL statements", counts[50])
	})
}

func TestPagingOverHTTP(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		srv := httptest.NewServer(fixture(t, s))
		defer srv.Close()
		seen := map[string]bool{}
		after := ""
		for page := 0; ; page++ {
			body, _ := json.Marshal(map[string]any{
				"query":     `query($after: String) { records(parent: "-", first: 2, after: $after) { edges { node { name } } pageInfo { hasNextPage endCursor } } }`,
				"variables": map[string]any{"after": nilIfEmpty(after)},
			})
			resp, err := http.Post(srv.URL+"/graphql", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Data struct {
					Records struct {
						Edges []struct {
							Node struct{ Name string }
						}
						PageInfo struct {
							HasNextPage bool
							EndCursor   string
						}
					}
				}
			}
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			for _, e := range out.Data.Records.Edges {
				if seen[e.Node.Name] {
					t.Fatalf("record %s on two pages", e.Node.Name)
				}
				seen[e.Node.Name] = true
			}
			if !out.Data.Records.PageInfo.HasNextPage {
				break
			}
			after = out.Data.Records.PageInfo.EndCursor
		}
		if len(seen) != 13 {
			t.Errorf("paged through %d records, want 13", len(seen))
		}
	})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func TestMutations(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := server.New(server.Config{Store: s, Logger: quiet})
		ctx := context.Background()
		resp := post(t, ctx, h, `mutation { createResult(input: {namespace: "ci", annotations: [{key: "team", value: "web"}]}) { id name etag annotation(key: "team") } }`, nil)
		var created struct {
			CreateResult struct{ ID, Name, Etag, Annotation string }
		}
		json.Unmarshal(resp.Data, &created)
		if len(resp.Errors) > 0 || created.CreateResult.Annotation != "web" {
			t.Fatalf("create: %+v %s", resp.Errors, resp.Data)
		}
		res := created.CreateResult
		resp = post(t, ctx, h, `mutation($name: String!) { createRecord(input: {result: $name, dataType: "example.com/v1.Note", data: {text: "hello"}}) { name data etag } }`,
			map[string]any{"name": res.Name})
		var rec struct {
			CreateRecord struct {
				Name, Etag string
				Data       map[string]string
			}
		}
		json.Unmarshal(resp.Data, &rec)
		if len(resp.Errors) > 0 || rec.CreateRecord.Data["text"] != "hello" {
			t.Fatalf("create record: %+v %s", resp.Errors, resp.Data)
		}
		upd := `mutation($name: String!, $etag: String) { updateRecord(name: $name, data: {text: "bye"}, etag: $etag) { etag } }`
		if r := post(t, ctx, h, upd, map[string]any{"name": rec.CreateRecord.Name, "etag": "stale"}); r.code() != "CONFLICT" {
			t.Errorf("stale etag: %+v", r.Errors)
		}
		if r := post(t, ctx, h, upd, map[string]any{"name": rec.CreateRecord.Name, "etag": rec.CreateRecord.Etag}); len(r.Errors) > 0 {
			t.Errorf("update: %+v", r.Errors)
		}
		if r := post(t, ctx, h, `mutation($name: String!) { setAnnotations(name: $name, annotations: [{key: "x", value: "1"}]) { annotations { key value } } }`,
			map[string]any{"name": res.Name}); len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"x"`) {
			t.Errorf("set annotations: %+v %s", r.Errors, r.Data)
		}
		// A node fetched by its global ID is the same Result.
		if r := post(t, ctx, h, `query($id: ID!) { node(id: $id) { ... on Result { name } } }`, map[string]any{"id": res.ID}); !strings.Contains(string(r.Data), res.Name) {
			t.Errorf("node: %+v %s", r.Errors, r.Data)
		}
		if r := post(t, ctx, h, `mutation($name: String!) { deleteResult(name: $name) { name } }`, map[string]any{"name": res.Name}); len(r.Errors) > 0 {
			t.Errorf("delete: %+v", r.Errors)
		}
		if r := post(t, ctx, h, `query($name: String!) { record(name: $name) { name } }`, map[string]any{"name": rec.CreateRecord.Name}); string(r.Data) != `{"record":null}` {
			t.Errorf("record of a deleted result: %s", r.Data)
		}
	})
}

func TestBadInput(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		deep := "{ records(parent: \"-\") { edges { node { result { records { edges { node { result { records { edges { node { result { records { edges { node { name } } } } } } } } } } } } } } } }"
		tests := []struct {
			name, query, code, mention string
		}{
			{"malformed", `{ records(parent: "-" { name } }`, "GRAPHQL_PARSE_FAILED", "Expected"},
			{"unknown field", `{ records(parent: "-") { colour } }`, "GRAPHQL_VALIDATION_FAILED", "colour"},
			{"bad cursor", `{ records(parent: "-", after: "bm90LWEtY3Vyc29y") { edges { cursor } } }`, "INVALID_ARGUMENT", "cursor"},
			{"bad filter", `{ records(parent: "-", filter: "data.x ==") { edges { cursor } } }`, "INVALID_ARGUMENT", "Syntax error"},
			{"unknown filter field", `{ records(parent: "-", filter: "colour == 'red'") { edges { cursor } } }`, "INVALID_ARGUMENT", "colour"},
			{"unsupported function", `{ records(parent: "-", filter: "name.lowerAscii() == 'x'") { edges { cursor } } }`, "INVALID_ARGUMENT", "lowerAscii"},
			{"page too large", `{ records(parent: "-", first: 100000) { edges { cursor } } }`, "INVALID_ARGUMENT", "1000"},
			{"invalid result name", `{ result(name: "ci/results/nope") { name } }`, "INVALID_ARGUMENT", "UUID"},
			{"invalid namespace", `{ results(parent: "Bad_NS") { totalCount } }`, "INVALID_ARGUMENT", "namespace"},
			{"bad global id", `{ node(id: "zzz") { id } }`, "INVALID_ARGUMENT", "ID"},
			{"bad status", `{ records(parent: "-", where: {statuses: [DONE]}) { totalCount } }`, "GRAPHQL_VALIDATION_FAILED", "DONE"},
			{"too deep", deep, "INVALID_ARGUMENT", "limit is 15"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := post(t, context.Background(), h, tt.query, nil)
				if r.code() != tt.code || !strings.Contains(r.Errors[0].Message, tt.mention) {
					t.Errorf("got %+v, want code %s mentioning %q", r.Errors, tt.code, tt.mention)
				}
			})
		}
	})
}

func TestBodyLimitAndPlayground(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	srv := httptest.NewServer(server.New(server.Config{Store: s, MaxBodyBytes: 1024, Logger: quiet}))
	defer srv.Close()
	big := fmt.Sprintf(`{"query":"{ records(parent: \"-\") { totalCount } }","variables":{"pad":%q}}`, strings.Repeat("x", 2048))
	resp, err := http.Post(srv.URL+"/graphql", "application/json", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: status %d", resp.StatusCode)
	}
	for _, path := range []string{"/", "/healthz", "/readyz"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
	// GET queries work too.
	resp, err = http.Get(srv.URL + `/graphql?query={records(parent:"-"){totalCount}}`)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /graphql: %d", resp.StatusCode)
	}
}

var quiet = slog.New(slog.DiscardHandler)

// Filters over the sample runs, through GraphQL, on both databases.
func TestFiltersOverGraphQL(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		tests := []struct {
			name, entity, args string
			want               int
		}{
			{"typed status", "records", `where: {statuses: [FAILED]}`, 3},
			{"typed cancelled", "records", `where: {statuses: [CANCELLED]}`, 2},
			{"typed pipeline", "records", `where: {pipeline: "build-web"}`, 9},
			{"typed task", "records", `where: {task: "compile"}`, 2},
			{"typed label equals", "records", `where: {labels: [{key: "app", values: ["web"]}]}`, 4},
			{"typed label in", "records", `where: {labels: [{key: "tekton.dev/task", op: IN, values: ["fetch", "test"]}]}`, 4},
			{"typed label exists", "records", `where: {labels: [{key: "tekton.dev/pipelineRun", op: EXISTS}]}`, 7},
			{"typed label missing", "records", `where: {labels: [{key: "tekton.dev/pipelineRun", op: NOT_EXISTS}]}`, 6},
			{"typed owner", "records", `where: {pipelineRun: "build-web-7x2kq"}`, 3},
			{"typed started after", "records", `where: {started: {after: "2026-03-03T00:00:00Z"}}`, 6},
			{"typed window", "records", `where: {started: {after: "2026-03-01T00:00:00Z", before: "2026-03-02T00:00:00Z"}, dataTypes: ["tekton.dev/v1.PipelineRun"]}`, 1},
			{"typed name prefix", "records", `where: {namePrefix: "build-web-9fk3m"}`, 3},
			{"typed prefix is literal", "records", `where: {namePrefix: "build_web"}`, 0},
			{"cel data type", "records", `filter: "data_type == 'tekton.dev/v1.PipelineRun'"`, 4},
			{"cel reason", "records", `filter: "data.status.conditions[0].reason == 'Failed'"`, 2},
			{"cel label and namespace", "records", `filter: "data.metadata.labels['app'] == 'web' && data.metadata.namespace == 'ci'"`, 3},
			{"cel negated label", "records", `filter: "!(data.metadata.labels['app'] == 'web')"`, 0},
			{"cel startsWith", "records", `filter: "data.metadata.name.startsWith('deploy-')"`, 2},
			{"cel size", "records", `filter: "size(data.spec.params) == 2"`, 4},
			{"cel time", "records", `filter: "create_time > timestamp('2020-01-01T00:00:00Z')"`, 13},
			{"cel in list", "records", `filter: "data_type in ['tekton.dev/v1beta1.TaskRun']"`, 1},
			{"cel key in map", "records", `filter: "'tekton.dev/pipelineRun' in data.metadata.labels"`, 7},
			{"cel timestamp of data", "records", `filter: "timestamp(data.status.startTime) >= timestamp('2026-03-05T00:00:00Z')"`, 2},
			{"cel or", "records", `filter: "data.metadata.namespace == 'prod' || data.status.conditions[0].reason == 'Running'"`, 5},
			{"cel has", "records", `filter: "has(data.status.completionTime)"`, 11},
			{"cel time coercion as in Tekton Results", "records", `filter: "data.status.completionTime > timestamp('2026-03-04T00:00:00Z')"`, 2},
			{"cel type constant", "records", `filter: "data_type == PIPELINE_RUN && data.metadata.namespace == 'ci'"`, 3},
			{"results typed status", "results", `where: {statuses: [SUCCEEDED]}`, 2},
			{"results cel status", "results", `filter: "summary.status == FAILURE"`, 2},
			{"results cel type", "results", `filter: "summary.type == 'tekton.dev/v1.PipelineRun' && summary.status != SUCCESS"`, 3},
			{"results cel type constant", "results", `filter: "summary.type == PIPELINE_RUN && summary.status != SUCCESS"`, 3},
			{"results namespace", "results", `where: {namespace: "prod"}`, 2},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				q := fmt.Sprintf(`{ %s(parent: "-", %s) { totalCount edges { cursor } } }`, tt.entity, tt.args)
				r := post(t, context.Background(), h, q, nil)
				if len(r.Errors) > 0 {
					t.Fatalf("errors: %+v", r.Errors)
				}
				var got map[string]struct {
					TotalCount int
					Edges      []struct{ Cursor string }
				}
				json.Unmarshal(r.Data, &got)
				if c := got[tt.entity]; c.TotalCount != tt.want || len(c.Edges) != tt.want {
					t.Errorf("%s: %d counted, %d listed; want %d", tt.args, c.TotalCount, len(c.Edges), tt.want)
				}
			})
		}
		// The summary carries the identity run's annotations.
		r := post(t, context.Background(), h, `{ results(parent: "ci", filter: "summary.status == SUCCESS && summary.type == 'tekton.dev/v1.PipelineRun'") { nodes { summary { annotations { key value } } } } }`, nil)
		if !strings.Contains(string(r.Data), "chains.tekton.dev/signed") {
			t.Errorf("summary annotations: %s %+v", r.Data, r.Errors)
		}
	})
}

// A database that fails is an INTERNAL error with a request id, never an
// empty page, and its details stay in the server log.
func TestDatabaseFailureIsInternal(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		var logged bytes.Buffer
		h := server.New(server.Config{Store: s, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
		s.Close()
		for _, q := range []string{`{ records(parent: "-") { edges { cursor } } }`, `{ results(parent: "ci") { totalCount } }`,
			`{ result(name: "ci/results/0b5c6a52-1d1e-4c39-9b8e-7a8f3c1d2e01") { name } }`} {
			r := post(t, context.Background(), h, q, nil)
			if r.code() != "INTERNAL" || !strings.Contains(r.Errors[0].Message, "request id") {
				t.Errorf("%s: %+v %s", q, r.Errors, r.Data)
			}
			if strings.Contains(r.Errors[0].Message, "sql") || strings.Contains(r.Errors[0].Message, "closed") {
				t.Errorf("error leaks details: %s", r.Errors[0].Message)
			}
		}
		if !strings.Contains(logged.String(), "request_id") {
			t.Errorf("failure not logged with its request id: %s", logged.String())
		}
	})
}

// Nested connections multiply the cost of an operation; one over the limit
// is refused before any SQL runs, with the cost and the limit in the error.
func TestComplexityLimit(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	h := server.New(server.Config{Store: s, Logger: quiet, MaxComplexity: 2000})
	// cost: records 1 + 40 * (name 1 + pipelineRun 1 + taskRuns 1 + n * (nodes 1 + name 1))
	query := func(n int) string {
		return fmt.Sprintf(`{ records(parent: "-", first: 40) { nodes { name pipelineRun { taskRuns(first: %d) { nodes { name } } } } } }`, n)
	}
	ctx, count := store.CountStatements(context.Background())
	if r := post(t, ctx, h, query(20), nil); len(r.Errors) > 0 { // 1 + 40*(3 + 20*2) = 1721
		t.Errorf("a query under the limit was refused: %+v", r.Errors)
	}
	ctx, count = store.CountStatements(context.Background())
	r := post(t, ctx, h, query(25), nil) // 1 + 40*(3 + 25*2) = 2121
	if r.code() != "COMPLEXITY_LIMIT_EXCEEDED" || !strings.Contains(r.Errors[0].Message, "2000") {
		t.Errorf("a query over the limit: %+v", r.Errors)
	}
	if count.Load() != 0 {
		t.Errorf("a refused query ran %d statements", count.Load())
	}
}

func TestLogsThroughGraphQLAndDownload(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		ctx := context.Background()
		trName := store.RecordName("ci", "5eed0000-0000-4000-8000-000000000001", "5eed0000-0000-4000-8000-00000000000c")
		tr, err := s.GetRecord(ctx, trName)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Repeat("compiling...\n", 30000) + "done\n" // 390 KB
		if _, err := s.WriteLog(ctx, store.LogWrite{UID: "5eed0000-0000-4000-8000-0000000000a1", TaskRun: tr, Step: "build", Container: "step-build"}, strings.NewReader(text), 0); err != nil {
			t.Fatal(err)
		}
		r := post(t, ctx, h, `query($n: String!) { record(name: $n) { taskRun { logs { step available truncated size text(offset: 0, length: 13) tail(lines: 2) downloadPath } } } }`,
			map[string]any{"n": trName})
		var got struct {
			Record struct {
				TaskRun struct {
					Logs []struct {
						Step, Text, Tail, DownloadPath string
						Available, Truncated           bool
						Size                           int
					}
				}
			}
		}
		json.Unmarshal(r.Data, &got)
		logs := got.Record.TaskRun.Logs
		if len(r.Errors) > 0 || len(logs) != 1 || logs[0].Text != "compiling...\n" || logs[0].Tail != "compiling...\ndone\n" || logs[0].Size != len(text) || !logs[0].Available {
			t.Fatalf("logs: %+v %+v", logs, r.Errors)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		resp, err := http.Get(srv.URL + logs[0].DownloadPath)
		if err != nil {
			t.Fatal(err)
		}
		body := new(bytes.Buffer)
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || body.String() != text || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("download: %d, %d bytes", resp.StatusCode, body.Len())
		}
		for path, want := range map[string]int{"/logs/ci/results/x": http.StatusBadRequest, "/logs/" + trName: http.StatusNotFound} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
			}
		}
	})
}

func TestMetricsEndpoint(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	h := server.New(server.Config{Store: s, Logger: quiet})
	post(t, context.Background(), h, `{ records(parent: "-") { totalCount } }`, nil)
	post(t, context.Background(), h, `{ records(parent: "-", first: 100000) { totalCount } }`, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://localhost/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{`annals_graphql_operations_total{outcome="ok",type="query"} 1`, `annals_graphql_errors_total{code="INVALID_ARGUMENT"} 1`,
		"annals_graphql_operation_duration_seconds_count", "annals_graphql_operation_cost_count"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestAliasLimit(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	h := server.New(server.Config{Store: s, Logger: quiet, MaxAliases: 3})
	query := func(n int) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, ` a%d: records(parent: "-", first: 1) { totalCount }`, i)
		}
		return b.String() + " }"
	}
	if r := post(t, context.Background(), h, query(3), nil); len(r.Errors) > 0 {
		t.Errorf("3 aliases refused: %+v", r.Errors)
	}
	if r := post(t, context.Background(), h, query(4), nil); r.code() != "INVALID_ARGUMENT" || !strings.Contains(r.Errors[0].Message, "aliased") {
		t.Errorf("4 aliases: %+v", r.Errors)
	}
}

// An error the database raises while it runs a query, after it has begun
// reading rows, is an INTERNAL error, never a short or empty page. PostgreSQL
// fails the cast of an impossible date that passed the translator's pattern.
func TestDatabaseErrorMidQuery(t *testing.T) {
	s, _ := storetest.Open(t, "postgres")
	h := server.New(server.Config{Store: s, Logger: quiet})
	ctx := context.Background()
	var writes []store.RecordWrite
	for i, start := range []string{"2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z", "2026-02-30T00:00:00Z"} {
		uid := fmt.Sprintf("00000000-0000-4000-8000-00000000000%d", i+1)
		writes = append(writes, store.RecordWrite{ResultName: store.ResultName("ci", uid), UID: uid, DataType: store.TypeTaskRun,
			Data: json.RawMessage(`{"status":{"startTime":"` + start + `"}}`)})
	}
	if err := s.UpsertRecords(ctx, writes); err != nil {
		t.Fatal(err)
	}
	r := post(t, ctx, h, `{ records(parent: "-", filter: "timestamp(data.status.startTime) > timestamp('2026-01-01T00:00:00Z')") { edges { cursor } } }`, nil)
	if r.code() != "INTERNAL" || string(r.Data) != "null" {
		t.Errorf("got %s %+v, want an INTERNAL error and no data", r.Data, r.Errors)
	}
}

// padded is a valid request body of exactly n bytes.
func padded(n int) string {
	head, tail := `{"query":"{ __typename }","variables":{"pad":"`, `"}}`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

// TestLimitsJustUnderAndJustOver tries each request limit at its edge.
func TestLimitsJustUnderAndJustOver(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	h := server.New(server.Config{Store: s, Logger: quiet, MaxDepth: 3, MaxAliases: 3, MaxBodyBytes: 200, Introspection: false})
	for _, c := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"depth at the limit", `{"query":"{ records(parent: \"-\") { nodes { name } } }"}`, 200, ""},
		{"depth over", `{"query":"{ records(parent: \"-\") { nodes { result { name } } } }"}`, 200, "INVALID_ARGUMENT"},
		{"aliases at the limit", `{"query":"{ a: __typename b: __typename c: __typename }"}`, 200, ""},
		{"aliases over", `{"query":"{ a: __typename b: __typename c: __typename d: __typename }"}`, 200, "INVALID_ARGUMENT"},
		{"body at the limit", padded(200), 200, ""},
		{"body over", padded(201), 413, "INVALID_ARGUMENT"},
		{"one operation", `{"query":"{ __typename }"}`, 200, ""},
		{"a batch", `[{"query":"{ __typename }"},{"query":"{ __typename }"}]`, 400, "INVALID_ARGUMENT"},
		{"introspection off", `{"query":"{ __schema { types { name } } }"}`, 200, "INVALID_ARGUMENT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "http://localhost/graphql", strings.NewReader(c.body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var out gqlResponse
			json.Unmarshal(rec.Body.Bytes(), &out)
			if rec.Code != c.status || out.code() != c.code {
				t.Errorf("status %d code %q (%s), want %d %q", rec.Code, out.code(), strings.TrimSpace(rec.Body.String()), c.status, c.code)
			}
		})
	}
}

// TestNodesBatch: nodes(ids) of both types costs one statement per type.
func TestNodesBatch(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		ctx := context.Background()
		recs, err := s.ListRecords(ctx, store.ListOptions{First: 8})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.ListResults(ctx, store.ListOptions{First: 4})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range recs.Items {
			ids = append(ids, nodeID("Record", r.Name))
		}
		for _, r := range res.Items {
			ids = append(ids, nodeID("Result", r.Name))
		}
		cctx, count := store.CountStatements(ctx)
		resp := post(t, cctx, h, `query($ids: [ID!]!) { nodes(ids: $ids) { ... on Record { name } ... on Result { name } } }`, map[string]any{"ids": ids})
		var out struct{ Nodes []struct{ Name string } }
		json.Unmarshal(resp.Data, &out)
		if len(resp.Errors) > 0 || len(out.Nodes) != 12 || out.Nodes[0].Name != recs.Items[0].Name || out.Nodes[8].Name != res.Items[0].Name {
			t.Fatalf("%+v %s", resp.Errors, resp.Data)
		}
		if n := count.Load(); n != 2 {
			t.Errorf("%d statements for 12 nodes of two types, want 2", n)
		}
	})
}
