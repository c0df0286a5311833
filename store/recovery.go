package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/annals-dev/annals/store/filter"
)

// RecoveryQuery measures, per Pipeline, how long it took to recover from
// failures, over the PipelineRuns of Scope (as ListRecords selects them;
// paging fields are ignored; other Records in it are left out).
type RecoveryQuery struct {
	Scope ListOptions
	Limit int // 0: 20; at most MaxAnalyticsRows
}

// PipelineRecovery is one Pipeline in one namespace that failed. Its
// finished runs (succeeded or failed; cancelled and running runs are left
// out) are taken in order of completion: a recovery is the time from the
// completion of the first failure after a success (or the first run) to the
// completion of the next success.
type PipelineRecovery struct {
	Namespace, Pipeline string
	Recoveries          int64
	// Mean, median (discrete: the ceil(n/2)-th smallest, a recovery some
	// failure had) and longest recovery in microseconds; zero without one.
	MeanMicros              float64
	MedianMicros, MaxMicros int64
	// FailingSince is the completion of the first failure of a streak that
	// is not recovered yet: the Pipeline is currently failing.
	FailingSince *time.Time
}

// RecoveryResult is the first Limit Pipelines and how many there are.
type RecoveryResult struct {
	Pipelines []PipelineRecovery
	Total     int
}

// PipelineRecoveries lists the Pipelines with a failure among the runs in
// scope: those currently failing first, longest failing first, then by
// mean recovery, longest first, then by namespace and Pipeline.
func (s *Store) PipelineRecoveries(ctx context.Context, q RecoveryQuery) (*RecoveryResult, error) {
	limit, err := analyticsLimit(q.Limit)
	if err != nil {
		return nil, err
	}
	p, err := s.countPlan(recordsEntity, q.Scope)
	if err != nil {
		return nil, err
	}
	// Literal, as the predicate of the partial index records_pipeline_outcomes
	// (00010) is written: the databases match such predicates textually.
	scope := p.base.with("r.data_type LIKE 'tekton.dev/%.PipelineRun' AND r.status IN ('Succeeded', 'Failed') AND r.pipeline_name <> '' AND r.completion_time IS NOT NULL")
	double, collate, micros := sqlDouble(s.dialect), bytewise(s.dialect), epochMicrosSQL(s.dialect, "done")
	// edges keeps the runs where the outcome changes (the first failure of
	// a streak, the success that ends it), which alternate: the edge before
	// a success is the failure it recovers from.
	stmt := `WITH runs AS (
  SELECT r.namespace AS ns, r.pipeline_name AS pipeline, r.status, r.completion_time AS done, r.uid,
    LAG(r.status) OVER (PARTITION BY r.namespace, r.pipeline_name ORDER BY r.completion_time, r.uid` + collate + `) AS prev
  FROM ` + recordsEntity.from + scope.whereSQL() + `
), edges AS (
  SELECT ns, pipeline, status, done, uid, ` + micros + ` AS done_us FROM runs
  WHERE (status = ? AND (prev IS NULL OR prev <> status)) OR (status = ? AND prev = ?)
), spans AS (
  SELECT ns, pipeline, status, done,
    done_us - LAG(done_us) OVER (PARTITION BY ns, pipeline ORDER BY done, uid` + collate + `) AS us,
    ROW_NUMBER() OVER (PARTITION BY ns, pipeline ORDER BY done DESC, uid` + collate + ` DESC) AS from_end
  FROM edges
), ranked AS (
  SELECT ns, pipeline, us, ROW_NUMBER() OVER (PARTITION BY ns, pipeline ORDER BY us) AS rn,
    COUNT(*) OVER (PARTITION BY ns, pipeline) AS n
  FROM spans WHERE status = ?
), recovered AS (
  SELECT ns, pipeline, COUNT(*) AS n, SUM(us) AS total, MAX(us) AS longest, MAX(CASE WHEN rn = (n + 1) / 2 THEN us END) AS median
  FROM ranked GROUP BY ns, pipeline
), failing AS (
  SELECT ns, pipeline, done AS since FROM spans WHERE from_end = 1 AND status = ?
), pipelines AS (
  SELECT DISTINCT ns, pipeline FROM edges
)
SELECT pl.ns, pl.pipeline, COALESCE(rc.n, 0), COALESCE(CAST(rc.total AS ` + double + `) / rc.n, 0), COALESCE(rc.median, 0),
  COALESCE(rc.longest, 0), f.since, COUNT(*) OVER ()
FROM pipelines AS pl
  LEFT JOIN recovered AS rc ON rc.ns = pl.ns AND rc.pipeline = pl.pipeline
  LEFT JOIN failing AS f ON f.ns = pl.ns AND f.pipeline = pl.pipeline
ORDER BY CASE WHEN f.since IS NULL THEN 1 ELSE 0 END, f.since, COALESCE(CAST(rc.total AS ` + double + `) / rc.n, -1) DESC, pl.ns` + collate + `, pl.pipeline` + collate + `
LIMIT ?`
	args := append(scope.args, StatusFailed, StatusSucceeded, StatusFailed, StatusSucceeded, StatusFailed, limit)
	res := &RecoveryResult{}
	err = s.readRows(ctx, stmt, args, func(rows *sql.Rows) error {
		for rows.Next() {
			var pr PipelineRecovery
			var since sqlTime
			if err := rows.Scan(&pr.Namespace, &pr.Pipeline, &pr.Recoveries, &pr.MeanMicros, &pr.MedianMicros, &pr.MaxMicros,
				&since, &res.Total); err != nil {
				return err
			}
			pr.FailingSince = since.t
			res.Pipelines = append(res.Pipelines, pr)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// epochMicrosSQL is a time column as Unix microseconds. SQLite's date
// functions stop at milliseconds, so the fraction is read from the TEXT
// (bun's UTC layout, '2006-01-02 15:04:05.999999+00:00').
func epochMicrosSQL(d filter.Dialect, col string) string {
	if d == filter.Postgres {
		return "CAST(EXTRACT(EPOCH FROM " + col + ") * 1000000 AS bigint)"
	}
	return "(CAST(strftime('%s', " + col + ") AS INTEGER) * 1000000 + CASE WHEN substr(" + col + ", 20, 1) = '.' " +
		"THEN CAST(substr(substr(" + col + ", 21, instr(" + col + ", '+') - 21) || '000000', 1, 6) AS INTEGER) ELSE 0 END)"
}
