package store_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"testing/fstest"
	"time"

	"github.com/uptrace/bun/migrate"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestMigrationToNamespaceKeysKeepsData migrates a database written with
// uid-only keys, holding a Record that an earlier version let join a Result
// of another namespace, a log in database rows and a log in a file under
// its old uid-only name. Everything stays readable, and the stray Record
// ends up in a Result of its own namespace.
func TestMigrationToNamespaceKeysKeepsData(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			logDir := t.TempDir()
			s, dbURL := storetest.OpenUnmigrated(t, kind, store.Options{LogDir: logDir})
			ctx := context.Background()
			if _, err := s.MigrateWith(ctx, firstMigrations(t, kind, 2)); err != nil {
				t.Fatal(err)
			}
			const (
				resUID    = "0d000000-0000-4000-8000-000000000001"
				prUID     = "0d000000-0000-4000-8000-000000000002"
				strayUID  = "0d000000-0000-4000-8000-000000000003"
				rowLogUID = "0d000000-0000-4000-8000-000000000004"
				fileLog   = "0d000000-0000-4000-8000-000000000005"
			)
			ci, prod := store.ResultName("ci", resUID), store.ResultName("prod", resUID)
			at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			exec(t, kind, dbURL,
				[]any{`INSERT INTO results (uid, namespace, name, created_at, updated_at, version) VALUES (?, 'ci', ?, ?, ?, 1)`, resUID, ci, at, at},
				[]any{`INSERT INTO result_annotations (result_uid, key, value) VALUES (?, 'team', 'ci')`, resUID},
				[]any{`INSERT INTO records (uid, result_uid, namespace, name, result_name, data_type, data, run_name, created_at, updated_at, version)
					VALUES (?, ?, 'ci', ?, ?, ?, '{}', 'build', ?, ?, 1)`, prUID, resUID, ci + "/records/" + prUID, ci, store.TypePipelineRun, at, at},
				[]any{`INSERT INTO records (uid, result_uid, namespace, name, result_name, data_type, data, created_at, updated_at, version)
					VALUES (?, ?, 'prod', ?, ?, 'x/v1.Note', '{}', ?, ?, 1)`, strayUID, resUID, prod + "/records/" + strayUID, prod, at, at},
				[]any{`INSERT INTO records (uid, result_uid, namespace, name, result_name, data_type, data, owner_uid, created_at, updated_at, version)
					VALUES (?, ?, 'ci', ?, ?, ?, '{"status":{"available":true,"size":6}}', ?, ?, ?, 1)`, rowLogUID, resUID, ci + "/records/" + rowLogUID, ci, store.TypeLog, prUID, at, at},
				[]any{`INSERT INTO log_chunks (record_uid, seq, data) VALUES (?, 0, ?)`, rowLogUID, []byte("in db\n")},
				[]any{`INSERT INTO records (uid, result_uid, namespace, name, result_name, data_type, data, owner_uid, created_at, updated_at, version)
					VALUES (?, ?, 'ci', ?, ?, ?, '{"status":{"available":true,"size":8,"storage":"file"}}', ?, ?, ?, 1)`, fileLog, resUID, ci + "/records/" + fileLog, ci, store.TypeLog, prUID, at, at},
			)
			legacyFile := filepath.Join(logDir, fileLog[:2], fileLog+".log")
			if err := os.MkdirAll(filepath.Dir(legacyFile), 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(legacyFile, []byte("in file\n"), 0o640); err != nil {
				t.Fatal(err)
			}

			status, err := s.Migrate(ctx)
			if err != nil || !slices.Contains(status.Applied, "00003_namespace_keys") {
				t.Fatalf("migrate: %+v %v", status, err)
			}
			if res, err := s.GetResult(ctx, prod); err != nil || res.Namespace != "prod" {
				t.Fatalf("the stray Record's Result in prod: %+v %v", res, err)
			}
			page, err := s.ListRecords(ctx, store.ListOptions{ResultName: ci})
			if err != nil || len(page.Items) != 3 {
				t.Fatalf("ci's Records: %v %v", page, err)
			}
			for _, r := range page.Items {
				if r.Namespace != "ci" {
					t.Errorf("ci's Result holds %s", r.Name)
				}
			}
			if anns, err := s.AnnotationsByResult(ctx, []store.Key{{Namespace: "ci", UID: resUID}}); err != nil || len(anns[store.Key{Namespace: "ci", UID: resUID}]) != 1 {
				t.Errorf("ci's annotations: %v %v", anns, err)
			}
			if got := readLog(t, s, ci+"/records/"+rowLogUID); got != "in db\n" {
				t.Errorf("log in rows: %q", got)
			}
			if got := readLog(t, s, ci+"/records/"+fileLog); got != "in file\n" {
				t.Errorf("log in a file of the old layout: %q", got)
			}
			// A prod Log of the same uid, claiming file storage, never reads
			// ci's file.
			if _, err := s.CreateRecord(ctx, store.RecordWrite{ResultName: prod, UID: fileLog, DataType: store.TypeLog,
				Data: []byte(`{"status":{"available":true,"size":8,"storage":"file"}}`)}); err != nil {
				t.Fatal(err)
			}
			if got := readLog(t, s, prod+"/records/"+fileLog); got != "" {
				t.Errorf("a prod Log read ci's file: %q", got)
			}
			// The old file is owned until its Log goes; then the sweep takes it.
			if n, _, err := s.SweepLogFiles(ctx, 0); err != nil || n != 0 {
				t.Errorf("sweep removed %d files (%v) while their Logs exist", n, err)
			}
			if err := s.DeleteResult(ctx, ci, ""); err != nil {
				t.Fatal(err)
			}
			if n, _, err := s.SweepLogFiles(ctx, 0); err != nil || n != 1 {
				t.Errorf("sweep removed %d files (%v), want the old file", n, err)
			}
			if _, err := s.GetRecord(ctx, prod+"/records/"+strayUID); err != nil {
				t.Errorf("deleting ci's Result took prod's Record: %v", err)
			}
		})
	}
}

