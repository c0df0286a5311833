package filter_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// postgres connects to the test PostgreSQL, skipping (failing in CI)
// when it cannot be reached.
func postgres(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", storetest.PostgresURL())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		t.Skipf("PostgreSQL unreachable: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Every RE2 pattern of the fixture matches on PostgreSQL exactly the
// subjects it matches in Go (CEL's own semantics), including where the
// two dialects read the same text differently (\b, ., $, (?m), (?i)).
func TestRegexMeansTheSameOnPostgres(t *testing.T) {
	var fixture struct{ Subjects, Patterns []string }
	raw, err := os.ReadFile("testdata/regex/same-meaning.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &fixture); err != nil {
		t.Fatal(err)
	}
	db := postgres(t)
	for _, p := range fixture.Patterns {
		translated, err := filter.PostgresRegex(p)
		if err != nil {
			t.Errorf("%q refused: %v", p, err)
			continue
		}
		re := regexp.MustCompile(p)
		for _, s := range fixture.Subjects {
			var got bool
			if err := db.QueryRow("SELECT $1::text ~ $2::text", s, translated).Scan(&got); err != nil {
				t.Errorf("%q as %q on %q: %v", p, translated, s, err)
				break
			}
			if want := re.MatchString(s); got != want {
				t.Errorf("%q (as %q) on %q: PostgreSQL says %v, RE2 %v", p, translated, s, got, want)
			}
		}
	}
}

// Patterns outside RE2 (back-references, look-around: exponential to
// match) and those PostgreSQL cannot run alike are refused on both
// databases, saying why.
func TestNonRE2RegexRefused(t *testing.T) {
	for _, c := range []struct{ pattern, why string }{
		{`^(.*)(.*)(.*)(.*)(.*)(.*)\6\5\4\3\2\1$`, "not RE2"},
		{`(a)\1`, "back-references"},
		{`a(?=b)`, "not RE2"},
		{`(?<=a)b`, "not RE2"},
		{`a(?!b)`, "not RE2"},
		{`(?P<x>a)(?P=x)`, "not RE2"},
		{`a\Z`, "not RE2"},
		{`a{256}`, "the limit is 255"},
		{`(a`, "not RE2"},
		{strings.Repeat("a", 600), "the limit is 512"},
	} {
		for _, d := range []filter.Dialect{filter.Postgres, filter.SQLite} {
			expr := `name.matches(` + strconvQuote(c.pattern) + `)`
			_, err := filter.CompileRecordFilter(expr, d)
			if !errors.Is(err, filter.ErrInvalid) || !strings.Contains(err.Error(), c.why) {
				t.Errorf("%s on %v: %v, want a refusal saying %q", c.pattern, d, err, c.why)
			}
		}
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s) // a JSON string is a CEL string literal
	return string(b)
}
