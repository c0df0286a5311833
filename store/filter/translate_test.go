package filter_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/store/filter"
)

func TestCompileRefusesClearly(t *testing.T) {
	tests := []struct {
		entity  filter.Entity
		expr    string
		mention string
	}{
		{filter.Records, `name ==`, "Syntax error"},
		{filter.Records, `colour == "red"`, "colour"},
		{filter.Records, `name.lowerAscii() == "x"`, "lowerAscii"},
		{filter.Records, `data.a == data.b`, "compare a field with a constant"},
		{filter.Records, `data.list.exists(x, x == "a")`, "unsupported"},
		{filter.Records, `data.a + 1 == 2`, "unsupported"},
		{filter.Records, `name`, "not a condition"},
		{filter.Records, `data.metadata.labels["x\u0000"] == "a"`, "NUL"},
		{filter.Records, `data.items[-1] == "a"`, "negative"},
		{filter.Records, strings.Repeat("(", 200) + "true" + strings.Repeat(")", 200), "recursion"},
		{filter.Records, strings.Repeat(`name == "a" || `, 400) + `true`, "limit"},
		{filter.Results, `summary.status == TIMEOUT`, "TIMEOUT"},
		{filter.Results, `summary.colour == "red"`, "summary field"},
		{filter.Results, `data.x == 1`, "data"},
		{filter.Records, `timestamp("yesterday") < create_time`, "RFC 3339"},
	}
	for _, tt := range tests {
		for _, d := range []filter.Dialect{filter.Postgres, filter.SQLite} {
			compile := filter.CompileRecordFilter
			if tt.entity == filter.Results {
				compile = filter.CompileResultFilter
			}
			_, err := compile(tt.expr, d)
			if !errors.Is(err, filter.ErrInvalid) || !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("%s on %s: %v; want ErrInvalid mentioning %q", short80(tt.expr), d, err, tt.mention)
			}
		}
	}
	if _, err := filter.CompileRecordFilter(`name.matches("^a")`, filter.SQLite); !errors.Is(err, filter.ErrInvalid) {
		t.Errorf("matches on SQLite: %v", err)
	}
	if _, err := filter.CompileRecordFilter(`name.matches("^a")`, filter.Postgres); err != nil {
		t.Errorf("matches on PostgreSQL: %v", err)
	}
}

func short80(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// User text only ever travels as arguments, and every placeholder has one.
func checkBound(t *testing.T, expr string, out filter.Expr, secrets ...string) {
	t.Helper()
	if n := strings.Count(out.SQL, "?"); n != len(out.Args) {
		t.Fatalf("%s: %d placeholders, %d arguments\n%s", expr, n, len(out.Args), out.SQL)
	}
	for _, secret := range secrets {
		if secret != "" && strings.Contains(out.SQL, secret) {
			t.Fatalf("%s: %q inside the SQL text: %s", expr, secret, out.SQL)
		}
	}
}

func TestTypedWhere(t *testing.T) {
	ns, prefix := "ci'--", "a%_b"
	when := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := &filter.RecordWhere{Namespace: &ns, DataTypes: []string{"t'1"}, Statuses: []string{"Failed"}, NamePrefix: &prefix,
		Labels: []filter.LabelMatch{{Key: "k'ey", Op: filter.LabelIn, Values: []string{"v'1", "v2"}}}, Started: filter.TimeRange{After: &when}}
	for _, d := range []filter.Dialect{filter.Postgres, filter.SQLite} {
		out, err := filter.RecordWhereSQL(w, d)
		if err != nil {
			t.Fatal(err)
		}
		checkBound(t, "where", out, "ci'", "t'1", "k'ey", "v'1", "a%_b")
	}
	bad := []*filter.RecordWhere{
		{Statuses: []string{"Done"}},
		{Labels: []filter.LabelMatch{{Key: "", Op: filter.LabelExists}}},
		{Labels: []filter.LabelMatch{{Key: "a", Op: filter.LabelEquals}}},
		{Labels: []filter.LabelMatch{{Key: "a", Op: filter.LabelExists, Values: []string{"x"}}}},
		{Labels: []filter.LabelMatch{{Key: "a", Op: "LIKE", Values: []string{"x"}}}},
	}
	for _, w := range bad {
		if _, err := filter.RecordWhereSQL(w, filter.Postgres); !errors.Is(err, filter.ErrInvalid) {
			t.Errorf("%+v: %v", w, err)
		}
	}
}

func FuzzCompileRecordFilter(f *testing.F) {
	for _, seed := range []string{`name == "a"`, `data.metadata.labels["app"] in ["web", "api"]`, `data.x.startsWith("a%_\\")`,
		`has(data.spec.s) && !(size(data.items) > 2)`, `timestamp(data.status.startTime) > timestamp("2026-01-01T00:00:00Z")`,
		`"k" in data.metadata.labels || data.n >= 2.5`, `create_time < timestamp("2026-01-01T00:00:00Z")`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		for _, d := range []filter.Dialect{filter.Postgres, filter.SQLite} {
			out, err := filter.CompileRecordFilter(expr, d)
			if err != nil {
				if !errors.Is(err, filter.ErrInvalid) {
					t.Fatalf("%q: error that is not ErrInvalid: %v", expr, err)
				}
				continue
			}
			checkBound(t, expr, out)
			if strings.ContainsRune(out.SQL, 0) {
				t.Fatalf("%q: NUL in SQL", expr)
			}
		}
	})
}

func FuzzCompileResultFilter(f *testing.F) {
	for _, seed := range []string{`summary.status == FAILURE`, `annotations["team"] == "web"`, `"x" in annotations && summary.type.endsWith("Run")`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		for _, d := range []filter.Dialect{filter.Postgres, filter.SQLite} {
			out, err := filter.CompileResultFilter(expr, d)
			if err != nil {
				if !errors.Is(err, filter.ErrInvalid) {
					t.Fatalf("%q: error that is not ErrInvalid: %v", expr, err)
				}
				continue
			}
			checkBound(t, expr, out)
		}
	})
}
