package store

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"

	"github.com/annals-dev/annals/store/filter"
)

// Record counts kept by the database (migration 00012): record_rollup holds
// counts by namespace, data type, Pipeline, Task, status and reason, and
// triggers on records append signed deltas to record_rollup_deltas. A facet
// whose scope and dimension use only those columns reads the two tables
// instead of the Records: thousands of rows instead of millions. Folding the
// deltas into record_rollup only makes reads cheaper; a reader adds both
// tables up in one statement, so its answer never depends on when a fold ran.

// rollupFrom stands in for "records AS r" in a count over the rollup
// columns: the same column names, and n Records per row.
const rollupFrom = "(SELECT namespace, data_type, pipeline_name, task_name, status, reason, n FROM record_rollup" +
	" UNION ALL SELECT namespace, data_type, pipeline_name, task_name, status, reason, n FROM record_rollup_deltas) AS r"

// rollupAllFrom is rollupFrom for a caller who reads every namespace and
// counts by none: record_rollup_all has no namespace column, so a namespace
// condition cannot apply to it by mistake (the statement fails instead).
const rollupAllFrom = "(SELECT data_type, pipeline_name, task_name, status, reason, n FROM record_rollup_all" +
	" UNION ALL SELECT data_type, pipeline_name, task_name, status, reason, n FROM record_rollup_deltas) AS r"

// allNamespaces tells whether o reads every namespace: no parent
// namespace, no restriction to the caller's, no namespace filter.
func allNamespaces(o ListOptions) bool {
	return (o.Parent == "" || o.Parent == "-") && o.Namespaces == nil && (o.RecordWhere == nil || o.RecordWhere.Namespace == nil)
}

// rollupFoldEvery is how often at most this process folds deltas; a fold
// also starts after rollupFoldAfter Records written by this process.
const (
	rollupFoldEvery = 10 * time.Second
	rollupFoldAfter = 20000
)

// rollupFolder runs at most one fold at a time in this process, in the
// background; PostgreSQL's advisory lock keeps processes from folding at
// once.
type rollupFolder struct {
	mu       sync.Mutex
	running  bool
	last     time.Time
	written  int
	wg       sync.WaitGroup
	disabled bool // set by tests that fold by hand
	ignored  bool // set by tests: reads count Records, not the rollup
}

// rollupServes tells whether a count of Records under o, grouped by dim,
// can be read from the rollup: every condition and the dimension must be on
// the rollup's columns.
func (s *Store) rollupServes(o ListOptions, dim Dimension) bool {
	if s.rollup.ignored {
		return false
	}
	switch dim.Kind {
	case DimNamespace, DimPipelineName, DimTask, DimStatus, DimReason, DimDataType, DimKind:
	default:
		return false
	}
	return rollupScope(o, false)
}

// rollupScope tells whether every condition of o is on the rollup's key
// columns, or, when started is set, on the start time (record_daily's day).
func rollupScope(o ListOptions, started bool) bool {
	if o.ResultName != "" || o.Filter != "" || o.ResultWhere != nil || o.pipelineRun != "" || o.keys != nil {
		return false
	}
	if w := o.RecordWhere; w != nil {
		unset := func(r filter.TimeRange) bool { return r.After == nil && r.Before == nil }
		if len(w.Labels) > 0 || w.PipelineRunName != nil || w.NamePrefix != nil || len(w.RunNames) > 0 ||
			(w.NameContains != nil && *w.NameContains != "") ||
			!unset(w.Created) || !unset(w.CreationTime) || (!started && !unset(w.Started)) || !unset(w.Completed) {
			return false
		}
	}
	return true
}

// noteWrites counts Records written by this process and starts a fold in
// the background after enough of them.
func (s *Store) noteWrites(n int) {
	f := &s.rollup
	f.mu.Lock()
	f.written += n
	due := f.written >= rollupFoldAfter
	f.mu.Unlock()
	if due {
		s.foldRollupSoon()
	}
}

