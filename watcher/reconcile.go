package watcher

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/annals-dev/annals/store"
)

// runObject is a *TaskRun or *PipelineRun.
type runObject interface {
	metav1.Object
	runtime.Object
}

var everything = labels.Everything()

func asRun(obj any) (runObject, bool) {
	switch o := obj.(type) {
	case *pipelinev1.TaskRun:
		return o, true
	case *pipelinev1.PipelineRun:
		return o, true
	}
	return nil, false
}

func newBucket(perSecond float64, burst int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(perSecond), burst)
}

// selects reports whether a run with these labels is one the watcher watches.
func (w *Watcher) selects(l map[string]string) bool {
	if w.cfg.LabelSelector == "" {
		return true
	}
	sel, err := labels.Parse(w.cfg.LabelSelector)
	return err == nil && sel.Matches(labels.Set(l))
}

// observed is one state of a run, ready to store.
type observed struct {
	kind       string
	obj        runObject
	data       []byte   // the whole object as stored: managed fields dropped
	digest     [32]byte // of the parts whose change is worth a new version
	done       bool
	completion *time.Time
	taskRun    *pipelinev1.TaskRun // nil for PipelineRuns
}

// observe serialises a run. The digest leaves out what changes without the
// run changing (resourceVersion, managed fields, the watcher's own
// annotations), so the watcher's own patches never cause a write.
func observe(obj runObject) (*observed, error) {
	o := &observed{obj: obj}
	var clean runObject
	switch r := obj.(type) {
	case *pipelinev1.TaskRun:
		c := r.DeepCopy()
		c.APIVersion, c.Kind = "tekton.dev/v1", kindTaskRun
		o.kind, o.done, o.taskRun, clean = kindTaskRun, r.IsDone(), r, c
		if r.Status.CompletionTime != nil {
			o.completion = &r.Status.CompletionTime.Time
		}
	case *pipelinev1.PipelineRun:
		c := r.DeepCopy()
		c.APIVersion, c.Kind = "tekton.dev/v1", kindPipelineRun
		o.kind, o.done, clean = kindPipelineRun, r.IsDone(), c
		if r.Status.CompletionTime != nil {
			o.completion = &r.Status.CompletionTime.Time
		}
	default:
		return nil, fmt.Errorf("%T is not a run", obj)
	}
	clean.SetManagedFields(nil)
	data, err := json.Marshal(clean)
	if err != nil {
		return nil, fmt.Errorf("encoding the run: %w", err)
	}
	o.data = data
	clean.SetResourceVersion("")
	if a := clean.GetAnnotations(); a != nil {
		trimmed := make(map[string]string, len(a))
		for k, v := range a {
			if k != AnnotationResult && k != AnnotationRecord && k != AnnotationStored {
				trimmed[k] = v
			}
		}
		clean.SetAnnotations(trimmed)
	}
	forDigest, err := json.Marshal(clean)
	if err != nil {
		return nil, fmt.Errorf("encoding the run: %w", err)
	}
	o.digest = sha256.Sum256(forDigest)
	return o, nil
}

// permanent tells whether a reconcile error will recur however often the
// run is retried: the run itself cannot be stored as it is (the store
// refused its data as invalid, or it cannot be grouped).
func permanent(err error) bool {
	var p permanentError
	return errors.Is(err, store.ErrInvalidArgument) || errors.As(err, &p)
}

// permanentError marks an error that retrying the same run cannot cure.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// reconcile brings one run's stored state, annotations and finalizer up to
// date, stores its logs when it has finished, and deletes it when its grace
// period has passed. An error means "try again later".
func (w *Watcher) reconcile(ctx context.Context, k runKey) error {
	obj, gone, err := w.get(k)
	if err != nil || obj == nil {
		return err
	}
	o, err := observe(obj)
	if err != nil {
		w.log.Error("run cannot be encoded; skipped", "run", k.String(), "error", err)
		return nil
	}
	uid := string(obj.GetUID())
	deleting := gone || obj.GetDeletionTimestamp() != nil
	final := o.done || deleting

	rec, err := w.storeRun(ctx, k, o)
	if err != nil {
		return err
	}
	logsStored := true
	if o.taskRun != nil && w.cfg.Logs && final && obj.GetAnnotations()[AnnotationStored] != "true" {
		if logsStored, err = w.storeLogs(ctx, k, o.taskRun, rec); err != nil {
			return err
		}
	}
	if o.taskRun != nil && w.cfg.Logs && !final && w.cfg.LiveLogInterval > 0 && o.taskRun.Status.PodName != "" {
		w.followLiveLogs(k, o.taskRun, rec)
	}
	stored := final && logsStored
	if stored && obj.GetAnnotations()[AnnotationStored] != "true" && o.completion != nil && w.metrics != nil {
		w.metrics.lag.Observe(time.Since(*o.completion).Seconds())
	}
	if gone {
		w.forget(k, uid)
		return nil
	}
	if err := w.patch(ctx, o, rec, stored); err != nil {
		return err
	}
	if stored && w.cfg.CompletedRunGracePeriod > 0 && !deleting {
		return w.deleteWhenDue(ctx, k, o, rec)
	}
	return nil
}

