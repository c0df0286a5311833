package filter_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/cel"
	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// Tricky strings: quotes, backslashes, LIKE wildcards, unicode, case.
var texts = []string{"web", "Web", "api", "", "a%b", "a_b", `back\slash`, `it's`, `say "hi"`, "ünïcödé", "日本", "web%", "_", "%", `\`, "Failed", "Succeeded", "x y"}

// records is the fixed dataset: varied types at the same paths, and
// missing fields, so that CEL's typing and error rules are exercised.
func datasetRecords() []map[string]any {
	var out []map[string]any
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 36 {
		labels := map[string]any{}
		if i%3 != 0 {
			labels["app"] = texts[i%len(texts)]
		}
		if i%4 == 0 {
			labels["team"] = texts[(i*7)%len(texts)]
		}
		spec := map[string]any{}
		switch i % 6 {
		case 0:
			spec["n"] = float64(i)
		case 1:
			spec["n"] = float64(i) + 0.5
		case 2:
			spec["n"] = strconv.Itoa(i)
		case 3:
			spec["n"] = nil
		case 4:
			spec["n"] = i%2 == 0
		}
		if i%5 != 0 {
			spec["s"] = texts[(i*3)%len(texts)]
		}
		if i%2 == 0 {
			spec["b"] = i%4 == 0
		}
		if i%3 == 1 {
			spec["list"] = []any{texts[i%len(texts)], texts[(i+1)%len(texts)]}
		}
		if i%7 == 2 {
			spec["list"] = []any{}
		}
		if i%9 == 4 {
			spec["obj"] = map[string]any{"k": "v"}
		}
		status := map[string]any{"conditions": []any{map[string]any{"type": "Succeeded", "reason": []string{"Failed", "Succeeded", "Running", `Odd"Reason`}[i%4]}}}
		if i%4 != 3 {
			status["startTime"] = time.Date(2026, 1, 1+i%20, i%24, 0, 0, 0, time.UTC).Format(time.RFC3339)
		} else if i%8 == 3 {
			status["startTime"] = "not a time"
		}
		meta := map[string]any{"name": fmt.Sprintf("%s-%d", []string{"build", "deploy", "Build", "te%st"}[rnd.IntN(4)], i), "namespace": "ns"}
		if len(labels) > 0 || i%2 == 0 {
			meta["labels"] = labels
		}
		out = append(out, map[string]any{"apiVersion": "tekton.dev/v1", "kind": []string{"TaskRun", "PipelineRun"}[i%2], "metadata": meta, "spec": spec, "status": status})
	}
	return out
}

// exprGen writes random well-typed filters over the dataset's fields.
type exprGen struct{ rnd *rand.Rand }

func (g *exprGen) pick(xs ...string) string { return xs[g.rnd.IntN(len(xs))] }

func (g *exprGen) str() string { return strconv.Quote(texts[g.rnd.IntN(len(texts))]) }

func (g *exprGen) literal() string {
	switch g.rnd.IntN(6) {
	case 0, 1, 2:
		return g.str()
	case 3:
		return strconv.Itoa(g.rnd.IntN(40) - 2)
	case 4:
		return strconv.FormatFloat(float64(g.rnd.IntN(80))/2, 'f', 1, 64)
	default:
		return g.pick("true", "false", "null")
	}
}

var dynFields = []string{
	"data.spec.n", "data.spec.s", "data.spec.b", "data.spec.list[0]", "data.spec.missing", "data.spec.obj.k",
	`data.metadata.labels["app"]`, `data.metadata.labels["team"]`, "data.metadata.labels.app", "data.metadata.name",
	"data.status.conditions[0].reason", "data.kind",
}

func (g *exprGen) atom() string {
	switch g.rnd.IntN(11) {
	case 0, 1, 2:
		return fmt.Sprintf("%s %s %s", g.pick(dynFields...), g.pick("==", "!=", "<", "<=", ">", ">="), g.literal())
	case 3:
		return fmt.Sprintf("%s %s %s", g.pick("name", "data_type", "parent"), g.pick("==", "!=", "<", ">="), g.str())
	case 4:
		return fmt.Sprintf("%s.%s(%s)", g.pick("data.spec.s", `data.metadata.labels["app"]`, "data.metadata.name", "name", "data.spec.n"), g.pick("startsWith", "endsWith", "contains"), g.str())
	case 5:
		return fmt.Sprintf("%s in [%s, %s]", g.pick(dynFields...), g.str(), g.str())
	case 6:
		return fmt.Sprintf("%s in %s", g.pick(`"app"`, `"team"`, `"web"`, `"k"`), g.pick("data.metadata.labels", "data.spec.list", "data.spec.obj", "data.spec"))
	case 7:
		return fmt.Sprintf("has(%s)", g.pick("data.spec.s", "data.spec.missing", "data.metadata.labels.team", "data.spec.obj.k", "data.spec.n"))
	case 8:
		return fmt.Sprintf("size(%s) %s %d", g.pick("data.spec.s", "data.spec.list", "data.metadata.labels", "name", "data.spec.obj"), g.pick("==", ">", "<="), g.rnd.IntN(4))
	case 9:
		return fmt.Sprintf("timestamp(data.status.startTime) %s timestamp(%q)", g.pick("<", ">=", "=="),
			time.Date(2026, 1, 1+g.rnd.IntN(20), g.rnd.IntN(24), 0, 0, 0, time.UTC).Format(time.RFC3339))
	default:
		return fmt.Sprintf("create_time %s timestamp(%q)", g.pick("<", ">"), time.Now().Add(time.Duration(g.rnd.IntN(3)-1)*time.Hour).UTC().Format(time.RFC3339))
	}
}

