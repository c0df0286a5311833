package store

import (
	"context"

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
