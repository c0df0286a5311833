package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

	"github.com/annals-dev/annals/store/filter"
)

// RecordWrite is one Record to create or upsert.
type RecordWrite struct {
	ResultName    string          // the parent; upserts create it when missing
	UID           string          // for runs, the Kubernetes UID; "" gets a new UUID (create only)
	DataType      string          // e.g. tekton.dev/v1.TaskRun
	Data          json.RawMessage // the whole object; NUL characters are removed
	UpdateSummary bool            // this record is its Result's identity run: copy status and times into the summary
}

// maxBatch bounds the rows of one multi-row statement (SQLite allows 32766
// bound values; a Record has 23 columns).
const maxBatch = 500

// newRecord validates w and builds the row to write.
func newRecord(w RecordWrite) (*Record, error) {
	ns, resultUID, err := ParseResultName(w.ResultName)
	if err != nil {
		return nil, err
	}
	if w.UID == "" {
		w.UID = newUID()
	}
	if err := checkUID(w.UID); err != nil {
		return nil, err
	}
	if w.DataType == "" || len(w.DataType) > 256 {
		return nil, fmt.Errorf("%w: record data type %q: give a type such as %s", ErrInvalidArgument, w.DataType, TypeTaskRun)
	}
	data, err := cleanData(w.Data)
	if err != nil {
		return nil, err
	}
	t := now()
	rec := &Record{
		UID: w.UID, ResultUID: resultUID, Namespace: ns, ResultName: w.ResultName,
		Name: RecordName(ns, resultUID, w.UID), DataType: w.DataType, Data: data,
		CreatedAt: t, UpdatedAt: t, Version: 1,
	}
	fillDerived(rec)
	if rec.ownerNamespace != "" && rec.ownerNamespace != ns {
		return nil, fmt.Errorf("%w: a Log in namespace %q names a run of namespace %q in spec.resource.namespace: a Log belongs to a run of its own namespace, so store it under a Result of %q",
			ErrInvalidArgument, ns, rec.ownerNamespace, rec.ownerNamespace)
	}
	return rec, nil
}

// CreateRecord creates one Record under an existing Result.
func (s *Store) CreateRecord(ctx context.Context, w RecordWrite) (*Record, error) {
	rec, err := newRecord(w)
	if err != nil {
		return nil, err
	}
	var announced func()
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// The Result is looked up in the Record's own namespace only: a
		// Result of the same uid elsewhere is another object, and saying
		// whether it exists would tell about a namespace the caller may
		// not see.
		exists, err := tx.NewSelect().Model((*Result)(nil)).Where("namespace = ?", rec.Namespace).Where("uid = ?", rec.ResultUID).Exists(ctx)
		if err != nil {
			return dbError(err)
		}
		if !exists {
			return fmt.Errorf("%w: result %q: create it first", ErrNotFound, w.ResultName)
		}
		out, err := tx.NewInsert().Model(rec).On("CONFLICT DO NOTHING").Exec(ctx)
		if err != nil {
			return dbError(err)
		}
		if n, _ := out.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: a record with uid %q already exists in namespace %q", ErrConflict, rec.UID, rec.Namespace)
		}
		if w.UpdateSummary {
			if err := updateSummaries(ctx, tx, []*Record{rec}); err != nil {
				return err
			}
		}
		announced, err = s.announce(ctx, tx, []*Record{rec})
		return err
	})
	if err != nil {
		return nil, err
	}
	announced()
	return rec, nil
}

// UpsertRecords inserts or updates many Records by uid in one transaction,
// creating their Results as needed. A Record whose data did not change keeps
// its version and update time; creation times are never overwritten. Writes
// of the same uid in one call collapse to the last one. It returns nothing
// but success: its callers (the watcher, import) write and move on, and
// reading the batch back would double the work of ingest. Read them with
// GetRecordsByUID when needed.
func (s *Store) UpsertRecords(ctx context.Context, ws []RecordWrite) error {
	_, err := s.upsertRecords(ctx, ws, false)
	return err
}

// UpsertCounts tells what one upsert did to its Records.
type UpsertCounts struct {
	Created   int // new Records
	Updated   int // Records whose data changed (their version went up)
	Unchanged int // Records stored already with the same data
}

