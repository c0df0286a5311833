package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/annals-dev/annals/store/filter"
)

// Flaky tasks and recovery times: run-history analytics beyond counting,
// each one statement on both databases (window functions over the Records
// of a list's scope), so no Record is loaded to compute them. Flaky tasks
// in a scope of namespaces, Pipelines, tasks and a start window read the
// per-day segments the database keeps instead (flaky_rollup.go).

// FlakyQuery ranks the tasks of Pipelines whose outcome differed between
// runs of the same Pipeline at the same revision, among the TaskRuns of
// Scope (as ListRecords selects them; paging fields are ignored).
type FlakyQuery struct {
	Scope ListOptions
	Limit int // 0: 20; at most MaxAnalyticsRows
}

// MaxAnalyticsRows bounds the rows of one FlakyQuery or RecoveryQuery.
const MaxAnalyticsRows = 1000

// FlakyTask is one task of one Pipeline in one namespace, over the
// revisions it ran at. Only finished outcomes count: a run that succeeded
// or failed (cancelled and running runs are left out).
type FlakyTask struct {
	Namespace, Pipeline, Task string
	Revisions                 int64 // revisions with a finished run of the task
	FlakyRevisions            int64 // revisions where it both succeeded and failed
	Runs, Succeeded, Failed   int64 // its finished runs at those revisions
	// Flips counts consecutive runs at one revision (by start time) whose
	// outcomes differ, out of Pairs consecutive runs at one revision.
	Flips, Pairs int64
	LastFlakyRun *time.Time // the latest start of a run at a flaky revision
}

// FlipRate is Flips over Pairs; nil without pairs.
func (f FlakyTask) FlipRate() *float64 {
	if f.Pairs == 0 {
		return nil
	}
	v := float64(f.Flips) / float64(f.Pairs)
	return &v
}

// FlakyResult is the first Limit flaky tasks and how many there are.
type FlakyResult struct {
	Tasks []FlakyTask
	Total int
}

func analyticsLimit(n int) (int, error) {
	if n == 0 {
		return 20, nil
	}
	if n < 0 || n > MaxAnalyticsRows {
		return 0, fmt.Errorf("%w: first must be 1 to %d, not %d", ErrInvalidArgument, MaxAnalyticsRows, n)
	}
	return n, nil
}

// FlakyTasks lists the tasks with at least one flaky revision: most flaky
// revisions first, then highest flip rate, then by namespace, Pipeline and
// task. A TaskRun's revision is its PipelineRun's (by name within its
// Result) when that has one, else its own (the pipelines-as-code SHA
// Tekton copies onto it); TaskRuns without a revision, Pipeline or task
// name are left out.
func (s *Store) FlakyTasks(ctx context.Context, q FlakyQuery) (*FlakyResult, error) {
	limit, err := analyticsLimit(q.Limit)
	if err != nil {
		return nil, err
	}
	if s.flakyServes(q.Scope) {
		return s.flakyFromSegments(ctx, q.Scope, limit)
	}
	p, err := s.countPlan(recordsEntity, q.Scope)
	if err != nil {
		return nil, err
	}
	collate := bytewise(s.dialect)
	// scoped: the finished TaskRuns of the list's scope; parents: the
	// revisions of their PipelineRuns (one per run name, should a Result
	// hold two copies); runs: each with its revision and, by LAG, the
	// outcome of the run before it at that revision.
	// Literal, as the predicate of the partial index records_task_outcomes
	// (00010) is written: the databases match such predicates textually.
	scope := p.base.with(flakyRunsPredicate("r"))
	stmt := `WITH scoped AS (
  SELECT r.uid, r.namespace, r.result_uid, r.pipeline_run_name, r.pipeline_name, r.task_name, r.revision, r.status, r.start_time
  FROM ` + recordsEntity.from + scope.whereSQL() + `
), parents AS (
  SELECT pr.namespace, pr.result_uid, pr.run_name, MAX(pr.revision` + collate + `) AS revision FROM records AS pr
  WHERE pr.revision <> '' AND pr.data_type LIKE 'tekton.dev/%.PipelineRun' AND pr.result_uid IN (SELECT result_uid FROM scoped)
  GROUP BY pr.namespace, pr.result_uid, pr.run_name
), runs AS (
  SELECT t.namespace, t.pipeline_name, t.task_name, t.status, t.start_time,
    COALESCE(pa.revision, NULLIF(t.revision, '')) AS rev,
    LAG(t.status) OVER (PARTITION BY t.namespace, t.pipeline_name, t.task_name, COALESCE(pa.revision, NULLIF(t.revision, ''))
                        ORDER BY CASE WHEN t.start_time IS NULL THEN 0 ELSE 1 END, t.start_time, t.uid` + collate + `) AS prev
  FROM scoped AS t LEFT JOIN parents AS pa
    ON pa.namespace = t.namespace AND pa.result_uid = t.result_uid AND pa.run_name = t.pipeline_run_name AND t.pipeline_run_name <> ''
), revisions AS (
  SELECT namespace, pipeline_name, task_name, rev, COUNT(*) AS n,
    COUNT(CASE WHEN status = ? THEN 1 END) AS succeeded, COUNT(CASE WHEN status = ? THEN 1 END) AS failed,
    COUNT(CASE WHEN prev IS NOT NULL AND prev <> status THEN 1 END) AS flips, MAX(start_time) AS last_start
  FROM runs WHERE rev IS NOT NULL GROUP BY namespace, pipeline_name, task_name, rev
), ` + flakyRanking(s.dialect)
	args := append(scope.args, StatusSucceeded, StatusFailed, limit)
	return s.readFlaky(ctx, stmt, args)
}

