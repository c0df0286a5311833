package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/graph"
	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// postStatus sends one GraphQL request and returns the HTTP status with the
// decoded answer.
func postStatus(t testing.TB, h http.Handler, query string, vars map[string]any) (int, gqlResponse) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req := httptest.NewRequest(http.MethodPost, "http://localhost/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out gqlResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("status %d, body %q: %v", rec.Code, rec.Body.String(), err)
	}
	return rec.Code, out
}

// TestActionableInputErrors: input a client got wrong is INVALID_ARGUMENT
// with a message that says what is wrong and which form is expected, said
// once, on one line; filter errors carry their position in extensions.
func TestActionableInputErrors(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := server.New(server.Config{Store: s, Logger: quiet})
		tests := []struct {
			name, query string
			vars        map[string]any
			mention     []string
			column      int // of extensions.filter; 0: none expected
		}{
			{"relative time literal", `{ records(parent: "-", where: {started: {after: "-24h"}}) { totalCount } }`, nil,
				[]string{`"-24h" is not a Time`, "RFC 3339"}, 0},
			{"relative time variable", `query($w: RecordWhere) { records(parent: "-", where: $w) { totalCount } }`,
				map[string]any{"w": map[string]any{"started": map[string]any{"before": "yesterday"}}},
				[]string{`"yesterday" is not a Time`, "RFC 3339"}, 0},
			{"cel syntax", `{ records(parent: "-", filter: "data.x == 'a' && data.y ==") { totalCount } }`, nil,
				[]string{"invalid filter: Syntax error", "(at column 27)"}, 27},
			{"cel unknown field", `{ results(parent: "-", filter: "colour == 'red'") { totalCount } }`, nil,
				[]string{"invalid filter", "colour", "(at column 1)"}, 1},
			{"cel refused construct", `{ records(parent: "-", filter: "name == 'a' || name.lowerAscii() == 'x'") { totalCount } }`, nil,
				[]string{"invalid filter", "lowerAscii"}, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, r := postStatus(t, h, tt.query, tt.vars)
				if r.code() != graph.CodeInvalidArgument {
					t.Fatalf("status %d, errors %+v; want INVALID_ARGUMENT", status, r.Errors)
				}
				msg := r.Errors[0].Message
				for _, want := range tt.mention {
					if !strings.Contains(msg, want) {
						t.Errorf("message %q lacks %q", msg, want)
					}
				}
				for _, repeated := range []string{"invalid argument", "ERROR: <input>", "\n", "request id"} {
					if strings.Contains(msg, repeated) {
						t.Errorf("message %q holds %q", msg, repeated)
					}
				}
				if tt.column == 0 {
					return
				}
				at, _ := r.Errors[0].Extensions["filter"].(map[string]any)
				if at["column"] != float64(tt.column) || at["line"] != float64(1) || !strings.HasSuffix(at["context"].(string), "^") {
					t.Errorf("extensions.filter = %v, want line 1 column %d with a caret", at, tt.column)
				}
			})
		}
	})
}

// TestUnavailableIsHTTP503: when the database refuses connections, an
// answer that holds nothing is HTTP 503 with UNAVAILABLE (retryable), not
// 200 with INTERNAL; an answer with some data stays 200.
func TestUnavailableIsHTTP503(t *testing.T) {
	_, dbURL := storetest.Open(t, "postgres")
	u, err := neturl.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	hole := newBlackHole(t, u.Host)
	u.Host = hole.ln.Addr().String()
	s, err := store.Open(context.Background(), u.String(), store.Options{ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := server.New(server.Config{Store: s, Logger: quiet})
	const q = `{ records(parent: "-") { totalCount } }`
	if status, r := postStatus(t, h, q, nil); status != http.StatusOK || len(r.Errors) > 0 {
		t.Fatalf("before the outage: %d %+v", status, r.Errors)
	}
	hole.ln.Close() // new connections are refused
	hole.silence()  // and the open ones dropped
	for range 2 {   // the first may find its pooled connection lost
		status, r := postStatus(t, h, q, nil)
		if status != http.StatusServiceUnavailable || r.code() != graph.CodeUnavailable {
			t.Errorf("during the outage: status %d, errors %+v; want 503 UNAVAILABLE", status, r.Errors)
		}
	}
	status, r := postStatus(t, h, `{ __typename result(name: "ci/results/0b5c6a52-1d1e-4c39-9b8e-7a8f3c1d2e01") { name } }`, nil)
	if status != http.StatusOK || r.code() != graph.CodeUnavailable {
		t.Errorf("partial answer: status %d, errors %+v; want 200 with UNAVAILABLE", status, r.Errors)
	}
}
