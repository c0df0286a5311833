package store_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestAggregateDimensions groups by the dimensions the Summary API does not
// use (a label, status, reason, data type) and by two at once, and compares
// counts and success counts with the model.
func TestAggregateDimensions(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	gens, ws := genRecords(rng, 300)
	statusOf := map[string]string{"Succeeded": "Succeeded", "Completed": "Succeeded", "Failed": "Failed", "PipelineRunTimeout": "Failed",
		"Cancelled": "Cancelled", "TaskRunCancelled": "Cancelled", "Running": "Running", "Pending": "Running"}
	value := func(g genRecord, d store.Dimension) string {
		switch d.Kind {
		case store.DimLabel:
			if g.app == nil {
				return "<null>"
			}
			return *g.app
		case store.DimStatus:
			if s, ok := statusOf[deref(g.reason)]; ok {
				return s
			}
			return store.StatusUnknown
		case store.DimReason:
			if g.reason == nil {
				return "<null>"
			}
			return *g.reason
		case store.DimDataType:
			return g.dataType
		case store.DimNamespace:
			return g.ns
		}
		panic(d.Kind)
	}
	label := store.Dimension{Kind: store.DimLabel, Key: "app"}
	status := store.Dimension{Kind: store.DimStatus}
	reason := store.Dimension{Kind: store.DimReason}
	dataType := store.Dimension{Kind: store.DimDataType}
	namespace := store.Dimension{Kind: store.DimNamespace}
	succeeded := store.Metric{Kind: store.MetricCount, Reasons: []string{"Succeeded", "Completed"}}
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if err := s.UpsertRecords(ctx, ws); err != nil {
			t.Fatal(err)
		}
		for _, dims := range [][]store.Dimension{{label}, {status}, {reason}, {dataType}, {namespace, status}, {label, dataType}} {
			want := map[string][2]int64{}
			for _, g := range gens {
				var parts []string
				for _, d := range dims {
					parts = append(parts, value(g, d))
				}
				k := strings.Join(parts, "|")
				c := want[k]
				c[0]++
				if r := deref(g.reason); r == "Succeeded" || r == "Completed" {
					c[1]++
				}
				want[k] = c
			}
			rows, err := s.Aggregate(ctx, store.AggregateQuery{GroupBy: dims, Metrics: []store.Metric{{Kind: store.MetricCount}, succeeded}})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][2]int64{}
			for _, r := range rows {
				var parts []string
				for _, g := range r.Groups {
					if g.Null {
						parts = append(parts, "<null>")
					} else {
						parts = append(parts, g.Text)
					}
				}
				got[strings.Join(parts, "|")] = [2]int64{r.Values[0].Count, r.Values[1].Count}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("group by %+v:\n got %v\nwant %v", dims, got, want)
			}
		}
		for _, c := range []struct {
			q    store.AggregateQuery
			want string
		}{
			{store.AggregateQuery{}, "at least one metric"},
			{store.AggregateQuery{Metrics: []store.Metric{{Kind: 99}}}, "unknown metric"},
			{store.AggregateQuery{Metrics: []store.Metric{{Kind: store.MetricCount}}, GroupBy: []store.Dimension{{Kind: 99}}}, "unknown dimension"},
			{store.AggregateQuery{Metrics: []store.Metric{{Kind: store.MetricCount}}, GroupBy: []store.Dimension{{Kind: store.DimTime, Unit: "decade"}}}, "unknown time unit"},
			{store.AggregateQuery{Metrics: []store.Metric{{Kind: store.MetricCount}}, GroupBy: []store.Dimension{{Kind: store.DimLabel, Key: `a") OR 1=1 --`}}}, "label key"},
			{store.AggregateQuery{Metrics: []store.Metric{{Kind: store.MetricCount}}, GroupBy: []store.Dimension{{Kind: store.DimLabel}}}, "label key"},
		} {
			if _, err := s.Aggregate(ctx, c.q); !errors.Is(err, store.ErrInvalidArgument) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%+v: %v, want invalid argument about %q", c.q, err, c.want)
			}
		}
	})
}

