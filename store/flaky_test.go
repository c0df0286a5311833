package store_test

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// histRun is one generated PipelineRun or TaskRun of a run history, with
// what the flaky and recovery models need.
type histRun struct {
	uid, ns, result, dataType, name string
	pipeline, task, pipelineRun     string // "" when missing
	condStatus, reason              string // condStatus "" when no condition
	start, end                      *time.Time
	// How the revision is written: meta (annotations and labels) and
	// params; rev is what the store must read from them.
	annotations, labels map[string]any
	params              []any
	rev                 string
}

func (h histRun) status() string {
	return statRun{condStatus: h.condStatus, reason: h.reason}.status()
}

func (h histRun) isTaskRun() bool { return strings.HasSuffix(h.dataType, ".TaskRun") }

func (h histRun) data() json.RawMessage {
	labels := map[string]any{}
	for k, v := range h.labels {
		labels[k] = v
	}
	if h.pipeline != "" {
		labels["tekton.dev/pipeline"] = h.pipeline
	}
	if h.task != "" {
		labels["tekton.dev/task"] = h.task
	}
	if h.pipelineRun != "" {
		labels["tekton.dev/pipelineRun"] = h.pipelineRun
	}
	meta := map[string]any{"name": h.name, "namespace": h.ns, "uid": h.uid, "labels": labels}
	if h.annotations != nil {
		meta["annotations"] = h.annotations
	}
	version, kind, _ := strings.Cut(strings.TrimPrefix(h.dataType, "tekton.dev/"), ".")
	st := map[string]any{}
	if h.condStatus != "" {
		st["conditions"] = []any{map[string]any{"type": "Succeeded", "status": h.condStatus, "reason": h.reason}}
	}
	if h.start != nil {
		st["startTime"] = h.start.Format(time.RFC3339Nano)
	}
	if h.end != nil {
		st["completionTime"] = h.end.Format(time.RFC3339Nano)
	}
	obj := map[string]any{"apiVersion": "tekton.dev/" + version, "kind": kind, "metadata": meta, "status": st}
	if h.params != nil {
		obj["spec"] = map[string]any{"params": h.params}
	}
	return must(json.Marshal(obj))
}

