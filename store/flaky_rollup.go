package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/annals-dev/annals/store/filter"
)

// Flaky-task segments kept by the database (migration 00016): flaky_segments
// summarizes the finished TaskRuns of each namespace, Pipeline, task,
// revision and UTC day of the start time in the order FlakyTasks takes them
// (count, outcomes, flips inside the day, first and last outcome, last
// start). Flips add up across consecutive days, so a window of whole days
// is the sum of its days plus a flip wherever a day's first outcome differs
// from the previous day's last. Triggers note the keys (namespace,
// Pipeline, task, day) a write may change in flaky_dirty, and the
// PipelineRuns whose revision changed in flaky_dirty_runs; the fold
// recomputes those keys from the Records. A reader takes, in one
// statement, the segments of whole days not dirty and computes from the
// Records the dirty keys and the partial days at the window's ends, so its
// answer never depends on when a fold ran.

// flakyRunsPredicate is the finished TaskRuns FlakyTasks counts, on the
// Records of alias. Literal, as the predicate of the partial index
// records_task_outcomes (00010) is written: the databases match such
// predicates textually.
func flakyRunsPredicate(alias string) string {
	a := alias + "."
	return a + "data_type LIKE 'tekton.dev/%.TaskRun' AND " + a + "status IN ('Succeeded', 'Failed') AND " +
		a + "pipeline_name <> '' AND " + a + "task_name <> ''"
}

// flakyDaySQL is the UTC day of a start time column as the segments
// number it (noStartDay without one).
func flakyDaySQL(d filter.Dialect, col string) string {
	if d == filter.Postgres {
		return "COALESCE(CAST(floor(EXTRACT(EPOCH FROM " + col + ") / 86400) AS bigint), -2147483648)"
	}
	return "COALESCE(CAST(floor(CAST(strftime('%s', " + col + ") AS INTEGER) / 86400.0) AS INTEGER), -2147483648)"
}

// flakyDayStartSQL is the instant a day (an integer expression) begins,
// comparable with the Records' start_time: on SQLite the TEXT of bun's UTC
// layout, which sorts as the times do.
func flakyDayStartSQL(d filter.Dialect, day string) string {
	if d == filter.Postgres {
		return "to_timestamp(CAST(" + day + " AS double precision) * 86400)"
	}
	return "strftime('%Y-%m-%d %H:%M:%S+00:00', (" + day + ") * 86400, 'unixepoch')"
}

// flakyScopedColumns are the columns of the CTE scoped that
// flakySegmentCTEs reads, day last.
const flakyScopedColumns = "r.uid, r.namespace, r.result_uid, r.pipeline_run_name, r.pipeline_name, r.task_name, r.revision, r.status, r.start_time"

// flakySegmentCTEs computes, after a CTE scoped of runs (flakyScopedColumns
// and their day), the segments of those that satisfy only (a condition on
// the day; "": all) as live_segments: per namespace,
// Pipeline, task, revision (rev) and day, the columns of flaky_segments.
// The revision and order are FlakyTasks' (flaky.go). Keys compare
// bytewise: the same groups, and sorted several times faster on
// PostgreSQL than in a linguistic collation.
func flakySegmentCTEs(d filter.Dialect, only string) string {
	collate := bytewise(d)
	if only != "" {
		only = " AND " + only
	}
	return `parents AS (
  SELECT pr.namespace, pr.result_uid, pr.run_name, MAX(pr.revision` + collate + `) AS revision FROM records AS pr
  WHERE pr.revision <> '' AND pr.data_type LIKE 'tekton.dev/%.PipelineRun' AND pr.result_uid IN (SELECT result_uid FROM scoped)
  GROUP BY pr.namespace, pr.result_uid, pr.run_name
), seg_runs AS (
  SELECT t.uid, t.namespace` + collate + ` AS namespace, t.pipeline_name` + collate + ` AS pipeline_name, t.task_name` + collate + ` AS task_name,
    t.status, t.start_time, t.day, COALESCE(pa.revision, NULLIF(t.revision, ''))` + collate + ` AS rev
  FROM scoped AS t LEFT JOIN parents AS pa
    ON pa.namespace = t.namespace AND pa.result_uid = t.result_uid AND pa.run_name = t.pipeline_run_name AND t.pipeline_run_name <> ''
), seg_ordered AS (
  SELECT namespace, pipeline_name, task_name, status, start_time, day, rev,
    LAG(status) OVER w AS prev, LEAD(status) OVER w AS next
  FROM seg_runs WHERE rev IS NOT NULL` + only + `
  WINDOW w AS (PARTITION BY namespace, pipeline_name, task_name, rev, day
               ORDER BY CASE WHEN start_time IS NULL THEN 0 ELSE 1 END, start_time, uid` + collate + `)
), live_segments AS (
  SELECT namespace, pipeline_name, task_name, rev, day, COUNT(*) AS n,
    COUNT(CASE WHEN status = 'Succeeded' THEN 1 END) AS succeeded, COUNT(CASE WHEN status = 'Failed' THEN 1 END) AS failed,
    COUNT(CASE WHEN prev <> status THEN 1 END) AS flips,
    MAX(CASE WHEN prev IS NULL THEN status END) AS first_status, MAX(CASE WHEN next IS NULL THEN status END) AS last_status,
    MAX(start_time) AS last_start
  FROM seg_ordered GROUP BY namespace, pipeline_name, task_name, rev, day
)`
}

