package store_test

// BenchmarkIngest measures the write path on PostgreSQL the way the load
// harness (bench/) seeds: 8 writers, each writing PipelineRuns with 3 to 8
// TaskRuns three times (started, running, finished) in UpsertRecords calls
// of about 200 writes. Each sub-benchmark seeds a fresh schema after
// dropping some of the schema's write costs, so that their shares can be
// told apart:
//
//	as_is        the schema as migrated
//	no_rollup    without the rollup triggers of 00012
//	no_flaky     without the flaky-segment triggers of 00016
//	no_00006     without the order-by-name indexes of 00006 (btree and trigram)
//	no_00006_trgm   only the trigram index of 00006 dropped
//	no_00006_btree  only the btree indexes of 00006 dropped
//	no_00010     without the partial indexes of 00010
//	no_00011     without the descending indexes of 00011
//	no_all       without the triggers and the indexes of 00006, 00010, 00011
//	trgm_fastupdate_off  the trigram index as 00006 made it (no pending list)
//	trgm_fastupdate_on   the trigram index as 00014 sets it (64 kB pending list)
//
// It is not part of .ci/run: it runs only with -bench and on PostgreSQL,
// ideally on a scratch database of its own (it writes hundreds of MB):
//
//	psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE ingest_bench'
//	ANNALS_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:5432/ingest_bench?sslmode=disable' \
//	  ANNALS_INGEST_RUNS=20000 go test ./store -run '^$' -bench 'BenchmarkIngest/as_is$' -benchtime 1x
//
// ANNALS_INGEST_RUNS is the number of Records written (default 20,000);
// the writes are three times as many. "writes/s" is the figure the harness
// prints as "records/s". One iteration seeds one fresh schema; with
// ANNALS_INGEST_URL, it adds the Records to that database instead (seed
// one with as_is, copy it with CREATE DATABASE ... TEMPLATE ... STRATEGY
// FILE_COPY per variant, and drop the copies after). The machine's load
// moves writes/s a lot, backend-ms/1000writes (the server's CPU) less;
// WAL-bytes/write counts the whole server's WAL, others' writes included.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// ingestVariants are the statements each variant runs after migrating.
var ingestVariants = []struct {
	name string
	drop []string
}{
	{"as_is", nil},
	{"no_rollup", ingestDropRollup},
	{"no_flaky", ingestDropFlaky},
	{"no_00006", append(append([]string{}, ingestDrop00006Btree...), ingestDrop00006Trgm...)},
	{"no_00006_trgm", ingestDrop00006Trgm},
	{"no_00006_btree", ingestDrop00006Btree},
	{"no_00010", ingestDrop00010},
	{"no_00011", ingestDrop00011},
	// The trigram index's pending list: off as 00006 created it, on with
	// the smallest limit (64 kB) as 00014 sets it.
	{"trgm_fastupdate_off", []string{"ALTER INDEX IF EXISTS records_run_name_trgm SET (fastupdate = off)"}},
	{"trgm_fastupdate_on", []string{"ALTER INDEX IF EXISTS records_run_name_trgm SET (fastupdate = on, gin_pending_list_limit = 64)"}},
	{"no_all", concat(ingestDropRollup, ingestDrop00006Btree, ingestDrop00006Trgm, ingestDrop00010, ingestDrop00011)},
}

var (
	ingestDropRollup = []string{
		"DROP TRIGGER records_rollup_insert ON records",
		"DROP TRIGGER records_rollup_update ON records",
		"DROP TRIGGER records_rollup_delete ON records",
	}
	ingestDropFlaky = []string{
		"DROP TRIGGER records_flaky_insert ON records",
		"DROP TRIGGER records_flaky_update ON records",
		"DROP TRIGGER records_flaky_delete ON records",
	}
	ingestDrop00006Btree = []string{
		"DROP INDEX records_name_order", "DROP INDEX records_status_order", "DROP INDEX records_pipeline_order",
		"DROP INDEX results_status_order", "DROP INDEX records_run_name",
	}
	ingestDrop00006Trgm = []string{"DROP INDEX IF EXISTS records_run_name_trgm"}
	ingestDrop00010     = []string{"DROP INDEX records_result_run", "DROP INDEX records_task_outcomes", "DROP INDEX records_pipeline_outcomes"}
	ingestDrop00011     = []string{"DROP INDEX records_name_order_desc", "DROP INDEX records_pipeline_order_desc"}
)

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

