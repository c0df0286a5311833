package retention

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// run is one Result of the dataset: its summary run and what it carries.
type run struct {
	key, ns, status, reason, pipeline string
	endedAgo                          time.Duration // 0: still running
	labels, annotations               map[string]string
	taskRuns                          int
}

func seed(t *testing.T, s *store.Store, runs []run) map[string]string {
	t.Helper()
	ctx := context.Background()
	names := map[string]string{}
	for _, r := range runs {
		uid := uuid.NewString()
		labels := map[string]string{"tekton.dev/pipeline": r.pipeline}
		for k, v := range r.labels {
			labels[k] = v
		}
		status := map[string]any{"startTime": now.Add(-r.endedAgo - time.Hour).Format(time.RFC3339),
			"conditions": []any{map[string]any{"type": "Succeeded", "status": r.status, "reason": r.reason}}}
		if r.endedAgo > 0 {
			status["completionTime"] = now.Add(-r.endedAgo).Format(time.RFC3339)
		}
		data, _ := json.Marshal(map[string]any{"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
			"metadata": map[string]any{"name": r.key, "namespace": r.ns, "labels": labels}, "status": status})
		writes := []store.RecordWrite{{ResultName: store.ResultName(r.ns, uid), UID: uid, DataType: store.TypePipelineRun, Data: data, UpdateSummary: true}}
		for range r.taskRuns {
			writes = append(writes, store.RecordWrite{ResultName: store.ResultName(r.ns, uid), UID: uuid.NewString(), DataType: store.TypeTaskRun, Data: []byte(`{}`)})
		}
		if err := s.UpsertRecords(ctx, writes); err != nil {
			t.Fatal(err)
		}
		if len(r.annotations) > 0 {
			if _, err := s.UpdateResultAnnotations(ctx, store.ResultName(r.ns, uid), r.annotations, nil, ""); err != nil {
				t.Fatal(err)
			}
		}
		names[r.key] = store.ResultName(r.ns, uid)
	}
	return names
}