// storeRun writes the run's Record unless this state was already written.
func (w *Watcher) storeRun(ctx context.Context, k runKey, o *observed) (*store.Record, error) {
	run, err := ParseRun(o.data)
	if err != nil {
		return nil, permanentError{err}
	}
	wr, err := Group(run, o.data, w.pipelineRunUID)
	if err != nil {
		// A broken Result annotation must not cost the run: store it where
		// it would have gone without one.
		w.log.Warn("ignoring the run's Result annotation", "run", k.String(), "error", err)
		delete(run.Metadata.Annotations, AnnotationResult)
		if wr, err = Group(run, o.data, w.pipelineRunUID); err != nil {
			return nil, permanentError{err}
		}
	}
	_, resultUID, _ := store.ParseResultName(wr.ResultName)
	rec := &store.Record{UID: wr.UID, Namespace: k.Namespace, ResultName: wr.ResultName, ResultUID: resultUID,
		Name: store.RecordName(k.Namespace, resultUID, wr.UID), RunName: k.Name, DataType: wr.DataType}

	w.mu.Lock()
	last, known := w.seen[wr.UID]
	w.mu.Unlock()
	if !known {
		// First sight since start: compare with what is stored, so that a
		// restart replays every run without rewriting any.
		if last, known, err = w.storedDigest(ctx, o.kind, k.Namespace, wr.UID); err != nil {
			return nil, err
		}
	}
	if known && last == o.digest {
		w.remember(wr.UID, o.digest)
		return rec, nil
	}
	start := time.Now()
	if err := w.writes.write(ctx, wr); err != nil {
		return nil, fmt.Errorf("storing %s: %w", k, err)
	}
	if w.metrics != nil {
		w.metrics.storeTime.Observe(time.Since(start).Seconds())
		w.metrics.stored.WithLabelValues(o.kind).Inc()
	}
	w.remember(wr.UID, o.digest)
	return rec, nil
}

func (w *Watcher) remember(uid string, digest [32]byte) {
	w.mu.Lock()
	w.seen[uid] = digest
	w.mu.Unlock()
}

// storedDigest is the digest of the run's stored state, if it is stored.
func (w *Watcher) storedDigest(ctx context.Context, kind, namespace, uid string) ([32]byte, bool, error) {
	recs, err := w.store.GetRecordsByUID(ctx, namespace, []string{uid})
	if err != nil {
		return [32]byte{}, false, fmt.Errorf("reading the stored state: %w", err)
	}
	rec := recs[uid]
	if rec == nil {
		return [32]byte{}, false, nil
	}
	var obj runObject = &pipelinev1.TaskRun{}
	if kind == kindPipelineRun {
		obj = &pipelinev1.PipelineRun{}
	}
	if json.Unmarshal(rec.Data, obj) != nil {
		return [32]byte{}, false, nil // stored by something else: store again
	}
	o, err := observe(obj)
	if err != nil {
		return [32]byte{}, false, nil
	}
	return o.digest, true, nil
}

// forget drops what the watcher remembers of a deleted run.
func (w *Watcher) forget(k runKey, uid string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.tombstone[k]; ok && string(t.GetUID()) == uid {
		delete(w.tombstone, k)
	}
	delete(w.seen, uid)
	delete(w.logsDone, uid)
	for _, f := range w.followers {
		if f.taskRunUID == uid {
			f.cancel(errTaskRunDeleted) // it keeps what it read, marked as cut
		}
	}
}

