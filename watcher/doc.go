// Package watcher records Tekton TaskRuns and PipelineRuns into the store.
//
// The Watcher is a Kubernetes controller: informers on tekton.dev/v1 runs
// feed a rate-limited workqueue, and workers reconcile one run at a time:
// store its Record (grouped into a Result, see Group), store the logs of a
// finished TaskRun, annotate the run with where it was stored, and, when
// asked to, hold deleted runs with a finalizer until stored and delete
// finished runs after a grace period. `annals import` uses the same grouping
// for runs read from kubectl output, so a backfill and a live cluster store
// alike.
package watcher
