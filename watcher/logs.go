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

// LogSource opens the log of one container of a pod, from its start. While
// the container runs, the stream follows it: reading blocks until more is
// logged, and the stream ends (io.EOF) once the container has ended.
type LogSource interface {
	Open(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error)
}

// PodLogs reads container logs through the API server (pods/log).
type PodLogs struct{ Client kubernetes.Interface }

// Open streams the container's log from its start, following it while the
// container runs: the stream ends when the container has ended.
func (p PodLogs) Open(ctx context.Context, namespace, pod, container string) (io.ReadCloser, error) {
	return p.Client.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: true}).Stream(ctx)
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

// storeLogs makes sure the log of every step of a finished TaskRun is
// stored for good, once. Logs still streaming are left to their followers
// (which queue the run again when done); it reports false until all are
// complete.
func (w *Watcher) storeLogs(ctx context.Context, k runKey, tr *pipelinev1.TaskRun, rec *store.Record) (bool, error) {
	uid := string(tr.UID)
	w.mu.Lock()
	done := w.logsDone[uid]
	w.mu.Unlock()
	if done {
		return true, nil
	}
	all := true
	for _, spec := range stepLogs(k, tr, rec, true) {
		progress, err := w.store.LogProgressOf(ctx, store.Key{Namespace: tr.Namespace, UID: spec.lw.UID})
		if err != nil {
			return false, fmt.Errorf("reading the stored log of step %s of TaskRun %s/%s: %w", spec.step, tr.Namespace, tr.Name, err)
		}
		if progress.Exists && !progress.Live {
			continue
		}
		if tr.Status.PodName == "" {
			// No pod ever ran: there is no log to read.
			if _, err := w.store.WriteLog(ctx, spec.lw, nil, w.cfg.LogLimit); err != nil {
				return false, fmt.Errorf("storing the log of step %s of TaskRun %s/%s: %w", spec.step, tr.Namespace, tr.Name, err)
			}
			if w.metrics != nil {
				w.metrics.logsMissing.Inc()
			}
			continue
		}
		f := w.follow(spec)
		if f == nil {
			return false, fmt.Errorf("storing the log of step %s of TaskRun %s/%s: %w", spec.step, tr.Namespace, tr.Name, ctx.Err())
		}
		select {
		case <-f.done:
			if f.err != nil {
				w.mu.Lock()
				if w.followers[spec.key] == f {
					delete(w.followers, spec.key) // the retry of the run starts another
				}
				w.mu.Unlock()
				return false, fmt.Errorf("storing the log of step %s of TaskRun %s/%s: %w", spec.step, tr.Namespace, tr.Name, f.err)
			}
		default:
			all = false // its follower queues the run again when done
		}
	}
	if all {
		w.mu.Lock()
		w.logsDone[uid] = true
		w.mu.Unlock()
	}
	return all, nil
}

// followLiveLogs makes sure the log of every started step of a running
// TaskRun is being followed.
func (w *Watcher) followLiveLogs(k runKey, tr *pipelinev1.TaskRun, rec *store.Record) {
	for _, spec := range stepLogs(k, tr, rec, false) {
		w.follow(spec)
	}
}

// logSize reads the stored size from a Log Record.
func logSize(r *store.Record) int64 {
	var d store.LogData
	if r == nil || json.Unmarshal(r.Data, &d) != nil {
		return 0
	}
	return d.Status.Size
}