// firstMigrations is the first n migrations of a dialect, read from the
// source tree.
func firstMigrations(t *testing.T, kind string, n int) *migrate.Migrations {
	t.Helper()
	dir := filepath.Join("..", "migrations", map[string]string{"sqlite": "sqlite", "postgres": "postgres"}[kind])
	files, err := filepath.Glob(filepath.Join(dir, "*.up.sql"))
	if err != nil || len(files) < n {
		t.Fatalf("migrations in %s: %v %v", dir, files, err)
	}
	fsys := fstest.MapFS{}
	for _, f := range files[:n] {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fsys[filepath.Base(f)] = &fstest.MapFile{Data: b}
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(fsys); err != nil {
		t.Fatal(err)
	}
	return ms
}

// exec runs statements with ? placeholders on the raw database.
func exec(t *testing.T, kind, dbURL string, stmts ...[]any) {
	t.Helper()
	driver := "pgx"
	if kind == "sqlite" {
		driver, dbURL = "sqlite", "file:"+dbURL
	}
	db, err := sql.Open(driver, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, st := range stmts {
		query := st[0].(string)
		if kind == "postgres" {
			query = dollars(query)
		}
		if _, err := db.Exec(query, st[1:]...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
}

func dollars(q string) string {
	out, n := []byte{}, 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			out = append(out, '$')
			out = append(out, strconv.Itoa(n)...)
			continue
		}
		out = append(out, q[i])
	}
	return string(out)
}

// readLog reads a Log Record's bytes whole; "" when it has none.
func readLog(t *testing.T, s *store.Store, name string) string {
	t.Helper()
	rec, err := s.GetRecord(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := s.OpenLog(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return string(b)
}
