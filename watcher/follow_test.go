package watcher_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"knative.dev/pkg/apis"

	kubefake "k8s.io/client-go/kubernetes/fake"

	tektonfake "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/fake"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
	"github.com/annals-dev/annals/watcher"
	"github.com/annals-dev/annals/watcher/kubetest"
)

// streamingLogs serves container logs the way pods/log with follow does:
// a stream starts at the log's beginning, blocks for more while the
// container runs, and ends once it has ended.
type streamingLogs struct {
	mu      sync.Mutex
	changed *sync.Cond
	text    string
	ended   bool
	gone    bool // the pod is gone: NotFound from now on
	opens   int
}

func newStreamingLogs() *streamingLogs {
	l := &streamingLogs{}
	l.changed = sync.NewCond(&l.mu)
	return l
}

func (l *streamingLogs) Open(ctx context.Context, _, pod, _ string) (io.ReadCloser, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, pod)
	}
	l.opens++
	r := &logStream{l: l, closed: make(chan struct{})}
	go func() { // wake the reader when the stream is cancelled
		select {
		case <-ctx.Done():
		case <-r.closed:
		}
		l.mu.Lock()
		r.dead = true
		l.changed.Broadcast()
		l.mu.Unlock()
	}()
	return r, nil
}

func (l *streamingLogs) write(text string, end bool) {
	l.mu.Lock()
	l.text += text
	l.ended = l.ended || end
	l.changed.Broadcast()
	l.mu.Unlock()
}

type logStream struct {
	l      *streamingLogs
	pos    int
	dead   bool
	closed chan struct{}
	once   sync.Once
}

func (r *logStream) Read(p []byte) (int, error) {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	for r.pos == len(r.l.text) && !r.l.ended && !r.dead {
		r.l.changed.Wait()
	}
	if r.dead {
		return 0, io.ErrClosedPipe
	}
	if r.pos == len(r.l.text) {
		return 0, io.EOF
	}
	n := copy(p, r.l.text[r.pos:])
	r.pos += n
	return n, nil
}

func (r *logStream) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}

// fakeKube gives the follower tests in-memory clients: they are about the
// log stream and the store, which need no API server (the tests of the
// rest of the watcher run against a real one).
func fakeKube() *kubetest.Env {
	return &kubetest.Env{Kube: kubefake.NewClientset(), Tekton: tektonfake.NewSimpleClientset()}
}

func runningTaskRun(t *testing.T, env *kubetest.Env, ns, name string) *pipelinev1.TaskRun {
	t.Helper()
	ctx := context.Background()
	obj := newTaskRun(ns, name, nil)
	obj.UID = types.UID(uuid.NewString()) // the in-memory clientset makes none
	tr, err := env.Tekton.TektonV1().TaskRuns(ns).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr.Status.PodName, tr.Status.StartTime = name+"-pod", &started
	tr.Status.Steps = []pipelinev1.StepState{{Name: "build", Container: "step-build",
		ContainerState: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}}}
	tr.Status.SetCondition(ptr(apis.Condition{Type: apis.ConditionSucceeded, Status: corev1.ConditionUnknown, Reason: "Running"}))
	if tr, err = env.Tekton.TektonV1().TaskRuns(ns).UpdateStatus(ctx, tr, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return tr
}

