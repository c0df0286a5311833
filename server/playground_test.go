package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/annals-dev/annals/graph"
	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestPlaygroundExamples: every tab the playground opens is one operation
// valid against the schema, with valid variables, and the queries run over
// the sample runs on both databases without errors: a schema change cannot
// silently break them.
func TestPlaygroundExamples(t *testing.T) {
	schema := graph.NewExecutableSchema(graph.Config{Resolvers: &graph.Resolver{}}).Schema()
	// A day after the build-web-9fk3m PipelineRun failed (2026-03-02 09:03).
	now := time.Date(2026, 3, 2, 20, 0, 0, 0, time.UTC)
	tabs := server.PlaygroundTabs(now)
	if len(tabs) != len(server.PlaygroundExamples) || len(tabs) < 5 {
		t.Fatalf("%d tabs for %d examples", len(tabs), len(server.PlaygroundExamples))
	}
	type runnable struct {
		name  string
		query string
		vars  map[string]any
	}
	var queries []runnable
	kinds := map[ast.Operation]int{}
	for i, e := range server.PlaygroundExamples {
		doc, errs := gqlparser.LoadQuery(schema, e.Query)
		if len(errs) > 0 {
			t.Errorf("%s is not valid against the schema: %v", e.File, errs)
			continue
		}
		op := doc.Operations[0]
		kinds[op.Operation]++
		var vars map[string]any
		if tabs[i].Variables != "" {
			if err := json.Unmarshal([]byte(tabs[i].Variables), &vars); err != nil {
				t.Errorf("%s: variables %q: %v", e.File, tabs[i].Variables, err)
			}
		}
		if _, err := validator.VariableValues(schema, op, vars); err != nil {
			t.Errorf("%s: variables %s: %v", e.File, tabs[i].Variables, err)
		}
		if op.Operation == ast.Query {
			queries = append(queries, runnable{e.Operation, e.Query, vars})
		}
	}
	if kinds[ast.Subscription] == 0 || kinds[ast.Query] < 4 {
		t.Errorf("operations by kind %v: want the queries and a subscription", kinds)
	}
	if !strings.Contains(tabs[0].Query, "query Dashboard") {
		t.Errorf("the first tab is not the Dashboard:\n%s", tabs[0].Query)
	}

	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		for _, q := range queries {
			r := post(t, context.Background(), h, q.query, q.vars)
			if len(r.Errors) > 0 || len(r.Data) < 20 {
				t.Errorf("%s: %+v %s", q.name, r.Errors, r.Data)
			}
			// The failed runs of the day before now: the PipelineRun and
			// its TaskRun that failed.
			if q.name == "FailedRuns" && (!strings.Contains(string(r.Data), `"build-web-9fk3m"`) || !strings.Contains(string(r.Data), `"build-web-9fk3m-compile"`)) {
				t.Errorf("FailedRuns at %s: %s", now, r.Data)
			}
		}
	})
}

// TestPlaygroundPage: the page opens on the example tabs, runs no inline
// script, and names its assets by content hash.
func TestPlaygroundPage(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	h := server.New(server.Config{Store: s, Logger: quiet})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://localhost/", nil))
	page := rec.Body.String()
	if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET /: %d %v", rec.Code, rec.Header())
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") {
		t.Errorf("CSP allows more scripts than the bundle: %s", csp)
	}
	config := regexp.MustCompile(`<script type="application/json" id="annals-playground">(.*)</script>`).FindStringSubmatch(page)
	if config == nil {
		t.Fatalf("no configuration in the page:\n%s", page)
	}
	var cfg struct {
		Tabs []struct{ Query, Variables string }
	}
	if err := json.Unmarshal([]byte(config[1]), &cfg); err != nil {
		t.Fatalf("configuration %s: %v", config[1], err)
	}
	if len(cfg.Tabs) != len(server.PlaygroundExamples) || cfg.Tabs[0].Query != server.PlaygroundExamples[0].Query {
		t.Errorf("tabs in the page: %+v", cfg.Tabs)
	}
	var since struct{ Since time.Time }
	for _, tab := range cfg.Tabs {
		if strings.Contains(tab.Query, "query FailedRuns") {
			if err := json.Unmarshal([]byte(tab.Variables), &since); err != nil || time.Since(since.Since) < 23*time.Hour || time.Since(since.Since) > 25*time.Hour {
				t.Errorf("FailedRuns variables %q: want since a day ago (%v)", tab.Variables, err)
			}
		}
	}
	for _, want := range []string{`<script src="/assets/playground.`, `<link rel="stylesheet" href="/assets/playground.`, `<link rel="icon" type="image/svg+xml" href="/assets/favicon.`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}

