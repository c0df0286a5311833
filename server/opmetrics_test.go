package server_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/server/auth"
	"github.com/annals-dev/annals/store/storetest"
)

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://localhost/metrics", nil))
	return rec.Body.String()
}

// TestServiceMetricsScrape: /metrics shows the process, the build, HTTP
// statuses, the database pool, open WebSockets and subscriptions, and
// latency per operation name with a bounded set of names.
func TestServiceMetricsScrape(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	h := server.New(server.Config{Store: s, Logger: quiet, Version: "v9.9.9-test"})
	post(t, context.Background(), h, `query Dashboard { records(parent: "-") { totalCount } }`, nil)
	post(t, context.Background(), h, `{ records(parent: "-") { totalCount } }`, nil)
	// A client inventing names must not grow /metrics without end.
	for i := range 130 {
		post(t, context.Background(), h, fmt.Sprintf(`query Invented%d { records(parent: "-") { totalCount } }`, i), nil)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "http://localhost/nowhere", nil))

	ts := httptest.NewServer(h)
	defer ts.Close()
	c, err := dialGraphQL(t, ts.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.subscribe("1", recordChanged, map[string]any{"parent": "ci"})
	waitFor(t, h, "annals_graphql_active_subscriptions 1")
	body := scrape(t, h)
	for _, want := range []string{
		"go_goroutines ", "go_memstats_heap_alloc_bytes ", "process_cpu_seconds_total ", "process_resident_memory_bytes ",
		`annals_build_info{goversion="go`, `version="v9.9.9-test"} 1`,
		`annals_http_requests_total{code="200",route="graphql"} 132`, `annals_http_requests_total{code="404",route="other"} 1`,
		"annals_db_connections_in_use ", "annals_db_connections_idle ", "annals_db_connections_open ", "annals_db_connection_waits_total ",
		"annals_websocket_connections 1", "annals_graphql_active_subscriptions 1",
		`annals_graphql_operation_name_duration_seconds_count{operation="Dashboard"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	names := regexp.MustCompile(`annals_graphql_operation_name_duration_seconds_count\{operation="([^"]+)"\}`).FindAllStringSubmatch(body, -1)
	if len(names) > 101 {
		t.Errorf("%d operation labels; want at most 100 names and \"other\"", len(names))
	}
	// Unnamed, and named past the bound: 1 + (130 - 99).
	if want := `annals_graphql_operation_name_duration_seconds_count{operation="other"} 32`; !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %q", want)
	}

	c.conn.Close(websocket.StatusNormalClosure, "")
	waitFor(t, h, "annals_graphql_active_subscriptions 0")
	waitFor(t, h, "annals_websocket_connections 0")
}

// waitFor scrapes until /metrics holds want.
func waitFor(t *testing.T, h http.Handler, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(scrape(t, h), want) {
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never held %q", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAccessLog: one line per request with operation, cost, duration,
// status and client address; none for probes, scrapes and assets.
func TestAccessLog(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	var logged bytes.Buffer
	h := server.New(server.Config{Store: s, Logger: slog.New(slog.NewJSONHandler(&logged, nil))})
	post(t, context.Background(), h, `query Dashboard { records(parent: "-") { totalCount } }`, nil)
	for _, path := range []string{"/healthz", "/metrics", "/assets/graphiql.css"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "http://localhost"+path, nil))
	}
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one access log line, got %d:\n%s", len(lines), logged.String())
	}
	for _, want := range []string{`"msg":"request"`, `"operation":"Dashboard"`, `"cost":`, `"status":200`, `"client":"192.0.2.1"`, `"duration":"`, `"path":"/graphql"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("access log line lacks %s: %s", want, lines[0])
		}
	}
}

// TestAccessLogNamesTheCaller: with Kubernetes auth the access log line
// names the caller TokenReview found, and never holds the token.
func TestAccessLogNamesTheCaller(t *testing.T) {
	w := setupAuthWorld(t)
	var logged lockedBuffer
	ts := httptest.NewServer(server.New(server.Config{Store: w.store, Logger: slog.New(slog.NewJSONHandler(&logged, nil)),
		Auth: auth.NewKubernetes(w.env.Kube, auth.Options{CacheTTL: time.Second})}))
	defer ts.Close()
	w.url = ts.URL
	if status, r := w.do(t, "alice", `query Mine { results(parent: "ci") { totalCount } }`, nil, nil); status != http.StatusOK || len(r.Errors) > 0 {
		t.Fatalf("status %d %+v", status, r.Errors)
	}
	line := logged.String()
	for _, want := range []string{`"caller":"system:serviceaccount:ci:alice"`, `"operation":"Mine"`, `"client":"127.0.0.1"`} {
		if !strings.Contains(line, want) {
			t.Errorf("access log lacks %s: %s", want, line)
		}
	}
	if strings.Contains(line, w.tokens["alice"]) {
		t.Errorf("access log holds the token: %s", line)
	}
}

// lockedBuffer is a log destination written by server goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
