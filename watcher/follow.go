package watcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/annals-dev/annals/store"
)

// A step's log is streamed into the store by one follower per (pod,
// container): it opens the container's log stream (following it while the
// step runs), appends what arrives in chunks of flushSize bytes and, at
// least every Config.LiveLogInterval, the partial tail, so that live
// readers see progress. When the stream ends and the step has terminated,
// the follower completes the log. Memory is bounded per follower (about
// two chunks), and Config.LogFollowers bounds how many stream at once.
//
// Resuming after a restart re-reads the stream from its start and skips
// the bytes already stored (the stored source size), so that the stored log
// gets no byte twice and loses none; AppendLog refuses an append anywhere
// but at the stored end, so two writers cannot interleave either. (A
// kubelet that rotated the container log meanwhile serves a shorter log:
// the bytes it no longer has cannot be recovered by any means.)

// flushSize is how many bytes a follower gathers before appending them:
// the store's chunk size, so that full chunks are written once.
const flushSize = 256 << 10

// readSize is the size of one read from a log stream.
const readSize = 32 << 10

// terminationWait is how long a follower whose stream ended waits for the
// TaskRun's status to say the step terminated before it takes the end for
// a dropped connection and reopens the stream.
var terminationWait = 30 * time.Second

// errTaskRunDeleted cancels the followers of a TaskRun that was deleted.
var errTaskRunDeleted = errors.New("the TaskRun was deleted")

// followKey names one container's log stream.
type followKey struct{ Namespace, Pod, Container string }

// follower is one running stream of a step's log into the store.
type follower struct {
	cancel     context.CancelCauseFunc
	done       chan struct{}
	err        error // why it stopped, once done is closed; nil: the log is stored
	taskRunUID string
}

// followSpec is what a follower needs to store one step's log.
type followSpec struct {
	key  followKey
	run  runKey
	step string
	lw   store.LogWrite
}

// follow starts a follower for the step's log unless one runs already, and
// returns it. It returns nil when the watcher is not running.
func (w *Watcher) follow(spec followSpec) *follower {
	w.mu.Lock()
	defer w.mu.Unlock()
	if f := w.followers[spec.key]; f != nil {
		return f
	}
	if w.runCtx == nil || w.runCtx.Err() != nil {
		return nil
	}
	ctx, cancel := context.WithCancelCause(w.runCtx)
	f := &follower{cancel: cancel, done: make(chan struct{}), taskRunUID: spec.lw.TaskRun.UID}
	w.followers[spec.key] = f
	w.followWG.Go(func() {
		defer cancel(nil)
		f.err = w.runFollower(ctx, spec)
		w.mu.Lock()
		if f.err == nil || ctx.Err() != nil {
			delete(w.followers, spec.key)
		} // else kept, so that storeLogs reports the error (once) instead of starting another at once
		w.mu.Unlock()
		close(f.done)
		if f.err != nil && ctx.Err() == nil {
			w.log.Warn("following a step log failed", "taskrun", spec.run.Namespace+"/"+spec.run.Name, "step", spec.step, "error", f.err)
		}
		if w.runCtx.Err() == nil {
			w.queue.Add(spec.run) // its reconcile may be waiting for this log
		}
	})
	if w.metrics != nil {
		w.metrics.followers.Inc()
		go func() { <-f.done; w.metrics.followers.Dec() }()
	}
	return f
}

