package watcher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/google/uuid"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"

	"github.com/annals-dev/annals/store"
)

// LogSource opens the log of one container of a pod.
type LogSource interface {
	Open(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error)
}

// PodLogs reads container logs through the API server (pods/log).
type PodLogs struct{ Client kubernetes.Interface }

// Open streams the container's whole log.
func (p PodLogs) Open(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error) {
	return p.Client.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container}).Stream(ctx)
}

// logsUnavailable tells a log that will never be readable (its pod is gone,
// or has no node, or the container never ran) from a failure worth a retry.
func logsUnavailable(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsBadRequest(err) || apierrors.IsGone(err)
}

// logNamespace derives the uids of Log Records, so that storing a step's
// log again replaces it instead of adding another.
var logNamespace = uuid.MustParse("6c0b9c1e-8d5e-4a4f-9f5c-2b7e1a3d4c50")

// LogUID is the uid of the Log Record of one step of a TaskRun.
func LogUID(taskRunUID, step string) string {
	return uuid.NewSHA1(logNamespace, []byte(taskRunUID+"/"+step)).String()
}

// storeLogs stores the log of every step of a finished TaskRun, once. It
// reports false when the logs are not all stored yet.
func (w *Watcher) storeLogs(ctx context.Context, tr *pipelinev1.TaskRun, rec *store.Record) (bool, error) {
	uid := string(tr.UID)
	w.mu.Lock()
	done := w.logsDone[uid]
	w.mu.Unlock()
	if done {
		return true, nil
	}
	for _, step := range tr.Status.Steps {
		container := step.Container
		if container == "" {
			container = "step-" + step.Name
		}
		if err := w.storeStepLog(ctx, tr, rec, step.Name, container); err != nil {
			return false, err
		}
	}
	w.mu.Lock()
	w.logsDone[uid] = true
	w.mu.Unlock()
	return true, nil
}

// storeLiveLogs stores what the started steps of a running TaskRun have
// logged so far, so that a dashboard can show it (logLines streams the new
// lines). Each capture replaces the last; the capture at the end is the
// one that counts, so failures here are only logged.
func (w *Watcher) storeLiveLogs(ctx context.Context, tr *pipelinev1.TaskRun, rec *store.Record) {
	for _, step := range tr.Status.Steps {
		if step.Running == nil && step.Terminated == nil {
			continue // not started: nothing to read yet
		}
		container := step.Container
		if container == "" {
			container = "step-" + step.Name
		}
		rc, err := w.logs.Open(ctx, tr.Namespace, tr.Status.PodName, container)
		if err != nil {
			w.log.Debug("live log not readable yet", "taskrun", tr.Namespace+"/"+tr.Name, "step", step.Name, "error", err)
			continue
		}
		lw := store.LogWrite{UID: LogUID(string(tr.UID), step.Name), TaskRun: rec, Step: step.Name, Container: container}
		_, err = w.store.WriteLog(ctx, lw, rc, w.cfg.LogLimit)
		rc.Close()
		if err != nil {
			w.log.Warn("storing a live log failed", "taskrun", tr.Namespace+"/"+tr.Name, "step", step.Name, "error", err)
		}
	}
}

func (w *Watcher) storeStepLog(ctx context.Context, tr *pipelinev1.TaskRun, rec *store.Record, step, container string) error {
	lw := store.LogWrite{UID: LogUID(string(tr.UID), step), TaskRun: rec, Step: step, Container: container}
	var body io.Reader
	if tr.Status.PodName != "" {
		rc, err := w.logs.Open(ctx, tr.Namespace, tr.Status.PodName, container)
		switch {
		case err == nil:
			defer rc.Close()
			body = rc
		case logsUnavailable(err):
			w.log.Info("step log unavailable", "taskrun", tr.Namespace+"/"+tr.Name, "step", step, "reason", err)
			if kept, err := w.hasLiveCapture(ctx, tr.Namespace, lw.UID); err != nil || kept {
				return err // the last live capture is the best there is
			}
		default:
			return fmt.Errorf("reading the log of step %s of TaskRun %s/%s: %w", step, tr.Namespace, tr.Name, err)
		}
	}
	stored, err := w.store.WriteLog(ctx, lw, body, w.cfg.LogLimit)
	if err != nil {
		return fmt.Errorf("storing the log of step %s of TaskRun %s/%s: %w", step, tr.Namespace, tr.Name, err)
	}
	if w.metrics != nil {
		if body == nil {
			w.metrics.logsMissing.Inc()
		} else {
			w.metrics.logBytes.Add(float64(logSize(stored)))
		}
	}
	return nil
}

// hasLiveCapture reports whether a readable log of the step was stored
// while the TaskRun ran.
func (w *Watcher) hasLiveCapture(ctx context.Context, namespace, logUID string) (bool, error) {
	recs, err := w.store.GetRecordsByUID(ctx, namespace, []string{logUID})
	if err != nil || recs[logUID] == nil {
		return false, err
	}
	var d store.LogData
	return json.Unmarshal(recs[logUID].Data, &d) == nil && d.Status.Available, nil
}

// logSize reads the stored size from a Log Record.
func logSize(r *store.Record) int64 {
	var d store.LogData
	if r == nil || json.Unmarshal(r.Data, &d) != nil {
		return 0
	}
	return d.Status.Size
}
