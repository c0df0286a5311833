package store

import (
	"context"
	"io"

	"github.com/uptrace/bun/migrate"
)

// MigrateWith applies a migration set other than the embedded one, so that
// tests can try a migration that fails.
func (s *Store) MigrateWith(ctx context.Context, ms *migrate.Migrations) (MigrationStatus, error) {
	return s.migrate(ctx, ms)
}

// TableExists tells whether a table is visible to the store.
func (s *Store) TableExists(ctx context.Context, name string) bool {
	_, err := s.db.NewSelect().Table(name).Limit(1).Exec(ctx)
	return err == nil
}

// ObserveSQL makes fn see the SQL text of every list statement.
func ObserveSQL(fn func(string)) { observeSQL = fn }

// SealerForTest opens cursors sealed by s, for fuzzing.
func (s *Store) OpenCursor(query []byte, cursor string) error {
	_, err := s.sealer.open(query, cursor)
	return err
}

// ForgetRunViews makes the store look as it did before run views existed:
// no run has one, and the fill is not done.
func (s *Store) ForgetRunViews(ctx context.Context) error {
	if _, err := s.db.NewUpdate().Table("records").Set("run_view = NULL").Where("1 = 1").Exec(ctx); err != nil {
		return err
	}
	_, err := s.db.NewDelete().Table("settings").Where("key = ?", runViewsFilled).Exec(ctx)
	return err
}

// WriteObjectOnly writes a log object as WriteLog does and stops before
// the commit, as a process that dies there would; it returns the key.
func (s *Store) WriteObjectOnly(ctx context.Context, log Key, r io.Reader) (string, error) {
	p, err := s.writeLogObject(ctx, log, newChunkStream(r, 0))
	if err != nil {
		return "", err
	}
	return p.row.ObjectKey, nil
}

// InsertLogChunks stores bytes as database chunks of a Log, as a live
// log's appends do, whatever the store's log store.
func (s *Store) InsertLogChunks(ctx context.Context, log Key, data []byte) error {
	for seq := 0; len(data) > 0; seq++ {
		n := min(len(data), logChunkSize)
		row := map[string]any{"namespace": log.Namespace, "record_uid": log.UID, "seq": seq, "data": data[:n]}
		if _, err := s.db.NewInsert().Model(&row).TableExpr("log_chunks").Exec(ctx); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// CompressChunk compresses one chunk as log objects are written.
func CompressChunk(compression string, chunk []byte) ([]byte, error) {
	return compressChunk(compression, chunk)
}

// LogChunkSize is the size of the chunks logs are cut into.
const LogChunkSize = logChunkSize

// CountWithoutRollup makes facets count Records instead of reading the
// rollup, and stops background folds, so a test can compare the two and
// fold by hand.
func (s *Store) CountWithoutRollup(without bool) {
	s.rollup.mu.Lock()
	defer s.rollup.mu.Unlock()
	s.rollup.ignored, s.rollup.disabled = without, true
}

// RollupServes tells whether a facet of dim under o reads the rollup.
func (s *Store) RollupServes(o ListOptions, dim Dimension) bool { return s.rollupServes(o, dim) }

// PreparedInserts counts the INSERT statements prepared on the store's
// PostgreSQL connection (the store must have MaxOpenConns 1 for this to
// see every statement it ran).
func (s *Store) PreparedInserts(ctx context.Context) (int, error) {
	var n int
	err := s.db.NewRaw("SELECT count(*) FROM pg_prepared_statements WHERE statement ILIKE 'INSERT%'").Scan(ctx, &n)
	return n, err
}

// DailyServes tells whether q reads record_daily.
func (s *Store) DailyServes(q StatsQuery) bool { return s.dailyServes(q) }

// BetweenDailyStatements makes fn run between the two statements of a
// daily statistics read (nil: nothing).
func BetweenDailyStatements(fn func()) { betweenDailyStatements = fn }

// FlakyServes tells whether FlakyTasks under o reads flaky_segments.
func (s *Store) FlakyServes(o ListOptions) bool { return s.flakyServes(o) }