// runFollower streams one step's log into the store until it is complete.
// It returns nil once the log is stored for good (complete, or stored as
// unavailable), ctx's error when cancelled, or a store error that retrying
// cannot cure.
func (w *Watcher) runFollower(ctx context.Context, spec followSpec) error {
	select { // bounds the streams open at once
	case w.followSlots <- struct{}{}:
		defer func() { <-w.followSlots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	logKey := store.Key{Namespace: spec.key.Namespace, UID: spec.lw.UID}
	backoff := time.Second
	retry := func() error {
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, time.Minute)
			return nil
		case <-ctx.Done():
			return w.cut(ctx, spec)
		}
	}
	for {
		progress, err := w.store.LogProgressOf(ctx, logKey)
		switch {
		case ctx.Err() != nil:
			return w.cut(ctx, spec)
		case errors.Is(err, store.ErrInvalidArgument):
			return err
		case err != nil:
			if err := retry(); err != nil {
				return err
			}
			continue
		case progress.Exists && !progress.Live:
			return nil // complete: stored before, or by a predecessor
		}
		rc, err := w.logs.Open(ctx, spec.key.Namespace, spec.key.Pod, spec.key.Container)
		if err != nil {
			if ctx.Err() != nil {
				return w.cut(ctx, spec)
			}
			if logsUnavailable(err) {
				return w.storeUnavailable(ctx, spec, progress, err)
			}
			w.log.Debug("step log not readable yet", "taskrun", spec.run.Namespace+"/"+spec.run.Name, "step", spec.step, "error", err)
			if err := retry(); err != nil {
				return err
			}
			continue
		}
		progress, err = w.copyLog(ctx, spec, rc, progress)
		rc.Close()
		switch {
		case ctx.Err() != nil:
			return w.cut(ctx, spec)
		case err == nil && !progress.Live:
			return nil // reached the limit: complete
		case errors.Is(err, store.ErrConflict):
			continue // someone else wrote meanwhile: resume from what is stored
		case errors.Is(err, store.ErrInvalidArgument):
			return err
		case err != nil:
			w.log.Debug("step log stream broke; resuming", "taskrun", spec.run.Namespace+"/"+spec.run.Name, "step", spec.step, "error", err)
			if err := retry(); err != nil {
				return err
			}
			continue
		}
		// The stream ended: the container has ended, or the connection
		// dropped. Only the TaskRun's status tells which.
		if w.awaitTermination(ctx, spec) {
			if _, err := w.store.CompleteLog(ctx, spec.lw, false); err != nil {
				if ctx.Err() != nil {
					return w.cut(ctx, spec)
				}
				if err := retry(); err != nil {
					return err
				}
				continue
			}
			return nil
		}
		if ctx.Err() != nil {
			return w.cut(ctx, spec)
		}
		backoff = time.Second
	}
}

// copyLog appends the stream's bytes past those already stored, gathering
// them into flushSize appends, and the partial tail at least every
// LiveLogInterval. It returns at the stream's end (nil), when the log is
// complete (the limit was reached), or at the first error.
func (w *Watcher) copyLog(ctx context.Context, spec followSpec, rc io.Reader, progress store.LogProgress) (store.LogProgress, error) {
	type piece struct {
		buf []byte
		n   int
		err error
	}
	pieces, free, stop := make(chan piece), make(chan []byte, 2), make(chan struct{})
	defer close(stop)
	free <- make([]byte, readSize)
	free <- make([]byte, readSize)
	go func() {
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			n, err := rc.Read(buf)
			select {
			case pieces <- piece{buf, n, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	skip := progress.Size // source bytes stored already, NULs excluded
	pending := make([]byte, 0, flushSize)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		next, err := w.store.AppendLog(ctx, spec.lw, progress.Size, pending, w.cfg.LogLimit)
		if err != nil {
			return err
		}
		if w.metrics != nil {
			w.metrics.logBytes.Add(float64(next.Size - progress.Size))
		}
		progress, pending = next, pending[:0]
		return nil
	}
	interval := w.cfg.LiveLogInterval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return progress, ctx.Err()
		case <-tick.C:
			if err := flush(); err != nil {
				return progress, err
			}
		case p := <-pieces:
			data := p.buf[:p.n]
			if bytes.IndexByte(data, 0) >= 0 {
				data = bytes.ReplaceAll(data, []byte{0}, nil) // as the store drops them
			}
			if skip > 0 {
				n := min(skip, int64(len(data)))
				data, skip = data[n:], skip-n
			}
			for len(data) > 0 {
				n := min(len(data), flushSize-len(pending))
				pending, data = append(pending, data[:n]...), data[n:]
				if len(pending) == flushSize {
					if err := flush(); err != nil {
						return progress, err
					}
					if !progress.Live {
						return progress, nil // the limit was reached
					}
				}
			}
			free <- p.buf
			if p.err != nil {
				if err := flush(); err != nil {
					return progress, err
				}
				if errors.Is(p.err, io.EOF) {
					return progress, nil
				}
				return progress, p.err
			}
		}
	}
}

