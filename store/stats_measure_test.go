package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/store/storetest"
)

// TestMeasureStats measures the analytics queries on PostgreSQL at
// ANNALS_STATS_MEASURE Records (skipped without it): 90 days of runs in 3
// namespaces, 30 Pipelines, a PipelineRun with 5 TaskRuns each. It prints
// the latencies and the plans; it asserts nothing about time.
//
//	ANNALS_STATS_MEASURE=100000 go test ./store -run TestMeasureStats -v
func TestMeasureStats(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ANNALS_STATS_MEASURE"))
	if n == 0 {
		t.Skip("set ANNALS_STATS_MEASURE to a number of Records")
	}
	s, dbURL := storetest.Open(t, "postgres")
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var batch []store.RecordWrite
	flush := func() {
		if err := s.UpsertRecords(ctx, batch); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	seedStart := time.Now()
	for written := 0; written < n; {
		ns := []string{"ci", "prod", "staging"}[rng.IntN(3)]
		pipeline := fmt.Sprintf("pipeline-%02d", rng.IntN(30))
		result := ns + "/results/" + uuid.NewString()
		created := now.Add(-time.Duration(rng.Int64N(int64(90 * 24 * time.Hour))))
		for i := range 6 {
			uid := uuid.NewString()
			kind, labels := "PipelineRun", map[string]string{"tekton.dev/pipeline": pipeline}
			if i > 0 {
				kind = "TaskRun"
				labels["tekton.dev/task"] = fmt.Sprintf("task-%d", i)
			}
			start := created.Add(time.Duration(rng.Int64N(int64(time.Minute))))
			end := start.Add(time.Duration(rng.Int64N(int64(30 * time.Minute))))
			status, reason := "True", "Succeeded"
			if rng.IntN(5) == 0 {
				status, reason = "False", "Failed"
			}
			obj := map[string]any{"apiVersion": "tekton.dev/v1", "kind": kind,
				"metadata": map[string]any{"name": "r-" + uid[:8], "namespace": ns, "uid": uid, "labels": labels,
					"creationTimestamp": created.Format(time.RFC3339)},
				"status": map[string]any{"startTime": start.Format(time.RFC3339), "completionTime": end.Format(time.RFC3339),
					"conditions": []any{map[string]any{"type": "Succeeded", "status": status, "reason": reason}}}}
			data, _ := json.Marshal(obj)
			batch = append(batch, store.RecordWrite{ResultName: result, UID: uid, DataType: "tekton.dev/v1." + kind, Data: data})
			written++
		}
		if len(batch) >= 600 {
			flush()
		}
	}
	flush()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM ANALYZE records"); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeded %d Records in %s", n, time.Since(seedStart).Round(time.Millisecond))

	from, to := now.Add(-30*24*time.Hour), now
	q := store.StatsQuery{
		Scope: store.ListOptions{Parent: "-", RecordWhere: &filter.RecordWhere{DataTypes: []string{store.TypePipelineRun},
			Started: filter.TimeRange{After: &from, Before: &to}}},
		GroupBy:     []store.Dimension{{Kind: store.DimPipelineName}, {Kind: store.DimTime, Time: store.TimeStart, Unit: store.UnitDay}},
		TimeZone:    time.UTC,
		Percentiles: true,
	}
	measure := func(name string, f func() (int, error)) {
		var times []time.Duration
		var groups int
		for range 7 {
			start := time.Now()
			g, err := f()
			if err != nil {
				t.Fatal(err)
			}
			times = append(times, time.Since(start))
			groups = g
		}
		slices.Sort(times)
		t.Logf("%s: %d groups, median %s, min %s, max %s", name, groups, times[3].Round(100*time.Microsecond),
			times[0].Round(100*time.Microsecond), times[6].Round(100*time.Microsecond))
	}
	measure("30 days, PipelineRuns by pipeline and day: counts, success rate, p95", func() (int, error) {
		r, err := s.Stats(ctx, q)
		if err != nil {
			return 0, err
		}
		return len(r.Rows), nil
	})
	q.TimeZone = must(time.LoadLocation("America/New_York"))
	measure("the same in America/New_York", func() (int, error) {
		r, err := s.Stats(ctx, q)
		if err != nil {
			return 0, err
		}
		return len(r.Rows), nil
	})
	measure("facet: pipelines of all Records", func() (int, error) {
		v, err := s.Facet(ctx, store.FacetQuery{Scope: store.ListOptions{Parent: "-"}, Dimension: store.Dimension{Kind: store.DimPipelineName}})
		return len(v), err
	})
	measure("facet: tasks starting with task-1, 30 days", func() (int, error) {
		v, err := s.Facet(ctx, store.FacetQuery{Scope: store.ListOptions{Parent: "-", RecordWhere: &filter.RecordWhere{Started: filter.TimeRange{After: &from, Before: &to}}},
			Dimension: store.Dimension{Kind: store.DimTask}, Prefix: "task-1"})
		return len(v), err
	})
	// The plan of the grouped query, on the same columns the store reads.
	rows, err := db.QueryContext(ctx, `EXPLAIN (ANALYZE, BUFFERS) SELECT NULLIF(r.pipeline_name, ''), date_trunc('day', r.start_time, 'UTC'), COUNT(*),
		percentile_disc(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY r.duration_us)
		FROM records AS r WHERE r.data_type IN ('tekton.dev/v1.PipelineRun') AND r.start_time > $1 AND r.start_time < $2 GROUP BY 1, 2`, from, to)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		_ = rows.Scan(&line)
		plan = append(plan, line)
	}
	t.Logf("plan:\n%s", strings.Join(plan, "\n"))
}