// UpsertRecordsCounted is UpsertRecords that also tells how many Records
// were created, updated or left as they were (an import's report). Writes
// of the same uid in one call count once.
func (s *Store) UpsertRecordsCounted(ctx context.Context, ws []RecordWrite) (UpsertCounts, error) {
	return s.upsertRecords(ctx, ws, true)
}

// upsertRecords is UpsertRecords; with count, the Records stored already
// are counted before each statement, and its rows affected are those
// created or changed. The counts are exact when no one else writes the
// same Records meanwhile (an import shares out its Results among writers).
func (s *Store) upsertRecords(ctx context.Context, ws []RecordWrite, count bool) (UpsertCounts, error) {
	var counts UpsertCounts
	var recs []*Record
	index := map[Key]int{}
	var summaries []*Record
	for _, w := range ws {
		if w.UID == "" {
			return counts, fmt.Errorf("%w: upserts need the record uid", ErrInvalidArgument)
		}
		rec, err := newRecord(w)
		if err != nil {
			return counts, err
		}
		if i, ok := index[rec.Key()]; ok {
			recs[i] = rec
		} else {
			index[rec.Key()] = len(recs)
			recs = append(recs, rec)
		}
		if w.UpdateSummary {
			summaries = append(summaries, rec)
		}
	}
	if len(recs) == 0 {
		return counts, nil
	}
	var announced func()
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// Each Record's Result is created in the Record's own namespace:
		// the same uid elsewhere is another Result.
		var results []Result
		seen := map[Key]bool{}
		for _, r := range recs {
			if k := (Key{r.Namespace, r.ResultUID}); !seen[k] {
				seen[k] = true
				results = append(results, Result{UID: r.ResultUID, Namespace: r.Namespace, Name: r.ResultName,
					SummaryStatus: StatusUnknown, CreatedAt: r.CreatedAt, UpdatedAt: r.CreatedAt, Version: 1})
			}
		}
		for start := 0; start < len(results); start += maxBatch {
			chunk := results[start:min(start+maxBatch, len(results))]
			if _, err := tx.NewInsert().Model(&chunk).On("CONFLICT DO NOTHING").Returning("NULL").Exec(ctx); err != nil {
				return dbError(err)
			}
		}
		for start := 0; start < len(recs); start += maxBatch {
			chunk := recs[start:min(start+maxBatch, len(recs))]
			// No RETURNING (bun adds one for nil pointers, such as a new
			// Result's summary times or a pending run's start time): a
			// statement that returns rows goes through pgx's prepared
			// statement cache, which would keep each batch's whole text,
			// data included, per connection. Without rows to return it is
			// sent once, unprepared.
			q := tx.NewInsert().Model(&chunk).On("CONFLICT (namespace, uid) DO UPDATE").Returning("NULL")
			for _, col := range []string{"data", "data_type", "run_name", "status", "reason", "pipeline_run_name",
				"pipeline_name", "task_name", "labels", "start_time", "completion_time", "duration_ms", "owner_uid",
				"creation_time", "repository", "duration_us", "run_view", "revision", "failed_step", "updated_at"} {
				q = q.Set("? = EXCLUDED.?", bun.Ident(col), bun.Ident(col))
			}
			q = q.Set("version = record.version + 1").
				Where("record.data IS DISTINCT FROM EXCLUDED.data OR record.data_type <> EXCLUDED.data_type")
			rows, existing := len(chunk), 0
			if count {
				var err error
				if existing, err = countExisting(ctx, tx, s.rebind, chunk); err != nil {
					return err
				}
			}
			out, err := q.Exec(ctx)
			if err != nil {
				return dbError(err)
			}
			if count {
				// Rows affected are the created and the changed ones.
				written, _ := out.RowsAffected()
				created := rows - existing
				counts.Created += created
				counts.Updated += int(written) - created
				counts.Unchanged += rows - int(written)
			}
		}
		if len(summaries) > 0 {
			if err := updateSummaries(ctx, tx, summaries); err != nil {
				return err
			}
		}
		var err error
		announced, err = s.announce(ctx, tx, recs)
		return err
	})
	if err != nil {
		return UpsertCounts{}, err
	}
	announced()
	s.noteWrites(len(recs))
	return counts, nil
}

