package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/graph"
	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/server/auth"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
	"github.com/annals-dev/annals/watcher/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// authWorld is two teams' runs (namespaces ci and prod) behind a server
// that asks the real API server, and callers with tokens and roles.
type authWorld struct {
	env    *kubetest.Env
	store  *store.Store
	url    string
	tokens map[string]string // caller -> bearer token
	names  map[string]string // what -> a Result, Record or Log name
}

// addProdFailures gives prod what ci has in the fixture: a task that
// succeeded then failed at one revision (flaky), in a Pipeline whose last
// run failed (failing, after one recovery).
func addProdFailures(t *testing.T, s *store.Store) {
	t.Helper()
	var ws []store.RecordWrite
	for i, outcome := range []string{"False", "True", "False"} {
		prUID, trUID := fmt.Sprintf("1a1a1a1a-0000-4000-8000-00000000000%d", i), fmt.Sprintf("1b1b1b1b-0000-4000-8000-00000000000%d", i)
		result := store.ResultName("prod", prUID)
		start := time.Date(2026, 3, 10+i, 8, 0, 0, 0, time.UTC)
		run := func(kind, name string, labels map[string]string) json.RawMessage {
			b, _ := json.Marshal(map[string]any{"apiVersion": "tekton.dev/v1", "kind": kind,
				"metadata": map[string]any{"name": name, "namespace": "prod", "labels": labels},
				"spec":     map[string]any{"params": []any{map[string]any{"name": "revision", "value": "v2"}}},
				"status": map[string]any{"startTime": start.Format(time.RFC3339), "completionTime": start.Add(time.Minute).Format(time.RFC3339),
					"conditions": []any{map[string]any{"type": "Succeeded", "status": outcome, "reason": "Done"}}}})
			return b
		}
		name := fmt.Sprintf("release-%d", i)
		ws = append(ws,
			store.RecordWrite{ResultName: result, UID: prUID, DataType: store.TypePipelineRun, UpdateSummary: true,
				Data: run("PipelineRun", name, map[string]string{"tekton.dev/pipeline": "release"})},
			store.RecordWrite{ResultName: result, UID: trUID, DataType: store.TypeTaskRun,
				Data: run("TaskRun", name+"-smoke", map[string]string{"tekton.dev/pipeline": "release", "tekton.dev/task": "smoke", "tekton.dev/pipelineRun": name})})
	}
	if err := s.UpsertRecords(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
}

var verbsAll = []string{"get", "list", "create", "update", "delete"}

func setupAuthWorld(t *testing.T) *authWorld {
	t.Helper()
	env := kubetest.Get(t)
	ctx := context.Background()
	s, _ := storetest.Open(t, "postgres")
	fixture(t, s) // ci and prod runs
	addProdFailures(t, s)
	w := &authWorld{env: env, store: s, tokens: map[string]string{}, names: map[string]string{}}
	for _, ns := range []string{"ci", "prod"} {
		_, err := env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
		res, err := s.ListResults(ctx, store.ListOptions{Parent: ns, First: 1})
		if err != nil {
			t.Fatal(err)
		}
		w.names[ns+"-result"] = res.Items[0].Name
		recs, err := s.ListRecords(ctx, store.ListOptions{Parent: ns, Filter: `data_type == TASK_RUN`, First: 1})
		if err != nil {
			t.Fatal(err)
		}
		w.names[ns+"-record"] = recs.Items[0].Name
		log, err := s.WriteLog(ctx, store.LogWrite{UID: "0a0a0a0a-0000-4000-8000-00000000000" + map[string]string{"ci": "1", "prod": "2"}[ns],
			TaskRun: recs.Items[0], Step: "build"}, strings.NewReader(ns+" secret log\n"), 0)
		if err != nil {
			t.Fatal(err)
		}
		w.names[ns+"-log"] = log.Name
	}
	rule := func(resources []string, verbs ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{auth.Group}, Resources: resources, Verbs: verbs}
	}
	roles := map[string][]rbacv1.PolicyRule{
		"annals-test-viewer":        {rule([]string{"results", "records", "logs"}, "get", "list")},
		"annals-test-editor":        {rule([]string{"results", "records", "logs"}, verbsAll...)},
		"annals-test-viewer-nologs": {rule([]string{"results", "records"}, "get", "list")},
		"annals-test-records-only":  {rule([]string{"records"}, "get", "list")},
		"annals-test-impersonator":  {{APIGroups: []string{""}, Resources: []string{"users"}, Verbs: []string{"impersonate"}, ResourceNames: []string{"system:serviceaccount:ci:alice"}}},
	}
	for name, rules := range roles {
		_, err := env.Kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
	// caller -> namespace of its ServiceAccount, ClusterRole, where bound ("" cluster-wide, "-" nowhere)
	callers := map[string][3]string{
		"alice": {"ci", "annals-test-viewer", "ci"},
		"bob":   {"prod", "annals-test-editor", "prod"},
		"carol": {"ci", "", "-"},
		"dave":  {"ci", "annals-test-viewer-nologs", "ci"},
		"frank": {"ci", "annals-test-records-only", "ci"},
		"imp":   {"ci", "annals-test-impersonator", ""},
		"admin": {"ci", "annals-test-viewer", ""},
	}
	for name, c := range callers {
		w.tokens[name] = w.serviceAccount(t, c[0], name, c[1], c[2])
	}
	ts := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet, Introspection: true,
		Auth: auth.NewKubernetes(env.Kube, auth.Options{CacheTTL: time.Second})}))
	t.Cleanup(ts.Close)
	w.url = ts.URL
	return w
}