func remaining(t *testing.T, s *store.Store, names map[string]string) []string {
	t.Helper()
	var out []string
	for key, name := range names {
		if _, err := s.GetResult(context.Background(), name); err == nil {
			out = append(out, key)
		} else if !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

var dataset = []run{
	{key: "prod-failed-40d", ns: "prod", status: "False", reason: "Failed", endedAgo: 40 * day, taskRuns: 2},
	{key: "prod-failed-70d", ns: "prod", status: "False", reason: "Failed", endedAgo: 70 * day, taskRuns: 2},
	{key: "prod-timeout-70d", ns: "prod", status: "False", reason: "PipelineRunTimeout", endedAgo: 70 * day},
	{key: "prod-ok-20d", ns: "prod", status: "True", reason: "Succeeded", endedAgo: 20 * day},
	{key: "prod-ok-40d", ns: "prod", status: "True", reason: "Succeeded", endedAgo: 40 * day, taskRuns: 3},
	{key: "dev-web-2d", ns: "dev", status: "True", reason: "Succeeded", endedAgo: 2 * day, labels: map[string]string{"app": "web"}},
	{key: "dev-other-2d", ns: "dev", status: "True", reason: "Succeeded", endedAgo: 2 * day, labels: map[string]string{"app": "other"}},
	{key: "sandbox-api-10h", ns: "sandbox", status: "True", reason: "Succeeded", endedAgo: 10 * time.Hour, labels: map[string]string{"app": "api"}},
	{key: "prod-running", ns: "prod", status: "Unknown", reason: "Running"},
}

func TestPolicies(t *testing.T) {
	tests := []struct {
		name, file string
		runs       []run
		want       []string
	}{
		{"tekton results configmap", "testdata/results-retention-configmap.yaml", dataset,
			[]string{"dev-other-2d", "prod-failed-40d", "prod-ok-20d", "prod-running", "sandbox-api-10h"}},
		{"keep last per pipeline, annotations", "testdata/annals-policy.yaml", []run{
			{key: "release-100d", ns: "a", status: "True", reason: "Succeeded", pipeline: "ship", endedAgo: 100 * day, annotations: map[string]string{"release": "true"}},
			{key: "ship-100d", ns: "a", status: "True", reason: "Succeeded", pipeline: "ship", endedAgo: 100 * day},
			{key: "nightly-10d", ns: "a", status: "True", pipeline: "nightly-build", endedAgo: 10 * day},
			{key: "nightly-11d", ns: "a", status: "True", pipeline: "nightly-build", endedAgo: 11 * day},
			{key: "nightly-12d", ns: "a", status: "True", pipeline: "nightly-build", endedAgo: 12 * day},
			{key: "nightly-13d", ns: "b", status: "True", pipeline: "nightly-build", endedAgo: 13 * day},
			{key: "nightly-14d", ns: "b", status: "True", pipeline: "nightly-build", endedAgo: 14 * day},
			{key: "nightly-15d", ns: "b", status: "True", pipeline: "nightly-build", endedAgo: 15 * day},
			{key: "nightly-16d", ns: "a", status: "True", pipeline: "nightly-build", endedAgo: 16 * day},
			{key: "nightly-1d", ns: "a", status: "True", pipeline: "nightly-build", endedAgo: day},
		}, []string{"nightly-10d", "nightly-11d", "nightly-12d", "nightly-13d", "nightly-1d", "release-100d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, s *store.Store) {
				cfg, err := LoadFile(tt.file)
				if err != nil {
					t.Fatal(err)
				}
				names := seed(t, s, tt.runs)
				agent := &Agent{Store: s, Config: cfg, Log: slog.New(slog.DiscardHandler), BatchSize: 2, now: func() time.Time { return now }}

				dry := *agent
				dry.DryRun = true
				rep, err := dry.RunOnce(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				wouldGo := 0
				for _, c := range rep.Counts {
					wouldGo += c.Results
				}
				if len(remaining(t, s, names)) != len(tt.runs) || wouldGo != len(tt.runs)-len(tt.want) {
					t.Fatalf("dry run: counted %d, deleted %d", wouldGo, len(tt.runs)-len(remaining(t, s, names)))
				}

				if _, err := agent.RunOnce(context.Background()); err != nil {
					t.Fatal(err)
				}
				if got := remaining(t, s, names); !slices.Equal(got, tt.want) {
					t.Errorf("kept %v, want %v", got, tt.want)
				}
			})
		})
	}
}

// A run stopped between batches leaves whole Results, and the next run
// finishes the job.
func TestInterruptedRunResumes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		cfg, err := LoadFile("testdata/results-retention-configmap.yaml")
		if err != nil {
			t.Fatal(err)
		}
		names := seed(t, s, dataset)
		ctx, cancel := context.WithCancel(context.Background())
		agent := &Agent{Store: s, Config: cfg, Log: slog.New(slog.DiscardHandler), BatchSize: 1, now: func() time.Time { return now }, afterBatch: cancel}
		if _, err := agent.RunOnce(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: %v", err)
		}
		left := remaining(t, s, names)
		if len(left) != len(dataset)-1 {
			t.Fatalf("one batch of one should have gone, %d of %d remain", len(left), len(dataset))
		}
		for _, key := range left {
			page, err := s.ListRecords(context.Background(), store.ListOptions{ResultName: names[key]})
			if err != nil || len(page.Items) == 0 {
				t.Errorf("%s lost its records: %v", key, err)
			}
		}
		agent.afterBatch = nil
		if _, err := agent.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := remaining(t, s, names); len(got) != 5 {
			t.Errorf("after resuming: %v", got)
		}
	})
}