// countExisting counts the Records of chunk stored already, with bound
// parameters: a statement bun formats would be prepared and cached by the
// driver under its whole text, data included, once per batch.
func countExisting(ctx context.Context, tx bun.Tx, rebind func(string) string, chunk []*Record) (int, error) {
	keys := make([]Key, len(chunk))
	for i, r := range chunk {
		keys[i] = r.Key()
	}
	cond, args := keysSQL("namespace", "uid", keys)
	var n int
	if err := tx.Tx.QueryRowContext(ctx, rebind("SELECT count(*) FROM records WHERE "+cond), args...).Scan(&n); err != nil {
		return 0, dbError(err)
	}
	return n, nil
}

// updateSummaries copies each run's status and times into its Result,
// bumping the Result's version only when something changed.
func updateSummaries(ctx context.Context, tx bun.Tx, recs []*Record) error {
	for _, r := range recs {
		_, err := tx.NewUpdate().Model((*Result)(nil)).
			Set("summary_record = ?", r.Name).
			Set("summary_type = ?", r.DataType).
			Set("summary_status = ?", r.Status).
			Set("summary_start_time = ?", r.StartTime).
			Set("summary_end_time = ?", r.CompletionTime).
			Set("summary_annotations = ?", r.runAnnotations).
			Set("version = version + 1").
			Set("updated_at = ?", r.UpdatedAt).
			Where("namespace = ?", r.Namespace).Where("uid = ?", r.ResultUID).
			Where("NOT (summary_record = ? AND summary_type = ? AND summary_status = ? AND summary_start_time IS NOT DISTINCT FROM ? "+
				"AND summary_end_time IS NOT DISTINCT FROM ? AND summary_annotations IS NOT DISTINCT FROM ?)",
				r.Name, r.DataType, r.Status, r.StartTime, r.CompletionTime, r.runAnnotations).
			Exec(ctx)
		if err != nil {
			return dbError(err)
		}
	}
	return nil
}

// GetRecord returns the Record with the given name.
func (s *Store) GetRecord(ctx context.Context, name string) (*Record, error) {
	if _, _, _, err := ParseRecordName(name); err != nil {
		return nil, err
	}
	rec := new(Record)
	if err := s.db.NewSelect().Model(rec).Where("name = ?", name).Scan(ctx); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: record %q", ErrNotFound, name)
		}
		return nil, dbError(err)
	}
	return rec, nil
}

// GetRecordsByName returns the Records with the given names, in one statement.
func (s *Store) GetRecordsByName(ctx context.Context, names []string) (map[string]*Record, error) {
	return getBy[Record](ctx, s, "", "name", names, func(r *Record) string { return r.Name })
}

// GetRecordsByUID returns the Records of one namespace with the given uids,
// in one statement.
func (s *Store) GetRecordsByUID(ctx context.Context, namespace string, uids []string) (map[string]*Record, error) {
	return getBy[Record](ctx, s, namespace, "uid", uids, func(r *Record) string { return r.UID })
}

// UpdateRecord replaces a Record's data. An empty etag skips the version check.
func (s *Store) UpdateRecord(ctx context.Context, name string, data json.RawMessage, etag string) (*Record, error) {
	cur, err := s.GetRecord(ctx, name)
	if err != nil {
		return nil, err
	}
	if etag != "" && etag != cur.Etag() {
		return nil, staleEtag("record", name, etag, cur.Etag())
	}
	next, err := newRecord(RecordWrite{ResultName: cur.ResultName, UID: cur.UID, DataType: cur.DataType, Data: data})
	if err != nil {
		return nil, err
	}
	next.CreatedAt, next.Version = cur.CreatedAt, cur.Version+1
	var announced func()
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		out, err := tx.NewUpdate().Model(next).
			ExcludeColumn("uid", "result_uid", "namespace", "name", "result_name", "created_at").
			Where("namespace = ?", cur.Namespace).Where("uid = ?", cur.UID).Where("version = ?", cur.Version).Exec(ctx)
		if err != nil {
			return dbError(err)
		}
		if n, _ := out.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: record %q changed or was deleted meanwhile: read it again", ErrConflict, name)
		}
		announced, err = s.announce(ctx, tx, []*Record{next})
		return err
	})
	if err != nil {
		return nil, err
	}
	announced()
	return next, nil
}

