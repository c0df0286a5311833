package watcher_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"knative.dev/pkg/apis"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
	"github.com/annals-dev/annals/watcher"
	"github.com/annals-dev/annals/watcher/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// fakeLogs serves step logs by container name; a missing one is NotFound,
// as the API server answers for a pod that is gone.
type fakeLogs struct {
	mu    sync.Mutex
	logs  map[string]string
	opens int
}

func (f *fakeLogs) Open(_ context.Context, _, pod, container string) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens++
	text, ok := f.logs[container]
	if !ok {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, pod)
	}
	return io.NopCloser(strings.NewReader(text)), nil
}

func newNamespace(t *testing.T, env *kubetest.Env) string {
	t.Helper()
	ns, err := env.Kube.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "annals-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// startWatcher runs a watcher until the test ends or stop is called.
func startWatcher(t *testing.T, env *kubetest.Env, s *store.Store, cfg watcher.Config, logs watcher.LogSource, reg prometheus.Registerer) (stop func()) {
	t.Helper()
	var m *watcher.Metrics
	if reg != nil {
		m = watcher.NewMetrics(reg)
	}
	w, err := watcher.New(cfg, watcher.Options{Store: s, Kube: env.Kube, Tekton: env.Tekton, Logs: logs, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("watcher: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	eventually(t, 30*time.Second, func() (bool, string) { return w.Ready(), "watcher not ready" })
	return stop
}

func eventually(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newPipelineRun(ns, name string) *pipelinev1.PipelineRun {
	return &pipelinev1.PipelineRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "web", "tekton.dev/pipeline": "build"}},
		Spec:       pipelinev1.PipelineRunSpec{PipelineRef: &pipelinev1.PipelineRef{Name: "build"}},
	}
}

func newTaskRun(ns, name string, owner *pipelinev1.PipelineRun) *pipelinev1.TaskRun {
	tr := &pipelinev1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "web"}},
		Spec:       pipelinev1.TaskRunSpec{TaskRef: &pipelinev1.TaskRef{Name: "compile"}},
	}
	if owner != nil {
		tr.Labels["tekton.dev/pipelineRun"] = owner.Name
		tr.OwnerReferences = []metav1.OwnerReference{{APIVersion: "tekton.dev/v1", Kind: "PipelineRun", Name: owner.Name, UID: owner.UID}}
	}
	return tr
}