func TestOneAgentAtATime(t *testing.T) {
	s, _ := storetest.Open(t, "postgres")
	cfg, _ := Parse([]byte(`defaultRetention: 1d`))
	ok, release, err := s.LockPruning(context.Background())
	if err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	agent := &Agent{Store: s, Config: cfg, Log: slog.New(slog.DiscardHandler), BatchSize: 10}
	if _, err := agent.RunOnce(context.Background()); !errors.Is(err, ErrLocked) {
		t.Errorf("a second agent ran: %v", err)
	}
	release()
	if _, err := agent.RunOnce(context.Background()); err != nil {
		t.Errorf("after release: %v", err)
	}
}

// BenchmarkPrune prunes Results of 5 Records each (a PipelineRun and four
// TaskRuns) while a GraphQL client pages through Records (store.ListRecords
// through the real handler), and reports Records pruned per second, reads
// per second and the slowest read. ANNALS_PRUNE_BENCH_RECORDS sets how many
// Records (default 10,000; 100000 is the full run of issue 8), or
// ANNALS_PRUNE_BENCH_RESULTS how many Results:
//
//	ANNALS_PRUNE_BENCH_RECORDS=100000 go test ./retention -run XXX -bench Prune -benchtime 1x
func BenchmarkPrune(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("ANNALS_PRUNE_BENCH_RESULTS")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("ANNALS_PRUNE_BENCH_RECORDS")); err == nil && v > 0 {
		n = max(v/5, 1)
	}
	for _, kind := range storetest.Kinds {
		b.Run(kind, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				s, _ := storetest.Open(b, kind)
				var writes []store.RecordWrite
				old := now.Add(-100 * day).Format(time.RFC3339)
				for i := range n {
					uid := uuid.NewString()
					data := []byte(`{"apiVersion":"tekton.dev/v1","kind":"PipelineRun","metadata":{"name":"r` + strconv.Itoa(i) + `"},"status":{"completionTime":"` + old + `"}}`)
					writes = append(writes, store.RecordWrite{ResultName: store.ResultName("ns", uid), UID: uid, DataType: store.TypePipelineRun, Data: data, UpdateSummary: true})
					for range 4 {
						writes = append(writes, store.RecordWrite{ResultName: store.ResultName("ns", uid), UID: uuid.NewString(), DataType: store.TypeTaskRun, Data: []byte(`{}`)})
					}
					if len(writes) >= 500 {
						if err := s.UpsertRecords(context.Background(), writes); err != nil {
							b.Fatal(err)
						}
						writes = writes[:0]
					}
				}
				if err := s.UpsertRecords(context.Background(), writes); err != nil {
					b.Fatal(err)
				}
				cfg, _ := Parse([]byte(`defaultRetention: 30d`))
				agent := &Agent{Store: s, Config: cfg, Log: slog.New(slog.DiscardHandler), BatchSize: 100, now: func() time.Time { return now }}
				ctx, stop := context.WithCancel(context.Background())
				var reads atomic.Int64
				var slowest atomic.Int64
				api := server.New(server.Config{Store: s, Logger: slog.New(slog.DiscardHandler)})
				go func() {
					for ctx.Err() == nil {
						start := time.Now()
						req := httptest.NewRequest(http.MethodPost, "http://localhost/graphql", strings.NewReader(`{"query":"{ records(parent: \"-\", first: 50) { edges { node { name } } } }"}`))
						req.Header.Set("Content-Type", "application/json")
						rec := httptest.NewRecorder()
						api.ServeHTTP(rec, req.WithContext(ctx))
						if rec.Code == http.StatusOK && !strings.Contains(rec.Body.String(), `"errors"`) {
							reads.Add(1)
						}
						if d := time.Since(start).Microseconds(); d > slowest.Load() {
							slowest.Store(d)
						}
					}
				}()
				b.StartTimer()
				start := time.Now()
				rep, err := agent.RunOnce(context.Background())
				elapsed := time.Since(start)
				b.StopTimer()
				stop()
				if err != nil || rep.Counts[0].Records != 5*n {
					b.Fatalf("%v %+v", err, rep)
				}
				b.ReportMetric(float64(5*n)/elapsed.Seconds(), "records/s")
				b.ReportMetric(float64(reads.Load())/elapsed.Seconds(), "reads/s")
				b.ReportMetric(float64(slowest.Load())/1000, "slowest-read-ms")
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	seed(t, s, dataset)
	cfg, _ := Parse([]byte(`defaultRetention: 7d`))
	reg := prometheus.NewRegistry()
	agent := &Agent{Store: s, Config: cfg, Log: slog.New(slog.DiscardHandler), BatchSize: 3, Metrics: NewMetrics(reg), now: func() time.Time { return now }}
	if _, err := agent.RunOnceAndLog(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Past 7 days: the five finished prod Results, with 12 Records.
	if got := testutil.ToFloat64(agent.Metrics.deletedResults); got != 5 {
		t.Errorf("deleted results metric: %v, want 5", got)
	}
	if got := testutil.ToFloat64(agent.Metrics.deletedRecords); got != 12 {
		t.Errorf("deleted records metric: %v, want 12", got)
	}
}

func TestKeepLastByLabelAndLogBytes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		names := seed(t, s, []run{
			{key: "web-20d", ns: "a", status: "True", endedAgo: 20 * day, labels: map[string]string{"app": "web"}},
			{key: "web-30d", ns: "a", status: "True", endedAgo: 30 * day, labels: map[string]string{"app": "web"}},
			{key: "api-40d", ns: "a", status: "True", endedAgo: 40 * day, labels: map[string]string{"app": "api"}},
			{key: "api-50d", ns: "a", status: "True", endedAgo: 50 * day, labels: map[string]string{"app": "api"}, taskRuns: 1},
		})
		// A log on the oldest Result's TaskRun.
		page, _ := s.ListRecords(context.Background(), store.ListOptions{ResultName: names["api-50d"], RecordWhere: &filter.RecordWhere{DataTypes: []string{store.TypeTaskRun}}})
		if _, err := s.WriteLog(context.Background(), store.LogWrite{UID: uuid.NewString(), TaskRun: page.Items[0], Step: "s"}, strings.NewReader("0123456789"), 0); err != nil {
			t.Fatal(err)
		}
		cfg, err := Parse([]byte("policies:\n- name: per-app\n  retention: 1d\n  keepLast: 1\n  keepLastByLabel: app\n"))
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		agent := &Agent{Store: s, Config: cfg, Log: slog.New(slog.DiscardHandler), BatchSize: 10, Metrics: NewMetrics(reg), now: func() time.Time { return now }}
		if _, err := agent.RunOnceAndLog(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := remaining(t, s, names); !slices.Equal(got, []string{"api-40d", "web-20d"}) {
			t.Errorf("kept %v, want the newest of each app", got)
		}
		if got := testutil.ToFloat64(agent.Metrics.deletedLogs); got != 10 {
			t.Errorf("deleted log bytes: %v, want 10", got)
		}
	})
}