// TestPlaygroundAssets: each asset in the encoding the request accepts
// (brotli where stored, else gzip, else plain), cacheable forever under
// its hashed name, 304 when the browser has it.
func TestPlaygroundAssets(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	h := server.New(server.Config{Store: s, Logger: quiet})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://localhost/", nil))
	urls := map[string]string{}
	for _, m := range regexp.MustCompile(`"(/assets/(playground|favicon)\.[0-9a-f]{12}\.(js|css|svg))"`).FindAllStringSubmatch(rec.Body.String(), -1) {
		urls[m[3]] = m[1]
	}
	if len(urls) != 3 {
		t.Fatalf("asset URLs in the page: %v", urls)
	}
	get := func(path string, header map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "http://localhost"+path, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	// The content of each asset, as a client taking gzip gets it.
	plain := map[string][]byte{}
	for ext, url := range urls {
		rec := get(url, map[string]string{"Accept-Encoding": "gzip"})
		body := rec.Body.Bytes()
		if rec.Header().Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("%s: %v", url, err)
			}
			body, _ = io.ReadAll(zr)
		}
		plain[ext] = body
	}
	if len(plain["js"]) < 500_000 || len(plain["css"]) < 100_000 || !bytes.Contains(plain["svg"], []byte("<svg")) {
		t.Fatalf("asset sizes js %d css %d svg %d", len(plain["js"]), len(plain["css"]), len(plain["svg"]))
	}

	for _, tc := range []struct {
		ext, acceptEncoding, want string
	}{
		{"js", "gzip, deflate, br, zstd", "br"},
		{"js", "gzip, deflate", "gzip"},
		{"js", "br;q=0, gzip", "gzip"},
		{"js", "*", "br"},
		{"js", "*;q=1, br;q=0", "gzip"},
		{"js", "gzip;q=0", ""},
		{"js", "", ""},
		{"css", "gzip, br", "gzip"}, // no brotli stored: it saves too little
		{"css", "br", ""},
		{"svg", "gzip, br", ""},
	} {
		rec := get(urls[tc.ext], map[string]string{"Accept-Encoding": tc.acceptEncoding})
		hd := rec.Header()
		if rec.Code != http.StatusOK || hd.Get("Content-Encoding") != tc.want {
			t.Errorf("%s with Accept-Encoding %q: %d, Content-Encoding %q, want %q", tc.ext, tc.acceptEncoding, rec.Code, hd.Get("Content-Encoding"), tc.want)
			continue
		}
		if hd.Get("Cache-Control") != "public, max-age=31536000, immutable" || hd.Get("Vary") != "Accept-Encoding" || hd.Get("ETag") == "" || !strings.HasPrefix(hd.Get("Content-Type"), map[string]string{"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}[tc.ext]) {
			t.Errorf("%s with %q: headers %v", tc.ext, tc.acceptEncoding, hd)
		}
		if tc.want == "" && !bytes.Equal(rec.Body.Bytes(), plain[tc.ext]) {
			t.Errorf("%s with %q: the plain body differs from the gunzipped one (%d, %d bytes)", tc.ext, tc.acceptEncoding, rec.Body.Len(), len(plain[tc.ext]))
		}
		// The browser revalidating what it holds gets 304 and no body.
		again := get(urls[tc.ext], map[string]string{"Accept-Encoding": tc.acceptEncoding, "If-None-Match": hd.Get("ETag")})
		if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Errorf("%s with If-None-Match %s: %d, %d bytes", tc.ext, hd.Get("ETag"), again.Code, again.Body.Len())
		}
	}
	for _, path := range []string{"/assets/playground.js", "/assets/playground.000000000000.js", "/assets/graphiql.min.js", "/assets/"} {
		if rec := get(path, map[string]string{"If-None-Match": "*"}); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, rec.Code)
		}
	}
	if rec := get(urls["js"], map[string]string{"If-None-Match": `"0123456789ab-br"`}); rec.Code != http.StatusOK {
		t.Errorf("another build's ETag: %d, want 200", rec.Code)
	}
}