// TestMigrationBackfillsAggregateColumns takes migration 00004 back off a
// store holding Records, applies it again, and checks that it fills the
// columns from data exactly as the write path does, malformed times included.
func TestMigrationBackfillsAggregateColumns(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			s, url := storetest.Open(t, kind)
			ctx := context.Background()
			obj := func(dataType, created string, annotations map[string]any, start, end string) json.RawMessage {
				meta := map[string]any{"name": "x", "namespace": "ci"}
				if created != "" {
					meta["creationTimestamp"] = created
				}
				if annotations != nil {
					meta["annotations"] = annotations
				}
				st := map[string]any{}
				if start != "" {
					st["startTime"] = start
				}
				if end != "" {
					st["completionTime"] = end
				}
				b, _ := json.Marshal(map[string]any{"kind": strings.TrimPrefix(dataType, "tekton.dev/v1."), "metadata": meta, "status": st})
				return b
			}
			repo := "pipelinesascode.tekton.dev/repository"
			datas := []struct {
				dataType string
				data     json.RawMessage
			}{
				{store.TypePipelineRun, obj(store.TypePipelineRun, "2026-03-01T10:00:00Z", map[string]any{repo: "web"}, "2026-03-01T10:00:01Z", "2026-03-02T11:00:02Z")},
				{store.TypeTaskRun, obj(store.TypeTaskRun, "2026-03-01T12:00:00.123456789+02:00", map[string]any{repo: 7}, "2026-03-01T10:00:00.5Z", "2026-03-01T10:00:00.250001Z")},
				{store.TypeTaskRun, obj(store.TypeTaskRun, "2026-03-01T12:00:00.1-05:30", nil, "2026-03-01T10:00:00Z", "")},
				{store.TypeTaskRun, obj(store.TypeTaskRun, "yesterday", nil, "", "")},
				{store.TypeTaskRun, obj(store.TypeTaskRun, "2026-13-45T00:00:00Z", nil, "", "")},
				{store.TypeLog, obj(store.TypeLog, "2026-03-01T10:00:00.000100Z", map[string]any{repo: "web"}, "", "")},
				{"example.com/v1.Thing", obj("Thing", "", nil, "", "")},
				{"example.com/v1.Thing", json.RawMessage(`[1, 2]`)},
			}
			var ws []store.RecordWrite
			var uids []string
			for _, d := range datas {
				uid := uuid.NewString()
				uids = append(uids, uid)
				ws = append(ws, store.RecordWrite{ResultName: "ci/results/" + uuid.NewString(), UID: uid, DataType: d.dataType, Data: d.data})
			}
			if err := s.UpsertRecords(ctx, ws); err != nil {
				t.Fatal(err)
			}
			written, err := s.GetRecordsByUID(ctx, "ci", uids)
			if err != nil {
				t.Fatal(err)
			}
			if c := written[uids[0]]; c.CreationTime == nil || c.Repository != "web" || c.DurationMicros == nil || *c.DurationMicros != (25*3600+1)*1e6 {
				t.Fatalf("the write path did not fill the columns: %+v", c)
			}
			if d := written[uids[1]].DurationMicros; d == nil || *d != -249999 {
				t.Fatalf("duration to the microsecond: %v", d)
			}

			driver := map[string]string{"sqlite": "sqlite", "postgres": "pgx"}[kind]
			db, err := sql.Open(driver, url)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var before []string
			if kind == "sqlite" {
				// SQLite cannot drop a column a trigger (00013's) reads.
				before = []string{"DROP TRIGGER records_daily_insert", "DROP TRIGGER records_daily_delete", "DROP TRIGGER records_daily_update"}
			}
			for _, stmt := range append(before,
				"DROP INDEX records_stats_start", // 00005's, on columns of 00004
				"DROP INDEX records_creation", "DROP INDEX records_repository",
				"ALTER TABLE records DROP COLUMN creation_time", "ALTER TABLE records DROP COLUMN repository",
				"ALTER TABLE records DROP COLUMN duration_us",
				"DELETE FROM annals_migrations WHERE name IN ('00004', '00005')",
			) {
				if _, err := db.Exec(stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			status, err := s.Migrate(ctx)
			if err != nil || !slices.Contains(status.Applied, "00004_aggregates") {
				t.Fatalf("migrating again: %+v, %v", status, err)
			}
			backfilled, err := s.GetRecordsByUID(ctx, "ci", uids)
			if err != nil {
				t.Fatal(err)
			}
			for i, uid := range uids {
				w, b := written[uid], backfilled[uid]
				if !sameTime(w.CreationTime, b.CreationTime) || w.Repository != b.Repository || fmt.Sprint(deref64(w.DurationMicros)) != fmt.Sprint(deref64(b.DurationMicros)) {
					t.Errorf("record %d (%s): written (%v, %q, %v), backfilled (%v, %q, %v)", i, datas[i].data,
						w.CreationTime, w.Repository, deref64(w.DurationMicros), b.CreationTime, b.Repository, deref64(b.DurationMicros))
				}
			}
		})
	}
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func deref64(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}