// patch sets the run's Result, Record and stored annotations, and adds or
// removes the finalizer, in one JSON patch, only when something is missing.
// Patches touch only these keys, so they never fight the Tekton controller.
func (w *Watcher) patch(ctx context.Context, o *observed, rec *store.Record, stored bool) error {
	meta := o.obj
	want := map[string]string{AnnotationResult: rec.ResultName, AnnotationRecord: rec.Name}
	if stored {
		want[AnnotationStored] = "true"
	}
	var ops []patchOp
	have := meta.GetAnnotations()
	if have == nil {
		ops = append(ops, patchOp{Op: "add", Path: "/metadata/annotations", Value: want})
	} else {
		for key, v := range want {
			if have[key] != v {
				ops = append(ops, patchOp{Op: "add", Path: "/metadata/annotations/" + escapePointer(key), Value: v})
			}
		}
	}
	if w.cfg.Finalizers {
		ops = append(ops, finalizerOps(meta, !stored && meta.GetDeletionTimestamp() == nil)...)
	} else if i := indexOf(meta.GetFinalizers(), Finalizer); i >= 0 {
		// Finalizers were turned off: release the runs held before.
		ops = append(ops, finalizerOps(meta, false)...)
	}
	if len(ops) == 0 {
		return nil
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	if o.kind == kindPipelineRun {
		_, err = w.tekton.TektonV1().PipelineRuns(meta.GetNamespace()).Patch(ctx, meta.GetName(), types.JSONPatchType, body, metav1.PatchOptions{})
	} else {
		_, err = w.tekton.TektonV1().TaskRuns(meta.GetNamespace()).Patch(ctx, meta.GetName(), types.JSONPatchType, body, metav1.PatchOptions{})
	}
	if err == nil || apierrors.IsNotFound(err) {
		return nil // when deleted meanwhile, the delete event stores its last state
	}
	// A failed "test" op (the run changed under us) is retried like any
	// other failure, from the then current state.
	return fmt.Errorf("patching %s %s/%s: %w", o.kind, meta.GetNamespace(), meta.GetName(), err)
}

// patchOp is one RFC 6902 JSON patch operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// finalizerOps adds (hold) or removes the watcher's finalizer. Removal tests
// the index first, and adding the first finalizer tests the resourceVersion,
// so a concurrent change by someone else fails the patch instead of being
// overwritten.
func finalizerOps(meta metav1.Object, hold bool) []patchOp {
	fs := meta.GetFinalizers()
	i := indexOf(fs, Finalizer)
	switch {
	case hold && i < 0 && len(fs) == 0:
		return []patchOp{
			{Op: "test", Path: "/metadata/resourceVersion", Value: meta.GetResourceVersion()},
			{Op: "add", Path: "/metadata/finalizers", Value: []string{Finalizer}},
		}
	case hold && i < 0:
		return []patchOp{{Op: "add", Path: "/metadata/finalizers/-", Value: Finalizer}}
	case !hold && i >= 0:
		p := fmt.Sprintf("/metadata/finalizers/%d", i)
		return []patchOp{{Op: "test", Path: p, Value: Finalizer}, {Op: "remove", Path: p}}
	}
	return nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// escapePointer escapes a map key for a JSON pointer (RFC 6901).
func escapePointer(s string) string {
	out := make([]byte, 0, len(s)+4)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '~':
			out = append(out, "~0"...)
		case '/':
			out = append(out, "~1"...)
		default:
			out = append(out, s[i])
		}
	}
	return string(out)
}

// deleteWhenDue deletes a stored, finished top-level run once its grace
// period has passed, or schedules a look when it will have. TaskRuns of a
// PipelineRun go with their PipelineRun, which waits until all its TaskRuns
// are stored.
func (w *Watcher) deleteWhenDue(ctx context.Context, k runKey, o *observed, rec *store.Record) error {
	if rec.ResultUID != rec.UID {
		return nil // a TaskRun of a PipelineRun
	}
	completed := o.obj.GetCreationTimestamp().Time
	if o.completion != nil {
		completed = *o.completion
	}
	if left := time.Until(completed.Add(w.cfg.CompletedRunGracePeriod)); left > 0 {
		w.queue.AddAfter(k, left)
		return nil
	}
	if k.Kind == kindPipelineRun {
		waiting, err := w.unstoredTaskRuns(k)
		if err != nil {
			return err
		}
		if waiting > 0 {
			w.queue.AddAfter(k, 5*time.Second)
			return nil
		}
	}
	uid := o.obj.GetUID()
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &background}
	var err error
	if k.Kind == kindPipelineRun {
		err = w.tekton.TektonV1().PipelineRuns(k.Namespace).Delete(ctx, k.Name, opts)
	} else {
		err = w.tekton.TektonV1().TaskRuns(k.Namespace).Delete(ctx, k.Name, opts)
	}
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting %s: %w", k, err)
	}
	if err == nil {
		if w.metrics != nil {
			w.metrics.deleted.WithLabelValues(k.Kind).Inc()
		}
		w.log.Info("deleted finished run after its grace period", "run", k.String())
	}
	return nil
}

// unstoredTaskRuns counts the TaskRuns of a PipelineRun whose final state
// is not stored yet.
func (w *Watcher) unstoredTaskRuns(k runKey) (int, error) {
	l := w.trLister[k.Namespace]
	if l == nil {
		l = w.trLister[metav1.NamespaceAll]
	}
	sel := labels.SelectorFromSet(labels.Set{"tekton.dev/pipelineRun": k.Name})
	trs, err := l.TaskRuns(k.Namespace).List(sel)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, tr := range trs {
		if tr.Annotations[AnnotationStored] != "true" {
			n++
		}
	}
	return n, nil
}