// awaitTermination waits, up to terminationWait, for the TaskRun's status
// to say the step ended (or the TaskRun is done or gone).
func (w *Watcher) awaitTermination(ctx context.Context, spec followSpec) bool {
	deadline := time.Now().Add(terminationWait)
	for {
		if w.stepEnded(spec.run, spec.lw.TaskRun.UID, spec.step) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return false
		}
	}
}

// stepEnded reads the informer cache: the step terminated, the TaskRun is
// done, or it is gone (or replaced by another of the same name).
func (w *Watcher) stepEnded(k runKey, uid, step string) bool {
	ns := k.Namespace
	if _, ok := w.trLister[ns]; !ok {
		ns = metav1.NamespaceAll
	}
	tr, err := w.trLister[ns].TaskRuns(k.Namespace).Get(k.Name)
	if err != nil || string(tr.UID) != uid || tr.IsDone() {
		return true
	}
	for _, s := range tr.Status.Steps {
		if s.Name == step {
			return s.Terminated != nil
		}
	}
	return false
}

// cut settles a cancelled follower: a TaskRun deleted while its log was
// followed keeps what was read, marked as cut; a watcher that stops leaves
// the log live, for the next one to resume.
func (w *Watcher) cut(ctx context.Context, spec followSpec) error {
	if !errors.Is(context.Cause(ctx), errTaskRunDeleted) {
		return ctx.Err()
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	progress, err := w.store.LogProgressOf(sctx, store.Key{Namespace: spec.key.Namespace, UID: spec.lw.UID})
	if err != nil || !progress.Live {
		return err
	}
	if _, err := w.store.CompleteLog(sctx, spec.lw, true); err != nil {
		return fmt.Errorf("completing the log of a deleted TaskRun: %w", err)
	}
	return nil
}

// storeUnavailable settles a log whose pod is gone (or never ran the
// container): what was streamed before is the best there is; with nothing
// streamed, the Log says it is unavailable.
func (w *Watcher) storeUnavailable(ctx context.Context, spec followSpec, progress store.LogProgress, reason error) error {
	w.log.Info("step log unavailable", "taskrun", spec.run.Namespace+"/"+spec.run.Name, "step", spec.step, "reason", reason)
	if progress.Exists {
		_, err := w.store.CompleteLog(ctx, spec.lw, false)
		return err
	}
	if _, err := w.store.WriteLog(ctx, spec.lw, nil, w.cfg.LogLimit); err != nil {
		return err
	}
	if w.metrics != nil {
		w.metrics.logsMissing.Inc()
	}
	return nil
}

// stepLogs returns what following the logs of a TaskRun's steps needs:
// one spec per step that has started (all of them once it is final).
func stepLogs(k runKey, tr *pipelinev1.TaskRun, rec *store.Record, final bool) []followSpec {
	var specs []followSpec
	for _, step := range tr.Status.Steps {
		if !final && step.Running == nil && step.Terminated == nil {
			continue // not started: nothing to read yet
		}
		container := step.Container
		if container == "" {
			container = "step-" + step.Name
		}
		specs = append(specs, followSpec{
			key:  followKey{tr.Namespace, tr.Status.PodName, container},
			run:  k,
			step: step.Name,
			lw:   store.LogWrite{UID: LogUID(string(tr.UID), step.Name), TaskRun: rec, Step: step.Name, Container: container},
		})
	}
	return specs
}
