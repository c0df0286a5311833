package filter_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// TestTektonFlavor runs filters as Tekton Results' clients write them, on
// both databases: name is the record's own id (B7), parent the namespace,
// result_name the Result's id, and contains() on a map or list looks in its
// JSON text (B6). The Annals flavor keeps its meanings.
func TestTektonFlavor(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		const (
			result = "0d0d0d0d-0000-4000-8000-000000000001"
			a      = "0d0d0d0d-0000-4000-8000-00000000000a"
			b      = "0d0d0d0d-0000-4000-8000-00000000000b"
		)
		if _, err := s.CreateResult(ctx, "ci", result, nil); err != nil {
			t.Fatal(err)
		}
		data := map[string]string{
			a: `{"metadata":{"name":"web-1","labels":{"app":"web","tekton.dev/pipelineRun":"p"}},"spec":{"pipelineRef":{"name":"build"}},"status":{"results":[{"name":"sha","value":"1"}]}}`,
			b: `{"metadata":{"name":"api-1","labels":{"app":"api"}},"spec":{"taskRef":{"kind":"Task"}}}`,
		}
		for uid, d := range data {
			if _, err := s.CreateRecord(ctx, store.RecordWrite{ResultName: store.ResultName("ci", result), UID: uid, DataType: store.TypeTaskRun, Data: []byte(d)}); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			expr string
			want []string
		}{
			{`name == "` + a + `"`, []string{a}},
			{`name.endsWith("records/` + a + `")`, nil},
			{`parent == "ci"`, []string{a, b}},
			{`parent == "ci/results/` + result + `"`, nil},
			{`result_name == "` + result + `"`, []string{a, b}},
			{`data.metadata.labels.contains("tekton.dev/pipelineRun")`, []string{a}},
			{`!data.metadata.labels.contains("tekton.dev/pipelineRun")`, []string{b}},
			{`data.metadata.labels.contains("ap")`, []string{a, b}}, // keys and values alike, as upstream
			{`data.status.results.contains("sha")`, []string{a}},
			{`data.spec.pipelineRef.contains("name")`, []string{a}},
			{`data.metadata.name.contains("eb-")`, []string{a}},
			{`data.nothing.contains("x")`, nil},
			{`name == "x' OR 'a'='a"`, nil},
		}
		for _, tt := range tests {
			page, err := s.ListRecords(ctx, store.ListOptions{Parent: "ci", Filter: tt.expr, FilterFlavor: filter.Tekton, OrderBy: store.OrderBy{Field: store.OrderCreateTime, Asc: true}})
			if err != nil {
				t.Errorf("%s: %v", tt.expr, err)
				continue
			}
			var got []string
			for _, r := range page.Items {
				got = append(got, r.UID)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s: %v, want %v", tt.expr, got, tt.want)
			}
		}
		// Annals' own flavor is unchanged: name is the full name, parent the
		// Result, and result_name unknown.
		page, err := s.ListRecords(ctx, store.ListOptions{Parent: "ci", Filter: `parent == "ci/results/` + result + `" && name == "ci/results/` + result + `/records/` + a + `"`})
		if err != nil || len(page.Items) != 1 {
			t.Errorf("Annals flavor: %v %v", page, err)
		}
		if _, err := s.ListRecords(ctx, store.ListOptions{Filter: `result_name == "x"`}); !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("result_name in the Annals flavor: %v", err)
		}
	})
}

func TestTektonFlavorBindsValues(t *testing.T) {
	for _, d := range []filter.Dialect{filter.Postgres, filter.SQLite} {
		for _, e := range []filter.Entity{filter.Records, filter.Results} {
			expr := `parent == "x' OR 'a'='a"`
			if e == filter.Records {
				expr += ` || result_name == "r'--" || data.metadata.labels.contains("k'ey")`
			}
			out, err := filter.Compile(e, filter.Tekton, expr, d)
			if err != nil {
				t.Fatalf("%s: %v", expr, err)
			}
			checkBound(t, expr, out, "x'", "r'--", "k'ey")
		}
	}
}