// genHistory makes n PipelineRuns (v1 and v1beta1) of a few Pipelines at a
// few revisions, each in its own Result with up to three TaskRuns, the
// revision written every way the store reads it (and some ways it must
// not), with running, cancelled and unstarted runs, missing labels, times
// shared by several runs, and TaskRuns whose PipelineRun is not stored.
func genHistory(rng *rand.Rand, n int) []histRun {
	pick := func(vals ...string) string { return vals[rng.IntN(len(vals))] }
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	randTime := func() *time.Time {
		if rng.IntN(12) == 0 {
			return nil
		}
		// Minutes only, so that runs share times and the uid breaks ties.
		t := base.Add(time.Duration(rng.IntN(600)) * time.Minute)
		if rng.IntN(3) == 0 {
			t = t.Add(time.Duration(rng.IntN(1e6)) * time.Microsecond)
		}
		return &t
	}
	outcome := func(h *histRun) {
		switch rng.IntN(10) {
		case 0:
			h.condStatus, h.reason = "Unknown", "Running"
		case 1:
			h.condStatus, h.reason = "False", "Cancelled"
		case 2:
			h.condStatus = ""
		case 3, 4, 5:
			h.condStatus, h.reason = "False", "Failed"
		default:
			h.condStatus, h.reason = "True", "Succeeded"
		}
	}
	var out []histRun
	for range n {
		ns := pick("a", "b")
		result := ns + "/results/" + uuid.NewString()
		pr := histRun{uid: uuid.NewString(), ns: ns, result: result, dataType: pick(store.TypePipelineRun, "tekton.dev/v1beta1.PipelineRun"),
			pipeline: pick("build", "build", "test", "")}
		pr.name = "run-" + pr.uid[:8]
		sha := pick("c1", "c2", "c3")
		switch rng.IntN(8) {
		case 0:
			pr.annotations, pr.rev = map[string]any{"pipelinesascode.tekton.dev/sha": sha}, sha
		case 1:
			pr.labels, pr.rev = map[string]any{"pipelinesascode.tekton.dev/sha": sha}, sha
		case 2:
			pr.params, pr.rev = []any{map[string]any{"name": "commit", "value": "x"}, map[string]any{"name": "revision", "value": sha}}, sha
		case 3:
			pr.params, pr.rev = []any{"odd", map[string]any{"name": "revision", "value": ""}, map[string]any{"name": "commit", "value": sha}}, sha
		case 4:
			pr.params = []any{map[string]any{"name": "revision", "value": []any{sha}}}
		case 5:
			pr.annotations = map[string]any{"pipelinesascode.tekton.dev/sha": ""}
		default:
			pr.params, pr.rev = []any{map[string]any{"name": "revision", "value": sha}}, sha
		}
		outcome(&pr)
		pr.start = randTime()
		if pr.start != nil && pr.condStatus != "Unknown" && rng.IntN(10) > 0 {
			e := pr.start.Add(time.Duration(rng.IntN(40)) * time.Minute)
			pr.end = &e
		}
		stored := rng.IntN(10) > 0
		if stored {
			out = append(out, pr)
		}
		for range rng.IntN(4) {
			tr := histRun{uid: uuid.NewString(), ns: ns, result: result, dataType: pick(store.TypeTaskRun, "tekton.dev/v1beta1.TaskRun"),
				pipeline: pr.pipeline, task: pick("compile", "unit", "lint", ""), pipelineRun: pr.name}
			tr.name = tr.pipelineRun + "-" + tr.uid[:4]
			if rng.IntN(6) == 0 {
				tr.pipelineRun = "" // a TaskRun without its PipelineRun's label
			}
			if rng.IntN(4) == 0 { // Tekton copies the PaC SHA onto TaskRuns
				own := pick("c1", "c2", "c9")
				tr.annotations, tr.rev = map[string]any{"pipelinesascode.tekton.dev/sha": own}, own
			}
			if rng.IntN(5) == 0 { // a Task's own revision param is not the run's revision
				tr.params = []any{map[string]any{"name": "revision", "value": "task-param"}}
			}
			outcome(&tr)
			tr.start = randTime()
			out = append(out, tr)
		}
	}
	return out
}