func (g *exprGen) expr(depth int) string {
	if depth <= 0 || g.rnd.IntN(3) == 0 {
		return g.atom()
	}
	switch g.rnd.IntN(3) {
	case 0:
		return "(" + g.expr(depth-1) + " && " + g.expr(depth-1) + ")"
	case 1:
		return "(" + g.expr(depth-1) + " || " + g.expr(depth-1) + ")"
	default:
		return "!(" + g.expr(depth-1) + ")"
	}
}

// TestDifferential checks the SQL translation against cel-go evaluating the
// same expression over the same objects in memory: both databases must
// return exactly the records CEL matches, or the filter must be refused
// with ErrInvalid. ANNALS_DIFF_N sets how many expressions (default 300),
// ANNALS_DIFF_SEED the generator's seed (default 42).
func TestDifferential(t *testing.T) {
	n := 300
	if v, err := strconv.Atoi(os.Getenv("ANNALS_DIFF_N")); err == nil {
		n = v
	}
	env, err := filter.Env(filter.Records)
	if err != nil {
		t.Fatal(err)
	}
	objects := datasetRecords()
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		var writes []store.RecordWrite
		for _, obj := range objects {
			data, _ := json.Marshal(obj)
			uid := uuid.NewString()
			writes = append(writes, store.RecordWrite{ResultName: store.ResultName("ns", uid), UID: uid, DataType: "tekton.dev/v1." + obj["kind"].(string), Data: data})
		}
		stored := storetest.Upsert(t, s, writes...)
		seed := uint64(42)
		if v, err := strconv.ParseUint(os.Getenv("ANNALS_DIFF_SEED"), 10, 64); err == nil {
			seed = v
		}
		gen := &exprGen{rnd: rand.New(rand.NewPCG(seed, 7))}
		refused := 0
		reasons := map[string]int{}
		for range n {
			expr := gen.expr(3)
			page, err := s.ListRecords(ctx, store.ListOptions{Filter: expr, First: store.MaxPageSize})
			if err != nil {
				if !errors.Is(err, store.ErrInvalidArgument) || !errors.Is(err, filter.ErrInvalid) {
					t.Fatalf("%s: %v", expr, err)
				}
				refused++
				reasons[refusal(err)]++
				continue
			}
			var got []string
			for _, r := range page.Items {
				got = append(got, r.UID)
			}
			want := evalInMemory(t, env, expr, stored)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s\n  database: %d records %v\n  CEL:      %d records %v", expr, len(got), short(got), len(want), short(want))
			}
		}
		t.Logf("%d expressions, %d refused: %v", n, refused, reasons)
		if refused > n/2 {
			t.Errorf("%d of %d expressions refused: the generator no longer tests the translation", refused, n)
		}
	})
}

func evalInMemory(t *testing.T, env *cel.Env, expr string, recs []*store.Record) []string {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		t.Fatalf("%s: accepted by the translator but not by CEL: %v", expr, iss.Err())
	}
	prg, err := env.Program(ast)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		var data any
		json.Unmarshal(r.Data, &data)
		v, _, err := prg.Eval(map[string]any{
			"name": r.Name, "uid": r.UID, "parent": r.ResultName, "data_type": r.DataType,
			"create_time": r.CreatedAt, "update_time": r.UpdatedAt, "data": data,
		})
		if err == nil && v.Value() == true {
			out = append(out, r.UID)
		}
	}
	return out
}

// refusal names the kind of a refusal, for the test log.
func refusal(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, " (at column"); i > 0 {
		msg = msg[:i]
	}
	if i := strings.LastIndex(msg, ": "); i > 0 && len(msg)-i < 120 {
		msg = msg[i+2:]
	}
	if len(msg) > 80 {
		msg = msg[:80]
	}
	return msg
}

func short(uids []string) string {
	var b strings.Builder
	for _, u := range uids {
		b.WriteString(u[:4] + " ")
	}
	return b.String()
}