func storedLogText(t *testing.T, s *store.Store, ns, uid string) (string, store.LogProgress) {
	ctx := context.Background()
	recs, err := s.GetRecordsByUID(ctx, ns, []string{uid})
	if err != nil || recs[uid] == nil {
		return "", store.LogProgress{}
	}
	r, err := s.OpenLog(ctx, recs[uid])
	if err != nil {
		return "", store.LogProgress{}
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	p, _ := s.LogProgressOf(ctx, store.Key{Namespace: ns, UID: uid})
	return string(b), p
}

// TestFollowedLogOfARunningTaskRun: a running step's log is stored as it
// is written, resumes after a watcher restart without a byte twice or
// lost, and is complete once the step ended.
func TestFollowedLogOfARunningTaskRun(t *testing.T) {
	env := fakeKube()
	s, _ := storetest.Open(t, "postgres")
	ns := "follow-" + uuid.NewString()[:8]
	tr := runningTaskRun(t, env, ns, "live")
	logs := newStreamingLogs()
	logs.write("step one\n", false)
	cfg := watcher.Config{Namespaces: []string{ns}, Logs: true, LiveLogInterval: 50 * time.Millisecond}
	stop := startWatcher(t, env, s, cfg, logs, nil)
	logUID := watcher.LogUID(string(tr.UID), "build")
	expect := func(want string, live bool) {
		t.Helper()
		eventually(t, 20*time.Second, func() (bool, string) {
			got, p := storedLogText(t, s, ns, logUID)
			return got == want && p.Live == live, fmt.Sprintf("stored %q live=%v, want %q live=%v", got, p.Live, want, live)
		})
	}
	expect("step one\n", true)
	logs.write("step two\n", false)
	expect("step one\nstep two\n", true)

	// Restarted, the watcher reads the stream again from its start and
	// stores only what it had not.
	stop()
	logs.write("step three\n", false)
	startWatcher(t, env, s, cfg, logs, nil)
	expect("step one\nstep two\nstep three\n", true)

	logs.write("done\n", true)
	finishTaskRun(t, env, getTaskRun(t, env, ns, "live"))
	eventually(t, 20*time.Second, func() (bool, string) {
		a := getTaskRun(t, env, ns, "live").Annotations
		return a[watcher.AnnotationStored] == "true", fmt.Sprintf("annotations %v", a)
	})
	if got, p := storedLogText(t, s, ns, logUID); got != "step one\nstep two\nstep three\ndone\n" || p.Live || p.Truncated {
		t.Errorf("after the TaskRun finished: %q %+v", got, p)
	}
}

// TestFollowedLogOfADeletedTaskRun: deleting a running TaskRun stops its
// follower, which keeps what it read, marked as cut; a pod gone before
// anything was read gives an unavailable Log.
func TestFollowedLogOfADeletedTaskRun(t *testing.T) {
	env := fakeKube()
	s, _ := storetest.Open(t, "sqlite")
	ctx := context.Background()
	ns := "follow-" + uuid.NewString()[:8]
	tr := runningTaskRun(t, env, ns, "doomed")
	logs := newStreamingLogs()
	logs.write("partial\n", false)
	stop := startWatcher(t, env, s, watcher.Config{Namespaces: []string{ns}, Logs: true, LiveLogInterval: 50 * time.Millisecond}, logs, nil)
	logUID := watcher.LogUID(string(tr.UID), "build")
	eventually(t, 20*time.Second, func() (bool, string) {
		got, _ := storedLogText(t, s, ns, logUID)
		return got == "partial\n", "stored " + got
	})
	if err := env.Tekton.TektonV1().TaskRuns(ns).Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "partial\n\n[annals: log truncated at 8 bytes: its TaskRun was deleted while it was read]\n"
	eventually(t, 20*time.Second, func() (bool, string) {
		got, p := storedLogText(t, s, ns, logUID)
		return got == want && !p.Live && p.Truncated, fmt.Sprintf("stored %q %+v", got, p)
	})

	stop() // the next watcher reads from a pod that is gone
	gone := newStreamingLogs()
	gone.gone = true
	tr2 := runningTaskRun(t, env, ns, "podless")
	startWatcher(t, env, s, watcher.Config{Namespaces: []string{ns}, Logs: true, LiveLogInterval: 50 * time.Millisecond}, gone, nil)
	finishTaskRun(t, env, getTaskRun(t, env, ns, "podless"))
	uid2 := watcher.LogUID(string(tr2.UID), "build")
	eventually(t, 20*time.Second, func() (bool, string) {
		_, p := storedLogText(t, s, ns, uid2)
		return p.Exists && !p.Live && !p.Available, fmt.Sprintf("%+v", p)
	})
}