// serviceAccount creates a ServiceAccount bound to role (in namespace
// bindIn, cluster-wide when "", not at all when "-") and returns a token.
func (w *authWorld) serviceAccount(t *testing.T, ns, name, role, bindIn string) string {
	t.Helper()
	ctx := context.Background()
	kube := w.env.Kube
	if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}}
	ref := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role}
	var err error
	switch bindIn {
	case "-":
	case "":
		_, err = kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name},
			Subjects: subject, RoleRef: ref}, metav1.CreateOptions{})
	default:
		_, err = kube.RbacV1().RoleBindings(bindIn).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			Subjects: subject, RoleRef: ref}, metav1.CreateOptions{})
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	tok, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authnv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Status.Token
}

// do sends a GraphQL request as caller ("" sends no credentials).
func (w *authWorld) do(t *testing.T, caller, query string, vars map[string]any, header http.Header) (int, gqlResponse) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, w.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if caller != "" {
		req.Header.Set("Authorization", "Bearer "+w.tokens[caller])
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out gqlResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("status %d, body %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func nodeID(typ, name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(typ + ":" + name))
}

// authCase is one request by one caller. field is the Query or Mutation
// field it exercises; every field of the schema must have an allowed and a
// denied case (TestEveryFieldHasAuthorizationCases).
type authCase struct {
	field, name, caller, query string
	vars                       func(w *authWorld) map[string]any
	code                       string // "": allowed, with no error
	check                      func(t *testing.T, w *authWorld, data json.RawMessage)
}

func names(keys ...string) func(w *authWorld) map[string]any {
	return func(w *authWorld) map[string]any {
		out := map[string]any{}
		for _, k := range keys {
			out[strings.ReplaceAll(k, "-", "_")] = w.names[k]
		}
		return out
	}
}

// onlyNamespace checks that every "name" in data lies in namespace ns, and
// that there is at least one when want is true.
func onlyNamespace(ns string, want bool) func(t *testing.T, w *authWorld, data json.RawMessage) {
	return func(t *testing.T, _ *authWorld, data json.RawMessage) {
		t.Helper()
		var found int
		for _, part := range strings.Split(string(data), `"name":"`)[1:] {
			found++
			if !strings.HasPrefix(part, ns+"/") {
				t.Errorf("a name outside %s: %.60s", ns, part)
			}
		}
		if want != (found > 0) {
			t.Errorf("found %d names in %s", found, data)
		}
	}
}

func totalCount(want int) func(t *testing.T, w *authWorld, data json.RawMessage) {
	return func(t *testing.T, _ *authWorld, data json.RawMessage) {
		t.Helper()
		if !strings.Contains(string(data), `"totalCount":`+itoa(want)) {
			t.Errorf("want totalCount %d in %s", want, data)
		}
	}
}

// facetValues checks that the "value"s in data are exactly these.
func facetValues(want ...string) func(t *testing.T, w *authWorld, data json.RawMessage) {
	return func(t *testing.T, _ *authWorld, data json.RawMessage) {
		t.Helper()
		var got []string
		for _, part := range strings.Split(string(data), `"value":"`)[1:] {
			got = append(got, part[:strings.IndexByte(part, '"')])
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("values %v, want %v in %s", got, want, data)
		}
	}
}

// namespacesExactly checks that the "namespace"s in data are these, in order.
func namespacesExactly(want ...string) func(t *testing.T, w *authWorld, data json.RawMessage) {
	return func(t *testing.T, _ *authWorld, data json.RawMessage) {
		t.Helper()
		var got []string
		for _, part := range strings.Split(string(data), `"namespace":"`)[1:] {
			got = append(got, part[:strings.IndexByte(part, '"')])
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("namespaces %v, want %v in %s", got, want, data)
		}
	}
}

func jsonHas(want string) func(t *testing.T, w *authWorld, data json.RawMessage) {
	return func(t *testing.T, _ *authWorld, data json.RawMessage) {
		t.Helper()
		if !strings.Contains(string(data), want) {
			t.Errorf("want %s in %s", want, data)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

var authCases = []authCase{
	{field: "results", name: "own namespace", caller: "alice", query: `{ results(parent: "ci") { totalCount nodes { name } } }`, check: onlyNamespace("ci", true)},
	{field: "results", name: "other namespace", caller: "alice", query: `{ results(parent: "prod") { nodes { name } } }`, code: "PERMISSION_DENIED"},
	{field: "results", name: "all namespaces: only own", caller: "alice", query: `{ results(parent: "-") { nodes { name } } }`, check: onlyNamespace("ci", true)},
	{field: "results", name: "all namespaces, no rights: empty, count 0", caller: "carol", query: `{ results(parent: "-") { totalCount nodes { name } } }`, check: totalCount(0)},
	{field: "results", name: "cluster-wide role sees both", caller: "admin", query: `{ results(parent: "-", filter: "name.startsWith('prod/')") { nodes { name } } }`, check: onlyNamespace("prod", true)},
	{field: "results", name: "no credentials", caller: "", query: `{ results(parent: "ci") { totalCount } }`, code: "UNAUTHENTICATED"},

	{field: "records", name: "filter cannot reach another namespace", caller: "alice", query: `{ records(parent: "-", filter: "data.metadata.namespace == 'prod'") { totalCount nodes { name } } }`, check: totalCount(0)},
	{field: "records", name: "typed where cannot either", caller: "alice", query: `{ records(parent: "-", where: {namespace: "prod"}) { totalCount } }`, check: totalCount(0)},
	{field: "records", name: "editor of prod sees prod only", caller: "bob", query: `{ records(parent: "-") { nodes { name } } }`, check: onlyNamespace("prod", true)},
	{field: "records", name: "other namespace", caller: "alice", query: `{ records(parent: "prod") { totalCount } }`, code: "PERMISSION_DENIED"},
	// The run filters and orders of issue 16 stay within the caller's namespaces.
	{field: "records", name: "runNames of another team's run", caller: "alice", query: `{ records(parent: "-", where: {runNames: ["deploy-api-2mzpq", "backup-db-z1x9c"]}) { totalCount nodes { name } } }`, check: totalCount(0)},
	{field: "records", name: "nameContains of another team's run", caller: "alice", query: `{ records(parent: "-", where: {nameContains: "deploy-api"}) { totalCount } }`, check: totalCount(0)},
	{field: "records", name: "kinds: own only", caller: "alice", query: `{ records(parent: "-", where: {kinds: [PIPELINE_RUN, TASK_RUN]}, orderBy: {field: NAME, unfinishedFirst: true}) { totalCount nodes { name } } }`, check: onlyNamespace("ci", true)},
	{field: "records", name: "kinds and names of the other team, cluster-wide role", caller: "admin", query: `{ records(parent: "-", where: {kinds: [TASK_RUN], nameContains: "backup-db"}) { totalCount nodes { name } } }`, check: onlyNamespace("prod", true)},
	{field: "records", name: "order by pipeline: own only", caller: "alice", query: `{ records(parent: "-", orderBy: {field: PIPELINE, direction: ASC}) { nodes { name } } }`, check: onlyNamespace("ci", true)},
	{field: "records", name: "unknown data type refused", caller: "alice", query: `{ records(parent: "ci", where: {dataTypes: ["PipelineRun"]}) { totalCount } }`, code: "INVALID_ARGUMENT"},

	// Analytics aggregate only what records would list.
	{field: "recordStats", name: "all namespaces: own only", caller: "alice", query: `{ recordStats(parent: "-", groupBy: [{dimension: NAMESPACE}]) { groups { key { value } count } } }`, check: facetValues("ci")},
	{field: "recordStats", name: "filter cannot reach another namespace", caller: "alice", query: `{ recordStats(parent: "-", filter: "data.metadata.namespace == 'prod'") { groups { count } } }`, check: jsonHas(`"count":0`)},
	{field: "recordStats", name: "cluster-wide role sees both", caller: "admin", query: `{ recordStats(parent: "-", groupBy: [{dimension: NAMESPACE}]) { groups { key { value } count } } }`, check: facetValues("ci", "prod")},
	{field: "recordStats", name: "other namespace", caller: "alice", query: `{ recordStats(parent: "prod") { groups { count } } }`, code: "PERMISSION_DENIED"},
	{field: "recordStats", name: "no credentials", caller: "", query: `{ recordStats(parent: "ci") { groups { count } } }`, code: "UNAUTHENTICATED"},
	{field: "recordFacets", name: "all namespaces: own only", caller: "alice", query: `{ recordFacets(parent: "-", dimension: NAMESPACE) { value count } }`, check: facetValues("ci")},
	{field: "recordFacets", name: "no rights: nothing", caller: "carol", query: `{ recordFacets(parent: "-", dimension: NAMESPACE) { value count } }`, check: facetValues()},
	{field: "recordFacets", name: "other namespace", caller: "alice", query: `{ recordFacets(parent: "prod", dimension: PIPELINE) { value } }`, code: "PERMISSION_DENIED"},
	// Both teams have a flaky task and a failing Pipeline (see setupAuthWorld).
	{field: "flakyTasks", name: "all namespaces: own only", caller: "alice", query: `{ flakyTasks(parent: "-") { totalCount tasks { namespace task } } }`, check: namespacesExactly("ci")},
	{field: "flakyTasks", name: "filter cannot reach another namespace", caller: "alice", query: `{ flakyTasks(parent: "-", filter: "data.metadata.namespace == 'prod'") { totalCount tasks { namespace } } }`, check: totalCount(0)},
	{field: "flakyTasks", name: "cluster-wide role sees both", caller: "admin", query: `{ flakyTasks(parent: "-") { totalCount tasks { namespace task } } }`, check: namespacesExactly("ci", "prod")},
	{field: "flakyTasks", name: "no rights: nothing", caller: "carol", query: `{ flakyTasks(parent: "-") { totalCount tasks { namespace } } }`, check: totalCount(0)},
	{field: "flakyTasks", name: "other namespace", caller: "alice", query: `{ flakyTasks(parent: "prod") { totalCount } }`, code: "PERMISSION_DENIED"},
	{field: "flakyTasks", name: "no credentials", caller: "", query: `{ flakyTasks(parent: "ci") { totalCount } }`, code: "UNAUTHENTICATED"},
	{field: "pipelineRecovery", name: "all namespaces: own only", caller: "alice", query: `{ pipelineRecovery(parent: "-") { totalCount pipelines { namespace pipeline } } }`, check: namespacesExactly("ci")},
	{field: "pipelineRecovery", name: "filter cannot reach another namespace", caller: "alice", query: `{ pipelineRecovery(parent: "-", filter: "data.metadata.namespace == 'prod'") { totalCount pipelines { namespace } } }`, check: totalCount(0)},
	{field: "pipelineRecovery", name: "cluster-wide role sees both", caller: "admin", query: `{ pipelineRecovery(parent: "-") { totalCount pipelines { namespace pipeline } } }`, check: namespacesExactly("ci", "prod")},
	{field: "pipelineRecovery", name: "other namespace", caller: "alice", query: `{ pipelineRecovery(parent: "prod") { totalCount } }`, code: "PERMISSION_DENIED"},
	{field: "pipelineRecovery", name: "no credentials", caller: "", query: `{ pipelineRecovery(parent: "ci") { totalCount } }`, code: "UNAUTHENTICATED"},

	{field: "result", name: "own", caller: "alice", query: `query($ci_result: String!) { result(name: $ci_result) { name } }`, vars: names("ci-result"), check: onlyNamespace("ci", true)},
	{field: "result", name: "other team's", caller: "alice", query: `query($prod_result: String!) { result(name: $prod_result) { name } }`, vars: names("prod-result"), code: "PERMISSION_DENIED"},
	{field: "result", name: "other team's that does not exist: the same answer", caller: "alice", query: `{ result(name: "prod/results/0b0b0b0b-0000-4000-8000-000000000000") { name } }`, code: "PERMISSION_DENIED"},

	{field: "record", name: "own", caller: "alice", query: `query($ci_record: String!) { record(name: $ci_record) { name } }`, vars: names("ci-record"), check: onlyNamespace("ci", true)},
	{field: "record", name: "other team's", caller: "alice", query: `query($prod_record: String!) { record(name: $prod_record) { name data } }`, vars: names("prod-record"), code: "PERMISSION_DENIED"},

	{field: "node", name: "own", caller: "alice", query: `query($id: ID!) { node(id: $id) { ... on Record { name } } }`,
		vars: func(w *authWorld) map[string]any { return map[string]any{"id": nodeID("Record", w.names["ci-record"])} }, check: onlyNamespace("ci", true)},
	{field: "node", name: "other team's", caller: "alice", query: `query($id: ID!) { node(id: $id) { ... on Result { name } } }`,
		vars: func(w *authWorld) map[string]any {
			return map[string]any{"id": nodeID("Result", w.names["prod-result"])}
		}, code: "PERMISSION_DENIED"},
	{field: "nodes", name: "own", caller: "alice", query: `query($ids: [ID!]!) { nodes(ids: $ids) { ... on Record { name } } }`,
		vars: func(w *authWorld) map[string]any {
			return map[string]any{"ids": []string{nodeID("Record", w.names["ci-record"])}}
		}, check: onlyNamespace("ci", true)},
	{field: "nodes", name: "one of them another team's", caller: "alice", query: `query($ids: [ID!]!) { nodes(ids: $ids) { ... on Record { name data } } }`,
		vars: func(w *authWorld) map[string]any {
			return map[string]any{"ids": []string{nodeID("Record", w.names["ci-record"]), nodeID("Record", w.names["prod-record"])}}
		}, code: "PERMISSION_DENIED"},

	// Federation: references from a supergraph are authorized like lookups.
	{field: "_entities", name: "own Record by name", caller: "alice", query: `query($r: [_Any!]!) { _entities(representations: $r) { ... on Record { name } } }`,
		vars: func(w *authWorld) map[string]any {
			return map[string]any{"r": []any{map[string]any{"__typename": "Record", "name": w.names["ci-record"]}}}
		}, check: onlyNamespace("ci", true)},
	{field: "_entities", name: "other team's Result by id", caller: "alice", query: `query($r: [_Any!]!) { _entities(representations: $r) { ... on Result { name } } }`,
		vars: func(w *authWorld) map[string]any {
			return map[string]any{"r": []any{map[string]any{"__typename": "Result", "id": nodeID("Result", w.names["prod-result"])}}}
		}, code: "PERMISSION_DENIED"},
	{field: "_service", name: "the schema, to any authenticated caller", caller: "carol", query: `{ _service { sdl } }`},
	{field: "_service", name: "not without credentials", caller: "", query: `{ _service { sdl } }`, code: "UNAUTHENTICATED"},

	{field: "logSearch", name: "all namespaces: own logs only", caller: "alice",
		query: `{ logSearch(parent: "-", contains: "secret", where: {updatedAfter: "2000-01-01T00:00:00Z"}) { matches { lines { text } } } }`,
		check: func(t *testing.T, _ *authWorld, data json.RawMessage) {
			if !strings.Contains(string(data), "ci secret log") || strings.Contains(string(data), "prod secret log") {
				t.Errorf("want ci's line and not prod's: %s", data)
			}
		}},
	{field: "logSearch", name: "another team's namespace", caller: "alice",
		query: `{ logSearch(parent: "prod", contains: "secret", where: {updatedAfter: "2000-01-01T00:00:00Z"}) { matches { lines { text } } } }`,
		code:  "PERMISSION_DENIED"},

	// Nested fields are checked on their own.
	{field: "nested", name: "viewer reads the tree with logs", caller: "alice",
		query: `query($ci_record: String!) { record(name: $ci_record) { result { name records { totalCount } } taskRun { logs { text } pipelineRun { name } } } }`,
		vars:  names("ci-record"), check: func(t *testing.T, _ *authWorld, data json.RawMessage) {
			if !strings.Contains(string(data), "ci secret log") {
				t.Errorf("log missing: %s", data)
			}
		}},
	{field: "nested", name: "logs need logs get", caller: "dave", query: `query($ci_record: String!) { record(name: $ci_record) { name taskRun { logs { text } } } }`,
		vars: names("ci-record"), code: "PERMISSION_DENIED", check: func(t *testing.T, _ *authWorld, data json.RawMessage) {
			if strings.Contains(string(data), "secret log") {
				t.Errorf("log leaked: %s", data)
			}
		}},
	{field: "nested", name: "a Record's Result needs results get", caller: "frank", query: `{ records(parent: "ci", first: 1) { nodes { name result { name } } } }`, code: "PERMISSION_DENIED"},
	{field: "nested", name: "a Result's records need records list", caller: "carol", query: `query($ci_result: String!) { result(name: $ci_result) { records { totalCount } } }`, vars: names("ci-result"), code: "PERMISSION_DENIED"},

	{field: "createResult", name: "editor in own namespace", caller: "bob", query: `mutation { createResult(input: {namespace: "prod", uid: "0c0c0c0c-0000-4000-8000-000000000001"}) { name } }`, check: onlyNamespace("prod", true)},
	{field: "createResult", name: "viewer", caller: "alice", query: `mutation { createResult(input: {namespace: "ci"}) { name } }`, code: "PERMISSION_DENIED"},
	{field: "createResult", name: "editor elsewhere", caller: "bob", query: `mutation { createResult(input: {namespace: "ci"}) { name } }`, code: "PERMISSION_DENIED"},
	{field: "setAnnotations", name: "editor", caller: "bob", query: `mutation { setAnnotations(name: "prod/results/0c0c0c0c-0000-4000-8000-000000000001", annotations: [{key: "k", value: "v"}]) { name } }`, check: onlyNamespace("prod", true)},
	{field: "setAnnotations", name: "viewer", caller: "alice", query: `mutation($ci_result: String!) { setAnnotations(name: $ci_result, annotations: [{key: "k", value: "v"}]) { name } }`, vars: names("ci-result"), code: "PERMISSION_DENIED"},
	{field: "removeAnnotations", name: "editor", caller: "bob", query: `mutation { removeAnnotations(name: "prod/results/0c0c0c0c-0000-4000-8000-000000000001", keys: ["k"]) { name } }`, check: onlyNamespace("prod", true)},
	{field: "removeAnnotations", name: "editor elsewhere", caller: "bob", query: `mutation($ci_result: String!) { removeAnnotations(name: $ci_result, keys: ["k"]) { name } }`, vars: names("ci-result"), code: "PERMISSION_DENIED"},
	{field: "createRecord", name: "editor", caller: "bob", query: `mutation { createRecord(input: {result: "prod/results/0c0c0c0c-0000-4000-8000-000000000001", uid: "0c0c0c0c-0000-4000-8000-000000000002", dataType: "x/v1.Note", data: {a: 1}}) { name } }`, check: onlyNamespace("prod", true)},
	{field: "createRecord", name: "viewer", caller: "alice", query: `mutation($ci_result: String!) { createRecord(input: {result: $ci_result, dataType: "x/v1.Note", data: {}}) { name } }`, vars: names("ci-result"), code: "PERMISSION_DENIED"},
	{field: "updateRecord", name: "editor", caller: "bob", query: `mutation { updateRecord(name: "prod/results/0c0c0c0c-0000-4000-8000-000000000001/records/0c0c0c0c-0000-4000-8000-000000000002", data: {a: 2}) { name } }`, check: onlyNamespace("prod", true)},
	{field: "updateRecord", name: "viewer", caller: "alice", query: `mutation($ci_record: String!) { updateRecord(name: $ci_record, data: {}) { name } }`, vars: names("ci-record"), code: "PERMISSION_DENIED"},
	{field: "deleteRecord", name: "viewer", caller: "alice", query: `mutation($ci_record: String!) { deleteRecord(name: $ci_record) { name } }`, vars: names("ci-record"), code: "PERMISSION_DENIED"},
	{field: "deleteRecord", name: "editor", caller: "bob", query: `mutation { deleteRecord(name: "prod/results/0c0c0c0c-0000-4000-8000-000000000001/records/0c0c0c0c-0000-4000-8000-000000000002") { name } }`},
	{field: "deleteResult", name: "editor elsewhere", caller: "bob", query: `mutation($ci_result: String!) { deleteResult(name: $ci_result) { name } }`, vars: names("ci-result"), code: "PERMISSION_DENIED"},
	{field: "deleteResult", name: "editor", caller: "bob", query: `mutation { deleteResult(name: "prod/results/0c0c0c0c-0000-4000-8000-000000000001") { name } }`},
}

// TestAuthorization runs every case in order (the mutations build on each
// other) against the real API server's RBAC.
func TestAuthorization(t *testing.T) {
	w := setupAuthWorld(t)
	for _, c := range authCases {
		t.Run(c.field+"/"+c.name, func(t *testing.T) {
			var vars map[string]any
			if c.vars != nil {
				vars = c.vars(w)
			}
			_, resp := w.do(t, c.caller, c.query, vars, nil)
			if resp.code() != c.code {
				t.Fatalf("code %q, want %q: %+v %s", resp.code(), c.code, resp.Errors, resp.Data)
			}
			for _, e := range resp.Errors {
				if strings.Contains(e.Message, "prod/results/") && c.caller == "alice" {
					t.Errorf("error names a run of the other team: %s", e.Message)
				}
			}
			if c.check != nil {
				c.check(t, w, resp.Data)
			}
		})
	}
}

// TestEveryFieldHasAuthorizationCases fails when a Query or Mutation field
// lacks an allowed or a denied case above.
func TestEveryFieldHasAuthorizationCases(t *testing.T) {
	allowed, refused := map[string]bool{}, map[string]bool{}
	for _, c := range authCases {
		if c.code == "" {
			allowed[c.field] = true
		} else {
			refused[c.field] = true
		}
	}
	schema := graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{}}).Schema()
	for _, c := range subscriptionAuthCases {
		if c.code == "" {
			allowed[c.field] = true
		} else {
			refused[c.field] = true
		}
	}
	for _, typ := range []string{"Query", "Mutation", "Subscription"} {
		for _, f := range schema.Types[typ].Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			if !allowed[f.Name] || !refused[f.Name] {
				t.Errorf("%s.%s has no allowed and denied case in authCases", typ, f.Name)
			}
		}
	}
}

// subscriptionAuthCases are tried over WebSocket: the caller's token goes
// in connection_init. An allowed recordChanged must then see the write to
// its own namespace and not the other's.
var subscriptionAuthCases = []authCase{
	{field: "recordChanged", name: "all namespaces: own only", caller: "alice", query: `subscription { recordChanged(parent: "-") { name } }`},
	{field: "recordChanged", name: "other namespace", caller: "alice", query: `subscription { recordChanged(parent: "prod") { name } }`, code: "PERMISSION_DENIED"},
	{field: "recordChanged", name: "no credentials", caller: "", query: `subscription { recordChanged(parent: "ci") { name } }`, code: "UNAUTHENTICATED"},
	{field: "recordEvents", name: "all namespaces: own only, deletes too", caller: "alice", query: `subscription { recordEvents(parent: "-") { kind name record { name } } }`},
	{field: "recordEvents", name: "other namespace", caller: "alice", query: `subscription { recordEvents(parent: "prod") { name } }`, code: "PERMISSION_DENIED"},
	{field: "recordEvents", name: "no credentials", caller: "", query: `subscription { recordEvents(parent: "ci") { name } }`, code: "UNAUTHENTICATED"},
	{field: "logLines", name: "own log", caller: "alice", query: `subscription($ci_log: String!) { logLines(log: $ci_log) }`, vars: names("ci-log")},
	{field: "logLines", name: "needs logs get", caller: "dave", query: `subscription($ci_log: String!) { logLines(log: $ci_log) }`, vars: names("ci-log"), code: "PERMISSION_DENIED"},
	{field: "logLines", name: "other team's log", caller: "alice", query: `subscription($prod_log: String!) { logLines(log: $prod_log) }`, vars: names("prod-log"), code: "PERMISSION_DENIED"},
}

func TestSubscriptionAuthorization(t *testing.T) {
	w := setupAuthWorld(t)
	for _, c := range subscriptionAuthCases {
		t.Run(c.field+"/"+c.name, func(t *testing.T) {
			init := map[string]any{}
			if c.caller != "" {
				init["Authorization"] = "Bearer " + w.tokens[c.caller]
			}
			client, err := dialGraphQL(t, w.url, init)
			if c.code == "UNAUTHENTICATED" {
				if err == nil {
					t.Fatal("connection accepted without credentials")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var vars map[string]any
			if c.vars != nil {
				vars = c.vars(w)
			}
			client.subscribe("s", c.query, vars)
			if c.code != "" {
				if m := client.next("s"); !strings.Contains(string(m.Payload), `"code":"`+c.code+`"`) {
					t.Fatalf("%s %s, want %s", m.Type, m.Payload, c.code)
				}
				return
			}
			if c.field == "logLines" {
				if m := client.next("s"); m.Type != "next" || !strings.Contains(string(m.Payload), "ci secret log") {
					t.Fatalf("%s %s", m.Type, m.Payload)
				}
				return
			}
			time.Sleep(300 * time.Millisecond)
			if c.field == "recordEvents" {
				// The other team's write and delete must not arrive, nor its name.
				theirs := writeTaskRun(t, w.store, "prod", uuid.NewString(), "Unknown")
				if err := w.store.DeleteRecord(context.Background(), theirs, ""); err != nil {
					t.Fatal(err)
				}
				mine := writeTaskRun(t, w.store, "ci", uuid.NewString(), "Unknown")
				expect := func(want string) {
					if m := client.next("s"); !strings.Contains(string(m.Payload), want) || strings.Contains(string(m.Payload), "prod/") {
						t.Errorf("event %s, want %s", m.Payload, want)
					}
				}
				expect(`{"kind":"CREATED","name":"` + mine + `","record":{"name":"` + mine + `"}}`)
				if err := w.store.DeleteRecord(context.Background(), mine, ""); err != nil {
					t.Fatal(err)
				}
				expect(`{"kind":"DELETED","name":"` + mine + `","record":null}`)
				return
			}
			writeTaskRun(t, w.store, "prod", uuid.NewString(), "Unknown")
			mine := writeTaskRun(t, w.store, "ci", uuid.NewString(), "Unknown")
			var p struct {
				Data struct{ RecordChanged struct{ Name string } }
			}
			m := client.next("s")
			json.Unmarshal(m.Payload, &p)
			if p.Data.RecordChanged.Name != mine {
				t.Errorf("first change sent: %s, want %s (the prod one must not arrive)", m.Payload, mine)
			}
		})
	}
}

func TestAuthenticationPaths(t *testing.T) {
	w := setupAuthWorld(t)
	ctx := context.Background()
	query := `{ results(parent: "ci") { totalCount } }`

	t.Run("bad token", func(t *testing.T) {
		w.tokens["forger"] = "not-a-token"
		status, resp := w.do(t, "forger", query, nil, nil)
		if status != http.StatusUnauthorized || resp.code() != "UNAUTHENTICATED" {
			t.Errorf("status %d code %q", status, resp.code())
		}
	})
	t.Run("impersonation allowed", func(t *testing.T) {
		_, resp := w.do(t, "imp", `{ results(parent: "-") { nodes { name } } }`, nil, http.Header{"Impersonate-User": {"system:serviceaccount:ci:alice"}})
		if resp.code() != "" {
			t.Fatalf("%+v", resp.Errors)
		}
		onlyNamespace("ci", true)(t, w, resp.Data)
	})
	t.Run("impersonation denied", func(t *testing.T) {
		status, resp := w.do(t, "imp", query, nil, http.Header{"Impersonate-User": {"system:serviceaccount:prod:bob"}})
		if status != http.StatusForbidden || resp.code() != "PERMISSION_DENIED" {
			t.Errorf("status %d code %q", status, resp.code())
		}
		status, resp = w.do(t, "alice", query, nil, http.Header{"Impersonate-User": {"system:serviceaccount:prod:bob"}})
		if status != http.StatusForbidden || resp.code() != "PERMISSION_DENIED" {
			t.Errorf("status %d code %q", status, resp.code())
		}
		// May impersonate alice, but not with a uid or extras it was not granted.
		for _, h := range []http.Header{
			{"Impersonate-User": {"system:serviceaccount:ci:alice"}, "Impersonate-Uid": {"1234"}},
			{"Impersonate-User": {"system:serviceaccount:ci:alice"}, "Impersonate-Extra-Scopes": {"admin"}},
			{"Impersonate-Group": {"system:masters"}},
		} {
			if status, resp := w.do(t, "imp", query, nil, h); status != http.StatusForbidden || resp.code() != "PERMISSION_DENIED" {
				t.Errorf("%v: status %d code %q", h, status, resp.code())
			}
		}
	})
	t.Run("cursor of one caller refused to another", func(t *testing.T) {
		_, resp := w.do(t, "admin", `{ results(parent: "-", first: 1) { pageInfo { endCursor } } }`, nil, nil)
		var page struct {
			Results struct{ PageInfo struct{ EndCursor string } }
		}
		json.Unmarshal(resp.Data, &page)
		_, resp = w.do(t, "alice", `query($after: String) { results(parent: "-", first: 1, after: $after) { nodes { name } } }`,
			map[string]any{"after": page.Results.PageInfo.EndCursor}, nil)
		if resp.code() != "INVALID_ARGUMENT" {
			t.Errorf("code %q: %s", resp.code(), resp.Data)
		}
	})
	t.Run("log download", func(t *testing.T) {
		for _, c := range []struct {
			caller, log string
			status      int
		}{{"alice", "ci-log", 200}, {"alice", "prod-log", 403}, {"dave", "ci-log", 403}, {"", "ci-log", 401}} {
			req, _ := http.NewRequest(http.MethodGet, w.url+"/logs/"+w.names[c.log], nil)
			if c.caller != "" {
				req.Header.Set("Authorization", "Bearer "+w.tokens[c.caller])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || (c.status != 200 && strings.Contains(string(body), "secret")) {
				t.Errorf("%s downloading %s: %d %q, want %d", c.caller, c.log, resp.StatusCode, body, c.status)
			}
		}
	})
	t.Run("revoked token", func(t *testing.T) {
		token := w.serviceAccount(t, "ci", "temp", "annals-test-viewer", "ci")
		w.tokens["temp"] = token
		if _, resp := w.do(t, "temp", query, nil, nil); resp.code() != "" {
			t.Fatalf("before revocation: %+v", resp.Errors)
		}
		if err := w.env.Kube.CoreV1().ServiceAccounts("ci").Delete(ctx, "temp", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// Refused once both caches forget the token: this server's (1s here)
		// and the API server's own token cache (10s).
		deadline := time.Now().Add(30 * time.Second)
		for {
			status, resp := w.do(t, "temp", query, nil, nil)
			if status == http.StatusUnauthorized && resp.code() == "UNAUTHENTICATED" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after revocation: status %d code %q", status, resp.code())
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
	t.Run("client certificate", func(t *testing.T) {
		ca := newTestCA(t)
		dir := t.TempDir()
		sc, sk := ca.issue(t, 1, "annals", nil, false)
		writeFile(t, filepath.Join(dir, "tls.crt"), sc)
		writeFile(t, filepath.Join(dir, "tls.key"), sk)
		writeFile(t, filepath.Join(dir, "ca.crt"), ca.pem)
		cfg, err := server.TLSConfig(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.crt"), quiet)
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewUnstartedServer(server.New(server.Config{Store: w.store, Logger: quiet, Auth: auth.NewKubernetes(w.env.Kube, auth.Options{})}))
		ts.Listener = tls.NewListener(ts.Listener, cfg)
		ts.Start()
		defer ts.Close()
		url := "https://" + ts.Listener.Addr().String()
		cc, ck := ca.issue(t, 2, "system:serviceaccount:ci:alice", nil, true)
		pair, err := tls.X509KeyPair(cc, ck)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(ca.pem)
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}}}
		for parent, want := range map[string]string{"ci": "", "prod": "PERMISSION_DENIED"} {
			resp, err := client.Post(url+"/graphql", "application/json", strings.NewReader(`{"query":"{ results(parent: \"`+parent+`\") { totalCount } }"}`))
			if err != nil {
				t.Fatal(err)
			}
			var out gqlResponse
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if out.code() != want {
				t.Errorf("client certificate of alice listing %s: code %q, want %q", parent, out.code(), want)
			}
		}
	})
	t.Run("API server unreachable fails closed", func(t *testing.T) {
		dead := kubernetes.NewForConfigOrDie(&rest.Config{Host: "https://127.0.0.1:1", Timeout: 2 * time.Second})
		ts := httptest.NewServer(server.New(server.Config{Store: w.store, Logger: quiet, Auth: auth.NewKubernetes(dead, auth.Options{})}))
		defer ts.Close()
		body := strings.NewReader(`{"query":"{ results(parent: \"ci\") { totalCount } }"}`)
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/graphql", body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+w.tokens["alice"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(raw), "INTERNAL") || strings.Contains(string(raw), "totalCount") {
			t.Errorf("status %d body %s", resp.StatusCode, raw)
		}
	})
}