func writeHistory(t *testing.T, s *store.Store, runs []histRun) {
	t.Helper()
	var ws []store.RecordWrite
	for _, h := range runs {
		ws = append(ws, store.RecordWrite{ResultName: h.result, UID: h.uid, DataType: h.dataType, Data: h.data()})
	}
	if err := s.UpsertRecords(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
}

// inScope is the model's version of a list scope: namespaces and a start window.
type histScope struct {
	namespaces []string // nil: all
	after      *time.Time
}

func (sc histScope) has(h histRun) bool {
	if sc.namespaces != nil && !slices.Contains(sc.namespaces, h.ns) {
		return false
	}
	return sc.after == nil || h.start != nil && !h.start.Before(*sc.after)
}

func (sc histScope) options() store.ListOptions {
	o := store.ListOptions{Parent: "-", Namespaces: sc.namespaces}
	if sc.after != nil {
		o.RecordWhere = &filter.RecordWhere{Started: filter.TimeRange{After: sc.after}}
	}
	return o
}

// modelFlaky computes flaky tasks straight from the definition.
func modelFlaky(runs []histRun, sc histScope) []store.FlakyTask {
	parentRev := map[[3]string]string{} // namespace, result, run name -> revision
	for _, h := range runs {
		if !h.isTaskRun() && h.rev != "" {
			k := [3]string{h.ns, h.result, h.name}
			parentRev[k] = max(parentRev[k], h.rev)
		}
	}
	type key struct{ ns, pipeline, task, rev string }
	byRev := map[key][]histRun{}
	for _, h := range runs {
		st := h.status()
		if !h.isTaskRun() || !sc.has(h) || h.pipeline == "" || h.task == "" || (st != store.StatusSucceeded && st != store.StatusFailed) {
			continue
		}
		rev := h.rev
		if p := parentRev[[3]string{h.ns, h.result, h.pipelineRun}]; h.pipelineRun != "" && p != "" {
			rev = p
		}
		if rev == "" {
			continue
		}
		k := key{h.ns, h.pipeline, h.task, rev}
		byRev[k] = append(byRev[k], h)
	}
	tasks := map[[3]string]*store.FlakyTask{}
	for k, rs := range byRev {
		slices.SortFunc(rs, func(a, b histRun) int {
			if c := cmp.Compare(boolInt(a.start != nil), boolInt(b.start != nil)); c != 0 {
				return c
			}
			if a.start != nil {
				if c := a.start.Compare(*b.start); c != 0 {
					return c
				}
			}
			return strings.Compare(a.uid, b.uid)
		})
		tk := [3]string{k.ns, k.pipeline, k.task}
		f := tasks[tk]
		if f == nil {
			f = &store.FlakyTask{Namespace: k.ns, Pipeline: k.pipeline, Task: k.task}
			tasks[tk] = f
		}
		var succeeded, failed int64
		var last *time.Time
		for i, h := range rs {
			if h.status() == store.StatusSucceeded {
				succeeded++
			} else {
				failed++
			}
			if i > 0 && rs[i-1].status() != h.status() {
				f.Flips++
			}
			if h.start != nil && (last == nil || h.start.After(*last)) {
				last = h.start
			}
		}
		f.Revisions++
		f.Runs += int64(len(rs))
		f.Pairs += int64(len(rs) - 1)
		f.Succeeded += succeeded
		f.Failed += failed
		if succeeded > 0 && failed > 0 {
			f.FlakyRevisions++
			if last != nil && (f.LastFlakyRun == nil || last.After(*f.LastFlakyRun)) {
				f.LastFlakyRun = last
			}
		}
	}
	var out []store.FlakyTask
	for _, f := range tasks {
		if f.FlakyRevisions > 0 {
			out = append(out, *f)
		}
	}
	slices.SortFunc(out, func(a, b store.FlakyTask) int {
		return cmp.Or(-cmp.Compare(a.FlakyRevisions, b.FlakyRevisions), -cmp.Compare(*a.FlipRate(), *b.FlipRate()),
			strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Pipeline, b.Pipeline), strings.Compare(a.Task, b.Task))
	})
	return out
}

