package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

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
	status, err := s.migrate(ctx, ms)
	if err != nil {
		return status, err
	}
	if err := s.fillRunViews(ctx); err != nil {
		return status, fmt.Errorf("filling in the views of runs stored before them: %w", err)
	}
	return status, nil
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
	if s.dialect == filter.Postgres && status.Version >= "00006" {
		s.warnWithoutTrigramIndex(ctx)
	}
	return status, s.loadCursorKey(ctx)
}

// warnWithoutTrigramIndex says when migration 00006 could not create the
// pg_trgm index of nameContains (the extension was unavailable), so that an
// operator can install it: CREATE EXTENSION pg_trgm, then the index.
func (s *Store) warnWithoutTrigramIndex(ctx context.Context) {
	var n []int
	err := s.queryRows(ctx, &n, "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'records_run_name_trgm'")
	if err == nil && n[0] == 0 {
		slog.WarnContext(ctx, "the pg_trgm extension is unavailable, so nameContains reads every record name; to index it, run as a superuser: "+
			"CREATE EXTENSION pg_trgm; CREATE INDEX records_run_name_trgm ON records USING gin (run_name gin_trgm_ops) WITH (fastupdate = on, gin_pending_list_limit = 64)")
	}
}

// heartbeatInterval is how often Ready proves that writes work; readiness
// probes in between reuse the last success.
const heartbeatInterval = 10 * time.Second

// Ready tells whether the schema is migrated and the store can serve: the
// database answers and takes writes. A ping or a read succeeds on a full
// disk or a read-only database, and even a write rolled back touches no
// file, so Ready commits a tiny write (the "heartbeat" setting), at most
// once per heartbeatInterval while it succeeds.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return err
	}
	if s.sealer == nil {
		if err := s.loadCursorKey(ctx); err != nil {
			return err
		}
	}
	if last := s.lastHeartbeat.Load(); last != 0 && time.Since(time.Unix(0, last)) < heartbeatInterval {
		return nil
	}
	t := time.Now()
	_, err := s.db.NewInsert().Model(&map[string]any{"key": "heartbeat", "value": t.UTC().Format(time.RFC3339Nano)}).
		TableExpr("settings").On("CONFLICT (key) DO UPDATE").Set("value = EXCLUDED.value").Exec(ctx)
	if err != nil {
		s.lastHeartbeat.Store(0)
		return s.target.scrub(fmt.Errorf("database writes fail: %w", dbError(err)))
	}
	s.lastHeartbeat.Store(t.UnixNano())
	return nil
}
