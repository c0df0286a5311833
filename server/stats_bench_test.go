package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// statsTrend is the harness's 30-day trend (bench/analytics.go): counts,
// success rate and p95 per Pipeline and day.
const statsTrend = `query($after: Time!, $before: Time!) {
  recordStats(parent: "-", where: {dataTypes: ["tekton.dev/v1.PipelineRun"], started: {after: $after, before: $before}},
              groupBy: [{dimension: PIPELINE}, {dimension: TIME, timeField: START, unit: DAY}]) {
    totalGroups groups { key { value } count statusCounts { succeeded failed } successRate duration { p95 } } } }`

// BenchmarkRecordStats serves statsTrend over 20 Pipelines and 31 days (620
// groups, as at 1M Records in the harness) through the handler, without
// HTTP clients. With few runs per group, it shows the cost of the output
// of many groups rather than of the data: at 1M Records the store's part
// is a few ms more. Compare commits with benchstat.
func BenchmarkRecordStats(b *testing.B) {
	for _, kind := range storetest.Kinds {
		b.Run(kind, func(b *testing.B) {
			s, _ := storetest.Open(b, kind)
			end := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
			var ws []store.RecordWrite
			for i := range 20 * 31 * 3 {
				uid := uuid.NewString()
				t0 := end.Add(-time.Duration(i) * 24 * time.Hour / (20 * 3))
				status := "True"
				if i%5 == 0 {
					status = "False"
				}
				run, _ := json.Marshal(map[string]any{"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
					"metadata": map[string]any{"name": fmt.Sprintf("run-%d", i), "namespace": fmt.Sprintf("team-%d", i%4), "uid": uid,
						"labels": map[string]string{"tekton.dev/pipeline": fmt.Sprintf("pipeline-%d", i%20)}},
					"status": map[string]any{"startTime": t0, "completionTime": t0.Add(time.Duration(i%600) * time.Second),
						"conditions": []any{map[string]any{"type": "Succeeded", "status": status}}}})
				ws = append(ws, store.RecordWrite{ResultName: store.ResultName(fmt.Sprintf("team-%d", i%4), uid), UID: uid,
					DataType: store.TypePipelineRun, Data: run, UpdateSummary: true})
			}
			if err := s.UpsertRecords(context.Background(), ws); err != nil {
				b.Fatal(err)
			}
			h := server.New(server.Config{Store: s, Logger: quiet})
			vars := map[string]any{"after": end.Add(-30 * 24 * time.Hour).Format(time.RFC3339), "before": end.Format(time.RFC3339)}
			var out struct {
				RecordStats struct{ TotalGroups int }
			}
			r := post(b, context.Background(), h, statsTrend, vars)
			if len(r.Errors) > 0 {
				b.Fatal(r.Errors)
			}
			if err := json.Unmarshal(r.Data, &out); err != nil || out.RecordStats.TotalGroups != 620 {
				b.Fatalf("%d groups (%v), want 620: the benchmark measures the output of that many", out.RecordStats.TotalGroups, err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if r := post(b, context.Background(), h, statsTrend, vars); len(r.Errors) > 0 {
					b.Fatal(r.Errors)
				}
			}
		})
	}
}