// flakyDirtyRuns selects (flakyScopedColumns, day) the runs of scope, a
// condition on the Records r, whose key and day are in the CTE dirty
// (namespace, pipeline_name, task_name, day): each dirty day its own range
// of the start time index, each run's key then looked up in a hash of the
// dirty keys; Records without a start time only when withoutStart.
// "IS TRUE" keeps the IN a hashed subquery: as a join, PostgreSQL would
// look up the Records of each dirty key through the Pipeline and task
// name indexes, a minute for the keys of one day at 1M Records.
func flakyDirtyRuns(d filter.Dialect, scope query, withoutStart bool) (string, []any) {
	noStart := strconv.Itoa(noStartDay)
	days := scope.with("r.start_time >= " + flakyDayStartSQL(d, "dd.day") + " AND r.start_time < " + flakyDayStartSQL(d, "dd.day + 1")).
		with("((r.namespace, r.pipeline_name, r.task_name, dd.day) IN (SELECT namespace, pipeline_name, task_name, day FROM dirty)) IS TRUE")
	stmt := "SELECT " + flakyScopedColumns + ", dd.day AS day FROM (SELECT DISTINCT day FROM dirty WHERE day <> " + noStart +
		") AS dd JOIN records AS r ON 1 = 1" + days.whereSQL()
	args := days.args
	if withoutStart {
		none := scope.with("r.start_time IS NULL").
			with("((r.namespace, r.pipeline_name, r.task_name) IN (SELECT namespace, pipeline_name, task_name FROM dirty WHERE day = " + noStart + ")) IS TRUE")
		stmt += " UNION ALL SELECT " + flakyScopedColumns + ", " + noStart + " AS day FROM records AS r" + none.whereSQL()
		args = append(args, none.args...)
	}
	return stmt, args
}

// flakyDirtyKeys selects the keys (namespace, pipeline_name, task_name,
// day) the triggers noted, those of the TaskRuns of noted PipelineRuns
// included; keys and runs are the rows of flaky_dirty and
// flaky_dirty_runs to read (a table name, or a CTE's).
func flakyDirtyKeys(d filter.Dialect, keys, runs string) string {
	return "SELECT namespace, pipeline_name, task_name, day FROM " + keys +
		" UNION SELECT t.namespace, t.pipeline_name, t.task_name, " + flakyDaySQL(d, "t.start_time") + " FROM " + runs + " AS dr" +
		" JOIN records AS t ON t.namespace = dr.namespace AND t.result_uid = dr.result_uid AND t.pipeline_run_name = dr.run_name" +
		" WHERE t.pipeline_run_name <> '' AND " + flakyRunsPredicate("t")
}

// flakyServes tells whether flaky_segments answers a FlakyTasks of scope o:
// conditions on the namespace, Pipeline and task, and a start window. A
// condition on the data type, status or reason would take runs out of
// the middle of a segment.
func (s *Store) flakyServes(o ListOptions) bool {
	if s.rollup.ignored || !rollupScope(o, true) {
		return false
	}
	w := o.RecordWhere
	return w == nil || len(w.DataTypes) == 0 && len(w.Statuses) == 0 && len(w.Reasons) == 0 && len(w.Kinds) == 0
}

