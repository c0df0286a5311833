package store_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// canary is user text that must never appear in SQL text, only in arguments.
const canary = `zq'x"canary\%_;--`

// Every value of a filter, a typed where input or a cursor reaches the
// database as a bound argument: the SQL text of the statement never holds it.
func TestUserInputNeverReachesSQLText(t *testing.T) {
	var mu sync.Mutex
	var statements []string
	store.ObserveSQL(func(q string) {
		mu.Lock()
		statements = append(statements, q)
		mu.Unlock()
	})
	defer store.ObserveSQL(nil)
	quoted := strconv.Quote(canary)
	when := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ns := canary
	filters := []string{
		`name == ` + quoted, `data.metadata.labels[` + quoted + `] == ` + quoted,
		`data.status[` + quoted + `] > 3`, `data.x.startsWith(` + quoted + `)`, `data.x.endsWith(` + quoted + `)`,
		`data.x.contains(` + quoted + `)`, quoted + ` in data.metadata.labels`, `data_type in [` + quoted + `, "b"]`,
		`has(data.metadata.annotations.zq)`, `size(data.metadata.labels[` + quoted + `]) > 1`,
	}
	wheres := []*filter.RecordWhere{
		// dataTypes takes known types only (a canary there is refused before any SQL).
		{Namespace: &ns, DataTypes: []string{store.TypeTaskRun}, Reasons: []string{canary}, PipelineName: &ns, TaskName: &ns, PipelineRunName: &ns, NamePrefix: &ns,
			Started: filter.TimeRange{After: &when}, RunNames: []string{canary}, NameContains: &ns, Kinds: []string{"TASK_RUN"}},
		{Labels: []filter.LabelMatch{{Key: canary, Op: filter.LabelEquals, Values: []string{canary}}, {Key: canary, Op: filter.LabelIn, Values: []string{canary, "x"}},
			{Key: canary, Op: filter.LabelExists}, {Key: canary, Op: filter.LabelNotExists}}},
	}
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		statements = nil
		for _, f := range filters {
			if _, err := s.ListRecords(ctx, store.ListOptions{Filter: f}); err != nil && !errors.Is(err, store.ErrInvalidArgument) {
				t.Errorf("%s: %v", f, err)
			}
			if _, err := s.CountRecords(ctx, store.ListOptions{Filter: f}); err != nil && !errors.Is(err, store.ErrInvalidArgument) {
				t.Errorf("%s: %v", f, err)
			}
		}
		for _, w := range wheres {
			if _, err := s.ListRecords(ctx, store.ListOptions{RecordWhere: w}); err != nil {
				t.Errorf("where %+v: %v", w, err)
			}
		}
		resultFilters := []string{`annotations[` + quoted + `] == ` + quoted, quoted + ` in annotations`, `summary.record.startsWith(` + quoted + `)`}
		for _, f := range resultFilters {
			if _, err := s.ListResults(ctx, store.ListOptions{Filter: f}); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
		if _, err := s.ListResults(ctx, store.ListOptions{ResultWhere: &filter.ResultWhere{Annotations: []filter.LabelMatch{{Key: canary, Op: filter.LabelEquals, Values: []string{canary}}}, NamePrefix: &ns}}); err != nil {
			t.Error(err)
		}
		if len(statements) < len(filters) {
			t.Fatalf("only %d statements observed", len(statements))
		}
		for _, q := range statements {
			if strings.Contains(q, "canary") {
				t.Errorf("user text inside SQL: %s", q)
			}
		}
	})
}

// A static guard beside the dynamic one: SQL in the store is never built
// with fmt formatting, the usual way values slip into SQL text.
func TestNoFormattedSQL(t *testing.T) {
	sqlWords := regexp.MustCompile(`(?i)\b(select|where|insert|update|delete|from|order by|limit)\b`)
	files, _ := filepath.Glob("*.go")
	more, _ := filepath.Glob("filter/*.go")
	for _, path := range append(files, more...) {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Sprintf" {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && sqlWords.MatchString(lit.Value) {
				t.Errorf("%s: SQL built with fmt.Sprintf(%s)", path, lit.Value)
			}
			return true
		})
	}
}

func FuzzParseNames(f *testing.F) {
	for _, s := range []string{"ci/results/0b5c6a52-1d1e-4c39-9b8e-7a8f3c1d2e01", "ci/results/0b5c6a52-1d1e-4c39-9b8e-7a8f3c1d2e01/records/6d1f8e4a-2b3c-4d5e-8f9a-0b1c2d3e4f50",
		"", "/", "a/results/", "A/results/x", "ci/results/0b5c6a52-1d1e-4c39-9b8e-7a8f3c1d2e01/records/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ns, uid, err := store.ParseResultName(name); err == nil {
			if store.ResultName(ns, uid) != name {
				t.Fatalf("%q parsed as %q %q", name, ns, uid)
			}
		} else if !errors.Is(err, store.ErrInvalidArgument) {
			t.Fatalf("%q: %v", name, err)
		}
		if ns, res, uid, err := store.ParseRecordName(name); err == nil {
			if store.RecordName(ns, res, uid) != name {
				t.Fatalf("%q parsed as %q %q %q", name, ns, res, uid)
			}
		} else if !errors.Is(err, store.ErrInvalidArgument) {
			t.Fatalf("%q: %v", name, err)
		}
	})
}

func FuzzCursor(f *testing.F) {
	s, _ := storetest.Open(f, "sqlite")
	f.Add("")
	f.Add("AAAA")
	f.Add(strings.Repeat("A", 2000))
	f.Fuzz(func(t *testing.T, cursor string) {
		// Nobody but the store can make a cursor: any other string is refused.
		if err := s.OpenCursor([]byte("query"), cursor); !errors.Is(err, store.ErrInvalidArgument) {
			t.Fatalf("cursor %q: %v", cursor, err)
		}
	})
}
