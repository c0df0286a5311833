package server_test

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// nestedRecord is what the nested queries below ask of each Record: every
// field that reads more rows (its Result and annotations, the TaskRuns of a
// PipelineRun and their count, each TaskRun's owner and logs).
const nestedRecord = `name
      result { name annotations { key } }
      pipelineRun { name taskRuns(first: 20) { totalCount nodes { name taskRun { name steps { name } pipelineRun { name } logs { step } } } } }`

// TestStatementsUnderCPUStarvation: the SQL statements of a nested query
// follow from the query alone. Each query runs calm, then many times with
// one CPU shared with busy goroutines (a loaded server, where a batch
// gathered during a time window would be cut into pieces), and must cost
// the same every time; the dashboard costs the same at every page size.
func TestStatementsUnderCPUStarvation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		ctx := context.Background()
		prs, err := s.ListRecords(ctx, store.ListOptions{Parent: "ci", Filter: "data_type == PIPELINE_RUN", First: 3})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		var refs []any
		for _, pr := range prs.Items {
			ids = append(ids, nodeID("Record", pr.Name))
			refs = append(refs, map[string]any{"__typename": "Record", "name": pr.Name})
		}
		type query struct {
			name, query string
			vars        map[string]any
			want        int64
		}
		// Each list reads what its items select, one statement per level
		// and per distinct arguments; two lists read apart even when they
		// ask the same.
		queries := []query{
			{"results, their records and what those read", `query($first: Int!) { results(parent: "ci", first: $first) { totalCount edges { node {
				name annotations { key value } summary { status }
				records(first: 5, orderBy: {field: CREATE_TIME, direction: ASC}) { totalCount nodes { ` + nestedRecord + ` } } } } } }`,
				map[string]any{"first": 10}, 11},
			{"nodes", `query($ids: [ID!]!) { nodes(ids: $ids) { ... on Record { ` + nestedRecord + ` } } }`, map[string]any{"ids": ids}, 7},
			{"entities", `query($r: [_Any!]!) { _entities(representations: $r) { ... on Record { ` + nestedRecord + ` } } }`, map[string]any{"r": refs}, 7},
			{"the same list under two aliases", `{ a: records(parent: "ci", first: 3) { nodes { ` + nestedRecord + ` } }
				b: records(parent: "ci", first: 3) { nodes { ` + nestedRecord + ` } } }`, nil, 14},
		}
		for _, first := range []int{1, 2, 3, 50} {
			// records, its count, Results, annotations, TaskRuns, their
			// counts, their owners.
			queries = append(queries, query{"dashboard", dashboard, map[string]any{"first": first}, 7})
		}
		statements := func(q query) int64 {
			t.Helper()
			cctx, n := store.CountStatements(ctx)
			if resp := post(t, cctx, h, q.query, q.vars); len(resp.Errors) > 0 {
				t.Fatalf("%s: %+v", q.name, resp.Errors)
			}
			return n.Load()
		}
		calm := make([]int64, len(queries))
		for i, q := range queries {
			calm[i] = statements(q)
			if calm[i] != q.want {
				t.Errorf("%s %v: %d statements, want %d", q.name, q.vars["first"], calm[i], q.want)
			}
		}

		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		stop := make(chan struct{})
		var busy sync.WaitGroup
		for range 2 {
			busy.Go(func() {
				for n := 0; ; n++ {
					if n%1024 == 0 {
						select {
						case <-stop:
							return
						default:
						}
					}
				}
			})
		}
		defer busy.Wait()
		defer close(stop)
		for round := range 6 {
			for i, q := range queries {
				if n := statements(q); n != calm[i] {
					t.Errorf("round %d, %s %v: %d statements under load, %d calm", round, q.name, q.vars["first"], n, calm[i])
				}
			}
		}
	})
}
