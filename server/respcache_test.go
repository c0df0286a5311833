package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	authenticationv1 "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationv1 "k8s.io/client-go/kubernetes/typed/authorization/v1"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/server/auth"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// policyKube answers TokenReviews (a token is "name:group") and
// SubjectAccessReviews (a group reads the namespace of its name "team-NS",
// never cluster-wide) without an API server: the response cache tests run
// on both databases. Only the two calls auth makes are implemented.
type policyKube struct {
	kubernetes.Interface
	mu      sync.Mutex
	reviews int
}

func (k *policyKube) AuthenticationV1() authenticationv1.AuthenticationV1Interface {
	return tokenReviews{}
}

func (k *policyKube) AuthorizationV1() authorizationv1.AuthorizationV1Interface {
	return accessReviews{k: k}
}

type tokenReviews struct {
	authenticationv1.AuthenticationV1Interface
	authenticationv1.TokenReviewInterface
}

func (t tokenReviews) TokenReviews() authenticationv1.TokenReviewInterface { return t }

func (tokenReviews) Create(_ context.Context, tr *authnv1.TokenReview, _ metav1.CreateOptions) (*authnv1.TokenReview, error) {
	out := tr.DeepCopy()
	if name, group, ok := strings.Cut(tr.Spec.Token, ":"); ok {
		out.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: name, Groups: []string{group}}}
	}
	return out, nil
}

type accessReviews struct {
	authorizationv1.AuthorizationV1Interface
	authorizationv1.SubjectAccessReviewInterface
	k *policyKube
}

func (a accessReviews) SubjectAccessReviews() authorizationv1.SubjectAccessReviewInterface { return a }

func (a accessReviews) Create(_ context.Context, sar *authzv1.SubjectAccessReview, _ metav1.CreateOptions) (*authzv1.SubjectAccessReview, error) {
	a.k.mu.Lock()
	a.k.reviews++
	a.k.mu.Unlock()
	out := sar.DeepCopy()
	ns := sar.Spec.ResourceAttributes.Namespace
	out.Status.Allowed = ns != "" && slices.Contains(sar.Spec.Groups, "team-"+ns)
	return out, nil
}

// cursorValue matches cursors, which are sealed afresh by every execution.
var cursorValue = regexp.MustCompile(`"(cursor|endCursor|startCursor)":"[^"]*"`)

func cursorsBlanked(body string) string { return cursorValue.ReplaceAllString(body, `"$1":"…"`) }

// cached is one answer with its cache header.
type cached struct {
	status int
	cache  string
	body   string
}

func ask(t *testing.T, h http.Handler, token, query string, vars map[string]any) cached {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req := httptest.NewRequest(http.MethodPost, "http://localhost/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return cached{rec.Code, rec.Header().Get("X-Annals-Cache"), rec.Body.String()}
}

// TestResponseCacheIdentities: callers that differ in what they may see
// (by user, or by group only) asking the very same query each get their
// own answer, the one a server without cache gives them, from the cache
// the second time; answers with errors are never kept.
func TestResponseCacheIdentities(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		fixture(t, s)
		addProdFailures(t, s)
		authz := auth.NewKubernetes(&policyKube{}, auth.Options{CacheTTL: time.Minute})
		withCache := server.New(server.Config{Store: s, Logger: quiet, Auth: authz, ResponseCacheBytes: 8 << 20})
		without := server.New(server.Config{Store: s, Logger: quiet, Auth: authz})
		callers := []string{"alice:team-ci", "bob:team-prod", "alice:team-prod", "eve:team-none"}
		for _, c := range []struct {
			name, query string
			vars        map[string]any
			errors      bool // for every caller but those reading ci
		}{
			{"all namespaces", `{ records(parent: "-", first: 100) { totalCount nodes { name pipelineRun { name status } } } }`, nil, false},
			{"results of all namespaces", `{ results(parent: "-") { totalCount nodes { name } } }`, nil, false},
			{"dashboard of ci", dashboard, map[string]any{"first": 50}, true},
			{"named operation", `query Facets { recordFacets(parent: "-", dimension: PIPELINE) { value count } }`, nil, false},
		} {
			t.Run(c.name, func(t *testing.T) {
				seen := map[string]string{}
				for round := range 2 {
					for _, caller := range callers {
						want := ask(t, without, caller, c.query, c.vars)
						got := ask(t, withCache, caller, c.query, c.vars)
						if got.status != want.status || cursorsBlanked(got.body) != cursorsBlanked(want.body) {
							t.Fatalf("round %d, %s: cached server answered %d %s\nwant %d %s", round, caller, got.status, got.body, want.status, want.body)
						}
						failed := strings.Contains(got.body, `"errors"`)
						if failed != (c.errors && !strings.HasSuffix(caller, "team-ci")) {
							t.Fatalf("%s: %s", caller, got.body)
						}
						wantCache := "miss"
						if round == 1 && !failed {
							wantCache = "hit"
						}
						if got.cache != wantCache {
							t.Errorf("round %d, %s: X-Annals-Cache %q, want %q", round, caller, got.cache, wantCache)
						}
						seen[caller] = got.body
					}
				}
				if !c.errors && (seen["alice:team-ci"] == seen["bob:team-prod"] || seen["alice:team-ci"] == seen["alice:team-prod"] ||
					seen["alice:team-prod"] != seen["bob:team-prod"]) {
					t.Errorf("answers do not follow namespace access: %v", seen)
				}
			})
		}
	})
}