// modelRecovery computes recovery times straight from the definition.
func modelRecovery(runs []histRun, sc histScope) []store.PipelineRecovery {
	byPipeline := map[[2]string][]histRun{}
	for _, h := range runs {
		st := h.status()
		if h.isTaskRun() || !sc.has(h) || h.pipeline == "" || h.end == nil || (st != store.StatusSucceeded && st != store.StatusFailed) {
			continue
		}
		k := [2]string{h.ns, h.pipeline}
		byPipeline[k] = append(byPipeline[k], h)
	}
	var out []store.PipelineRecovery
	for k, rs := range byPipeline {
		slices.SortFunc(rs, func(a, b histRun) int { return cmp.Or(a.end.Compare(*b.end), strings.Compare(a.uid, b.uid)) })
		var failedAt *time.Time
		var spans []int64
		anyFailure := false
		for _, h := range rs {
			switch {
			case h.status() == store.StatusFailed && failedAt == nil:
				failedAt, anyFailure = h.end, true
			case h.status() == store.StatusSucceeded && failedAt != nil:
				spans = append(spans, h.end.Sub(*failedAt).Microseconds())
				failedAt = nil
			}
		}
		if !anyFailure {
			continue
		}
		pr := store.PipelineRecovery{Namespace: k[0], Pipeline: k[1], Recoveries: int64(len(spans)), FailingSince: failedAt}
		if len(spans) > 0 {
			var sum int64
			for _, s := range spans {
				sum += s
			}
			slices.Sort(spans)
			pr.MeanMicros, pr.MaxMicros = float64(sum)/float64(len(spans)), spans[len(spans)-1]
			pr.MedianMicros = store.PercentileDisc(spans, 0.5)
		}
		out = append(out, pr)
	}
	mean := func(p store.PipelineRecovery) float64 {
		if p.Recoveries == 0 {
			return -1
		}
		return p.MeanMicros
	}
	slices.SortFunc(out, func(a, b store.PipelineRecovery) int {
		if c := cmp.Compare(boolInt(a.FailingSince == nil), boolInt(b.FailingSince == nil)); c != 0 {
			return c
		}
		if a.FailingSince != nil {
			if c := a.FailingSince.Compare(*b.FailingSince); c != 0 {
				return c
			}
		}
		return cmp.Or(-cmp.Compare(mean(a), mean(b)), strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Pipeline, b.Pipeline))
	})
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestFlakyAndRecoveryDifferential holds FlakyTasks and PipelineRecoveries
// to the models above over random histories, on both databases, in
// several scopes and limits, and after runs are rewritten (running to
// finished, an outcome changed) and deleted.
func TestFlakyAndRecoveryDifferential(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		rng := rand.New(rand.NewPCG(14, 10))
		runs := genHistory(rng, 400)
		writeHistory(t, s, runs)
		after := time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)
		scopes := []histScope{{}, {namespaces: []string{"b"}}, {namespaces: []string{}}, {after: &after}}
		check := func(step string) {
			t.Helper()
			for _, sc := range scopes {
				for _, limit := range []int{0, 3, store.MaxAnalyticsRows} {
					want := modelFlaky(runs, sc)
					got, err := s.FlakyTasks(ctx, store.FlakyQuery{Scope: sc.options(), Limit: limit})
					if err != nil {
						t.Fatal(err)
					}
					if sc.namespaces == nil && sc.after == nil && (len(want) == 0 || len(modelRecovery(runs, sc)) == 0) {
						t.Fatalf("%s: the history has no flaky task or no recovery to compare", step)
					}
					if got.Total != len(want) || !reflect.DeepEqual(fmtFlaky(got.Tasks), fmtFlaky(want[:min(len(want), cmp.Or(limit, 20))])) {
						t.Errorf("%s, scope %+v, first %d: flaky tasks\n got %d %v\nwant %d %v", step, sc, limit, got.Total, fmtFlaky(got.Tasks), len(want), fmtFlaky(want))
					}
					wantRec := modelRecovery(runs, sc)
					gotRec, err := s.PipelineRecoveries(ctx, store.RecoveryQuery{Scope: sc.options(), Limit: limit})
					if err != nil {
						t.Fatal(err)
					}
					if gotRec.Total != len(wantRec) || !reflect.DeepEqual(fmtRecovery(gotRec.Pipelines), fmtRecovery(wantRec[:min(len(wantRec), cmp.Or(limit, 20))])) {
						t.Errorf("%s, scope %+v, first %d: recoveries\n got %d %v\nwant %d %v", step, sc, limit, gotRec.Total, fmtRecovery(gotRec.Pipelines), len(wantRec), fmtRecovery(wantRec))
					}
				}
			}
		}
		check("written")

		// Rewrites: running runs finish, some outcomes flip; some runs go.
		var rewritten []histRun
		for i := range runs {
			h := &runs[i]
			if h.condStatus == "Unknown" || rng.IntN(8) == 0 {
				h.condStatus, h.reason = map[bool]string{true: "True", false: "False"}[rng.IntN(2) == 0], "Done"
				if h.start != nil && !h.isTaskRun() {
					e := h.start.Add(time.Duration(rng.IntN(90)) * time.Minute)
					h.end = &e
				}
				rewritten = append(rewritten, *h)
			}
		}
		writeHistory(t, s, rewritten)
		var kept []histRun
		for _, h := range runs {
			if rng.IntN(10) == 0 {
				if err := s.DeleteRecord(ctx, store.RecordName(h.ns, strings.TrimPrefix(h.result, h.ns+"/results/"), h.uid), ""); err != nil {
					t.Fatal(err)
				}
				continue
			}
			kept = append(kept, h)
		}
		runs = kept
		check("rewritten and deleted")

		for _, bad := range []int{-1, store.MaxAnalyticsRows + 1} {
			if _, err := s.FlakyTasks(ctx, store.FlakyQuery{Limit: bad}); !errors.Is(err, store.ErrInvalidArgument) {
				t.Errorf("first %d: %v, want invalid argument", bad, err)
			}
			if _, err := s.PipelineRecoveries(ctx, store.RecoveryQuery{Limit: bad}); !errors.Is(err, store.ErrInvalidArgument) {
				t.Errorf("first %d: %v, want invalid argument", bad, err)
			}
		}
	})
}

