package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// seedDashboard stores n PipelineRuns with 5 TaskRuns of 4 steps each,
// objects of a few KB as Tekton writes them.
func seedDashboard(b *testing.B, s *store.Store, n int) {
	b.Helper()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var ws []store.RecordWrite
	for i := range n {
		prUID := uuid.NewString()
		t0 := start.Add(time.Duration(i) * time.Minute)
		pr := benchRun("PipelineRun", fmt.Sprintf("build-%d", i), prUID, "", t0, 0)
		ws = append(ws, store.RecordWrite{ResultName: store.ResultName("ci", prUID), UID: prUID, DataType: store.TypePipelineRun, Data: pr, UpdateSummary: true})
		for j := range 5 {
			uid := uuid.NewString()
			tr := benchRun("TaskRun", fmt.Sprintf("build-%d-task-%d", i, j), uid, fmt.Sprintf("build-%d", i), t0, 4)
			ws = append(ws, store.RecordWrite{ResultName: store.ResultName("ci", prUID), UID: uid, DataType: store.TypeTaskRun, Data: tr})
		}
	}
	if err := s.UpsertRecords(context.Background(), ws); err != nil {
		b.Fatal(err)
	}
}

func benchRun(kind, name, uid, owner string, t0 time.Time, steps int) json.RawMessage {
	labels := map[string]string{"app": "web", "tekton.dev/pipeline": "build", "team": "payments"}
	if owner != "" {
		labels["tekton.dev/pipelineRun"] = owner
	}
	var stepStates []any
	for k := range steps {
		stepStates = append(stepStates, map[string]any{"name": fmt.Sprintf("step-%d", k), "container": fmt.Sprintf("step-step-%d", k),
			"imageID":    "registry.example.com/builder@sha256:" + strings.Repeat("ab", 32),
			"terminated": map[string]any{"exitCode": 0, "reason": "Completed", "startedAt": t0, "finishedAt": t0.Add(time.Minute)}})
	}
	obj := map[string]any{
		"apiVersion": "tekton.dev/v1", "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": "ci", "uid": uid, "labels": labels,
			"annotations": map[string]string{"note": strings.Repeat("n", 800)}},
		"spec": map[string]any{"params": []any{map[string]any{"name": "revision", "value": strings.Repeat("f", 40)}},
			"serviceAccountName": "builder", "timeout": "1h0m0s"},
		"status": map[string]any{"startTime": t0, "completionTime": t0.Add(5 * time.Minute), "podName": name + "-pod",
			"conditions": []any{map[string]any{"type": "Succeeded", "status": "True", "reason": "Succeeded", "message": "All Steps have completed executing"}},
			"steps":      stepStates, "taskSpec": map[string]any{"steps": []any{map[string]any{"name": "build", "image": "golang", "script": strings.Repeat("echo build\n", 60)}}}},
	}
	b, _ := json.Marshal(obj)
	return b
}

// BenchmarkDashboard is the dashboard query of issue 5 (50 PipelineRuns,
// their TaskRuns and steps) served by the handler, without HTTP clients:
// the server's own cost per request. Compare commits with benchstat. The
// -cached variants ask the same query again and again, as polling
// dashboards do, with the response cache on: every request but the first
// is a hit.
func BenchmarkDashboard(b *testing.B) {
	for _, kind := range storetest.Kinds {
		for _, variant := range []struct {
			suffix     string
			cacheBytes int64
		}{{"", 0}, {"-cached", server.DefaultResponseCacheBytes}} {
			b.Run(kind+variant.suffix, func(b *testing.B) {
				s, _ := storetest.Open(b, kind)
				seedDashboard(b, s, 60)
				h := server.New(server.Config{Store: s, Logger: quiet, ResponseCacheBytes: variant.cacheBytes})
				vars := map[string]any{"first": 50}
				post(b, context.Background(), h, dashboard, vars) // warm: the cached variants measure hits
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if r := post(b, context.Background(), h, dashboard, vars); len(r.Errors) > 0 {
						b.Fatal(r.Errors)
					}
				}
			})
		}
	}
}
