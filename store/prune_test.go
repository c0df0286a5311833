package store_test

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// pruneSeed stores one Result per key: a PipelineRun of the given pipeline,
// ended endedAgo before now, with labels, and taskRuns TaskRuns.
type pruneSeed struct {
	key, ns, pipeline string
	endedAgo          time.Duration
	labels            map[string]string
	taskRuns          int
}

var pruneNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func seedPrune(t *testing.T, s *store.Store, seeds []pruneSeed) map[string]*store.Result {
	t.Helper()
	ctx := context.Background()
	out := map[string]*store.Result{}
	for _, sd := range seeds {
		uid := uuid.NewString()
		labels := map[string]string{"tekton.dev/pipeline": sd.pipeline}
		for k, v := range sd.labels {
			labels[k] = v
		}
		end := pruneNow.Add(-sd.endedAgo)
		start := end.Add(-time.Minute)
		name := store.ResultName(sd.ns, uid)
		writes := []store.RecordWrite{{ResultName: name, UID: uid, DataType: store.TypePipelineRun, UpdateSummary: true,
			Data: run("PipelineRun", sd.ns, sd.key, uid, "True", "Succeeded", &start, &end, labels)}}
		for range sd.taskRuns {
			tr := uuid.NewString()
			writes = append(writes, store.RecordWrite{ResultName: name, UID: tr, DataType: store.TypeTaskRun,
				Data: run("TaskRun", sd.ns, sd.key+"-task", tr, "True", "Succeeded", &start, &end, nil)})
		}
		if err := s.UpsertRecords(ctx, writes); err != nil {
			t.Fatal(err)
		}
		res, err := s.GetResult(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		out[sd.key] = res
	}
	return out
}

// candidates lists, by key, what policies[i] would prune.
func candidates(t *testing.T, s *store.Store, results map[string]*store.Result, policies []store.PrunePolicy, i, limit int) []string {
	t.Helper()
	targets, err := s.PruneCandidates(context.Background(), policies, i, limit)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, tg := range targets {
		for k, r := range results {
			if r.UID == tg.UID {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// A Result that lacks the label an earlier policy selects on matches no
// earlier policy (NULL is not false), so a later policy or the default
// still governs it.
func TestPruneMissingLabelFallsThrough(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		results := seedPrune(t, s, []pruneSeed{
			{key: "web-old", ns: "a", pipeline: "p", endedAgo: 90 * 24 * time.Hour, labels: map[string]string{"app": "web"}},
			{key: "nolabel-old", ns: "a", pipeline: "p", endedAgo: 90 * 24 * time.Hour},
			{key: "nolabel-new", ns: "a", pipeline: "p", endedAgo: time.Hour},
		})
		policies := []store.PrunePolicy{
			{Name: "web", Selector: store.PruneSelector{Labels: map[string][]string{"app": {"web"}}, Pipelines: []string{"p"}}}, // zero cutoff: keeps
			{Name: "default", Cutoff: pruneNow.Add(-30 * 24 * time.Hour)},
		}
		if got := candidates(t, s, results, policies, 0, 10); len(got) != 0 {
			t.Errorf("keeping policy prunes %v", got)
		}
		if got := candidates(t, s, results, policies, 1, 10); !slices.Equal(got, []string{"nolabel-old"}) {
			t.Errorf("default prunes %v, want [nolabel-old]", got)
		}
	})
}

// Batches come oldest first and never exceed the limit; keepLast keeps the
// newest of each Pipeline among those the policy governs.
func TestPruneBatchesAndKeepLast(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		day := 24 * time.Hour
		results := seedPrune(t, s, []pruneSeed{
			{key: "a1", ns: "n", pipeline: "a", endedAgo: 10 * day},
			{key: "a2", ns: "n", pipeline: "a", endedAgo: 20 * day},
			{key: "a3", ns: "n", pipeline: "a", endedAgo: 30 * day},
			{key: "b1", ns: "n", pipeline: "b", endedAgo: 15 * day},
			{key: "b2", ns: "m", pipeline: "b", endedAgo: 25 * day},
		})
		policies := []store.PrunePolicy{{Name: "all", Cutoff: pruneNow.Add(-time.Hour), KeepLast: 1}}
		if got := candidates(t, s, results, policies, 0, 10); !slices.Equal(got, []string{"a3", "b2", "a2"}) {
			t.Errorf("keepLast 1 prunes %v, want [a3 b2 a2], oldest first", got)
		}
		if got := candidates(t, s, results, policies, 0, 2); !slices.Equal(got, []string{"a3", "b2"}) {
			t.Errorf("batch of 2: %v, want the two oldest [a3 b2]", got)
		}
		counts, err := s.PruneCounts(context.Background(), policies, 0)
		if err != nil {
			t.Fatal(err)
		}
		if counts["n"] != [2]int{2, 2} || counts["m"] != [2]int{1, 1} {
			t.Errorf("counts %v", counts)
		}
	})
}

// Selector values are bound parameters: quotes and SQL in them match
// nothing and break nothing.
func TestPruneSelectorValuesAreParameters(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		results := seedPrune(t, s, []pruneSeed{{key: "x", ns: "n", pipeline: "p", endedAgo: 100 * 24 * time.Hour}})
		evil := []string{"' OR 1=1 --", `"); DROP TABLE results; --`, "n' OR 'a'='a"}
		policies := []store.PrunePolicy{{Name: "evil", Cutoff: pruneNow, Selector: store.PruneSelector{
			Namespaces: evil, Reasons: evil, SummaryStatuses: evil, DataTypes: evil, Pipelines: evil, Tasks: evil,
			Labels: map[string][]string{"a' OR '1'='1": evil}, Annotations: map[string][]string{"k') OR (1=1": evil}, ResultAnnotations: map[string][]string{"k') OR (1=1": evil},
		}}}
		if got := candidates(t, s, results, policies, 0, 10); len(got) != 0 {
			t.Errorf("matched %v", got)
		}
		if _, err := s.GetResult(context.Background(), results["x"].Name); err != nil {
			t.Fatal(err)
		}
	})
}

