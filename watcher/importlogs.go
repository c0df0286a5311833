package watcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/annals-dev/annals/store"
)

// logDirs are the step logs of an import's logs directory, laid out as
// <namespace>/<taskrun or pod name>/<step>.log: what
// `kubectl logs POD -c step-NAME > DIR/NAMESPACE/POD/NAME.log` saves.
type logDirs struct {
	root       string
	namespaces map[string]bool
	runs       map[string]*logRun // "namespace/name" (of a TaskRun or of its pod)
}

// logRun is one directory of step logs and, once the import read it, the
// TaskRun they belong to.
type logRun struct {
	dir   string   // relative to the root, for the report
	files []string // file names, sorted

	taskRunUID string
	resultName string
	steps      []stepState
}

type stepState struct {
	Name      string `json:"name"`
	Container string `json:"container"`
}

// scanLogs lists the log files under root. A file that does not fit the
// layout is reported to skip; the root itself must exist.
func scanLogs(root string, skip func(string)) (*logDirs, error) {
	if info, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("logs directory: %w", err)
	} else if !info.IsDir() {
		return nil, fmt.Errorf("logs directory %s is not a directory", root)
	}
	l := &logDirs{root: root, namespaces: map[string]bool{}, runs: map[string]*logRun{}}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 3 || !strings.HasSuffix(parts[2], ".log") || parts[2] == ".log" {
			skip(fmt.Sprintf("log file %s: not in the layout <namespace>/<taskrun or pod name>/<step>.log under %s", rel, root))
			return nil
		}
		key := parts[0] + "/" + parts[1]
		run := l.runs[key]
		if run == nil {
			run = &logRun{dir: key}
			l.runs[key] = run
		}
		run.files = append(run.files, parts[2])
		l.namespaces[parts[0]] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("logs directory: %w", err)
	}
	return l, nil
}

// note links a TaskRun read from the input to the log directory named
// after it or after its pod.
func (l *logDirs) note(r *Run, resultName string, obj []byte) {
	ns := r.Metadata.Namespace
	if !l.namespaces[ns] {
		return
	}
	var tr struct {
		Status struct {
			PodName string      `json:"podName"`
			Steps   []stepState `json:"steps"`
		} `json:"status"`
	}
	json.Unmarshal(obj, &tr) // ParseRun read it already
	for _, name := range []string{r.Metadata.Name, tr.Status.PodName} {
		if run := l.runs[ns+"/"+name]; name != "" && run != nil {
			run.taskRunUID, run.resultName, run.steps = r.Metadata.UID, resultName, tr.Status.Steps
		}
	}
}

// stepOf finds the step a log file is of: <step>.log or <container>.log
// (step-<step>.log, as the container is named). A file no step of the
// TaskRun's status names is still stored, under the step its name gives.
func (run *logRun) stepOf(file string) (step, container string) {
	base := strings.TrimSuffix(file, ".log")
	for _, s := range run.steps {
		c := s.Container
		if c == "" {
			c = "step-" + s.Name
		}
		if base == s.Name || base == c {
			return s.Name, c
		}
	}
	if name, ok := strings.CutPrefix(base, "step-"); ok {
		return name, base
	}
	return base, "step-" + base
}

// storeLogs stores the logs of every log directory whose TaskRun the
// import stored, with as many writers as the runs had; the others are
// reported skipped.
func (imp *importer) storeLogs(ctx context.Context) error {
	if imp.logs == nil {
		return nil
	}
	keys := make([]string, 0, len(imp.logs.runs))
	for k := range imp.logs.runs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// The runs with a stored TaskRun, by namespace, in the order of keys.
	var namespaces []string
	byNamespace := map[string][]*logRun{}
	for _, k := range keys {
		run := imp.logs.runs[k]
		ns, name, _ := strings.Cut(k, "/")
		if run.taskRunUID == "" {
			imp.skip(fmt.Sprintf("logs %s: no TaskRun named %s (or running in a pod of that name) in namespace %s among the imported objects; import its TaskRun with them",
				run.dir, name, ns))
			continue
		}
		if byNamespace[ns] == nil {
			namespaces = append(namespaces, ns)
		}
		byNamespace[ns] = append(byNamespace[ns], run)
	}

	type job struct {
		run     *logRun
		taskRun *store.Record
		file    string
	}
	jobs := make(chan job)
	errs := make(chan error, imp.opts.Writers)
	var wg sync.WaitGroup
	for range imp.opts.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := imp.storeLog(ctx, j.run, j.taskRun, j.file); err != nil {
					errs <- err
					for range jobs {
					}
					return
				}
			}
		}()
	}
	feedErr := func() error {
		defer close(jobs)
		for _, ns := range namespaces {
			recs, err := imp.taskRuns(ctx, ns, byNamespace[ns])
			if err != nil {
				return err
			}
			for _, run := range byNamespace[ns] {
				rec := recs[run.taskRunUID]
				if rec == nil {
					imp.skip(fmt.Sprintf("logs %s: its TaskRun (uid %s) was not stored", run.dir, run.taskRunUID))
					continue
				}
				for _, f := range run.files {
					select {
					case jobs <- job{run, rec, f}:
					case err := <-errs:
						return err
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
		}
		return nil
	}()
	wg.Wait()
	close(errs)
	if feedErr != nil {
		return feedErr
	}
	return <-errs // nil when none failed
}

// taskRuns reads the stored TaskRuns of runs, all of namespace ns, by uid.
func (imp *importer) taskRuns(ctx context.Context, ns string, runs []*logRun) (map[string]*store.Record, error) {
	out := map[string]*store.Record{}
	for start := 0; start < len(runs); start += store.MaxPageSize {
		var uids []string
		for _, run := range runs[start:min(start+store.MaxPageSize, len(runs))] {
			uids = append(uids, run.taskRunUID)
		}
		recs, err := imp.s.GetRecordsByUID(ctx, ns, uids)
		if err != nil {
			return nil, err
		}
		for uid, r := range recs {
			out[uid] = r
		}
	}
	return out, nil
}

// storeLog stores one log file as the Log Record of its step, as the
// watcher names it, so importing it again replaces it.
func (imp *importer) storeLog(ctx context.Context, run *logRun, taskRun *store.Record, file string) error {
	step, container := run.stepOf(file)
	path := filepath.Join(imp.logs.root, filepath.FromSlash(run.dir), file)
	f, err := os.Open(path)
	if err != nil {
		imp.skip(fmt.Sprintf("log file %s/%s: %v", run.dir, file, err))
		return nil
	}
	defer f.Close()
	lw := store.LogWrite{UID: LogUID(taskRun.UID, step), TaskRun: taskRun, Step: step, Container: container}
	if _, err := imp.s.WriteLog(ctx, lw, f, imp.opts.LogLimit); err != nil {
		if errors.Is(err, store.ErrInvalidArgument) {
			imp.skip(fmt.Sprintf("log file %s/%s: %v", run.dir, file, err))
			return nil
		}
		return fmt.Errorf("storing log file %s/%s: %w", run.dir, file, err)
	}
	imp.mu.Lock()
	imp.rep.Logs++
	imp.mu.Unlock()
	return nil
}
