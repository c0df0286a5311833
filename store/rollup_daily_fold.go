package store

import (
	"context"
	"math/rand/v2"
	"strings"

	"github.com/uptrace/bun"

	"github.com/annals-dev/annals/store/filter"
)

// The fold of record_daily and record_daily_all (rollup_daily.go): pending
// deltas are merged into the rows of their key and day, lists and all.

// foldDaily merges the pending deltas into record_daily, in one
// transaction. On PostgreSQL the deltas are taken with DELETE, not TRUNCATE:
// writers go on appending while a fold runs, and a reader's snapshot sees
// the deltas and the rows they went into consistently.
func (s *Store) foldDaily(ctx context.Context) error {
	return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		const cols = "data_type, day, namespace, pipeline_name, task_name, status, reason, sign, start_us, duration_us, queue_us"
		take := "DELETE FROM record_daily_deltas RETURNING " + cols
		var takeArgs []any
		last := int64(-1)
		if s.dialect == filter.Postgres {
			// One fold at a time across processes.
			var locked bool
			if err := tx.QueryRowContext(ctx, "SELECT pg_try_advisory_xact_lock(8317002)").Scan(&locked); err != nil || !locked {
				return err
			}
		} else {
			if err := tx.Tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM record_daily_deltas").Scan(&last); err != nil {
				return err
			}
			take, takeArgs = "SELECT "+cols+" FROM record_daily_deltas WHERE id <= ?", []any{last}
		}
		cells, keys, err := readFoldDeltas(ctx, tx, s.rebind(take), takeArgs)
		if err != nil {
			return err
		}
		// The same deltas again for record_daily_all, without namespaces.
		allCells := map[dailyKey]*foldCell{}
		var allKeys []dailyKey
		for _, k := range keys {
			c := cells[k]
			k.key[1] = ""
			a := allCells[k]
			if a == nil {
				a = &foldCell{}
				allCells[k] = a
				allKeys = append(allKeys, k)
			}
			a.plus, a.minus = append(a.plus, c.plus...), append(a.minus, c.minus...)
		}
		const batch = 100
		for _, t := range []struct {
			all   bool
			keys  []dailyKey
			cells map[dailyKey]*foldCell
		}{{false, keys, cells}, {true, allKeys, allCells}} {
			for i := 0; i < len(t.keys); i += batch {
				if err := s.foldDailyKeys(ctx, tx, t.all, t.keys[i:min(i+batch, len(t.keys))], t.cells); err != nil {
					return err
				}
			}
		}
		if err := s.bumpDayVersions(ctx, tx, keys); err != nil {
			return err
		}
		if last >= 0 {
			_, err = tx.Tx.ExecContext(ctx, "DELETE FROM record_daily_deltas WHERE id <= ?", last)
		}
		return err
	})
}

// bumpDayVersions gives the days of keys a new version (migration 00015),
// in the fold's transaction: a reader who kept a day in memory
// (rollup_daily_cache.go) sees that its rows changed. A version is only
// compared for equality, so a random one needs no counter to agree on.
func (s *Store) bumpDayVersions(ctx context.Context, tx bun.Tx, keys []dailyKey) error {
	seen := map[int64]bool{}
	var tuples []string
	var args []any
	version := rand.Int64()
	for _, k := range keys {
		if seen[k.day] {
			continue
		}
		seen[k.day] = true
		tuples = append(tuples, "(CAST(? AS bigint), CAST(? AS bigint))")
		args = append(args, k.day, version)
	}
	for i := 0; i < len(tuples); i += 500 {
		j := min(i+500, len(tuples))
		stmt := "INSERT INTO record_daily_days (day, version) VALUES " + strings.Join(tuples[i:j], ", ") +
			" ON CONFLICT (day) DO UPDATE SET version = excluded.version"
		if _, err := tx.Tx.ExecContext(ctx, s.rebind(stmt), args[2*i:2*j]...); err != nil {
			return err
		}
	}
	return nil
}

// dailyKey is a key of record_daily: the rollup key and the day.
type dailyKey struct {
	key [6]string // data type, namespace, Pipeline, Task, status, reason
	day int64
}

// dailyTable is record_daily, or record_daily_all (all namespaces, no
// namespace column), its key columns and a key's arguments in their order.
type dailyTable struct {
	name, keyColumns, keyTuple string
	all                        bool
}

func dailyTableOf(all bool) dailyTable {
	if all {
		return dailyTable{"record_daily_all", "data_type, day, pipeline_name, task_name, status, reason", "(?, CAST(? AS bigint), ?, ?, ?, ?)", true}
	}
	return dailyTable{"record_daily", "data_type, day, namespace, pipeline_name, task_name, status, reason", "(?, CAST(? AS bigint), ?, ?, ?, ?, ?)", false}
}

func (t dailyTable) args(k dailyKey) []any {
	if t.all {
		return []any{k.key[0], k.day, k.key[2], k.key[3], k.key[4], k.key[5]}
	}
	return []any{k.key[0], k.day, k.key[1], k.key[2], k.key[3], k.key[4], k.key[5]}
}

// scanDest is where a row of the table's key columns scans into k.
func (t dailyTable) scanDest(k *dailyKey) []any {
	if t.all {
		return []any{&k.key[0], &k.day, &k.key[2], &k.key[3], &k.key[4], &k.key[5]}
	}
	return []any{&k.key[0], &k.day, &k.key[1], &k.key[2], &k.key[3], &k.key[4], &k.key[5]}
}

