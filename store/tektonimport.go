package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/annals-dev/annals/store/filter"
)

// This file moves history over from a Tekton Results database: a reader of
// its results and records tables (upstream's gorm model, PostgreSQL), and a
// writer that stores what it reads through the store's own write path
// (UpsertRecords), keeping names, creation and update times and
// annotations, so that data served back under Tekton Results' names reads as
// it did there. Both go batch by batch: nothing is held beyond one batch.

// TektonResults is a Tekton Results database opened for reading.
type TektonResults struct{ db *sql.DB }

// OpenTektonResults connects to a Tekton Results PostgreSQL database and
// checks that it holds Tekton Results' tables.
func OpenTektonResults(ctx context.Context, databaseURL string) (*TektonResults, error) {
	if !strings.HasPrefix(databaseURL, "postgres://") && !strings.HasPrefix(databaseURL, "postgresql://") {
		return nil, fmt.Errorf("%w: Tekton Results database URL %q: give postgres://user@host:5432/tekton-results?sslmode=...", ErrInvalidArgument, redactURL(databaseURL))
	}
	db, err := sql.Open("pgx", databaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: Tekton Results database URL: %v", ErrInvalidArgument, err)
	}
	db.SetMaxOpenConns(2)
	t := &TektonResults{db: db}
	for _, q := range [][]any{{tektonResultsColumns + " LIMIT 0"}, {tektonRecordsColumns, "", "", "", 0}} {
		rows, err := db.QueryContext(ctx, q[0].(string), q[1:]...)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("reading Tekton Results' tables at %s: %w (want its tables results and records, with the recordsummary_* columns of Tekton Results v0.9 or later)", redactURL(databaseURL), err)
		}
		rows.Close()
	}
	return t, nil
}

// Close closes the connection.
func (t *TektonResults) Close() error { return t.db.Close() }

// TektonResult is one row of Tekton Results' results table.
type TektonResult struct {
	Parent      string // the namespace
	ID          string // upstream's own uid of the Result
	Name        string // the id in the Result's name, <parent>/results/<name>
	Annotations map[string]string
	CreatedTime time.Time
	UpdatedTime time.Time
}

// TektonRecord is one row of Tekton Results' records table.
type TektonRecord struct {
	Parent, ResultID, ResultName string
	ID                           string // upstream's own uid of the Record
	Name                         string // the id in the Record's name
	Type                         string
	Data                         json.RawMessage
	CreatedTime, UpdatedTime     time.Time
	// Summary tells that this Record is its Result's summary run: the
	// Result's recordsummary_record names it, or, for Results stored
	// without a summary, it is the run whose id is the Result's own.
	Summary bool
	// ResultUpdatedTime is its Result's update time, which writing the
	// summary must leave as it was.
	ResultUpdatedTime time.Time
}

// TektonKey is a position in upstream's tables, in primary key order:
// (parent, id) for results, (parent, result id, id) for records.
type TektonKey struct{ Parent, ResultID, ID string }

const tektonResultsColumns = `SELECT parent, id, COALESCE(name, ''), COALESCE(annotations::text, 'null'), created_time, updated_time FROM results`

const tektonRecordsColumns = `SELECT r.parent, r.result_id, COALESCE(r.result_name, ''), r.id, COALESCE(r.name, ''), COALESCE(r.type, ''), COALESCE(r.data::text, 'null'),
  r.created_time, r.updated_time, res.updated_time,
  CASE WHEN COALESCE(res.recordsummary_record, '') <> ''
    THEN res.recordsummary_record = r.parent || '/results/' || r.result_name || '/records/' || r.name
    ELSE r.name = r.result_name AND r.type LIKE 'tekton.dev/%' END
FROM (SELECT * FROM records WHERE (parent, result_id, id) > ($1, $2, $3) ORDER BY parent, result_id, id LIMIT $4) AS r
JOIN results AS res ON res.parent = r.parent AND res.id = r.result_id`