const (
	ingestWriters = 8
	ingestBatch   = 200 // writes per UpsertRecords call, as the harness
)

func BenchmarkIngest(b *testing.B) {
	runs := 20000
	if v := os.Getenv("ANNALS_INGEST_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("ANNALS_INGEST_RUNS=%q: want a positive number", v)
		}
		runs = n
	}
	for _, v := range ingestVariants {
		b.Run(v.name, func(b *testing.B) {
			var writes, secs, cpu, wal float64
			for range b.N {
				b.StopTimer()
				s, url := ingestStore(b)
				if err := execAll(url, v.drop); err != nil {
					b.Fatalf("preparing %s: %v", v.name, err)
				}
				db, err := sql.Open("pgx", url)
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				before := backendCPU(db)
				walBefore := walBytes(db)
				b.StartTimer()
				start := time.Now()
				n, err := ingestRuns(context.Background(), s, runs)
				if err != nil {
					b.Fatal(err)
				}
				writes += float64(n)
				secs += time.Since(start).Seconds()
				b.StopTimer()
				for pid, t := range backendCPU(db) {
					cpu += t - before[pid]
				}
				wal += walBytes(db) - walBefore
				b.StartTimer()
			}
			b.ReportMetric(writes/secs, "writes/s")
			// The CPU the database's backends spent per 1,000 writes:
			// unlike the rate, it hardly depends on what else the machine
			// runs. Zero when the server's processes are not visible here.
			b.ReportMetric(cpu*1000/writes, "backend-ms/1000writes")
			// WAL written per write, full-page images included: what
			// random insertions into many large indexes cost at scale. It
			// counts the whole server's WAL, so others' writes add to it.
			b.ReportMetric(wal/writes, "WAL-bytes/write")
			b.ReportMetric(0, "ns/op") // one op is a whole seed; the rate says it
		})
	}
}

// ingestStore returns a migrated store on a fresh schema, or, with
// ANNALS_INGEST_URL set, on that database as it is: a copy of one seeded
// earlier (CREATE DATABASE ... TEMPLATE), to measure ingest into a large
// table. The variant's statements change that database for good.
func ingestStore(b *testing.B) (*store.Store, string) {
	url := os.Getenv("ANNALS_INGEST_URL")
	if url == "" {
		return storetest.Open(b, "postgres")
	}
	ctx := context.Background()
	s, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	return s, url
}

// backendCPU returns the CPU milliseconds spent so far by each server
// process connected to db's database, read from /proc (a local server
// only; nil otherwise).
func backendCPU(db *sql.DB) map[int]float64 {
	rows, err := db.Query("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := map[int]float64{}
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) != nil {
			return nil
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis; utime and
		// stime are the 14th and 15th of the whole line, in clock ticks
		// (100 per second on Linux).
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		user, _ := strconv.ParseFloat(f[11], 64)
		sys, _ := strconv.ParseFloat(f[12], 64)
		out[pid] = (user + sys) * 10
	}
	return out
}

// walBytes returns the server's current WAL position in bytes.
func walBytes(db *sql.DB) float64 {
	var n float64
	if err := db.QueryRow("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8").Scan(&n); err != nil {
		return 0
	}
	return n
}