// flakyRanking is the end of a flaky-task statement whose CTE revisions
// holds, per namespace, Pipeline, task and revision (rev), the runs (n),
// how many succeeded and failed, the flips and the last start: the tasks
// with a flaky revision, ranked, the limit its last argument.
func flakyRanking(d filter.Dialect) string {
	double, collate := sqlDouble(d), bytewise(d)
	return `tasks AS (
  SELECT namespace, pipeline_name, task_name, COUNT(*) AS revisions,
    COUNT(CASE WHEN succeeded > 0 AND failed > 0 THEN 1 END) AS flaky,
    SUM(n) AS n, SUM(succeeded) AS succeeded, SUM(failed) AS failed, SUM(flips) AS flips, SUM(n - 1) AS pairs,
    MAX(CASE WHEN succeeded > 0 AND failed > 0 THEN last_start END) AS last_flaky
  FROM revisions GROUP BY namespace, pipeline_name, task_name
)
SELECT namespace, pipeline_name, task_name, revisions, flaky, n, succeeded, failed, flips, pairs, last_flaky, COUNT(*) OVER () AS total
FROM tasks WHERE flaky > 0
ORDER BY flaky DESC, CAST(flips AS ` + double + `) / pairs DESC, namespace` + collate + `, pipeline_name` + collate + `, task_name` + collate + `
LIMIT ?`
}

// readFlaky runs a statement ending in flakyRanking.
func (s *Store) readFlaky(ctx context.Context, stmt string, args []any) (*FlakyResult, error) {
	res := &FlakyResult{}
	if err := s.readRows(ctx, stmt, args, res.scan); err != nil {
		return nil, err
	}
	return res, nil
}

// scan reads the rows of a statement ending in flakyRanking.
func (res *FlakyResult) scan(rows *sql.Rows) error {
	for rows.Next() {
		var f FlakyTask
		var last sqlTime
		var total int
		if err := rows.Scan(&f.Namespace, &f.Pipeline, &f.Task, &f.Revisions, &f.FlakyRevisions, &f.Runs, &f.Succeeded,
			&f.Failed, &f.Flips, &f.Pairs, &last, &total); err != nil {
			return err
		}
		f.LastFlakyRun, res.Total = last.t, total
		res.Tasks = append(res.Tasks, f)
	}
	return nil
}

// sqlDouble is the dialect's IEEE double type: ratios computed in SQL then
// compare exactly as Go's float64 do.
func sqlDouble(d filter.Dialect) string {
	if d == filter.Postgres {
		return "double precision"
	}
	return "REAL"
}

// bytewise orders text byte by byte, as SQLite does and Go compares
// strings, whatever PostgreSQL's database collation.
func bytewise(d filter.Dialect) string {
	if d == filter.Postgres {
		return ` COLLATE "C"`
	}
	return ""
}

// with is a copy of q with one more condition.
func (q query) with(cond string, args ...any) query {
	out := query{conds: append(slices.Clone(q.conds), cond), args: append(slices.Clone(q.args), args...)}
	return out
}