func fmtFlaky(fs []store.FlakyTask) []string {
	var out []string
	for _, f := range fs {
		last := "-"
		if f.LastFlakyRun != nil {
			last = f.LastFlakyRun.UTC().Format(time.RFC3339Nano)
		}
		out = append(out, fmt.Sprintf("%s/%s/%s rev %d flaky %d runs %d/%d/%d flips %d/%d last %s", f.Namespace, f.Pipeline, f.Task,
			f.Revisions, f.FlakyRevisions, f.Runs, f.Succeeded, f.Failed, f.Flips, f.Pairs, last))
	}
	return out
}

func fmtRecovery(ps []store.PipelineRecovery) []string {
	var out []string
	for _, p := range ps {
		since := "-"
		if p.FailingSince != nil {
			since = p.FailingSince.UTC().Format(time.RFC3339Nano)
		}
		out = append(out, fmt.Sprintf("%s/%s n %d mean %.3f median %d max %d failing since %s", p.Namespace, p.Pipeline,
			p.Recoveries, p.MeanMicros, p.MedianMicros, p.MaxMicros, since))
	}
	return out
}

// TestMigrationBackfillsRevisions takes migration 00010 back off a store
// holding runs, applies it again, and checks that it fills revision and
// failed_step from data exactly as the write path does.
func TestMigrationBackfillsRevisions(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			s, url := storetest.Open(t, kind)
			ctx := context.Background()
			runs := genHistory(rand.New(rand.NewPCG(10, 14)), 60)
			// Failed TaskRuns with steps of every shape.
			stepSets := [][]any{
				{map[string]any{"name": "fetch", "terminated": map[string]any{"exitCode": 0}}, map[string]any{"name": "build", "terminated": map[string]any{"exitCode": 2}}},
				{map[string]any{"name": 7, "terminated": map[string]any{"exitCode": 1}}, map[string]any{"name": "test", "terminated": map[string]any{"exitCode": 1.5}}},
				{map[string]any{"name": "a", "terminated": map[string]any{"exitCode": "1"}}, "odd", map[string]any{"name": "b", "running": map[string]any{}}},
				{map[string]any{"name": "x", "terminated": map[string]any{"exitCode": -1}}},
			}
			var ws []store.RecordWrite
			var uids []string
			for _, h := range runs {
				ws = append(ws, store.RecordWrite{ResultName: h.result, UID: h.uid, DataType: h.dataType, Data: h.data()})
				uids = append(uids, h.uid)
			}
			for i, steps := range stepSets {
				for _, cond := range []string{"False", "True"} {
					uid := uuid.NewString()
					data := must(json.Marshal(map[string]any{"kind": "TaskRun", "metadata": map[string]any{"name": fmt.Sprint("tr-", i)},
						"status": map[string]any{"steps": steps, "conditions": []any{map[string]any{"type": "Succeeded", "status": cond, "reason": "x"}}}}))
					ws = append(ws, store.RecordWrite{ResultName: "a/results/" + uuid.NewString(), UID: uid, DataType: store.TypeTaskRun, Data: data})
					uids = append(uids, uid)
				}
			}
			if err := s.UpsertRecords(ctx, ws); err != nil {
				t.Fatal(err)
			}
			written := map[string]*store.Record{}
			for _, ns := range []string{"a", "b"} {
				recs, err := s.GetRecordsByUID(ctx, ns, uids)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range recs {
					written[k] = v
				}
			}
			for _, h := range runs {
				if got := written[h.uid].Revision; got != h.rev {
					t.Fatalf("write path: revision of %s is %q, want %q", h.data(), got, h.rev)
				}
			}
			wantSteps := []string{"build", "", "test", "", "", "", "x", ""}
			for i, want := range wantSteps {
				if got := written[uids[len(runs)+i]].FailedStep; got != want {
					t.Errorf("write path: failed step of %s is %q, want %q", ws[len(runs)+i].Data, got, want)
				}
			}

			driver := map[string]string{"sqlite": "sqlite", "postgres": "pgx"}[kind]
			db, err := sql.Open(driver, url)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var flakyTriggers []string // SQLite's name the columns they read (00016)
			if kind == "sqlite" {
				for _, t := range []string{"task_insert", "run_insert", "task_delete", "run_delete", "task_update", "run_update"} {
					flakyTriggers = append(flakyTriggers, "DROP TRIGGER records_flaky_"+t)
				}
			}
			for _, stmt := range append(flakyTriggers,
				"DROP INDEX records_result_run", "DROP INDEX records_task_outcomes", "DROP INDEX records_pipeline_outcomes",
				"ALTER TABLE records DROP COLUMN revision", "ALTER TABLE records DROP COLUMN failed_step",
				"DELETE FROM annals_migrations WHERE name = '00010'",
			) {
				if _, err := db.Exec(stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			status, err := s.Migrate(ctx)
			if err != nil || !slices.Contains(status.Applied, "00010_revisions") {
				t.Fatalf("migrating again: %+v, %v", status, err)
			}
			for _, ns := range []string{"a", "b"} {
				backfilled, err := s.GetRecordsByUID(ctx, ns, uids)
				if err != nil {
					t.Fatal(err)
				}
				for uid, b := range backfilled {
					w := written[uid]
					if w.Revision != b.Revision || w.FailedStep != b.FailedStep {
						t.Errorf("%s: written (%q, %q), backfilled (%q, %q)", w.Data, w.Revision, w.FailedStep, b.Revision, b.FailedStep)
					}
				}
			}
		})
	}
}