// foldCell is the pending deltas of one key.
type foldCell struct {
	plus, minus []dailyValues
}

func readFoldDeltas(ctx context.Context, tx bun.Tx, stmt string, args []any) (map[dailyKey]*foldCell, []dailyKey, error) {
	rows, err := tx.Tx.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	cells := map[dailyKey]*foldCell{}
	var keys []dailyKey
	for rows.Next() {
		var k dailyKey
		var sign int
		var v dailyValues
		if err := rows.Scan(&k.key[0], &k.day, &k.key[1], &k.key[2], &k.key[3], &k.key[4], &k.key[5], &sign, &v.start, &v.duration, &v.queue); err != nil {
			return nil, nil, err
		}
		c := cells[k]
		if c == nil {
			c = &foldCell{}
			cells[k] = c
			keys = append(keys, k)
		}
		if sign < 0 {
			c.minus = append(c.minus, v)
		} else {
			c.plus = append(c.plus, v)
		}
	}
	return cells, keys, rows.Err()
}

// foldDailyKeys rewrites the rows of keys of record_daily, or of
// record_daily_all, with their deltas.
func (s *Store) foldDailyKeys(ctx context.Context, tx bun.Tx, all bool, keys []dailyKey, cells map[dailyKey]*foldCell) error {
	t := dailyTableOf(all)
	type current struct {
		n     int64
		lists dailyLists
	}
	have := map[dailyKey]*current{}
	var tuples []string
	var args []any
	for _, k := range keys {
		tuples = append(tuples, t.keyTuple)
		args = append(args, t.args(k)...)
	}
	in := " WHERE (" + t.keyColumns + ") IN (VALUES " + strings.Join(tuples, ", ") + ")"
	rows, err := tx.Tx.QueryContext(ctx, s.rebind("SELECT "+t.keyColumns+", n, durs, queues, starts FROM "+t.name+in), args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var k dailyKey
		var durs, queues, starts []byte
		c := &current{}
		err := rows.Scan(append(t.scanDest(&k), &c.n, &durs, &queues, &starts)...)
		if err == nil {
			if c.lists.durations, err = decodeValues(nil, durs); err == nil {
				if c.lists.queues, err = decodeValues(nil, queues); err == nil {
					c.lists.starts, err = decodeValues(nil, starts)
				}
			}
		}
		if err != nil {
			rows.Close()
			return err
		}
		have[k] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var upserts, deletes []string
	var upArgs, delArgs []any
	for _, k := range keys {
		c := have[k]
		existed := c != nil
		if !existed {
			c = &current{}
		}
		d := cells[k]
		c.n += int64(len(d.plus) - len(d.minus))
		c.lists.apply(d.plus, d.minus)
		if c.n <= 0 {
			if existed {
				deletes = append(deletes, t.keyTuple)
				delArgs = append(delArgs, t.args(k)...)
			}
			continue
		}
		dur, queue := distributionOf(c.lists.durations), distributionOf(c.lists.queues)
		var last any
		if n := len(c.lists.starts); n > 0 {
			last = c.lists.starts[n-1]
		}
		nullable := func(d Distribution, v int64) any {
			if d.N == 0 {
				return nil
			}
			return v
		}
		upserts = append(upserts, "("+t.keyTuple[1:len(t.keyTuple)-1]+", ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		upArgs = append(upArgs, append(t.args(k), c.n, last,
			dur.N, nullable(dur, dur.Min), nullable(dur, dur.Max), dur.Sum, encodeValues(c.lists.durations),
			queue.N, nullable(queue, queue.Min), nullable(queue, queue.Max), queue.Sum, encodeValues(c.lists.queues),
			encodeValues(c.lists.starts))...)
	}
	if len(deletes) > 0 {
		stmt := "DELETE FROM " + t.name + " WHERE (" + t.keyColumns + ") IN (VALUES " + strings.Join(deletes, ", ") + ")"
		if _, err := tx.Tx.ExecContext(ctx, s.rebind(stmt), delArgs...); err != nil {
			return err
		}
	}
	if len(upserts) > 0 {
		// The row is rewritten whole: every non-key column is named.
		stmt := "INSERT INTO " + t.name + " (" + t.keyColumns + ", n, last_start, " +
			"dur_n, dur_min, dur_max, dur_sum, durs, queue_n, queue_min, queue_max, queue_sum, queues, starts) VALUES " +
			strings.Join(upserts, ", ") +
			" ON CONFLICT (" + t.keyColumns + ") DO UPDATE SET n = excluded.n," +
			" last_start = excluded.last_start, dur_n = excluded.dur_n, dur_min = excluded.dur_min, dur_max = excluded.dur_max," +
			" dur_sum = excluded.dur_sum, durs = excluded.durs, queue_n = excluded.queue_n, queue_min = excluded.queue_min," +
			" queue_max = excluded.queue_max, queue_sum = excluded.queue_sum, queues = excluded.queues, starts = excluded.starts"
		if _, err := tx.Tx.ExecContext(ctx, s.rebind(stmt), upArgs...); err != nil {
			return err
		}
	}
	return nil
}