// foldRollupSoon starts a fold in the background unless one is running or
// one ran within rollupFoldEvery (and few Records were written since).
func (s *Store) foldRollupSoon() {
	f := &s.rollup
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.disabled || f.running || (time.Since(f.last) < rollupFoldEvery && f.written < rollupFoldAfter) {
		return
	}
	f.running, f.written = true, 0
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		ctx, cancel := context.WithTimeout(s.closing, time.Minute)
		defer cancel()
		if err := s.FoldRollup(ctx); err != nil && s.closing.Err() == nil {
			slog.Warn("folding record counts", "error", err)
		}
		f.mu.Lock()
		f.running, f.last = false, time.Now()
		f.mu.Unlock()
	}()
}

// FoldRollup moves the pending deltas into record_rollup and drops counts
// that reached zero, in one transaction, then does the same for
// record_daily (rollup_daily.go) and flaky_segments (flaky_rollup.go). It changes no answer, only how many rows a
// facet or statistics read; the store runs it by itself from time to time.
func (s *Store) FoldRollup(ctx context.Context) error {
	err := s.foldRollup(ctx)
	if errors.Is(err, errFoldBusy) {
		err = nil // another time
	}
	if err != nil {
		return err
	}
	if err := s.foldDaily(ctx); err != nil {
		return err
	}
	return s.foldFlaky(ctx)
}

// errFoldBusy: the deltas table was locked by others; the fold was skipped.
var errFoldBusy = errors.New("record count deltas are busy")

// isLockNotAvailable tells a PostgreSQL lock_timeout error.
func isLockNotAvailable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

func (s *Store) foldRollup(ctx context.Context) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if s.dialect == filter.Postgres {
			// One fold at a time across processes; a busy lock means another
			// process is folding right now, which is as good.
			var locked bool
			if err := tx.QueryRowContext(ctx, "SELECT pg_try_advisory_xact_lock(8317001)").Scan(&locked); err != nil || !locked {
				return err
			}
			// The deltas are moved out and the table emptied with TRUNCATE,
			// not DELETE: deleted rows would stay in the table as dead
			// tuples until a vacuum, and every facet scans it. Writers wait
			// for the lock the few milliseconds a fold takes; a fold that
			// cannot get it within 50 ms (a long write transaction holds the
			// table) gives up rather than queue every reader and writer
			// behind its request.
			// Nothing to fold: take no lock. A waiting LOCK request queues
			// every new reader behind it, so a fold that has nothing to do
			// must not ask.
			var pending bool
			if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM record_rollup_deltas)").Scan(&pending); err != nil || !pending {
				return err
			}
			if _, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = '50ms'"); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "LOCK TABLE record_rollup_deltas IN ACCESS EXCLUSIVE MODE"); err != nil {
				if isLockNotAvailable(err) {
					return errFoldBusy
				}
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO record_rollup AS t (namespace, data_type, pipeline_name, task_name, status, reason, n)
SELECT namespace, data_type, pipeline_name, task_name, status, reason, SUM(n) FROM record_rollup_deltas
GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
ON CONFLICT (namespace, data_type, pipeline_name, task_name, status, reason) DO UPDATE SET n = t.n + EXCLUDED.n`); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO record_rollup_all AS t (data_type, pipeline_name, task_name, status, reason, n)
SELECT data_type, pipeline_name, task_name, status, reason, SUM(n) FROM record_rollup_deltas
GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
ON CONFLICT (data_type, pipeline_name, task_name, status, reason) DO UPDATE SET n = t.n + EXCLUDED.n`); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "TRUNCATE record_rollup_deltas"); err != nil {
				return err
			}
		} else {
			var last int64
			if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM record_rollup_deltas").Scan(&last); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO record_rollup (namespace, data_type, pipeline_name, task_name, status, reason, n)
SELECT namespace, data_type, pipeline_name, task_name, status, reason, SUM(n) FROM record_rollup_deltas WHERE id <= ?
GROUP BY 1, 2, 3, 4, 5, 6
ON CONFLICT (namespace, data_type, pipeline_name, task_name, status, reason) DO UPDATE SET n = record_rollup.n + excluded.n`, last); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO record_rollup_all (data_type, pipeline_name, task_name, status, reason, n)
SELECT data_type, pipeline_name, task_name, status, reason, SUM(n) FROM record_rollup_deltas WHERE id <= ?
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (data_type, pipeline_name, task_name, status, reason) DO UPDATE SET n = record_rollup_all.n + excluded.n`, last); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM record_rollup_deltas WHERE id <= ?", last); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM record_rollup WHERE n = 0"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM record_rollup_all WHERE n = 0")
		return err
	})
}
