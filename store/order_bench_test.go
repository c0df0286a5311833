package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// BenchmarkRunNames measures the name filters and the NAME order over
// 30,000 TaskRuns (issue 16: contains over names scanned, 547 ms), on
// PostgreSQL, where pg_trgm serves nameContains, and on SQLite, which scans.
// go test ./store/ -run '^$' -bench BenchmarkRunNames -benchtime 20x
func BenchmarkRunNames(b *testing.B) {
	const n = 30000
	for _, kind := range storetest.Kinds {
		s, _ := storetest.Open(b, kind)
		ctx := context.Background()
		for start := 0; start < n; start += 500 {
			var ws []store.RecordWrite
			for i := start; i < start+500; i++ {
				uid := uuid.NewString()
				name := fmt.Sprintf("build-%s-%05d-compile", []string{"web", "api", "docs"}[i%3], i)
				ws = append(ws, store.RecordWrite{ResultName: store.ResultName(fmt.Sprintf("team-%d", i%10), uid), UID: uid, DataType: store.TypeTaskRun,
					Data: run("TaskRun", "ns", name, uid, "True", "Succeeded", nil, nil, map[string]string{"tekton.dev/pipeline": fmt.Sprintf("pipeline-%d", i%20)})})
			}
			if err := s.UpsertRecords(ctx, ws); err != nil {
				b.Fatal(err)
			}
		}
		contains := "api-12345"
		cases := map[string]store.ListOptions{
			"nameContains":      {RecordWhere: &filter.RecordWhere{NameContains: &contains}, First: 50},
			"cel_contains":      {Filter: `data.metadata.name.contains("api-12345")`, First: 50},
			"runNames":          {RecordWhere: &filter.RecordWhere{RunNames: []string{"build-api-12346-compile", "build-web-00003-compile"}}, First: 50},
			"order_name":        {OrderBy: store.OrderBy{Field: store.OrderName, Asc: true}, First: 50},
			"order_pipeline":    {OrderBy: store.OrderBy{Field: store.OrderPipeline}, First: 50},
			"order_status_team": {Parent: "team-3", OrderBy: store.OrderBy{Field: store.OrderStatus}, First: 50},
			"unfinished_first":  {OrderBy: store.OrderBy{Field: store.OrderStartTime, UnfinishedFirst: true}, First: 50},
		}
		for name, o := range cases {
			b.Run(kind+"/"+name, func(b *testing.B) {
				if plan, err := s.ExplainRecords(ctx, o); err == nil {
					b.Logf("plan:\n%s", plan)
				}
				for b.Loop() {
					if _, err := s.ListRecords(ctx, o); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
