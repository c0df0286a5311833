package retention

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// tektonRun is a top-level run as Tekton Results' agent sees it: its own
// labels, annotations and Succeeded condition, its creation and completion.
type tektonRun struct {
	key, ns, kind, status, reason string
	labels, runAnnotations        map[string]string
	resultAnnotations             map[string]string // set on the Result afterwards, not on the run
	createdAgo, endedAgo          time.Duration     // endedAgo 0: still running
	creationTimestamp             string            // overrides createdAgo when set
}

// seedTekton stores each run as the watcher or an import would, now: the
// Result is created today whatever the run's own times.
func seedTekton(t *testing.T, s *store.Store, now time.Time, runs []tektonRun) map[string]string {
	t.Helper()
	ctx := context.Background()
	names := map[string]string{}
	for _, r := range runs {
		uid := uuid.NewString()
		created := r.creationTimestamp
		if created == "" {
			created = now.Add(-r.createdAgo).Format(time.RFC3339)
		}
		status := map[string]any{"conditions": []any{map[string]any{"type": "Succeeded", "status": r.status, "reason": r.reason}}}
		if r.endedAgo > 0 {
			status["completionTime"] = now.Add(-r.endedAgo).Format(time.RFC3339)
		}
		data, err := json.Marshal(map[string]any{"apiVersion": "tekton.dev/v1", "kind": r.kind, "status": status,
			"metadata": map[string]any{"name": r.key, "namespace": r.ns, "uid": uid, "creationTimestamp": created, "labels": r.labels, "annotations": r.runAnnotations}})
		if err != nil {
			t.Fatal(err)
		}
		name := store.ResultName(r.ns, uid)
		if err := s.UpsertRecords(ctx, []store.RecordWrite{{ResultName: name, UID: uid, DataType: "tekton.dev/v1." + r.kind, Data: data, UpdateSummary: true}}); err != nil {
			t.Fatal(err)
		}
		if len(r.resultAnnotations) > 0 {
			if _, err := s.UpdateResultAnnotations(ctx, name, r.resultAnnotations, nil, ""); err != nil {
				t.Fatal(err)
			}
		}
		names[r.key] = name
	}
	return names
}

// A ConfigMap shaped like Tekton Results' documented example selects the
// runs Tekton Results' agent would: the run's own annotations (not the
// Result's), the condition reason only (a timeout is not Failed, a
// TaskRunCancelled is not Cancelled), and a running run's age from its own
// creation, not from when it was stored.
func TestTektonResultsSemantics(t *testing.T) {
	const pr, tr = "PipelineRun", "TaskRun"
	critical := map[string]string{"tier": "critical"}
	debug := map[string]string{"ci.example.org/debug": "keep"}
	runs := []tektonRun{
		{key: "payments-failed-100d", ns: "payments", kind: pr, status: "False", reason: "Failed", labels: critical, createdAgo: 101 * day, endedAgo: 100 * day},
		{key: "payments-timeout-100d", ns: "payments", kind: pr, status: "False", reason: "PipelineRunTimeout", labels: critical, createdAgo: 101 * day, endedAgo: 100 * day},
		{key: "debug-run-20d", ns: "ci", kind: pr, status: "True", reason: "Succeeded", runAnnotations: debug, createdAgo: 21 * day, endedAgo: 20 * day},
		{key: "debug-result-20d", ns: "ci", kind: pr, status: "True", reason: "Succeeded", resultAnnotations: debug, createdAgo: 21 * day, endedAgo: 20 * day},
		{key: "cancelled-pipelinerun-5d", ns: "ci", kind: pr, status: "False", reason: "Cancelled", createdAgo: 6 * day, endedAgo: 5 * day},
		{key: "cancelled-taskrun-5d", ns: "ci", kind: tr, status: "False", reason: "TaskRunCancelled", createdAgo: 6 * day, endedAgo: 5 * day},
		{key: "timeout-taskrun-4d", ns: "ci", kind: tr, status: "False", reason: "TaskRunTimeout", createdAgo: 5 * day, endedAgo: 4 * day},
		{key: "running-created-60d", ns: "ci", kind: pr, status: "Unknown", reason: "Running", createdAgo: 60 * day},
		{key: "running-created-2d", ns: "ci", kind: pr, status: "Unknown", reason: "Running", createdAgo: 2 * day},
		{key: "running-bad-creation", ns: "ci", kind: pr, status: "Unknown", reason: "Running", creationTimestamp: "last spring"},
		{key: "scratch-ok-3d", ns: "scratch", kind: pr, status: "True", reason: "Succeeded", createdAgo: 3 * day, endedAgo: 3 * day},
		{key: "ok-40d", ns: "ci", kind: pr, status: "True", reason: "Succeeded", createdAgo: 41 * day, endedAgo: 40 * day},
	}
	wantGone := []string{"cancelled-pipelinerun-5d", "debug-run-20d", "payments-timeout-100d", "running-created-60d", "scratch-ok-3d", "timeout-taskrun-4d"}
	wantByPolicy := map[string]int{"kept-for-debugging": 1, "timeouts": 2, "cancelled-pipelines": 1, "scratch": 1, "default": 1}

	cfg, err := LoadFile("testdata/tekton-results-policies-configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RunAt != "15 4 * * *" || cfg.DefaultRetention != 45*day || len(cfg.Policies) != 5 || len(cfg.Warnings) != 0 {
		t.Fatalf("configmap read as %+v", cfg)
	}
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		now := time.Now().UTC()
		names := seedTekton(t, s, now, runs)
		agent := &Agent{Store: s, Config: cfg, Log: slog.New(slog.DiscardHandler), BatchSize: 2, now: func() time.Time { return now }}

		dry := *agent
		dry.DryRun = true
		rep, err := dry.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		byPolicy := map[string]int{}
		for _, c := range rep.Counts {
			byPolicy[c.Policy] += c.Results
		}
		for p, n := range wantByPolicy {
			if byPolicy[p] != n {
				t.Errorf("dry run: policy %q would prune %d, want %d (all: %v)", p, byPolicy[p], n, byPolicy)
			}
		}

		if _, err := agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, r := range runs {
			if !slices.Contains(wantGone, r.key) {
				want = append(want, r.key)
			}
		}
		slices.Sort(want)
		if got := remaining(t, s, names); !slices.Equal(got, want) {
			t.Errorf("kept %v,\nwant %v", got, want)
		}
	})
}