const recordNames = `query Names { records(parent: "-", first: 100) { totalCount nodes { name } } }`

// TestResponseCacheInvalidation: a write to the store (as the watcher
// makes), a mutation and a Tekton Results API write each drop the cached
// answers; a mutation's own answer is never kept; the access log still
// names cached requests.
func TestResponseCacheInvalidation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		fixture(t, s)
		var logged bytes.Buffer
		var logMu sync.Mutex
		h := server.New(server.Config{Store: s, Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logged}, nil)), ResponseCacheBytes: 8 << 20})
		first := ask(t, h, "", recordNames, nil)
		if again := ask(t, h, "", recordNames, nil); first.cache != "miss" || again.cache != "hit" || again.body != first.body {
			t.Fatalf("first %+v, again %+v", first, again)
		}
		logMu.Lock()
		lines := strings.Count(logged.String(), "operation=Names")
		logMu.Unlock()
		if lines != 2 {
			t.Errorf("%d access log lines name operation Names, want 2 (one cached):\n%s", lines, logged.String())
		}

		// A write as the watcher makes it, straight to the store.
		uid := uuid.NewString()
		run, _ := json.Marshal(map[string]any{"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
			"metadata": map[string]any{"name": "added", "namespace": "ci", "uid": uid}})
		if err := s.UpsertRecords(context.Background(), []store.RecordWrite{{ResultName: store.ResultName("ci", uid), UID: uid,
			DataType: store.TypePipelineRun, Data: run, UpdateSummary: true}}); err != nil {
			t.Fatal(err)
		}
		// SQLite publishes before the write returns: the next request sees
		// it. PostgreSQL's NOTIFY arrives a moment later.
		deadline := time.Now().Add(30 * time.Second)
		after := ask(t, h, "", recordNames, nil)
		for s.Dialect() == filter.Postgres && !strings.Contains(after.body, uid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			after = ask(t, h, "", recordNames, nil)
		}
		if after.cache != "miss" || !strings.Contains(after.body, uid) {
			t.Fatalf("after a write: %s %s", after.cache, after.body)
		}

		// A mutation: Result annotations, which the change feed does not carry.
		const annotations = `query($r: String!) { result(name: $r) { annotations { key value } } }`
		vars := map[string]any{"r": store.ResultName("ci", uid)}
		ask(t, h, "", annotations, vars)
		if a := ask(t, h, "", annotations, vars); a.cache != "hit" {
			t.Fatalf("annotations again: %+v", a)
		}
		const set = `mutation($r: String!) { setAnnotations(name: $r, annotations: [{key: "k", value: "v"}]) { name } }`
		for range 2 {
			if m := ask(t, h, "", set, vars); m.cache != "miss" || strings.Contains(m.body, `"errors"`) {
				t.Fatalf("mutation: %+v", m)
			}
		}
		if a := ask(t, h, "", annotations, vars); a.cache != "miss" || !strings.Contains(a.body, `"key":"k"`) {
			t.Fatalf("annotations after the mutation: %+v", a)
		}

		// A write through the Tekton Results REST API.
		ask(t, h, "", annotations, vars)
		req := httptest.NewRequest(http.MethodPatch, "http://localhost/apis/results.tekton.dev/v1alpha2/parents/ci/results/"+uid,
			strings.NewReader(`{"annotations": {"k": "w"}}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("REST update: %d %s", rec.Code, rec.Body)
		}
		if a := ask(t, h, "", annotations, vars); a.cache != "miss" || !strings.Contains(a.body, `"value":"w"`) {
			t.Fatalf("annotations after the REST update: %+v", a)
		}

		metrics := httptest.NewRecorder()
		h.ServeHTTP(metrics, httptest.NewRequest(http.MethodGet, "http://localhost/metrics", nil))
		// Three hits on SQLite; on PostgreSQL the reads that polled for the
		// NOTIFY of the write may have been hits too.
		hits := regexp.MustCompile(`(?m)^annals_response_cache_hits_total (\d+)$`).FindStringSubmatch(metrics.Body.String())
		if n := 0; hits == nil || func() bool { n, _ = strconv.Atoi(hits[1]); return n < 3 || (s.Dialect() != filter.Postgres && n != 3) }() {
			t.Errorf("/metrics hits: %v, want 3 (at least 3 on PostgreSQL)", hits)
		}
		for _, m := range []string{"annals_response_cache_misses_total", "annals_response_cache_evictions_total 0", "annals_response_cache_invalidations_total"} {
			if !strings.Contains(metrics.Body.String(), m) {
				t.Errorf("/metrics lacks %q", m)
			}
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestResponseCacheDisabledAndBounded: without a size there is no cache;
// a cache smaller than an answer keeps nothing and still answers.
func TestResponseCacheDisabledAndBounded(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		fixture(t, s)
		for _, c := range []struct {
			name  string
			bytes int64
			want  string
		}{{"disabled", 0, ""}, {"too small", 1024, "miss"}} {
			h := server.New(server.Config{Store: s, Logger: quiet, ResponseCacheBytes: c.bytes})
			a, b := ask(t, h, "", dashboard, map[string]any{"first": 50}), ask(t, h, "", dashboard, map[string]any{"first": 50})
			if a.cache != c.want || b.cache != c.want || cursorsBlanked(a.body) != cursorsBlanked(b.body) || a.status != http.StatusOK || strings.Contains(a.body, `"errors"`) {
				t.Errorf("%s: %+v then %+v", c.name, a, b)
			}
		}
	})
}

// TestResponseCacheKeepsOtherNamespaces: a Record change drops only the
// answers read from its namespace (and those read from every namespace):
// a team's dashboard stays cached while other teams' runs come and go.
func TestResponseCacheKeepsOtherNamespaces(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		fixture(t, s)
		h := server.New(server.Config{Store: s, Logger: quiet, ResponseCacheBytes: 8 << 20})
		authz := auth.NewKubernetes(&policyKube{}, auth.Options{CacheTTL: time.Minute})
		withAuth := server.New(server.Config{Store: s, Logger: quiet, Auth: authz, ResponseCacheBytes: 8 << 20})
		const (
			ciRecords = `{ records(parent: "ci", first: 100) { totalCount nodes { name } } }`
			ciStats   = `{ recordStats(parent: "ci", groupBy: [{dimension: STATUS}]) { groups { key { value } count } } }`
			twoRoots  = `{ a: records(parent: "ci") { totalCount } b: recordFacets(parent: "prod", dimension: PIPELINE) { value } }`
		)
		type asked struct {
			h            http.Handler
			token, query string
		}
		ciOnly := []asked{{h, "", ciRecords}, {h, "", ciStats}, {h, "", twoRoots}, {withAuth, "alice:team-ci", recordNames}}
		everywhere := asked{h, "", recordNames}
		for _, a := range append(ciOnly, everywhere) {
			ask(t, a.h, a.token, a.query, nil)
		}
		write := func(ns string) string {
			uid := uuid.NewString()
			run, _ := json.Marshal(map[string]any{"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
				"metadata": map[string]any{"name": "added", "namespace": ns, "uid": uid}})
			if err := s.UpsertRecords(context.Background(), []store.RecordWrite{{ResultName: store.ResultName(ns, uid), UID: uid,
				DataType: store.TypePipelineRun, Data: run, UpdateSummary: true}}); err != nil {
				t.Fatal(err)
			}
			return uid
		}
		// awaitMiss asks until the answer is computed again (PostgreSQL's
		// NOTIFY arrives a moment after the write) and holds uid.
		awaitMiss := func(a asked, uid string) {
			t.Helper()
			deadline := time.Now().Add(30 * time.Second)
			for {
				got := ask(t, a.h, a.token, a.query, nil)
				if got.cache == "miss" && strings.Contains(got.body, uid) {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: still %s after a write in its namespace: %s", a.query, got.cache, got.body)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}

		// A write in a namespace none of ciOnly reads.
		uid := write("other")
		awaitMiss(everywhere, uid)
		for _, a := range ciOnly {
			if got := ask(t, a.h, a.token, a.query, nil); got.cache != "hit" {
				t.Errorf("%s (%s): %s after a write in another namespace, want hit", a.query, a.token, got.cache)
			}
		}

		// A write in ci drops every answer read from it.
		uid = write("ci")
		awaitMiss(asked{h, "", ciRecords}, uid)
		for _, a := range ciOnly[1:] {
			if got := ask(t, a.h, a.token, a.query, nil); got.cache != "miss" {
				t.Errorf("%s (%s): %s after a write in ci, want miss", a.query, a.token, got.cache)
			}
		}
	})
}
