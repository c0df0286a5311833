package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store/storetest"
)

// The side-by-side comparison, given Annals' own REST API as the upstream
// (the same contract), drives every workload on the three targets, sends
// the upstream token, and sees the same data through REST and GraphQL.
func TestSideBySideUpstream(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			s, _ := storetest.Open(t, kind)
			if _, err := ingest(ctx, s, newGenerator(2), 1, 200); err != nil {
				t.Fatal(err)
			}
			h := server.New(server.Config{Store: s, Logger: slog.New(slog.DiscardHandler)})
			annals := httptest.NewServer(h)
			defer annals.Close()
			upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer secret" {
					http.Error(w, `{"code":16,"message":"unable to find token"}`, http.StatusUnauthorized)
					return
				}
				h.ServeHTTP(w, r)
			}))
			defer upstream.Close()

			rows, err := compareSideBySide(ctx, http.DefaultClient, annals.URL, upstream.URL+"/", "secret", 2, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(sideBySideWork) {
				t.Fatalf("%d rows, want %d", len(rows), len(sideBySideWork))
			}
			for i, r := range rows {
				if r.Work != sideBySideWork[i].name {
					t.Errorf("row %d is %q, want %q", i, r.Work, sideBySideWork[i].name)
				}
				if r.Upstream == nil {
					t.Fatalf("%s: no upstream measurement", r.Work)
				}
				for target, q := range map[string]QueryResult{"upstream": *r.Upstream, "rest": r.REST, "graphql": r.GraphQL} {
					if q.Errors > 0 || q.PerSec <= 0 {
						t.Errorf("%s on %s: %d errors, %.1f/s", r.Work, target, q.Errors, q.PerSec)
					}
				}
			}
			tree, pages := rows[0], rows[4]
			if tree.CallsREST < 2 || tree.CallsGraphQL != 1 {
				t.Errorf("dashboard tree: %d REST calls (want the list and one per PipelineRun), %d GraphQL calls (want 1)", tree.CallsREST, tree.CallsGraphQL)
			}
			// About 200 Records: both APIs walk the same list, page for page.
			if pages.CallsREST < 4 || pages.CallsREST != pages.CallsGraphQL {
				t.Errorf("pages: %d REST, %d GraphQL", pages.CallsREST, pages.CallsGraphQL)
			}

			var table bytes.Buffer
			printSideBySide(&table, rows)
			t.Log(table.String())
			if !strings.Contains(table.String(), "| GraphQL / upstream |") || strings.Count(table.String(), "\n|") != 2+len(rows) {
				t.Errorf("table:\n%s", table.String())
			}
		})
	}
}

// A wrong token is an error of the comparison, not a row of zeros.
func TestSideBySideUpstreamRefusal(t *testing.T) {
	ctx := context.Background()
	s, _ := storetest.Open(t, storetest.Kinds[0])
	if _, err := ingest(ctx, s, newGenerator(1), 1, 20); err != nil {
		t.Fatal(err)
	}
	annals := httptest.NewServer(server.New(server.Config{Store: s, Logger: slog.New(slog.DiscardHandler)}))
	defer annals.Close()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"code":16,"message":"permission denied"}`, http.StatusUnauthorized)
	}))
	defer refusing.Close()
	_, err := compareSideBySide(ctx, http.DefaultClient, annals.URL, refusing.URL, "wrong", 1, 1)
	if err == nil || !strings.Contains(err.Error(), "upstream") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("error %v, want the upstream's 401", err)
	}
}
