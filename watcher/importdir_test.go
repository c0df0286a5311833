package watcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
	"github.com/annals-dev/annals/watcher"
)

// writeFiles creates files under dir from relative paths to contents.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// A directory of exports with step logs beside them: every run file is
// read, each log joins its TaskRun (found by TaskRun or pod name) as the
// watcher's Log Record of that step, and what fits nowhere is named.
func TestImportDirectoryWithLogs(t *testing.T) {
	runs, err := os.ReadFile("testdata/runs.json")
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			"2026/03/runs.json": string(runs),
			"extra.yml": "apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata:\n  name: lone\n  namespace: ci\n  uid: 11111111-2222-4333-8444-555555555555\n" +
				"status:\n  podName: lone-pod\n  steps:\n  - name: run\n    container: step-run\n",
			"notes.txt": "not read",
			"logs/ci/build-web-7x2kq-compile/build.log":         "compiling\ndone\n",
			"logs/ci/build-web-7x2kq-compile/fetch.log":         "fetched\n",
			"logs/ci/lint-docs-q7w2e-pod/step-markdownlint.log": "all good\n",
			"logs/ci/lone/run.log":                              "lone run\n",
			"logs/ci/nobody/x.log":                              "orphan\n",
			"logs/ci/stray.log":                                 "wrong depth\n",
		})
		sources, err := watcher.ImportPaths(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(sources) != 2 || !strings.HasSuffix(sources[0].Name, "runs.json") || !strings.HasSuffix(sources[1].Name, "extra.yml") {
			t.Fatalf("sources: %+v", sources)
		}
		opts := watcher.ImportOptions{Writers: 3, BatchSize: 4, LogsDir: filepath.Join(dir, "logs")}
		rep, err := watcher.ImportSources(ctx, s, sources, opts)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Created != 14 || rep.Logs != 4 || rep.SkippedCount != 2 {
			t.Fatalf("report: %+v", rep)
		}
		skipped := strings.Join(rep.Skipped, "\n")
		for _, want := range []string{"logs ci/nobody: no TaskRun named nobody", "log file ci/stray.log: not in the layout"} {
			if !strings.Contains(skipped, want) {
				t.Errorf("skipped %q: want a line with %q", skipped, want)
			}
		}
		wantLogs := map[string]map[string]string{ // TaskRun uid -> step -> text
			"5eed0000-0000-4000-8000-00000000000c": {"build": "compiling\ndone\n", "fetch": "fetched\n"},
			"5eed0000-0000-4000-8000-000000000033": {"markdownlint": "all good\n"},
			"11111111-2222-4333-8444-555555555555": {"run": "lone run\n"},
		}
		check := func() {
			t.Helper()
			for uid, steps := range wantLogs {
				trs, err := s.GetRecordsByUID(ctx, "ci", []string{uid})
				if err != nil || trs[uid] == nil {
					t.Fatalf("TaskRun %s: %v", uid, err)
				}
				logs, err := s.LogsForTaskRuns(ctx, []store.Key{trs[uid].Key()})
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]string{}
				for _, l := range logs[trs[uid].Key()] {
					rc, err := s.OpenLog(ctx, l)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(rc)
					rc.Close()
					got[l.UID] = string(b)
					if l.UID != watcher.LogUID(uid, stepOf(t, l)) {
						t.Errorf("log %s of step %s: not the uid the watcher gives it", l.UID, stepOf(t, l))
					}
				}
				if len(got) != len(steps) {
					t.Errorf("TaskRun %s: %d logs, want %d", uid, len(got), len(steps))
				}
				for step, text := range steps {
					if got[watcher.LogUID(uid, step)] != text {
						t.Errorf("TaskRun %s step %s: log %q, want %q", uid, step, got[watcher.LogUID(uid, step)], text)
					}
				}
			}
		}
		check()
		again, err := watcher.ImportSources(ctx, s, sources, opts)
		if err != nil {
			t.Fatal(err)
		}
		if again.Created != 0 || again.Updated != 0 || again.Unchanged != 14 || again.Logs != 4 {
			t.Errorf("second import: %+v, want 14 unchanged and the 4 logs replaced", again)
		}
		check()
	})
}

func stepOf(t *testing.T, log *store.Record) string {
	t.Helper()
	var d store.LogData
	if err := json.Unmarshal(log.Data, &d); err != nil {
		t.Fatal(err)
	}
	return d.Spec.Step
}

// TaskRuns that name their PipelineRun by label only, listed before it,
// still join its Result, with several writers and small batches; every run
// is counted once.
func TestImportOrderWithWriters(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var b strings.Builder
		b.WriteString(`{"kind":"List","items":[`)
		const pipelines, tasks = 20, 3
		for p := range pipelines {
			for i := range tasks {
				fmt.Fprintf(&b, `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"pr-%d-t%d","namespace":"ns%d","uid":"00000000-0000-4000-8000-%012d",`+
					`"labels":{"tekton.dev/pipelineRun":"pr-%d"}}},`, p, i, p%3, 1000+p*10+i, p)
			}
		}
		for p := range pipelines {
			if p > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"apiVersion":"tekton.dev/v1","kind":"PipelineRun","metadata":{"name":"pr-%d","namespace":"ns%d","uid":"00000000-0000-4000-8000-%012d"}}`, p, p%3, p)
		}
		b.WriteString(`],"kind":"List"}`)
		src := watcher.ImportSource{Name: "gen", Size: int64(b.Len()), Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(b.String())), nil }}
		var progress watcher.ImportProgress
		rep, err := watcher.ImportSources(ctx, s, []watcher.ImportSource{src}, watcher.ImportOptions{Writers: 4, BatchSize: 7, Progress: &progress})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Created != pipelines*(tasks+1) || rep.Results != pipelines || rep.SkippedCount != 0 {
			t.Fatalf("report: created %d in %d results, %d skipped; want %d in %d", rep.Created, rep.Results, rep.SkippedCount, pipelines*(tasks+1), pipelines)
		}
		if progress.BytesRead.Load() != int64(b.Len()) || progress.Objects.Load() != pipelines*(tasks+1) || progress.Written.Load() != pipelines*(tasks+1) {
			t.Errorf("progress: %d bytes, %d objects, %d written", progress.BytesRead.Load(), progress.Objects.Load(), progress.Written.Load())
		}
		for p := range pipelines {
			ns := fmt.Sprintf("ns%d", p%3)
			result := store.ResultName(ns, fmt.Sprintf("00000000-0000-4000-8000-%012d", p))
			recs, err := s.ListRecords(ctx, store.ListOptions{ResultName: result, First: 10})
			if err != nil || len(recs.Items) != tasks+1 {
				t.Fatalf("%s: %d records (%v), want %d", result, len(recs.Items), err, tasks+1)
			}
		}
	})
}
