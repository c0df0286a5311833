package store

import (
	"context"
	"database/sql/driver"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/annals-dev/annals/store/filter"
)

// PruneSelector picks Results for a retention policy. Lists are OR within
// themselves, the parts AND together, and an empty part matches everything.
//
// The first four parts mean what they mean to Tekton Results' retention
// agent, which reads the top-level run's own object: Labels and Annotations
// are the summary run's metadata (records.labels and
// results.summary_annotations), Reasons its Succeeded condition's reason
// (matchStatuses: Failed does not take in PipelineRunTimeout). The rest are
// Annals' additions.
type PruneSelector struct {
	Namespaces  []string
	Labels      map[string][]string
	Annotations map[string][]string
	Reasons     []string

	SummaryStatuses   []string            // results.summary_status: Succeeded, Failed, Running, Cancelled, Unknown
	ResultAnnotations map[string][]string // the Result's own annotations (result_annotations)
	DataTypes         []string
	Pipelines         []string
	Tasks             []string
}

// PrunePolicy is one rule, in order: a Result is governed by the first
// policy whose selector it matches, and pruned when its age time (see
// ageSQL) is before Cutoff, unless it is among the KeepLast newest of
// its Pipeline (or, with KeepLastByLabel, of its value of that label) under
// that policy.
type PrunePolicy struct {
	Name            string
	Selector        PruneSelector
	Cutoff          time.Time
	KeepLast        int
	KeepLastByLabel string
}

// PruneTarget is a Result a policy would delete.
type PruneTarget struct {
	UID       string `bun:"uid"`
	Name      string `bun:"name"`
	Namespace string `bun:"namespace"`
	Records   int    `bun:"records"`
}

// selectorSQL is the condition of a selector over a Result (alias res) and
// its summary Record (alias rec, LEFT JOINed, so possibly NULL).
func (s *Store) selectorSQL(sel PruneSelector, res, rec string) (string, []any) {
	var parts []string
	var args []any
	in := func(expr string, values []string) {
		if len(values) > 0 {
			parts = append(parts, expr+" IN ("+filter.Placeholders(len(values))+")")
			args = append(args, filter.Args(values)...)
		}
	}
	in(res+".namespace", sel.Namespaces)
	in(rec+".reason", sel.Reasons)
	in(res+".summary_status", sel.SummaryStatuses)
	in(res+".summary_type", sel.DataTypes)
	in(rec+".pipeline_name", sel.Pipelines)
	in(rec+".task_name", sel.Tasks)
	for _, key := range sortedKeys(sel.Labels) {
		parts = append(parts, filter.LabelValue(s.dialect, rec)+" IN ("+filter.Placeholders(len(sel.Labels[key]))+")")
		args = append(append(args, key), filter.Args(sel.Labels[key])...)
	}
	for _, key := range sortedKeys(sel.Annotations) {
		parts = append(parts, s.jsonStringValue(res+".summary_annotations")+" IN ("+filter.Placeholders(len(sel.Annotations[key]))+")")
		args = append(append(args, key), filter.Args(sel.Annotations[key])...)
	}
	for _, key := range sortedKeys(sel.ResultAnnotations) {
		parts = append(parts, "EXISTS (SELECT 1 FROM result_annotations a WHERE a.namespace = "+res+".namespace AND a.result_uid = "+res+".uid AND a.key = ? AND a.value IN ("+
			filter.Placeholders(len(sel.ResultAnnotations[key]))+"))")
		args = append(append(args, key), filter.Args(sel.ResultAnnotations[key])...)
	}
	if len(parts) == 0 {
		return "(1 = 1)", nil
	}
	return "(" + strings.Join(parts, " AND ") + ")", args
}

// jsonStringValue is the string value, under a key given as the next bound
// argument, of a JSON object column; NULL when the key is missing or its
// value is not a string.
func (s *Store) jsonStringValue(column string) string {
	if s.dialect == filter.Postgres {
		return "(" + column + " ->> ?::text)"
	}
	return "(SELECT j.value FROM json_each(" + column + ") AS j WHERE j.key = ? AND j.type = 'text')"
}