// Deleting a batch removes the Results whole: Records, annotations and log
// chunks go with them, and other Results are untouched.
func TestPruneDeleteResultsCascades(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			s, dbURL := storetest.Open(t, kind)
			ctx := context.Background()
			results := seedPrune(t, s, []pruneSeed{
				{key: "gone", ns: "n", pipeline: "p", endedAgo: time.Hour, taskRuns: 2},
				{key: "kept", ns: "n", pipeline: "p", endedAgo: time.Hour, taskRuns: 1},
			})
			for _, key := range []string{"gone", "kept"} {
				if _, err := s.UpdateResultAnnotations(ctx, results[key].Name, map[string]string{"k": "v"}, nil, ""); err != nil {
					t.Fatal(err)
				}
				page, err := s.ListRecords(ctx, store.ListOptions{ResultName: results[key].Name, RecordWhere: &filter.RecordWhere{DataTypes: []string{store.TypeTaskRun}}})
				if err != nil || len(page.Items) == 0 {
					t.Fatalf("taskruns of %s: %v", key, err)
				}
				if _, err := s.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: page.Items[0], Step: "s"}, strings.NewReader("hello"), 0); err != nil {
					t.Fatal(err)
				}
			}
			before := rowCounts(t, kind, dbURL)
			n, logBytes, err := s.DeleteResults(ctx, []string{results["gone"].Name, store.ResultName("n", uuid.NewString())})
			if err != nil || n != 1 || logBytes != 5 {
				t.Fatalf("DeleteResults: %d Results, %d log bytes, %v; want 1, 5", n, logBytes, err)
			}
			after := rowCounts(t, kind, dbURL)
			// gone held its PipelineRun, 2 TaskRuns and a Log: 4 Records.
			want := map[string]int{"results": before["results"] - 1, "records": before["records"] - 4,
				"result_annotations": before["result_annotations"] - 1, "log_chunks": before["log_chunks"] - 1}
			for table, w := range want {
				if after[table] != w {
					t.Errorf("%s: %d rows after, want %d (before %d)", table, after[table], w, before[table])
				}
			}
			if _, err := s.GetResult(ctx, results["kept"].Name); err != nil {
				t.Errorf("kept Result: %v", err)
			}
		})
	}
}

func rowCounts(t *testing.T, kind, dbURL string) map[string]int {
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
	out := map[string]int{}
	for _, table := range []string{"results", "records", "result_annotations", "log_chunks"} {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

// One agent prunes at a time per schema on PostgreSQL; stores in other
// schemas of the same database are not blocked.
func TestPruneLock(t *testing.T) {
	s1, dbURL := storetest.Open(t, "postgres")
	ctx := context.Background()
	s2, err := store.Open(ctx, dbURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	other, _ := storetest.Open(t, "postgres")

	ok, release, err := s1.LockPruning(ctx)
	if err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	if ok, _, err := s2.LockPruning(ctx); err != nil || ok {
		t.Errorf("second agent on the same schema got the lock: %v %v", ok, err)
	}
	okOther, releaseOther, err := other.LockPruning(ctx)
	if err != nil || !okOther {
		t.Errorf("another schema is blocked: %v %v", okOther, err)
	} else {
		releaseOther()
	}
	release()
	ok, release, err = s2.LockPruning(ctx)
	if err != nil || !ok {
		t.Fatalf("after release: %v %v", ok, err)
	}
	release()
}