// TestDifferentialResults does the same for Result filters: annotations,
// summary fields and times.
func TestDifferentialResults(t *testing.T) {
	env, err := filter.Env(filter.Results)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		statuses := []string{"True", "False", "Unknown", ""}
		for i := range 24 {
			uid := uuid.NewString()
			anns := map[string]string{}
			if i%3 != 0 {
				anns["team"] = texts[i%len(texts)]
			}
			if i%4 == 0 {
				anns["it's"] = texts[(i*5)%len(texts)]
			}
			if _, err := s.CreateResult(ctx, "ns", uid, anns); err != nil {
				t.Fatal(err)
			}
			if i%5 == 4 {
				continue // a Result without a summary run
			}
			start := time.Date(2026, 2, 1+i, 0, 0, 0, 0, time.UTC)
			obj := map[string]any{"apiVersion": "tekton.dev/v1", "kind": []string{"PipelineRun", "TaskRun"}[i%2],
				"metadata": map[string]any{"name": fmt.Sprintf("run-%d", i), "namespace": "ns"},
				"status": map[string]any{"startTime": start.Format(time.RFC3339), "conditions": []any{map[string]any{"type": "Succeeded", "status": statuses[i%4],
					"reason": []string{"Succeeded", "Cancelled", "Running", ""}[i%4]}}}}
			if i%4 != 2 {
				obj["status"].(map[string]any)["completionTime"] = start.Add(time.Hour).Format(time.RFC3339)
			}
			data, _ := json.Marshal(obj)
			if _, err := s.CreateRecord(ctx, store.RecordWrite{ResultName: store.ResultName("ns", uid), UID: uid, DataType: "tekton.dev/v1." + obj["kind"].(string), Data: data, UpdateSummary: true}); err != nil {
				t.Fatal(err)
			}
		}
		all, err := s.ListResults(ctx, store.ListOptions{First: 100})
		if err != nil {
			t.Fatal(err)
		}
		keys := make([]store.Key, len(all.Items))
		for i, r := range all.Items {
			keys[i] = r.Key()
		}
		anns, _ := s.AnnotationsByResult(ctx, keys)
		g := &exprGen{rnd: rand.New(rand.NewPCG(9, 9))}
		atom := func() string {
			switch g.rnd.IntN(6) {
			case 0:
				return "summary.status " + g.pick("==", "!=") + " " + g.pick("SUCCESS", "FAILURE", "CANCELLED", "RUNNING", "UNKNOWN")
			case 1:
				return fmt.Sprintf("annotations[%s] %s %s", g.pick(`"team"`, `"it's"`, `"none"`), g.pick("==", "!=", "<", ">="), g.str())
			case 2:
				return fmt.Sprintf("%s in annotations", g.pick(`"team"`, `"it's"`, `"none"`))
			case 3:
				return fmt.Sprintf("summary.type %s %s", g.pick("==", "!="), g.pick(`"tekton.dev/v1.PipelineRun"`, `"tekton.dev/v1.TaskRun"`, `""`))
			case 4:
				return fmt.Sprintf("summary.%s %s timestamp(%q)", g.pick("start_time", "end_time"), g.pick("<", ">="), time.Date(2026, 2, 1+g.rnd.IntN(24), 12, 0, 0, 0, time.UTC).Format(time.RFC3339))
			default:
				return fmt.Sprintf("annotations[%s].%s(%s)", g.pick(`"team"`, `"it's"`), g.pick("startsWith", "endsWith", "contains"), g.str())
			}
		}
		var expr func(int) string
		expr = func(depth int) string {
			if depth == 0 || g.rnd.IntN(3) == 0 {
				return atom()
			}
			return g.pick("(", "!(") + expr(depth-1) + g.pick(" && ", " || ") + expr(depth-1) + ")"
		}
		for range 300 {
			e := expr(2)
			page, err := s.ListResults(ctx, store.ListOptions{Filter: e, First: 100})
			if err != nil {
				if !errors.Is(err, filter.ErrInvalid) {
					t.Fatalf("%s: %v", e, err)
				}
				continue
			}
			ast, iss := env.Compile(e)
			if iss.Err() != nil {
				t.Fatalf("%s: %v", e, iss.Err())
			}
			prg, _ := env.Program(ast)
			var want, got []string
			for _, r := range all.Items {
				m := map[string]string{}
				for _, a := range anns[r.Key()] {
					m[a.Key] = a.Value
				}
				summary := map[string]any{"status": r.SummaryStatus, "type": r.SummaryType, "record": r.SummaryRecord}
				if r.SummaryStartTime != nil {
					summary["start_time"] = *r.SummaryStartTime
				}
				if r.SummaryEndTime != nil {
					summary["end_time"] = *r.SummaryEndTime
				}
				v, _, err := prg.Eval(map[string]any{"name": r.Name, "uid": r.UID, "create_time": r.CreatedAt, "update_time": r.UpdatedAt, "annotations": m, "summary": summary})
				if err == nil && v.Value() == true {
					want = append(want, r.UID)
				}
			}
			for _, r := range page.Items {
				got = append(got, r.UID)
			}
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s\n  database: %v\n  CEL:      %v", e, short(got), short(want))
			}
		}
	})
}