// TestRewriteExtractsRevisionAndFailedStep rewrites a running TaskRun as
// failed, with a revision and a failing step it did not have before: the
// upsert must take both columns from the new data, not keep the first.
func TestRewriteExtractsRevisionAndFailedStep(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		uid, result := uuid.NewString(), "a/results/"+uuid.NewString()
		write := func(cond, sha string, steps []any) {
			meta := map[string]any{"name": "tr", "namespace": "a", "uid": uid}
			if sha != "" {
				meta["annotations"] = map[string]any{"pipelinesascode.tekton.dev/sha": sha}
			}
			st := map[string]any{"conditions": []any{map[string]any{"type": "Succeeded", "status": cond, "reason": "x"}}}
			if steps != nil {
				st["steps"] = steps
			}
			data := must(json.Marshal(map[string]any{"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "metadata": meta, "status": st}))
			if err := s.UpsertRecords(ctx, []store.RecordWrite{{ResultName: result, UID: uid, DataType: store.TypeTaskRun, Data: data}}); err != nil {
				t.Fatal(err)
			}
		}
		read := func() *store.Record {
			recs, err := s.GetRecordsByUID(ctx, "a", []string{uid})
			if err != nil || recs[uid] == nil {
				t.Fatalf("reading back: %v", err)
			}
			return recs[uid]
		}
		write("Unknown", "", nil)
		if r := read(); r.Revision != "" || r.FailedStep != "" {
			t.Fatalf("running: revision %q, failed step %q", r.Revision, r.FailedStep)
		}
		write("False", "c1", []any{map[string]any{"name": "build", "terminated": map[string]any{"exitCode": 2}}})
		if r := read(); r.Revision != "c1" || r.FailedStep != "build" {
			t.Errorf("failed: revision %q, failed step %q; want c1, build", r.Revision, r.FailedStep)
		}
		write("True", "c2", []any{map[string]any{"name": "build", "terminated": map[string]any{"exitCode": 0}}})
		if r := read(); r.Revision != "c2" || r.FailedStep != "" {
			t.Errorf("succeeded on retry: revision %q, failed step %q; want c2 and none", r.Revision, r.FailedStep)
		}
	})
}