// Count returns how many Results and Records the database holds.
func (t *TektonResults) Count(ctx context.Context) (results, records int64, err error) {
	err = t.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM results), (SELECT count(*) FROM records)`).Scan(&results, &records)
	return results, records, err
}

// ReadResults returns up to limit Results after the key, in key order.
func (t *TektonResults) ReadResults(ctx context.Context, after TektonKey, limit int) ([]TektonResult, error) {
	rows, err := t.db.QueryContext(ctx, tektonResultsColumns+` WHERE (parent, id) > ($1, $2) ORDER BY parent, id LIMIT $3`, after.Parent, after.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("reading Tekton Results' results: %w", err)
	}
	defer rows.Close()
	var out []TektonResult
	for rows.Next() {
		var r TektonResult
		var annotations string
		if err := rows.Scan(&r.Parent, &r.ID, &r.Name, &annotations, &r.CreatedTime, &r.UpdatedTime); err != nil {
			return nil, fmt.Errorf("reading Tekton Results' results: %w", err)
		}
		if err := json.Unmarshal([]byte(annotations), &r.Annotations); err != nil {
			return nil, fmt.Errorf("Tekton Results' result %s/%s: annotations: %w", r.Parent, r.ID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ReadRecords returns up to limit Records after the key, in key order.
func (t *TektonResults) ReadRecords(ctx context.Context, after TektonKey, limit int) ([]TektonRecord, error) {
	// The keyset walks records' primary key alone, then joins: walking the
	// join would rescan every Result before the key at each batch.
	rows, err := t.db.QueryContext(ctx, tektonRecordsColumns+` ORDER BY r.parent, r.result_id, r.id`, after.Parent, after.ResultID, after.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("reading Tekton Results' records: %w", err)
	}
	defer rows.Close()
	var out []TektonRecord
	for rows.Next() {
		var r TektonRecord
		var data string
		if err := rows.Scan(&r.Parent, &r.ResultID, &r.ResultName, &r.ID, &r.Name, &r.Type, &data, &r.CreatedTime, &r.UpdatedTime, &r.ResultUpdatedTime, &r.Summary); err != nil {
			return nil, fmt.Errorf("reading Tekton Results' records: %w", err)
		}
		r.Data = json.RawMessage(data)
		out = append(out, r)
	}
	return out, rows.Err()
}

// ImportOutcome counts what an import batch did.
type ImportOutcome struct {
	New, Updated, Unchanged int
	Skipped                 []ImportSkip // what could not be stored, and why
}

// ImportSkip is one Result or Record an import could not store.
type ImportSkip struct{ Name, Why string }

// Add sums outcomes.
func (o *ImportOutcome) Add(b ImportOutcome) {
	o.New, o.Updated, o.Unchanged = o.New+b.New, o.Updated+b.Updated, o.Unchanged+b.Unchanged
	o.Skipped = append(o.Skipped, b.Skipped...)
}

// ImportedResult is a Result to store as it was elsewhere.
type ImportedResult struct {
	Namespace, UID       string
	Annotations          map[string]string
	CreatedAt, UpdatedAt time.Time
}

// ImportResults stores Results with their own creation and update times and
// annotations. A Result already stored alike is left alone (not even its
// version moves), one that differs gets the imported times and annotations.
func (s *Store) ImportResults(ctx context.Context, in []ImportedResult) (ImportOutcome, error) {
	var out ImportOutcome
	var valid []ImportedResult
	for _, r := range in {
		if _, _, err := ParseResultName(ResultName(r.Namespace, r.UID)); err != nil {
			out.Skipped = append(out.Skipped, ImportSkip{ResultName(r.Namespace, r.UID), err.Error()})
			continue
		}
		if err := checkAnnotationKeys(r.Annotations); err != nil {
			out.Skipped = append(out.Skipped, ImportSkip{ResultName(r.Namespace, r.UID), err.Error()})
			continue
		}
		r.CreatedAt, r.UpdatedAt = importTime(r.CreatedAt), importTime(r.UpdatedAt)
		valid = append(valid, r)
	}
	if len(valid) == 0 {
		return out, nil
	}
	uids := make([]string, len(valid))
	for i, r := range valid {
		uids[i] = r.UID
	}
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var stored []Result
		if err := tx.NewSelect().Model(&stored).Column("uid", "namespace", "created_at", "updated_at").Where("uid IN (?)", bun.In(uids)).Scan(ctx); err != nil {
			return dbError(err)
		}
		byKey := map[[2]string]Result{}
		for _, r := range stored {
			byKey[[2]string{r.Namespace, r.UID}] = r
		}
		var annotations []Annotation
		if err := tx.NewSelect().Model(&annotations).Where("result_uid IN (?)", bun.In(uids)).Scan(ctx); err != nil {
			return dbError(err)
		}
		storedAnnotations := map[Key]map[string]string{}
		for _, a := range annotations {
			k := Key{a.Namespace, a.ResultUID}
			if storedAnnotations[k] == nil {
				storedAnnotations[k] = map[string]string{}
			}
			storedAnnotations[k][a.Key] = a.Value
		}
		var fresh []Result
		var annotate []ImportedResult // new and changed Results, annotated once all exist
		for _, r := range valid {
			cur, exists := byKey[[2]string{r.Namespace, r.UID}]
			switch {
			case !exists:
				fresh = append(fresh, Result{UID: r.UID, Namespace: r.Namespace, Name: ResultName(r.Namespace, r.UID), SummaryStatus: StatusUnknown,
					CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Version: 1})
				out.New++
			case cur.CreatedAt.Equal(r.CreatedAt) && cur.UpdatedAt.Equal(r.UpdatedAt) && sameStrings(storedAnnotations[Key{r.Namespace, r.UID}], r.Annotations):
				out.Unchanged++
				continue
			default:
				if _, err := tx.NewUpdate().Model((*Result)(nil)).Set("created_at = ?", r.CreatedAt).Set("updated_at = ?", r.UpdatedAt).
					Set("version = version + 1").Where("namespace = ?", r.Namespace).Where("uid = ?", r.UID).Exec(ctx); err != nil {
					return dbError(err)
				}
				if _, err := tx.NewDelete().Model((*Annotation)(nil)).Where("namespace = ?", r.Namespace).Where("result_uid = ?", r.UID).Exec(ctx); err != nil {
					return dbError(err)
				}
				out.Updated++
			}
			annotate = append(annotate, r)
		}
		if len(fresh) > 0 {
			if _, err := tx.NewInsert().Model(&fresh).Exec(ctx); err != nil {
				return dbError(err)
			}
		}
		for _, r := range annotate {
			if err := setAnnotations(ctx, tx, Key{r.Namespace, r.UID}, r.Annotations); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ImportOutcome{}, err
	}
	return out, nil
}

// ImportedRecord is a Record to store as it was elsewhere.
type ImportedRecord struct {
	Namespace, ResultUID, UID, DataType string
	Data                                json.RawMessage
	CreatedAt, UpdatedAt                time.Time
	Summary                             bool      // the Result's summary run
	ResultUpdatedAt                     time.Time // with Summary: the Result's update time, kept
}

// Name is the Record's name in Annals (and in Tekton Results).
func (r ImportedRecord) Name() string { return RecordName(r.Namespace, r.ResultUID, r.UID) }

// ImportRecords stores Records under their (already imported) Results
// through UpsertRecords, then gives them their own creation and update
// times; a summary run fills its Result's summary, and the Result keeps its
// own update time. A Record stored alike is not written at all. A Record
// whose uid is taken, in its namespace, by a Record of another Result is
// skipped and reported, never moved.
func (s *Store) ImportRecords(ctx context.Context, in []ImportedRecord) (ImportOutcome, error) {
	var out ImportOutcome
	var valid []ImportedRecord
	for _, r := range in {
		if _, _, _, err := ParseRecordName(r.Name()); err != nil {
			out.Skipped = append(out.Skipped, ImportSkip{r.Name(), err.Error()})
			continue
		}
		if r.DataType == "" || len(r.DataType) > 256 {
			out.Skipped = append(out.Skipped, ImportSkip{r.Name(), fmt.Sprintf("data type %q: Annals keeps types of 1 to 256 characters", r.DataType)})
			continue
		}
		r.CreatedAt, r.UpdatedAt, r.ResultUpdatedAt = importTime(r.CreatedAt), importTime(r.UpdatedAt), importTime(r.ResultUpdatedAt)
		valid = append(valid, r)
	}
	if len(valid) == 0 {
		return out, nil
	}
	uids := make([]string, len(valid))
	for i, r := range valid {
		uids[i] = r.UID
	}
	var stored []Record
	if err := s.db.NewSelect().Model(&stored).Column("uid", "namespace", "result_uid", "data_type", "data", "created_at", "updated_at").
		Where("uid IN (?)", bun.In(uids)).Scan(ctx); err != nil {
		return out, dbError(err)
	}
	byKey := map[[2]string]*Record{}
	for i := range stored {
		byKey[[2]string{stored[i].Namespace, stored[i].UID}] = &stored[i]
	}
	var writes []RecordWrite
	var changed []ImportedRecord
	for _, r := range valid {
		cur := byKey[[2]string{r.Namespace, r.UID}]
		switch {
		case cur == nil:
			out.New++
		case cur.ResultUID != r.ResultUID:
			out.Skipped = append(out.Skipped, ImportSkip{r.Name(), fmt.Sprintf("uid %s is already a Record of %s", r.UID, ResultName(cur.Namespace, cur.ResultUID))})
			continue
		case cur.DataType == r.DataType && cur.CreatedAt.Equal(r.CreatedAt) && cur.UpdatedAt.Equal(r.UpdatedAt) && sameJSON(cur.Data, r.Data):
			out.Unchanged++
			continue
		default:
			out.Updated++
		}
		writes = append(writes, RecordWrite{ResultName: ResultName(r.Namespace, r.ResultUID), UID: r.UID, DataType: r.DataType, Data: r.Data, UpdateSummary: r.Summary})
		changed = append(changed, r)
	}
	if len(writes) == 0 {
		return out, nil
	}
	if err := s.UpsertRecords(ctx, writes); err != nil {
		return ImportOutcome{}, err
	}
	// The upsert stamps its own times (and a summary its Result's): put
	// back the imported ones.
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if s.dialect == filter.Postgres {
			return restoreTimesPostgres(ctx, tx, changed)
		}
		for _, r := range changed {
			if _, err := tx.NewUpdate().Model((*Record)(nil)).Set("created_at = ?", r.CreatedAt).Set("updated_at = ?", r.UpdatedAt).
				Where("namespace = ?", r.Namespace).Where("uid = ?", r.UID).Exec(ctx); err != nil {
				return dbError(err)
			}
			if r.Summary {
				if _, err := tx.NewUpdate().Model((*Result)(nil)).Set("updated_at = ?", r.ResultUpdatedAt).
					Where("namespace = ?", r.Namespace).Where("uid = ?", r.ResultUID).Exec(ctx); err != nil {
					return dbError(err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return ImportOutcome{}, err
	}
	return out, nil
}

// restoreTimesPostgres is the time restoring of ImportRecords in two
// statements, one round trip each, where row by row would take one per
// Record (SQLite, in process, has no round trips to save).
func restoreTimesPostgres(ctx context.Context, tx bun.Tx, recs []ImportedRecord) error {
	var rows, results []string
	var args, resultArgs []any
	for _, r := range recs {
		rows = append(rows, "(?, ?, ?::timestamptz, ?::timestamptz)")
		args = append(args, r.Namespace, r.UID, r.CreatedAt, r.UpdatedAt)
		if r.Summary {
			results = append(results, "(?, ?, ?::timestamptz)")
			resultArgs = append(resultArgs, r.Namespace, r.ResultUID, r.ResultUpdatedAt)
		}
	}
	if _, err := tx.NewRaw("UPDATE records AS r SET created_at = v.c, updated_at = v.u FROM (VALUES "+strings.Join(rows, ", ")+
		") AS v(ns, uid, c, u) WHERE r.namespace = v.ns AND r.uid = v.uid", args...).Exec(ctx); err != nil {
		return dbError(err)
	}
	if len(results) > 0 {
		if _, err := tx.NewRaw("UPDATE results AS r SET updated_at = v.u FROM (VALUES "+strings.Join(results, ", ")+
			") AS v(ns, uid, u) WHERE r.namespace = v.ns AND r.uid = v.uid", resultArgs...).Exec(ctx); err != nil {
			return dbError(err)
		}
	}
	return nil
}

// LogsStored tells which of the given Log Records already have bytes stored.
func (s *Store) LogsStored(ctx context.Context, keys []Key) (map[Key]bool, error) {
	out := map[Key]bool{}
	if len(keys) == 0 {
		return out, nil
	}
	uids := make([]string, len(keys))
	for i, k := range keys {
		uids[i] = k.UID
	}
	var have []Key
	if err := s.db.NewSelect().Table("log_chunks").ColumnExpr("DISTINCT namespace, record_uid AS uid").Where("record_uid IN (?)", bun.In(uids)).Scan(ctx, &have); err != nil {
		return nil, dbError(err)
	}
	var inObjects []Key
	if err := s.db.NewSelect().Table("log_objects").ColumnExpr("namespace, record_uid AS uid").Where("record_uid IN (?)", bun.In(uids)).Scan(ctx, &inObjects); err != nil {
		return nil, dbError(err)
	}
	for _, k := range append(have, inObjects...) {
		out[k] = true
	}
	return out, nil
}

// importLogObject is ImportLogBytes into the object store: the bytes are
// streamed to an object, then the Log points at it.
func (s *Store) importLogObject(ctx context.Context, log Key, r io.Reader) (int64, error) {
	exists, err := s.db.NewSelect().Model((*Record)(nil)).Where("namespace = ?", log.Namespace).Where("uid = ?", log.UID).Where("data_type IN (?)", bun.In(tektonLogTypes)).Exists(ctx)
	if err != nil {
		return 0, dbError(err)
	}
	if !exists {
		return 0, fmt.Errorf("%w: log record %s in %s: import the Record first", ErrNotFound, log.UID, log.Namespace)
	}
	chunks := newChunkStream(r, 0)
	chunks.keepNUL = true
	p, err := s.writeLogObject(ctx, log, chunks)
	if err != nil {
		return 0, err
	}
	defer p.discard(ctx)
	err = s.writeTx(ctx, func(ctx context.Context, tx bun.IDB) error { return p.commit(ctx, tx) })
	return p.row.Size, err
}

// ImportLogBytes stores the bytes of an imported Log Record, read from r,
// in database chunks (or an object, with a log store), replacing any stored
// before, in one transaction. The Record's data (Tekton Results' Log, with
// its own status) is left as it is.
// Only one chunk is held in memory at a time.
func (s *Store) ImportLogBytes(ctx context.Context, namespace, uid string, r io.Reader) (int64, error) {
	if s.logStore != nil {
		return s.importLogObject(ctx, Key{namespace, uid}, r)
	}
	var size int64
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		exists, err := tx.NewSelect().Model((*Record)(nil)).Where("namespace = ?", namespace).Where("uid = ?", uid).Where("data_type IN (?)", bun.In(tektonLogTypes)).Exists(ctx)
		if err != nil {
			return dbError(err)
		}
		if !exists {
			return fmt.Errorf("%w: log record %s in %s: import the Record first", ErrNotFound, uid, namespace)
		}
		if err := dropLogBytes(ctx, tx, Key{namespace, uid}); err != nil {
			return err
		}
		buf := make([]byte, logChunkSize)
		for seq := 0; ; seq++ {
			n, rerr := io.ReadFull(r, buf)
			if n > 0 {
				if _, err := tx.NewInsert().Model(&map[string]any{"namespace": namespace, "record_uid": uid, "seq": seq, "data": buf[:n]}).TableExpr("log_chunks").Exec(ctx); err != nil {
					return dbError(err)
				}
				size += int64(n)
			}
			if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
				return nil
			}
			if rerr != nil {
				return fmt.Errorf("reading the log: %w", rerr)
			}
		}
	})
	return size, err
}

// tektonLogTypes are the data types of Tekton Results' Log Records.
var tektonLogTypes = []string{TypeLog, "results.tekton.dev/v1alpha2.Log"}

// IsTektonLog tells whether a data type is one of Tekton Results' Logs.
func IsTektonLog(dataType string) bool {
	return dataType == tektonLogTypes[0] || dataType == tektonLogTypes[1]
}

// importTime is a time as the store keeps it (UTC, microseconds), so that
// what is read back compares equal to what was imported.
func importTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func sameStrings(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// sameJSON compares JSON by content; equal bytes (PostgreSQL renders jsonb
// alike on both sides; SQLite keeps what was written) skip decoding.
func sameJSON(a, b json.RawMessage) bool {
	if string(a) == string(b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// redactURL hides the password of a database URL in messages.
func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return v
	}
	return u.Redacted()
}
