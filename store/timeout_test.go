package store

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// On SQLite a statement running past the statement timeout is interrupted
// and reported as ErrStatementTimeout, and the single connection serves
// the next statement; statements within it, bun's and ours, work as ever.
func TestStatementTimeoutOnSQLite(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "annals.db"), Options{StatementTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	uid := "00000000-0000-4000-8000-000000000001"
	if err := s.UpsertRecords(ctx, []RecordWrite{{ResultName: ResultName("ci", uid), UID: uid, DataType: TypeTaskRun, Data: json.RawMessage(`{"kind":"TaskRun"}`)}}); err != nil {
		t.Fatal(err)
	}
	var n []int64
	start := time.Now()
	err = s.queryRows(ctx, &n, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c`)
	if !errors.Is(err, ErrStatementTimeout) || !IsStatementTimeout(err) {
		t.Fatalf("an endless statement: %v, want ErrStatementTimeout", err)
	}
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Errorf("interrupted after %v", elapsed)
	}
	if _, err := s.GetRecordsByUID(ctx, "ci", []string{uid}); err != nil {
		t.Errorf("bun statement after the timeout: %v", err)
	}
	page, err := s.ListRecords(ctx, ListOptions{Parent: "-"})
	if err != nil || len(page.Items) != 1 {
		t.Errorf("listing after the timeout: %v, %d items", err, len(page.Items))
	}
}

func TestWithStatementTimeout(t *testing.T) {
	for _, c := range []struct {
		url  string
		d    time.Duration
		want string // the statement_timeout runtime parameter; "" none
	}{
		{"postgres://u@h/db?sslmode=disable", 10 * time.Second, "10000"},
		{"host=h user=u dbname=db sslmode=disable", 10 * time.Second, "10000"},
		{"postgres://u@h/db?statement_timeout=500", 10 * time.Second, "500"},
		{"host=h user=u dbname=db statement_timeout=500", 10 * time.Second, "500"},
		{"postgres://u@h/db?options=-c%20statement_timeout%3D5s", 10 * time.Second, ""},
		{"postgres://u@h/db", 0, ""},
	} {
		cfg, err := pgx.ParseConfig(c.url)
		if err != nil {
			t.Fatal(err)
		}
		withStatementTimeout(cfg, c.d)
		if got := cfg.RuntimeParams["statement_timeout"]; got != c.want {
			t.Errorf("withStatementTimeout(%q, %v): statement_timeout %q, want %q", c.url, c.d, got, c.want)
		}
	}
}