var (
	started  = metav1.NewTime(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	finished = metav1.NewTime(time.Date(2026, 11, 1, 10, 5, 0, 0, time.UTC))
)

func succeeded(status corev1.ConditionStatus, reason string) apis.Condition {
	return apis.Condition{Type: apis.ConditionSucceeded, Status: status, Reason: reason, LastTransitionTime: apis.VolatileTime{Inner: finished}}
}

// finishTaskRun gives a TaskRun the status Tekton writes when it ends:
// times, pod, steps and the Succeeded condition.
func finishTaskRun(t *testing.T, env *kubetest.Env, tr *pipelinev1.TaskRun, steps ...string) *pipelinev1.TaskRun {
	t.Helper()
	tr = tr.DeepCopy()
	tr.Status.StartTime, tr.Status.CompletionTime = &started, &finished
	tr.Status.PodName = tr.Name + "-pod"
	for _, s := range steps {
		tr.Status.Steps = append(tr.Status.Steps, pipelinev1.StepState{Name: s, Container: "step-" + s})
	}
	tr.Status.SetCondition(ptr(succeeded(corev1.ConditionTrue, "Succeeded")))
	out, err := env.Tekton.TektonV1().TaskRuns(tr.Namespace).UpdateStatus(context.Background(), tr, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func finishPipelineRun(t *testing.T, env *kubetest.Env, pr *pipelinev1.PipelineRun, status corev1.ConditionStatus, reason string) *pipelinev1.PipelineRun {
	t.Helper()
	pr = pr.DeepCopy()
	pr.Status.StartTime, pr.Status.CompletionTime = &started, &finished
	pr.Status.SetCondition(ptr(succeeded(status, reason)))
	out, err := env.Tekton.TektonV1().PipelineRuns(pr.Namespace).UpdateStatus(context.Background(), pr, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func getTaskRun(t *testing.T, env *kubetest.Env, ns, name string) *pipelinev1.TaskRun {
	t.Helper()
	tr, err := env.Tekton.TektonV1().TaskRuns(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func getPipelineRun(t *testing.T, env *kubetest.Env, ns, name string) *pipelinev1.PipelineRun {
	t.Helper()
	pr, err := env.Tekton.TektonV1().PipelineRuns(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

// storedRun reads the Record of a run by its namespace and uid.
func storedRun(t *testing.T, s *store.Store, namespace, uid string) *store.Record {
	t.Helper()
	recs, err := s.GetRecordsByUID(context.Background(), namespace, []string{uid})
	if err != nil {
		t.Fatal(err)
	}
	return recs[uid]
}

// TestWatcherRecordsRunsAndLogs follows a PipelineRun with one TaskRun,
// created before its PipelineRun is seen, from start to finish.
func TestWatcherRecordsRunsAndLogs(t *testing.T) {
	env := kubetest.Get(t)
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ns := newNamespace(t, env)
		pr, err := env.Tekton.TektonV1().PipelineRuns(ns).Create(ctx, newPipelineRun(ns, "build-1"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := env.Tekton.TektonV1().TaskRuns(ns).Create(ctx, newTaskRun(ns, "build-1-compile", pr), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		logs := &fakeLogs{logs: map[string]string{"step-compile": "compiling\nok\n"}} // step-test's pod log is gone
		reg := prometheus.NewRegistry()
		startWatcher(t, env, s, watcher.Config{Namespaces: []string{ns}, Logs: true}, logs, reg)

		resultName := store.ResultName(ns, string(pr.UID))
		eventually(t, 20*time.Second, func() (bool, string) {
			got := getTaskRun(t, env, ns, tr.Name).Annotations
			return got[watcher.AnnotationResult] == resultName && got[watcher.AnnotationRecord] != "", fmt.Sprintf("TaskRun annotations %v", got)
		})
		if rec := storedRun(t, s, tr.Namespace, string(tr.UID)); rec == nil || rec.ResultName != resultName || rec.Status != store.StatusUnknown {
			t.Fatalf("running TaskRun stored as %+v, want it in %s, status Unknown", rec, resultName)
		}

		tr = finishTaskRun(t, env, getTaskRun(t, env, ns, tr.Name), "compile", "test")
		pr = finishPipelineRun(t, env, getPipelineRun(t, env, ns, pr.Name), corev1.ConditionTrue, "Succeeded")
		eventually(t, 20*time.Second, func() (bool, string) {
			a, b := getTaskRun(t, env, ns, tr.Name).Annotations, getPipelineRun(t, env, ns, pr.Name).Annotations
			return a[watcher.AnnotationStored] == "true" && b[watcher.AnnotationStored] == "true", fmt.Sprintf("annotations: TaskRun %v, PipelineRun %v", a, b)
		})
		rec := storedRun(t, s, tr.Namespace, string(tr.UID))
		if rec.Status != store.StatusSucceeded || rec.CompletionTime == nil || rec.PipelineRunName != pr.Name {
			t.Errorf("finished TaskRun stored as status %q completion %v pipelineRun %q", rec.Status, rec.CompletionTime, rec.PipelineRunName)
		}
		var data map[string]any
		if err := json.Unmarshal(rec.Data, &data); err != nil || data["kind"] != "TaskRun" || data["apiVersion"] != "tekton.dev/v1" {
			t.Errorf("stored data is not the whole object: %.200s", rec.Data)
		}
		if strings.Contains(string(rec.Data), "managedFields") {
			t.Error("managed fields were stored")
		}
		res, err := s.GetResult(ctx, resultName)
		if err != nil {
			t.Fatal(err)
		}
		if res.SummaryStatus != store.StatusSucceeded || res.SummaryType != store.TypePipelineRun {
			t.Errorf("Result summary %q %q, want the PipelineRun's", res.SummaryStatus, res.SummaryType)
		}

		// One Log per step: the one with a pod log holds it; the other says why not.
		byStep := map[string]store.LogData{}
		trKey := store.Key{Namespace: tr.Namespace, UID: string(tr.UID)}
		logRecs, err := s.LogsForTaskRuns(ctx, []store.Key{trKey})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range logRecs[trKey] {
			var d store.LogData
			if err := json.Unmarshal(l.Data, &d); err != nil {
				t.Fatal(err)
			}
			byStep[d.Spec.Step] = d
			if d.Spec.Step == "compile" {
				r, err := s.OpenLog(ctx, l)
				if err != nil {
					t.Fatal(err)
				}
				text, _ := io.ReadAll(r)
				if string(text) != "compiling\nok\n" {
					t.Errorf("stored log %q", text)
				}
			}
		}
		if !byStep["compile"].Status.Available || byStep["test"].Status.Available || len(byStep) != 2 {
			t.Errorf("logs by step: %+v", byStep)
		}
		if n := metricValue(t, reg, "annals_watcher_logs_unavailable_total"); n != 1 {
			t.Errorf("logs unavailable metric = %v, want 1", n)
		}
	})
}

// metricValue sums a counter or gauge family of reg over its labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() == name {
			for _, metric := range f.GetMetric() {
				sum += metric.GetCounter().GetValue() + metric.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// TestWatcherRestartStoresNothingTwice restarts the watcher over the same
// runs: no Record is added and no version moves.
func TestWatcherRestartStoresNothingTwice(t *testing.T) {
	env := kubetest.Get(t)
	s, _ := storetest.Open(t, "postgres")
	ctx := context.Background()
	ns := newNamespace(t, env)
	var uids []string
	for i := range 3 {
		tr, err := env.Tekton.TektonV1().TaskRuns(ns).Create(ctx, newTaskRun(ns, fmt.Sprintf("lone-%d", i), nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, string(tr.UID))
	}
	versions := func() map[string]int64 {
		recs, err := s.GetRecordsByUID(ctx, ns, uids)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for uid, r := range recs {
			out[uid] = r.Version
		}
		return out
	}
	cfg := watcher.Config{Namespaces: []string{ns}, Logs: true}
	stop := startWatcher(t, env, s, cfg, &fakeLogs{}, nil)
	eventually(t, 20*time.Second, func() (bool, string) {
		for _, tr := range []string{"lone-0", "lone-1", "lone-2"} {
			if getTaskRun(t, env, ns, tr).Annotations[watcher.AnnotationRecord] == "" {
				return false, tr + " not annotated"
			}
		}
		return len(versions()) == 3, "not all stored"
	})
	before := versions()
	stop()
	startWatcher(t, env, s, cfg, &fakeLogs{}, nil)
	time.Sleep(time.Second) // the replay has run: the informers synced before Ready
	page, err := s.ListRecords(ctx, store.ListOptions{Parent: ns})
	if err != nil {
		t.Fatal(err)
	}
	if after := versions(); len(page.Items) != 3 || fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("after restart: %d records, versions %v, before %v", len(page.Items), after, before)
	}
}

// TestFinalizerHoldsDeletedRunUntilStored deletes a running TaskRun: the
// finalizer keeps it until its final state is stored, then lets it go.
func TestFinalizerHoldsDeletedRunUntilStored(t *testing.T) {
	env := kubetest.Get(t)
	s, _ := storetest.Open(t, "postgres")
	ctx := context.Background()
	ns := newNamespace(t, env)
	tr, err := env.Tekton.TektonV1().TaskRuns(ns).Create(ctx, newTaskRun(ns, "held", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stop := startWatcher(t, env, s, watcher.Config{Namespaces: []string{ns}, Finalizers: true}, &fakeLogs{}, nil)
	eventually(t, 20*time.Second, func() (bool, string) {
		fs := getTaskRun(t, env, ns, "held").Finalizers
		return len(fs) == 1 && fs[0] == watcher.Finalizer, fmt.Sprintf("finalizers %v", fs)
	})
	// While no watcher runs, the run is cancelled and deleted: it must be held.
	stop()
	finishTaskRun(t, env, getTaskRun(t, env, ns, "held"), "build")
	if err := env.Tekton.TektonV1().TaskRuns(ns).Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if held := getTaskRun(t, env, ns, "held"); held.DeletionTimestamp == nil {
		t.Fatal("the deleted run was not held by the finalizer")
	}
	startWatcher(t, env, s, watcher.Config{Namespaces: []string{ns}, Finalizers: true}, &fakeLogs{}, nil)
	eventually(t, 20*time.Second, func() (bool, string) {
		_, err := env.Tekton.TektonV1().TaskRuns(ns).Get(ctx, "held", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprintf("run still there (%v)", err)
	})
	if rec := storedRun(t, s, tr.Namespace, string(tr.UID)); rec == nil || rec.Status != store.StatusSucceeded {
		t.Fatalf("final state not stored before release: %+v", rec)
	}
}

// TestCompletedRunsDeletedAfterGracePeriod: a finished PipelineRun is
// deleted once it and its TaskRun are stored and the period has passed; a
// running one is not.
func TestCompletedRunsDeletedAfterGracePeriod(t *testing.T) {
	env := kubetest.Get(t)
	s, _ := storetest.Open(t, "postgres")
	ctx := context.Background()
	ns := newNamespace(t, env)
	pr, err := env.Tekton.TektonV1().PipelineRuns(ns).Create(ctx, newPipelineRun(ns, "done"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := env.Tekton.TektonV1().TaskRuns(ns).Create(ctx, newTaskRun(ns, "done-a", pr), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	running, err := env.Tekton.TektonV1().PipelineRuns(ns).Create(ctx, newPipelineRun(ns, "running"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	finishTaskRun(t, env, tr, "a")
	finishPipelineRun(t, env, pr, corev1.ConditionFalse, "Failed")
	reg := prometheus.NewRegistry()
	startWatcher(t, env, s, watcher.Config{Namespaces: []string{ns}, Logs: true, CompletedRunGracePeriod: time.Second},
		&fakeLogs{logs: map[string]string{"step-a": "a\n"}}, reg)
	eventually(t, 20*time.Second, func() (bool, string) {
		_, err := env.Tekton.TektonV1().PipelineRuns(ns).Get(ctx, "done", metav1.GetOptions{})
		return apierrors.IsNotFound(err), "finished PipelineRun not deleted"
	})
	if rec := storedRun(t, s, pr.Namespace, string(pr.UID)); rec == nil || rec.Status != store.StatusFailed {
		t.Fatalf("deleted PipelineRun stored as %+v", rec)
	}
	if rec := storedRun(t, s, tr.Namespace, string(tr.UID)); rec == nil || rec.Status != store.StatusSucceeded {
		t.Fatalf("its TaskRun stored as %+v", rec)
	}
	if _, err := env.Tekton.TektonV1().PipelineRuns(ns).Get(ctx, running.Name, metav1.GetOptions{}); err != nil {
		t.Fatalf("running PipelineRun: %v", err)
	}
	if n := metricValue(t, reg, "annals_watcher_runs_deleted_total"); n != 1 {
		t.Errorf("runs deleted metric %v, want 1", n)
	}
}

// TestRunDeletedWhileDownIsCounted: a run stored unfinished and deleted
// while no watcher ran keeps its last state and is counted as lost.
func TestRunDeletedWhileDownIsCounted(t *testing.T) {
	env := kubetest.Get(t)
	s, _ := storetest.Open(t, "postgres")
	ctx := context.Background()
	ns := newNamespace(t, env)
	tr, err := env.Tekton.TektonV1().TaskRuns(ns).Create(ctx, newTaskRun(ns, "vanishing", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stop := startWatcher(t, env, s, watcher.Config{Namespaces: []string{ns}}, &fakeLogs{}, nil)
	eventually(t, 20*time.Second, func() (bool, string) { return storedRun(t, s, tr.Namespace, string(tr.UID)) != nil, "not stored" })
	stop()
	if err := env.Tekton.TektonV1().TaskRuns(ns).Delete(ctx, tr.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	startWatcher(t, env, s, watcher.Config{Namespaces: []string{ns}}, &fakeLogs{}, reg)
	if n := metricValue(t, reg, "annals_watcher_runs_lost_total"); n != 1 {
		t.Errorf("runs lost = %v, want 1", n)
	}
	if storedRun(t, s, tr.Namespace, string(tr.UID)) == nil {
		t.Error("the last seen state was removed")
	}
}

// TestBrokenResultAnnotationStillStored: a run whose Result annotation names
// another namespace is stored where it would be without it.
func TestBrokenResultAnnotationStillStored(t *testing.T) {
	env := kubetest.Get(t)
	s, _ := storetest.Open(t, "sqlite")
	ctx := context.Background()
	ns := newNamespace(t, env)
	tr := newTaskRun(ns, "odd", nil)
	tr.Annotations = map[string]string{watcher.AnnotationResult: "other-team/results/5eed0000-0000-4000-8000-000000000001"}
	tr, err := env.Tekton.TektonV1().TaskRuns(ns).Create(ctx, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	startWatcher(t, env, s, watcher.Config{Namespaces: []string{ns}}, &fakeLogs{}, nil)
	eventually(t, 20*time.Second, func() (bool, string) {
		rec := storedRun(t, s, tr.Namespace, string(tr.UID))
		return rec != nil && rec.ResultName == store.ResultName(ns, string(tr.UID)), fmt.Sprintf("stored as %+v", rec)
	})
}

// TestStoreOutageIsRetried: while the store fails, runs are retried with
// backoff, and stored once it is back; nothing is dropped.
func TestStoreOutageIsRetried(t *testing.T) {
	env := kubetest.Get(t)
	s, dbURL := storetest.Open(t, "postgres")
	ctx := context.Background()
	execSQL(t, dbURL, "ALTER TABLE records RENAME TO records_away")
	ns := newNamespace(t, env)
	tr, err := env.Tekton.TektonV1().TaskRuns(ns).Create(ctx, newTaskRun(ns, "patient", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	startWatcher(t, env, s, watcher.Config{Namespaces: []string{ns}, MaxRetryDelay: 200 * time.Millisecond}, &fakeLogs{}, reg)
	eventually(t, 20*time.Second, func() (bool, string) {
		n := metricValue(t, reg, "annals_watcher_reconcile_errors_total")
		return n >= 2, fmt.Sprintf("%v failed attempts", n)
	})
	execSQL(t, dbURL, "ALTER TABLE records_away RENAME TO records")
	eventually(t, 20*time.Second, func() (bool, string) {
		return storedRun(t, s, tr.Namespace, string(tr.UID)) != nil, "not stored after the outage"
	})
}

// execSQL runs a statement on the test database behind the store's back.
func execSQL(t *testing.T, dbURL, query string) {
	t.Helper()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query); err != nil {
		t.Fatal(err)
	}
}

// TestPodLogsFromTheAPIServer reads logs through pods/log of the real API
// server: a pod that does not exist is "unavailable" (stored as such, not
// retried); one never scheduled to a node has an empty log.
func TestPodLogsFromTheAPIServer(t *testing.T) {
	env := kubetest.Get(t)
	ctx := context.Background()
	ns := newNamespace(t, env)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unscheduled"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "step-a", Image: "busybox"}}}}
	if _, err := env.Kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	src := watcher.PodLogs{Client: env.Kube}
	if _, err := src.Open(ctx, ns, "gone", "step-a"); err == nil || !watcher.LogsUnavailable(err) {
		t.Errorf("missing pod: %v, want an error meaning the log is unavailable", err)
	}
	r, err := src.Open(ctx, ns, "unscheduled", "step-a")
	if err != nil {
		t.Fatalf("unscheduled pod: %v", err)
	}
	if b, _ := io.ReadAll(r); len(b) != 0 {
		t.Errorf("unscheduled pod log %q, want empty", b)
	}
	r.Close()
	if err := errors.New("connection reset"); watcher.LogsUnavailable(err) {
		t.Error("a network error must be retried, not taken as unavailable")
	}
}

// TestLeaderElection runs two replicas on one Lease: one leads and stores;
// when it stops, the other takes over and stores what comes next.
func TestLeaderElection(t *testing.T) {
	env := kubetest.Get(t)
	s, _ := storetest.Open(t, "postgres")
	ctx := context.Background()
	ns := newNamespace(t, env)
	lease := watcher.Leader{Namespace: ns, Name: "annals-watcher", LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 200 * time.Millisecond}
	type replica struct {
		cancel context.CancelFunc
		done   chan error
	}
	start := func(id string) replica {
		w, err := watcher.New(watcher.Config{Namespaces: []string{ns}}, watcher.Options{Store: s, Kube: env.Kube, Tekton: env.Tekton, Logs: &fakeLogs{}})
		if err != nil {
			t.Fatal(err)
		}
		l := lease
		l.Identity = id
		rctx, cancel := context.WithCancel(ctx)
		r := replica{cancel, make(chan error, 1)}
		go func() { r.done <- w.RunWithLeader(rctx, env.Kube, l) }()
		t.Cleanup(func() { cancel(); <-r.done })
		return r
	}
	holder := func() string {
		l, err := env.Kube.CoordinationV1().Leases(ns).Get(ctx, lease.Name, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	a := start("replica-a")
	eventually(t, 20*time.Second, func() (bool, string) { return holder() == "replica-a", "holder " + holder() })
	start("replica-b")
	first, err := env.Tekton.TektonV1().TaskRuns(ns).Create(ctx, newTaskRun(ns, "first", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() (bool, string) {
		return storedRun(t, s, first.Namespace, string(first.UID)) != nil, "first run not stored"
	})

	a.cancel()
	if err := <-a.done; err != nil {
		t.Fatalf("leader stopped with %v", err)
	}
	a.done <- nil // for the cleanup
	eventually(t, 20*time.Second, func() (bool, string) { return holder() == "replica-b", "holder " + holder() })
	second, err := env.Tekton.TektonV1().TaskRuns(ns).Create(ctx, newTaskRun(ns, "second", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() (bool, string) {
		return storedRun(t, s, second.Namespace, string(second.UID)) != nil, "the new leader did not store"
	})
}