// ageSQL is the time a Result's age runs from, as Tekton Results reckons a
// run's: its summary run's completion time, or, for a run not finished, the
// run's own metadata.creationTimestamp (not the Result's creation, which for
// imported or late-stored runs is when Annals first saw them); a Result
// without a summary run falls back to its creation. On SQLite, whose times
// are text in two layouts here, every time is compared as a julian day, so
// cutoffs go through cutoffSQL.
func (s *Store) ageSQL(res, rec string) string {
	if s.dialect == filter.Postgres {
		created := "(" + rec + ".data #>> '{metadata,creationTimestamp}')"
		return "COALESCE(" + res + ".summary_end_time, CASE WHEN " + created +
			` ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+){0,1}(Z|[+-][0-9]{2}:[0-9]{2})$' THEN ` +
			created + "::timestamptz END, " + res + ".created_at)"
	}
	created := "json_extract(" + rec + ".data, '$.metadata.creationTimestamp')"
	return "COALESCE(julianday(" + res + ".summary_end_time), CASE WHEN json_type(" + rec + ".data, '$.metadata.creationTimestamp') = 'text' AND " +
		created + " LIKE '____-__-__T%' THEN julianday(" + created + ") END, julianday(" + res + ".created_at))"
}

// cutoffSQL is the bound cutoff time in the terms of ageSQL.
func (s *Store) cutoffSQL() string {
	if s.dialect == filter.Postgres {
		return "?"
	}
	return "julianday(?)"
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// pruneQuery selects the Results governed by policies[i] that it prunes.
func (s *Store) pruneQuery(policies []PrunePolicy, i int) (string, []any) {
	const from = " FROM results AS res LEFT JOIN records AS rec ON rec.name = res.summary_record"
	p := policies[i]
	var conds []string
	var args []any
	sel, selArgs := s.selectorSQL(p.Selector, "res", "rec")
	conds, args = append(conds, sel), append(args, selArgs...)
	for _, earlier := range policies[:i] {
		sel, selArgs := s.selectorSQL(earlier.Selector, "res", "rec")
		// A part over a missing label or summary Record is NULL, not
		// false: such a Result matches no earlier policy.
		conds, args = append(conds, "NOT COALESCE("+sel+", 1 = 0)"), append(args, selArgs...)
	}
	conds = append(conds, s.ageSQL("res", "rec")+" < "+s.cutoffSQL())
	args = append(args, filter.TimeArg(s.dialect, p.Cutoff))
	if p.KeepLast > 0 {
		// The newest KeepLast Results of each Pipeline (or label value)
		// under this policy stay.
		group, groupArgs := "COALESCE(rec2.pipeline_name, '')", []any(nil)
		if p.KeepLastByLabel != "" {
			group, groupArgs = "COALESCE("+filter.LabelValue(s.dialect, "rec2")+", '')", []any{p.KeepLastByLabel}
		}
		keepSel, keepArgs := s.selectorSQL(p.Selector, "res2", "rec2")
		keep := "SELECT k.name FROM (SELECT res2.name, ROW_NUMBER() OVER (PARTITION BY " + group + " " +
			"ORDER BY " + s.ageSQL("res2", "rec2") + " DESC, res2.uid DESC) AS rn " +
			"FROM results AS res2 LEFT JOIN records AS rec2 ON rec2.name = res2.summary_record WHERE " + keepSel
		args = append(append(args, groupArgs...), keepArgs...)
		for _, earlier := range policies[:i] {
			sel, selArgs := s.selectorSQL(earlier.Selector, "res2", "rec2")
			keep += " AND NOT COALESCE(" + sel + ", 1 = 0)"
			args = append(args, selArgs...)
		}
		keep += ") AS k WHERE k.rn <= ?"
		args = append(args, p.KeepLast)
		conds = append(conds, "res.name NOT IN ("+keep+")")
	}
	return from + " WHERE " + strings.Join(conds, " AND "), args
}

// PruneCandidates returns up to limit Results that policies[i] prunes,
// oldest first, with the number of Records each holds.
func (s *Store) PruneCandidates(ctx context.Context, policies []PrunePolicy, i, limit int) ([]PruneTarget, error) {
	from, args := s.pruneQuery(policies, i)
	var out []PruneTarget
	err := s.queryRows(ctx, &out, "SELECT res.uid, res.name, res.namespace, (SELECT count(*) FROM records x WHERE x.namespace = res.namespace AND x.result_uid = res.uid) AS records"+
		from+" ORDER BY "+s.ageSQL("res", "rec")+", res.uid LIMIT ?", append(args, limit)...)
	return out, err
}

// PruneCounts counts, per namespace, the Results and Records policies[i]
// would prune: what a dry run reports.
func (s *Store) PruneCounts(ctx context.Context, policies []PrunePolicy, i int) (map[string][2]int, error) {
	from, args := s.pruneQuery(policies, i)
	var rows []struct {
		Namespace string `bun:"namespace"`
		Results   int    `bun:"results"`
		Records   int    `bun:"records"`
	}
	err := s.queryRows(ctx, &rows, "SELECT res.namespace, count(*) AS results, COALESCE(sum((SELECT count(*) FROM records x WHERE x.namespace = res.namespace AND x.result_uid = res.uid)), 0) AS records"+
		from+" GROUP BY res.namespace", args...)
	out := map[string][2]int{}
	for _, r := range rows {
		out[r.Namespace] = [2]int{r.Results, r.Records}
	}
	return out, err
}

// DeleteResults deletes Results (by name) whole, with their Records,
// annotations and logs (all ON DELETE CASCADE from results), in one
// transaction: a batch goes entirely or not at all. It returns how many
// Results and how many bytes of logs went.
func (s *Store) DeleteResults(ctx context.Context, names []string) (results int, logBytes int64, err error) {
	if len(names) == 0 {
		return 0, 0, nil
	}
	keys, err := resultKeys(names)
	if err != nil {
		return 0, 0, err
	}
	cond, args := keysSQL("r.namespace", "r.result_uid", keys)
	announced := func() {}
	err = s.writeTx(ctx, func(ctx context.Context, db bun.IDB) error {
		if err := db.NewSelect().TableExpr("log_chunks AS c").ColumnExpr("COALESCE(sum(length(c.data)), 0)").
			Join("JOIN records AS r ON r.namespace = c.namespace AND r.uid = c.record_uid").Where(cond, args...).Scan(ctx, &logBytes); err != nil {
			return dbError(err)
		}
		// Objects are deleted by the outbox drain after this commits (the
		// trigger on log_objects lists them in this transaction).
		var objectBytes int64
		if err := db.NewSelect().TableExpr("log_objects AS c").ColumnExpr("COALESCE(sum(c.size), 0)").
			Join("JOIN records AS r ON r.namespace = c.namespace AND r.uid = c.record_uid").Where(cond, args...).Scan(ctx, &objectBytes); err != nil {
			return dbError(err)
		}
		logBytes += objectBytes
		// Subscribers hear of the Records going by cascade.
		changes, err := deletedRecords(ctx, db, cond, args...)
		if err != nil {
			return err
		}
		res, err := db.NewDelete().Model((*Result)(nil)).Where("name IN (?)", bun.In(names)).Exec(ctx)
		if err != nil {
			return dbError(err)
		}
		n, _ := res.RowsAffected()
		results = int(n)
		announced, err = s.announceChanges(ctx, db, changes)
		return err
	})
	if err == nil {
		announced()
	}
	return results, logBytes, err
}

// writeTx runs fn in a write transaction. On SQLite it begins with BEGIN
// IMMEDIATE, taking the database's write lock before the first read, so
// that a transaction that reads then deletes never has to upgrade a read
// lock (which fails at once with SQLITE_BUSY when another process wrote in
// between) and waits on busy_timeout instead.
func (s *Store) writeTx(ctx context.Context, fn func(ctx context.Context, db bun.IDB) error) error {
	if s.dialect == filter.Postgres {
		return s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error { return fn(ctx, tx) })
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return dbError(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return dbError(err)
	}
	if err := fn(ctx, conn); err != nil {
		rollback(ctx, conn)
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		rollback(ctx, conn)
		return dbError(err)
	}
	return nil
}

// rollback ends a failed SQLite transaction. SQLite may have rolled it back
// itself (an interrupt, a full disk); any other failure leaves the
// connection's state unknown, and it is dropped rather than pooled.
func rollback(ctx context.Context, conn bun.Conn) {
	_, err := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	if err != nil && !strings.Contains(err.Error(), "no transaction is active") {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// pruneLockClass is the first key of the PostgreSQL advisory lock held by
// the one retention agent that prunes at a time ("anna"); the second key is
// a hash of the store's schema, so that stores in different schemas of one
// database (tests, several installations) do not block each other.
const pruneLockClass = 0x616e6e61

// LockPruning takes the retention lock without waiting, on a connection of
// its own held until release. It returns false when another agent holds it.
// On SQLite it always succeeds: the store has one connection and every
// delete batch is a write transaction, which SQLite serialises database-wide
// (a second process waits on busy_timeout, then fails that batch), so two
// agents can interleave batches but never delete the same Result twice or
// half of one; selection is repeated for each batch.
func (s *Store) LockPruning(ctx context.Context) (ok bool, release func(), err error) {
	if s.dialect != filter.Postgres {
		return true, func() {}, nil
	}
	conn, err := s.db.DB.Conn(ctx)
	if err != nil {
		return false, nil, dbError(err)
	}
	var got bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))", pruneLockClass).Scan(&got); err != nil {
		conn.Close()
		return false, nil, dbError(err)
	}
	if !got {
		conn.Close()
		return false, nil, nil
	}
	return true, func() {
		var unlocked bool
		err := conn.QueryRowContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, hashtext(current_schema()))", pruneLockClass).Scan(&unlocked)
		if err != nil || !unlocked {
			// Never hand a connection that may still hold the lock back
			// to the pool: drop it, which ends the session and the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}, nil
}
