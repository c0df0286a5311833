package store_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/uptrace/bun/migrate"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

func TestFailedMigrationLeavesDatabaseAsItWas(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		broken := migrate.NewMigrations()
		if err := broken.Discover(fstest.MapFS{
			"99990_half.tx.up.sql": {Data: []byte("CREATE TABLE half_done (a integer);\n--bun:split\nSELECT * FROM no_such_table;\n")},
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MigrateWith(ctx, broken); err == nil {
			t.Fatal("a failing migration reported success")
		}
		if s.TableExists(ctx, "half_done") {
			t.Error("the failed migration left its first statement behind")
		}
		// Migrating again is a no-op that still succeeds, and the failed
		// migration is not recorded as applied.
		status, err := s.Migrate(ctx)
		if err != nil || len(status.Applied) != 0 || status.Version != "00016_flaky_segments" {
			t.Errorf("re-migrate: %+v %v", status, err)
		}
	})
}
