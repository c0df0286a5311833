// Package watcher records Tekton TaskRuns and PipelineRuns into the store:
// it decides which Result each run belongs to (grouping), and turns runs
// into Record writes. `annals import` uses the same grouping for runs read
// from kubectl output, so a backfill and a live cluster store alike.
package watcher
