// Package storetest gives tests a real, migrated store on both databases:
// embedded SQLite in a temporary file, and PostgreSQL in a schema of its own
// that is dropped afterwards.
package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annals-dev/annals/store"
)

// DefaultPostgresURL is used when ANNALS_TEST_DATABASE_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Kinds are the databases every store test runs on.
var Kinds = []string{"sqlite", "postgres"}

// Run calls fn once per database, each in a subtest named after it.
func Run(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	t.Helper()
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			s, _ := Open(t, kind)
			fn(t, s)
		})
	}
}

var schemaSeq atomic.Int64

// Open returns a migrated store of the given kind and its URL, closed and
// removed when the test ends. PostgreSQL that cannot be reached skips the
// test, except in CI (CI=true), where it fails it.
func Open(t testing.TB, kind string) (*store.Store, string) {
	t.Helper()
	return OpenWith(t, kind, store.Options{})
}

// OpenWith is Open with store options.
func OpenWith(t testing.TB, kind string, opts store.Options) (*store.Store, string) {
	t.Helper()
	ctx := context.Background()
	var dbURL string
	switch kind {
	case "sqlite":
		dbURL = filepath.Join(t.TempDir(), "annals.db")
	case "postgres":
		dbURL = postgresSchema(t)
	default:
		t.Fatalf("unknown database kind %q", kind)
	}
	s, err := store.Open(ctx, dbURL, opts)
	if err != nil {
		t.Fatalf("opening %s: %v", kind, err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrating %s: %v", kind, err)
	}
	return s, dbURL
}

// OpenUnmigrated returns a store of the given kind on an empty database,
// and its URL, for tests of the migrations themselves.
func OpenUnmigrated(t testing.TB, kind string, opts store.Options) (*store.Store, string) {
	t.Helper()
	var dbURL string
	switch kind {
	case "sqlite":
		dbURL = filepath.Join(t.TempDir(), "annals.db")
	case "postgres":
		dbURL = postgresSchema(t)
	default:
		t.Fatalf("unknown database kind %q", kind)
	}
	s, err := store.Open(context.Background(), dbURL, opts)
	if err != nil {
		t.Fatalf("opening %s: %v", kind, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dbURL
}

// PostgresURL returns the base URL of the test PostgreSQL server.
func PostgresURL() string {
	if u := os.Getenv("ANNALS_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// postgresSchema creates a fresh schema and returns a URL whose connections
// use it, so that tests run in parallel without seeing each other.
func postgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL()
	admin, err := sql.Open("pgx", base)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is required in CI: %v", base, err)
		}
		t.Skipf("PostgreSQL at %s unreachable (set ANNALS_TEST_DATABASE_URL): %v", base, err)
	}
	schema := fmt.Sprintf("annals_test_%d_%d", os.Getpid(), schemaSeq.Add(1))
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("creating schema: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("ANNALS_TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return strings.TrimSpace(u.String())
}

// Upsert writes ws with UpsertRecords and reads them back as stored, in
// the order written (a Record written twice appears once, where first
// written).
func Upsert(t testing.TB, s *store.Store, ws ...store.RecordWrite) []*store.Record {
	t.Helper()
	ctx := context.Background()
	if err := s.UpsertRecords(ctx, ws); err != nil {
		t.Fatal(err)
	}
	var keys []store.Key
	seen := map[store.Key]bool{}
	for _, w := range ws {
		ns, _, err := store.ParseResultName(w.ResultName)
		if err != nil {
			t.Fatal(err)
		}
		if k := (store.Key{Namespace: ns, UID: w.UID}); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	out := make([]*store.Record, len(keys))
	for i, k := range keys {
		stored, err := s.GetRecordsByUID(ctx, k.Namespace, []string{k.UID})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = stored[k.UID]
	}
	return out
}
