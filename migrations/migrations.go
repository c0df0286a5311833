// Package migrations holds the versioned database schema of Annals, one
// directory per SQL dialect, embedded in the binary and applied by bun's
// migrate package. Each file runs in its own transaction (.tx.up.sql), so a
// migration that fails leaves the database as it was.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"

	"github.com/uptrace/bun/migrate"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// For returns the migrations of one dialect: "pg" or "sqlite" (bun's names).
func For(dialect string) (*migrate.Migrations, error) {
	dir := map[string]string{"pg": "postgres", "sqlite": "sqlite"}[dialect]
	if dir == "" {
		return nil, fmt.Errorf("no migrations for dialect %q", dialect)
	}
	sub, err := fs.Sub(files, dir)
	if err != nil {
		return nil, err
	}
	m := migrate.NewMigrations()
	if err := m.Discover(sub); err != nil {
		return nil, fmt.Errorf("reading %s migrations: %w", dir, err)
	}
	return m, nil
}