// Policies written inline against the same dataset: reasons against
// summary statuses, parts ANDed, and Results that lack a label an earlier policy
// selects on still falling to later policies.
func TestSelectors(t *testing.T) {
	tests := []struct {
		name, policy string
		gone         []string
	}{
		{"reason Failed leaves timeouts out", "defaultRetention: \"0\"\npolicies:\n- name: f\n  selector: {matchStatuses: [Failed]}\n  retention: 50d",
			[]string{"prod-failed-70d"}},
		{"summary status Failed takes timeouts in", "defaultRetention: \"0\"\npolicies:\n- name: f\n  selector: {matchSummaryStatuses: [Failed]}\n  retention: 50d",
			[]string{"prod-failed-70d", "prod-timeout-70d"}},
		{"reason", "defaultRetention: \"0\"\npolicies:\n- name: t\n  selector: {matchStatuses: [PipelineRunTimeout]}\n  retention: 1d",
			[]string{"prod-timeout-70d"}},
		{"summary enum matches no reason", "defaultRetention: \"0\"\npolicies:\n- name: t\n  selector: {matchStatuses: [TIMEOUT, FAILURE]}\n  retention: 1d", nil},
		{"namespace AND status", "defaultRetention: \"0\"\npolicies:\n- name: ok\n  selector: {matchNamespaces: [prod, dev], matchStatuses: [Succeeded]}\n  retention: 30d",
			[]string{"prod-ok-40d"}},
		{"missing label falls through", "defaultRetention: 1d\npolicies:\n- name: apps\n  selector: {matchLabels: {app: [web, api]}}\n  retention: \"0\"",
			[]string{"dev-other-2d", "prod-failed-40d", "prod-failed-70d", "prod-ok-20d", "prod-ok-40d", "prod-timeout-70d"}},
		{"data type", "defaultRetention: \"0\"\npolicies:\n- name: tr\n  selector: {matchDataTypes: [tekton.dev/v1.TaskRun]}\n  retention: 1h", nil},
		{"first match wins", "defaultRetention: 1d\npolicies:\n- name: keep-prod\n  selector: {matchNamespaces: [prod]}\n  retention: 365d\n- name: failed\n  selector: {matchStatuses: [Failed]}\n  retention: 1d",
			[]string{"dev-other-2d", "dev-web-2d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, s *store.Store) {
				cfg, err := Parse([]byte(tt.policy))
				if err != nil {
					t.Fatal(err)
				}
				names := seed(t, s, dataset)
				agent := &Agent{Store: s, Config: cfg, Log: slog.New(slog.DiscardHandler), BatchSize: 2, now: func() time.Time { return now }}
				if _, err := agent.RunOnce(context.Background()); err != nil {
					t.Fatal(err)
				}
				var want []string
				for _, r := range dataset {
					if !slices.Contains(tt.gone, r.key) {
						want = append(want, r.key)
					}
				}
				slices.Sort(want)
				if got := remaining(t, s, names); !slices.Equal(got, want) {
					t.Errorf("kept %v, want %v", got, want)
				}
			})
		})
	}
}