// flakyFromSegments is FlakyTasks read from flaky_segments; scope must be
// one flakyServes accepts.
func (s *Store) flakyFromSegments(ctx context.Context, scope ListOptions, limit int) (*FlakyResult, error) {
	rd := &flakyRead{}
	byKey := scope
	if w := scope.RecordWhere; w != nil {
		rd.window = w.Started
		c := *w
		c.Started = filter.TimeRange{}
		byKey.RecordWhere = &c
	}
	keyPlan, err := s.countPlan(recordsEntity, byKey)
	if err != nil {
		return nil, err
	}
	rd.keyScope = keyPlan.base
	rd.from, rd.to, _, _ = wholeDays(rd.window)
	// The days at the window's ends that it holds in part.
	if a := rd.window.After; a != nil {
		rd.edges = append(rd.edges, floorDiv(a.UnixMicro(), dayMicros))
	}
	if b := rd.window.Before; b != nil && b.UnixMicro()%dayMicros != 0 {
		if e := floorDiv(b.UnixMicro(), dayMicros); !slices.Contains(rd.edges, e) {
			rd.edges = append(rd.edges, e)
		}
	}
	rd.fingerprint = fmt.Sprintf("flaky\x00%s\x00%#v", rd.keyScope.whereSQL(), rd.keyScope.args)
	// A fold between two statements shows as a changed version, a day kept
	// in memory that changed as a dirty key or a version; the read starts
	// again then (folds are seconds apart).
	for attempt := 0; ; attempt++ {
		segs, consistent, err := s.readFlakySegments(ctx, rd)
		if err != nil {
			return nil, err
		}
		if consistent {
			return rankFlaky(segs, limit), nil
		}
		if attempt == 4 {
			return nil, fmt.Errorf("%w: the flaky-task segments changed under five reads in a row; try again", ErrUnavailable)
		}
	}
}

// flakyStatement is the first statement of a read of rd: the segments of
// the dirty keys of the whole days computed from the Records (source 1),
// the versions of the whole days and of the window's end days (2), the
// dirty keys of those days (3), and every run of the end days to compute
// in their scope, with its revision (4).
func (s *Store) flakyStatement(rd *flakyRead, compute []int64) (string, []any) {
	d := s.dialect
	// dirty: the keys of the whole days that the segments may not hold as
	// the Records are; dirty_ends: those of the end days.
	dirtyScope := rd.keyScope.with("r.day >= ? AND r.day < ?", rd.from, rd.to)
	stmt := "WITH dirty AS (SELECT DISTINCT r.namespace, r.pipeline_name, r.task_name, r.day FROM (" +
		flakyDirtyKeys(d, "flaky_dirty", "flaky_dirty_runs") + ") AS r" + dirtyScope.whereSQL() + ")"
	args := dirtyScope.args
	dirtyEnds, versionDays := "", "r.day >= ? AND r.day < ?"
	if len(rd.edges) > 0 {
		var days []string
		for _, e := range rd.edges {
			days = append(days, strconv.FormatInt(e, 10))
		}
		endScope := rd.keyScope.with("r.day IN (" + strings.Join(days, ", ") + ")")
		stmt += ", dirty_ends AS (SELECT DISTINCT r.namespace, r.pipeline_name, r.task_name, r.day FROM (" +
			flakyDirtyKeys(d, "flaky_dirty", "flaky_dirty_runs") + ") AS r" + endScope.whereSQL() + ")"
		args = append(args, endScope.args...)
		dirtyEnds = " UNION ALL SELECT 3, namespace, pipeline_name, task_name, '', day, 0, 0, 0, 0, '', '', NULL FROM dirty_ends"
		versionDays = "(" + versionDays + " OR r.day IN (" + strings.Join(days, ", ") + "))"
	}
	// scoped: the runs read from the Records: of each end day to compute,
	// its own range of the start time index; of the dirty keys of the
	// whole days.
	runs := rd.keyScope.with(flakyRunsPredicate("r"))
	parts := []string{"SELECT " + flakyScopedColumns + ", 0 AS day FROM records AS r WHERE 1 = 0"}
	for _, e := range compute {
		edge := runs.with("r.start_time >= ? AND r.start_time < ?",
			filter.TimeArg(d, time.UnixMicro(e*dayMicros)), filter.TimeArg(d, time.UnixMicro((e+1)*dayMicros)))
		parts = append(parts, "SELECT "+flakyScopedColumns+", "+strconv.FormatInt(e, 10)+" AS day FROM records AS r"+edge.whereSQL())
		args = append(args, edge.args...)
	}
	if rd.from < rd.to {
		part, partArgs := flakyDirtyRuns(d, runs, rd.from == noStartDay)
		parts = append(parts, part)
		args = append(args, partArgs...)
	}
	stmt += ", scoped AS (" + strings.Join(parts, " UNION ALL ") + "), " +
		flakySegmentCTEs(d, "day >= "+strconv.FormatInt(rd.from, 10)+" AND day < "+strconv.FormatInt(rd.to, 10)) +
		" SELECT 1, namespace, pipeline_name, task_name, rev, day, n, succeeded, failed, flips, first_status, last_status, last_start FROM live_segments" +
		" UNION ALL SELECT 2, '', '', '', '', r.day, r.version, 0, 0, 0, '', '', NULL FROM flaky_days AS r WHERE " + versionDays +
		" UNION ALL SELECT 3, namespace, pipeline_name, task_name, '', day, 0, 0, 0, 0, '', '', NULL FROM dirty" + dirtyEnds +
		" UNION ALL SELECT 4, namespace, pipeline_name, task_name, rev, day, 0, 0, 0, 0, status, uid, start_time FROM seg_runs" +
		" WHERE rev IS NOT NULL AND NOT (day >= " + strconv.FormatInt(rd.from, 10) + " AND day < " + strconv.FormatInt(rd.to, 10) + ")"
	args = append(args, rd.from, rd.to)
	return stmt, args
}

