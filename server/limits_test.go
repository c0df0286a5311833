package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// chain is a document whose operation spreads fragment F<n>, each F<i>
// holding body with PREV standing for F<i-1>, and F0 holding leaf.
func chain(n int, top, typ, body, leaf string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "query { %s }\n", strings.ReplaceAll(top, "PREV", fmt.Sprintf("F%d", n)))
	for i := n; i > 0; i-- {
		fmt.Fprintf(&b, "fragment F%d on %s { %s }\n", i, typ, strings.ReplaceAll(body, "PREV", fmt.Sprintf("F%d", i-1)))
	}
	fmt.Fprintf(&b, "fragment F0 on %s { %s }\n", typ, leaf)
	return b.String()
}

// Fragment bombs (each fragment spreading the next several times) expand to
// 2^N selections from a document of N lines. They are refused with the
// count and the limit before validation, cost or any resolver, after a walk
// that visits each selection of the document a bounded number of times.
func TestFragmentBombsRefusedInLinearWork(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	h := server.New(server.Config{Store: s, Logger: quiet})
	const leaf = `__typename record(name: "ci/results/a/records/b") { name }`
	for _, c := range []struct {
		name, query string
	}{
		{"two spreads 20 deep", chain(20, "...PREV", "Query", "...PREV ...PREV", leaf)},
		{"two spreads 25 deep", chain(25, "...PREV", "Query", "...PREV ...PREV", leaf)},
		{"two spreads 80 deep (overflows an int)", chain(80, "...PREV", "Query", "...PREV ...PREV", leaf)},
		{"three spreads 30 deep", chain(30, "...PREV", "Query", "...PREV ...PREV ...PREV", leaf)},
		{"inline fragments", chain(40, "...PREV", "Query", "...PREV ... on Query { ...PREV }", leaf)},
		{"spread under nested fields", chain(30, `record(name: "x") { ...PREV }`, "Record",
			"result { records { nodes { ...PREV } } } result { records { nodes { ...PREV } } }", "name")},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, statements := store.CountStatements(context.Background())
			r := post(t, ctx, h, c.query, nil)
			if r.code() != "INVALID_ARGUMENT" || !strings.Contains(r.Errors[0].Message, "once its fragments are expanded") ||
				!strings.Contains(r.Errors[0].Message, "the limit is 10000") {
				t.Fatalf("got %s %+v, want INVALID_ARGUMENT naming the expanded count and the limit", r.Data, r.Errors)
			}
			if n := statements.Load(); n != 0 {
				t.Errorf("a refused query ran %d SQL statements", n)
			}
			// The work done: each selection written in the document is
			// visited once (the expanded walk does not run past the limit).
			written := strings.Count(c.query, "...") + strings.Count(c.query, "{")
			selections, visits, err := server.MeasureQuery(c.query, 10000)
			if err != nil {
				t.Fatal(err)
			}
			if visits > 4*written {
				t.Errorf("measuring visited %d selections for a document of about %d", visits, written)
			}
			t.Logf("expanded %d selections, %d visited", selections, visits)
		})
	}
}

// Repeating one field thousands of times in one place costs validation the
// square of the repetitions; it is refused, naming the field and where.
func TestRepeatedFieldRefused(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	h := server.New(server.Config{Store: s, Logger: quiet})
	for _, c := range []struct{ name, query, field string }{
		{"flat", "{ " + strings.Repeat("__typename ", 3000) + "}", "__typename"},
		{"through fragments", "{ ...A ...B ...C } " +
			"fragment A on Query { " + strings.Repeat(`record(name: "x") { name } `, 300) + "} " +
			"fragment B on Query { " + strings.Repeat(`record(name: "x") { name } `, 300) + "} " +
			"fragment C on Query { " + strings.Repeat(`record(name: "x") { name } `, 300) + "}", "record"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := post(t, context.Background(), h, c.query, nil)
			if r.code() != "INVALID_ARGUMENT" || !strings.Contains(r.Errors[0].Message, fmt.Sprintf("selects %q", c.field)) {
				t.Errorf("got %+v, want INVALID_ARGUMENT naming %s", r.Errors, c.field)
			}
		})
	}
}

// Fragments used as people use them, even spread many times, answer as the
// same query written without them; a long chain and a small diamond pass.
func TestFragmentHeavyQueriesStillWork(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		withFragments, err := os.ReadFile("testdata/limits/dashboard-fragments.graphql")
		if err != nil {
			t.Fatal(err)
		}
		vars := map[string]any{"first": 50}
		plain, fragmented := post(t, context.Background(), h, dashboard, vars), post(t, context.Background(), h, string(withFragments), vars)
		if len(plain.Errors)+len(fragmented.Errors) > 0 {
			t.Fatalf("errors: %+v %+v", plain.Errors, fragmented.Errors)
		}
		a, b := withoutCursors(t, plain.Data), withoutCursors(t, fragmented.Data)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("the query with fragments answered\n%s\nwithout them\n%s", fragmented.Data, plain.Data)
		}
		for name, q := range map[string]string{
			"a chain of 200 fragments": chain(200, "...PREV", "Query", "__typename ...PREV", `records(parent: "ci", first: 1) { totalCount }`),
			"a diamond 10 deep":        chain(10, "...PREV", "Query", "...PREV ...PREV", `records(parent: "ci", first: 1) { totalCount }`),
		} {
			if r := post(t, context.Background(), h, q, nil); len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"totalCount":10`) {
				t.Errorf("%s: %s %+v", name, r.Data, r.Errors)
			}
		}
	})
}

// withoutCursors decodes data leaving out cursors, which are sealed with a
// fresh nonce each time.
func withoutCursors(t *testing.T, data json.RawMessage) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	var strip func(any)
	strip = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			delete(v, "cursor")
			delete(v, "endCursor")
			for _, c := range v {
				strip(c)
			}
		case []any:
			for _, c := range v {
				strip(c)
			}
		}
	}
	strip(v)
	return v
}
