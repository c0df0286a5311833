package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun/migrate"

	"github.com/annals-dev/annals/migrations"
	"github.com/annals-dev/annals/store/filter"
)

// MigrationStatus reports what Migrate did.
type MigrationStatus struct {
	Applied []string // migrations applied by this call, oldest first
	Version string   // the newest migration now in the database
}

// migrationLockID is the PostgreSQL advisory lock that serialises replicas
// migrating at once: one migrates, the others wait and then find nothing to do.
const migrationLockID = 0x616e6e616c73 // "annals"

// Migrate applies the pending migrations, each in its own transaction, and
// loads the settings they create. It is safe to call from several processes
// at once.
func (s *Store) Migrate(ctx context.Context) (MigrationStatus, error) {
	ms, err := migrations.For(s.db.Dialect().Name().String())
	if err != nil {
		return MigrationStatus{}, err
	}
	return s.migrate(ctx, ms)
}

func (s *Store) migrate(ctx context.Context, ms *migrate.Migrations) (MigrationStatus, error) {
	var status MigrationStatus
	if s.dialect == filter.Postgres {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return status, dbError(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", migrationLockID); err != nil {
			return status, dbError(err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", migrationLockID)
	}
	m := migrate.NewMigrator(s.db, ms,
		migrate.WithTableName("annals_migrations"),
		migrate.WithLocksTableName("annals_migration_locks"),
		migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		return status, fmt.Errorf("preparing the migrations table: %w", err)
	}
	group, err := m.Migrate(ctx)
	if err != nil {
		return status, fmt.Errorf("migration failed and was rolled back: %w", err)
	}
	for _, mig := range group.Migrations {
		status.Applied = append(status.Applied, mig.String())
	}
	applied, err := m.AppliedMigrations(ctx)
	if err != nil {
		return status, dbError(err)
	}
	for _, mig := range applied {
		status.Version = max(status.Version, mig.Name) // names are zero-padded numbers
	}
	for _, known := range ms.Sorted() {
		if known.Name == status.Version {
			status.Version = known.String() // the database keeps names only, not comments
		}
	}
	return status, s.loadCursorKey(ctx)
}

// Ready tells whether the schema is migrated and the store can serve.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	if s.sealer == nil {
		return s.loadCursorKey(ctx)
	}
	return nil
}