// DeleteRecord deletes one Record (and its log). An empty etag skips the
// version check.
func (s *Store) DeleteRecord(ctx context.Context, name, etag string) error {
	cur, err := s.GetRecord(ctx, name)
	if err != nil {
		return err
	}
	if etag != "" && etag != cur.Etag() {
		return staleEtag("record", name, etag, cur.Etag())
	}
	var announced func()
	err = s.writeTx(ctx, func(ctx context.Context, tx bun.IDB) error {
		changes, err := deletedRecords(ctx, tx, "r.namespace = ? AND r.uid = ? AND r.version = ?", cur.Namespace, cur.UID, cur.Version)
		if err != nil {
			return err
		}
		out, err := tx.NewDelete().Model((*Record)(nil)).Where("namespace = ?", cur.Namespace).Where("uid = ?", cur.UID).
			Where("version = ?", cur.Version).Exec(ctx)
		if err != nil {
			return dbError(err)
		}
		if n, _ := out.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: record %q changed or was deleted meanwhile: read it again", ErrConflict, name)
		}
		announced, err = s.announceChanges(ctx, tx, changes)
		return err
	})
	if err != nil {
		return err
	}
	announced()
	return nil
}

// PipelineRunRecords finds PipelineRun Records by (result name, run name),
// in one statement: the owners of TaskRuns, always in the Result (so the
// namespace) of the TaskRun asking. withoutData is ListOptions.WithoutData.
func (s *Store) PipelineRunRecords(ctx context.Context, keys [][2]string, withoutData bool) (map[[2]string]*Record, error) {
	out := map[[2]string]*Record{}
	if len(keys) == 0 {
		return out, nil
	}
	values := make([]string, len(keys))
	var pairs []any
	var results []Key
	seen := map[string]bool{}
	for i, k := range keys {
		values[i] = "(?, ?)"
		pairs = append(pairs, k[0], k[1])
		if !seen[k[0]] {
			seen[k[0]] = true
			ns, uid, err := ParseResultName(k[0])
			if err != nil {
				return nil, err
			}
			results = append(results, Key{ns, uid})
		}
	}
	cond, args := keysSQL("r.namespace", "r.result_uid", results)
	args = append(append(args, TypePipelineRun, "tekton.dev/v1beta1.PipelineRun"), pairs...)
	var rows []*Record
	columns := recordsEntity.columns
	if withoutData {
		columns = recordColumnsWithoutData
	}
	err := s.queryRows(ctx, &rows, "SELECT "+columns+" FROM records AS r WHERE "+cond+
		" AND r.data_type IN (?, ?) AND (r.result_name, r.run_name) IN (VALUES "+strings.Join(values, ", ")+")", args...)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[[2]string{r.ResultName, r.RunName}] = r
	}
	return out, nil
}

// UnfinishedRuns returns the run Records whose stored state has not
// finished (status Running or Unknown), in the given namespaces (all when
// none), without their data: the watcher compares them with the cluster
// when it starts.
func (s *Store) UnfinishedRuns(ctx context.Context, namespaces []string) ([]*Record, error) {
	var rows []*Record
	q := s.db.NewSelect().Model(&rows).
		Column("uid", "namespace", "name", "result_name", "data_type", "run_name", "status", "labels").
		Where("status IN (?)", bun.In([]string{StatusRunning, StatusUnknown})).
		Where("data_type IN (?)", bun.In([]string{TypePipelineRun, TypeTaskRun, "tekton.dev/v1beta1.PipelineRun", "tekton.dev/v1beta1.TaskRun"}))
	if len(namespaces) > 0 {
		q = q.Where("namespace IN (?)", bun.In(namespaces))
	}
	if err := q.Scan(ctx); err != nil {
		return nil, dbError(err)
	}
	return rows, nil
}

// Analyze refreshes the planner's statistics, worth doing after a large
// import so that the first queries get good plans. On PostgreSQL it also
// vacuums, which marks the freshly written pages all-visible: until then
// (autovacuum gets there in its own time) an index-only scan, such as
// analytics' over a window of runs, visits the table for every row.
func (s *Store) Analyze(ctx context.Context) error {
	stmt := "ANALYZE"
	if s.dialect == filter.Postgres {
		stmt = "VACUUM (ANALYZE)"
	}
	_, err := s.db.ExecContext(ctx, stmt)
	return dbError(err)
}