// A dry run reads only: it previews while another agent prunes, and
// deletes nothing.
func TestDryRunWhileLocked(t *testing.T) {
	s, _ := storetest.Open(t, "postgres")
	names := seed(t, s, dataset)
	ok, release, err := s.LockPruning(context.Background())
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	defer release()
	cfg, _ := Parse([]byte(`defaultRetention: 1d`))
	agent := &Agent{Store: s, Config: cfg, Log: slog.New(slog.DiscardHandler), BatchSize: 2, DryRun: true, now: func() time.Time { return now }}
	rep, err := agent.RunOnce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, c := range rep.Counts {
		total += c.Results
	}
	if total != 7 || len(remaining(t, s, names)) != len(dataset) {
		t.Errorf("dry run counted %d (want 7), %d of %d remain", total, len(remaining(t, s, names)), len(dataset))
	}
}

// A scheduled agent rereads its policy before each run and keeps the last
// good one when the file no longer loads.
func TestReloadKeepsLastGoodPolicy(t *testing.T) {
	first, _ := Parse([]byte(`defaultRetention: 1d`))
	agent := &Agent{Config: first, Log: slog.New(slog.DiscardHandler)}
	agent.Reload = func() (*Config, error) { return Parse([]byte(`runAt: "every day"`)) }
	agent.reload()
	if agent.Config != first {
		t.Fatal("a policy that does not load replaced the last good one")
	}
	agent.Reload = func() (*Config, error) { return Parse([]byte(`defaultRetention: 2d`)) }
	agent.reload()
	if agent.Config.DefaultRetention != 2*day {
		t.Errorf("reloaded policy not applied: %v", agent.Config.DefaultRetention)
	}
}