// readRowsWithoutJIT is readRows in a transaction of its own without
// PostgreSQL's JIT compilation. The planner cannot tell how many days are
// dirty, guesses hundreds, and the cost it then estimates for reading them
// starts a compilation that takes longer than the statement (0.9 s of
// 1.3 s at 1M Records with one dirty day).
func (s *Store) readRowsWithoutJIT(ctx context.Context, stmt string, args []any, read func(*sql.Rows) error) error {
	if s.dialect != filter.Postgres {
		return s.readRows(ctx, stmt, args, read)
	}
	countStatement(ctx)
	if observeSQL != nil {
		observeSQL(stmt)
	}
	ctx, span := sqlTracer{system: s.dialect.String()}.start(ctx, "SELECT", stmt)
	stmtCtx, cancel := s.statementContext(ctx)
	defer cancel()
	err := func() error {
		tx, err := s.db.DB.BeginTx(stmtCtx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(stmtCtx, "SET LOCAL jit = off"); err != nil {
			return err
		}
		rows, err := tx.QueryContext(stmtCtx, s.rebind(stmt), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		if err := read(rows); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return tx.Commit()
	}()
	endSpan(span, err)
	return dbError(timeoutError(err, ctx, stmtCtx))
}

// flakyFoldBatch is how many keys one statement of the fold recomputes.
const flakyFoldBatch = 2000

// foldFlaky takes the keys the triggers noted and recomputes their
// segments from the Records, in one transaction. On PostgreSQL they are
// taken with DELETE ... RETURNING: writers go on noting keys meanwhile, and
// a key noted after the fold's snapshot stays for the next fold (a reader
// computes it from the Records until then).
func (s *Store) foldFlaky(ctx context.Context) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		d := s.dialect
		var take string
		var lastKey, lastRun int64
		if d == filter.Postgres {
			// One fold at a time across processes.
			var locked bool
			if err := tx.QueryRowContext(ctx, "SELECT pg_try_advisory_xact_lock(8317003)").Scan(&locked); err != nil || !locked {
				return err
			}
			// See readRowsWithoutJIT.
			if _, err := tx.ExecContext(ctx, "SET LOCAL jit = off"); err != nil {
				return err
			}
			take = "WITH taken AS (DELETE FROM flaky_dirty RETURNING namespace, pipeline_name, task_name, day)," +
				" taken_runs AS (DELETE FROM flaky_dirty_runs RETURNING namespace, result_uid, run_name) " +
				flakyDirtyKeys(d, "taken", "taken_runs")
		} else {
			if err := tx.Tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM flaky_dirty").Scan(&lastKey); err != nil {
				return err
			}
			if err := tx.Tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM flaky_dirty_runs").Scan(&lastRun); err != nil {
				return err
			}
			take = flakyDirtyKeys(d, "(SELECT * FROM flaky_dirty WHERE id <= "+strconv.FormatInt(lastKey, 10)+")",
				"(SELECT * FROM flaky_dirty_runs WHERE id <= "+strconv.FormatInt(lastRun, 10)+")")
		}
		var keys []flakyKey
		rows, err := tx.Tx.QueryContext(ctx, take)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k flakyKey
			if err := rows.Scan(&k.ns, &k.pipeline, &k.task, &k.day); err != nil {
				rows.Close()
				return err
			}
			keys = append(keys, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// By day first: a batch then reads the Records of a few days.
		slices.SortFunc(keys, func(a, b flakyKey) int {
			return cmp.Or(cmp.Compare(a.day, b.day), strings.Compare(a.ns, b.ns), strings.Compare(a.pipeline, b.pipeline), strings.Compare(a.task, b.task))
		})
		for i := 0; i < len(keys); i += flakyFoldBatch {
			batch := keys[i:min(i+flakyFoldBatch, len(keys))]
			tuples := strings.TrimSuffix(strings.Repeat("(?, ?, ?, CAST(? AS bigint)), ", len(batch)), ", ")
			var args []any
			for _, k := range batch {
				args = append(args, k.ns, k.pipeline, k.task, k.day)
			}
			if _, err := tx.Tx.ExecContext(ctx, s.rebind("DELETE FROM flaky_segments WHERE (namespace, pipeline_name, task_name, day) IN (VALUES "+
				tuples+")"), args...); err != nil {
				return err
			}
			runs, runArgs := flakyDirtyRuns(d, query{conds: []string{flakyRunsPredicate("r")}}, true)
			stmt := "WITH dirty (namespace, pipeline_name, task_name, day) AS (VALUES " + tuples + "), scoped AS (" + runs + "), " +
				flakySegmentCTEs(d, "") + " INSERT INTO flaky_segments (namespace, pipeline_name, task_name, day, revision, n, succeeded, failed," +
				" flips, first_status, last_status, last_start) SELECT namespace, pipeline_name, task_name, day, rev, n, succeeded, failed," +
				" flips, first_status, last_status, last_start FROM live_segments"
			if _, err := tx.Tx.ExecContext(ctx, s.rebind(stmt), append(args, runArgs...)...); err != nil {
				return err
			}
		}
		if err := s.bumpFlakyDays(ctx, tx, keys); err != nil {
			return err
		}
		if d != filter.Postgres {
			if _, err := tx.Tx.ExecContext(ctx, "DELETE FROM flaky_dirty WHERE id <= ?", lastKey); err != nil {
				return err
			}
			if _, err := tx.Tx.ExecContext(ctx, "DELETE FROM flaky_dirty_runs WHERE id <= ?", lastRun); err != nil {
				return err
			}
		}
		return nil
	})
}

// bumpFlakyDays gives the days of keys a new version (flaky_days), in the
// fold's transaction, so that a reader who kept a day in memory
// (flaky_cache.go) reads it again. A version is only compared for
// equality: a random one needs no counter to agree on.
func (s *Store) bumpFlakyDays(ctx context.Context, tx bun.Tx, keys []flakyKey) error {
	seen := map[int64]bool{}
	var tuples []string
	var args []any
	version := rand.Int64()
	for _, k := range keys {
		if !seen[k.day] {
			seen[k.day] = true
			tuples = append(tuples, "(CAST(? AS bigint), CAST(? AS bigint))")
			args = append(args, k.day, version)
		}
	}
	for i := 0; i < len(tuples); i += 500 {
		j := min(i+500, len(tuples))
		stmt := "INSERT INTO flaky_days (day, version) VALUES " + strings.Join(tuples[i:j], ", ") +
			" ON CONFLICT (day) DO UPDATE SET version = excluded.version"
		if _, err := tx.Tx.ExecContext(ctx, s.rebind(stmt), args[2*i:2*j]...); err != nil {
			return err
		}
	}
	return nil
}