// execAll runs stmts on the store's schema (the URL carries its search_path).
func execAll(url string, stmts []string) error {
	if len(stmts) == 0 {
		return nil
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// ingestRuns writes runs finished Records with ingestWriters writers and
// returns the number of writes (three per Record).
func ingestRuns(ctx context.Context, s *store.Store, runs int) (int64, error) {
	var written atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, ingestWriters)
	base := time.Now().Add(-30 * 24 * time.Hour).UTC()
	for w := range ingestWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			var batch []store.RecordWrite
			for done := 0; done < runs/ingestWriters; {
				p := newIngestPipeline(rnd, base)
				for stage := range 3 {
					batch = append(batch, p.writes(rnd, stage)...)
				}
				done += 1 + len(p.tasks)
				if len(batch) >= ingestBatch || done >= runs/ingestWriters {
					if err := s.UpsertRecords(ctx, batch); err != nil {
						errs <- err
						return
					}
					written.Add(int64(len(batch)))
					batch = batch[:0]
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return written.Load(), <-errs
}

type ingestPipeline struct {
	ns, name, pipeline, uid string
	tasks                   []string
	start                   time.Time
	failed                  bool
}

func newIngestPipeline(rnd *rand.Rand, base time.Time) *ingestPipeline {
	p := &ingestPipeline{
		ns: fmt.Sprintf("team-%02d", rnd.IntN(10)), uid: uuid.NewString(), pipeline: fmt.Sprintf("pipeline-%d", rnd.IntN(20)),
		start: base.Add(time.Duration(rnd.Int64N(int64(30 * 24 * time.Hour)))), failed: rnd.IntN(5) == 0,
	}
	p.name = "run-" + p.uid[:8]
	for range 3 + rnd.IntN(6) {
		p.tasks = append(p.tasks, uuid.NewString())
	}
	return p
}

// filler makes an object about as large as a real run's (a few KB).
var filler = func() string {
	const text = "the quick brown fox builds and tests the web service "
	b := make([]byte, 2500)
	for i := range b {
		b[i] = text[i%len(text)]
	}
	return string(b)
}()

// writes returns the writes of the PipelineRun and its TaskRuns at stage 0
// (started), 1 (running) or 2 (finished).
func (p *ingestPipeline) writes(rnd *rand.Rand, stage int) []store.RecordWrite {
	result := store.ResultName(p.ns, p.uid)
	status, reason := "Unknown", "Running"
	var end *time.Time
	if stage == 2 {
		e := p.start.Add(time.Duration(60+rnd.IntN(900)) * time.Second)
		end = &e
		status, reason = "True", "Succeeded"
		if p.failed {
			status, reason = "False", "Failed"
		}
	}
	out := []store.RecordWrite{{ResultName: result, UID: p.uid, DataType: store.TypePipelineRun, UpdateSummary: true,
		Data: p.object("PipelineRun", p.name, p.uid, "", status, reason, end, 0)}}
	for i, uid := range p.tasks {
		st, re := status, reason
		if stage == 0 {
			st, re = "Unknown", "Pending"
		}
		out = append(out, store.RecordWrite{ResultName: result, UID: uid, DataType: store.TypeTaskRun,
			Data: p.object("TaskRun", fmt.Sprintf("%s-task-%d", p.name, i), uid, fmt.Sprintf("task-%d", i), st, re, end, 2+i%3)})
	}
	return out
}

func (p *ingestPipeline) object(kind, name, uid, task, status, reason string, end *time.Time, steps int) json.RawMessage {
	labels := map[string]string{"app": "web", "tekton.dev/pipeline": p.pipeline}
	if task != "" {
		labels["tekton.dev/pipelineRun"] = p.name
		labels["tekton.dev/task"] = task
	}
	st := map[string]any{"startTime": p.start.Format(time.RFC3339),
		"conditions": []any{map[string]any{"type": "Succeeded", "status": status, "reason": reason}}}
	if end != nil {
		st["completionTime"] = end.Format(time.RFC3339)
	}
	var stepStates []any
	for i := range steps {
		step := map[string]any{"name": fmt.Sprintf("step-%d", i)}
		if end != nil {
			step["terminated"] = map[string]any{"exitCode": 0, "finishedAt": end.Format(time.RFC3339)}
		}
		stepStates = append(stepStates, step)
	}
	if steps > 0 {
		st["steps"] = stepStates
	}
	b, _ := json.Marshal(map[string]any{"apiVersion": "tekton.dev/v1", "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": p.ns, "uid": uid, "labels": labels,
			"annotations": map[string]string{"description": filler[:1500]}},
		"spec":   map[string]any{"params": []any{map[string]any{"name": "revision", "value": "main"}}, "description": filler[:1000]},
		"status": st})
	return b
}
