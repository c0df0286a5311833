package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
)

// Config is one run of the harness.
type Config struct {
	DatabaseURL string
	Records     int // Records to seed (PipelineRuns and TaskRuns)
	Clients     int // concurrent GraphQL clients
	Requests    int // requests per query kind
	Namespaces  int
	// Upstream is the address of a Tekton Results API server (scheme, host
	// and port) to compare with, side by side; UpstreamToken its bearer token.
	Upstream      string
	UpstreamToken string
	// Reuse skips seeding when the database already holds Records (of an
	// earlier run with the same --namespaces), so a large database is
	// seeded once and measured many times, on a quiet machine.
	Reuse bool
	// SeedOnly stops after seeding (for a later run with Reuse).
	SeedOnly bool
	// Only, when set, measures only the queries whose names it matches
	// and skips the polling, side-by-side, storm and process parts: a
	// quick second look at a few figures.
	Only *regexp.Regexp
}

// Report is what a run measured; it is printed as a table and saved as JSON.
type Report struct {
	Machine   string          `json:"machine"`
	Database  string          `json:"database"`
	Records   int             `json:"records"`
	Clients   int             `json:"clients"`
	Ingest    []IngestResult  `json:"ingest"`
	Queries   []QueryResult   `json:"queries"`
	Plans     map[string]Plan `json:"plans"`
	PeakRSSMB float64         `json:"peak_rss_mb"`        // this process: clients and the in-process server
	ServerRSS float64         `json:"server_peak_rss_mb"` // `annals serve` on its own under the same load
	ServerRun []QueryResult   `json:"server_process_queries"`
	// SideBySide compares Annals' GraphQL with the Tekton Results REST API
	// (upstream's when given, and Annals' own).
	SideBySide []SideBySide `json:"side_by_side"`
	Started    time.Time    `json:"started"`
}

type IngestResult struct {
	Writers        int     `json:"writers"`
	Writes         int     `json:"writes"` // record writes, updates included
	RecordsPerSec  float64 `json:"records_per_sec"`
	WritesPerBatch int     `json:"writes_per_batch"`
}

type QueryResult struct {
	Name          string  `json:"name"`
	Requests      int     `json:"requests"`
	Errors        int     `json:"errors"`
	P50ms         float64 `json:"p50_ms"`
	P95ms         float64 `json:"p95_ms"`
	P99ms         float64 `json:"p99_ms"`
	PerSec        float64 `json:"per_sec"`
	MaxStatements int64   `json:"max_sql_statements"`
}

type Plan struct {
	Text    string `json:"text"`
	SeqScan bool   `json:"seq_scan_on_records"`
}

// writesPerBatch is how many record writes one UpsertRecords call carries,
// as a watcher coalescing a burst would.
const writesPerBatch = 200

// Run seeds the database, measures ingest, then queries through the real
// HTTP server on loopback.
func Run(ctx context.Context, cfg Config, log io.Writer) (*Report, error) {
	s, err := store.Open(ctx, cfg.DatabaseURL, store.Options{MaxOpenConns: 32})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		return nil, err
	}
	rep := &Report{Machine: fmt.Sprintf("%s/%s, %d CPUs", runtime.GOOS, runtime.GOARCH, runtime.NumCPU()), Database: s.Dialect().String(),
		Records: cfg.Records, Clients: cfg.Clients, Plans: map[string]Plan{}, Started: time.Now().UTC()}
	gen := newGenerator(cfg.Namespaces)

	existing := 0
	if cfg.Reuse {
		if existing, err = s.CountRecords(ctx, store.ListOptions{}); err != nil {
			return nil, err
		}
	}
	var logTaskRun string
	if existing > 0 {
		fmt.Fprintf(log, "reusing the %d Records already stored (no ingest figures)\n", existing)
		rep.Records = existing
		if err := gen.sampleNames(ctx, s); err != nil {
			return nil, err
		}
		// The 500 KB log of an earlier run, or a fresh one: seedLogs on a
		// hundred Records writes exactly it.
		if logTaskRun, err = reusedLog(ctx, s); err != nil {
			return nil, err
		}
	} else {
		if logTaskRun, err = seed(ctx, s, gen, cfg.Records, rep, log); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(log, "logs: stored on a share of TaskRuns; the 500 KB one belongs to %s\n", logTaskRun)
	if cfg.SeedOnly {
		return rep, nil
	}

	if err := s.Analyze(ctx); err != nil {
		return nil, err
	}
	h := server.New(server.Config{Store: s, Logger: slog.New(slog.DiscardHandler), Introspection: true})
	var statements sync.Map // query kind -> *atomic.Int64 (max statements of one request)
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, n := store.CountStatements(r.Context())
		h.ServeHTTP(w, r.WithContext(ctx))
		v, _ := statements.LoadOrStore(r.Header.Get("X-Bench-Query"), new(atomic.Int64))
		maxOf(v.(*atomic.Int64), n.Load())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: counted}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/graphql"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Clients}, Timeout: time.Minute}

	deepCursor, err := cursorAt(ctx, client, url, 50*min(999, cfg.Records/50-1))
	if err != nil {
		return nil, err
	}
	for _, q := range append(append(queries(gen, deepCursor), logQueries(logTaskRun)...), analyticsQueries(gen)...) {
		if cfg.Only != nil && !cfg.Only.MatchString(q.name) {
			continue
		}
		res := load(ctx, client, url, q, cfg.Clients, cfg.Requests)
		if v, ok := statements.Load(q.name); ok {
			res.MaxStatements = v.(*atomic.Int64).Load()
		}
		rep.Queries = append(rep.Queries, res)
		fmt.Fprintf(log, "query %-22s p50 %7.1f ms  p95 %7.1f ms  p99 %7.1f ms  %7.0f/s  %d statements  %d errors\n",
			res.Name, res.P50ms, res.P95ms, res.P99ms, res.PerSec, res.MaxStatements, res.Errors)
	}

	if cfg.Only != nil {
		return rep, nil
	}

	// Polling: the same dashboard, trend and facet asked again and again,
	// as open dashboards refresh, through a server with the response
	// cache on (the figures above are without it).
	cached, err := pollingQueries(ctx, s, gen, client, cfg)
	if err != nil {
		return nil, err
	}
	for _, res := range cached {
		rep.Queries = append(rep.Queries, res)
		fmt.Fprintf(log, "query %-22s p50 %7.1f ms  p95 %7.1f ms  p99 %7.1f ms  %7.0f/s  %d errors\n",
			res.Name, res.P50ms, res.P95ms, res.P99ms, res.PerSec, res.Errors)
	}

	rep.SideBySide, err = compareSideBySide(ctx, client, "http://"+ln.Addr().String(), cfg.Upstream, cfg.UpstreamToken, cfg.Clients, cfg.Requests)
	if err != nil {
		return nil, fmt.Errorf("side by side: %w", err)
	}
	printSideBySide(log, rep.SideBySide)

	// The storm: 1,000 cheap lookups while 10 expensive queries run; the
	// cost gate must keep the cheap ones near their calm latency.
	cheap, expensive := storm(ctx, client, url, gen, cfg.Clients)
	for _, res := range []QueryResult{cheap, expensive} {
		rep.Queries = append(rep.Queries, res)
		fmt.Fprintf(log, "storm %-22s p50 %7.1f ms  p95 %7.1f ms  p99 %7.1f ms  %7.0f/s  %d errors\n",
			res.Name, res.P50ms, res.P95ms, res.P99ms, res.PerSec, res.Errors)
	}

	for name, o := range map[string]store.ListOptions{
		"dashboard":    {Parent: gen.namespaces[0], RecordWhere: gen.pipelineRunsOnly(), First: 50},
		"cel_filter":   {Filter: `data.status.conditions[0].reason == "Failed" && data.metadata.labels["app"] == "web"`, First: 50},
		"typed_filter": {RecordWhere: gen.pipelineWindow(), First: 50},
		"deep_page":    {First: 50, After: deepCursor},
	} {
		text, err := s.ExplainRecords(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("explaining %s: %w", name, err)
		}
		rep.Plans[name] = Plan{Text: text, SeqScan: strings.Contains(text, "Seq Scan on records") || strings.Contains(text, "SCAN r\n")}
	}
	rep.PeakRSSMB = peakRSSMB()

	// The server on its own: its peak memory under the dashboard and the
	// storm, with the same number of clients.
	if rep.ServerRSS, rep.ServerRun, err = serverProcess(ctx, cfg, gen, client); err != nil {
		return nil, fmt.Errorf("annals serve as a process: %w", err)
	}
	fmt.Fprintf(log, "annals serve on its own: peak RSS %.0f MB\n", rep.ServerRSS)
	return rep, nil
}

// seed writes cfg.Records Records, measuring ingest: a tenth with one
// writer, the rest with eight. Each run is written three times (started,
// running, finished), as the watcher does. It then stores logs and returns
// the TaskRun holding the 500 KB one.
func seed(ctx context.Context, s *store.Store, gen *generator, records int, rep *Report, log io.Writer) (string, error) {
	oneWriter := records / 10
	for _, phase := range []struct{ writers, records int }{{1, oneWriter}, {8, records - oneWriter}} {
		res, err := ingest(ctx, s, gen, phase.writers, phase.records)
		if err != nil {
			return "", err
		}
		rep.Ingest = append(rep.Ingest, res)
		fmt.Fprintf(log, "ingest: %d writers, %d writes, %.0f records/s\n", res.Writers, res.Writes, res.RecordsPerSec)
	}
	return seedLogs(ctx, s, records)
}

// pollingQueries drives the dashboard tree, the 30-day trend (one window
// for the whole run, as a dashboard that refreshes sends) and a facet at a
// server with the response cache on.
func pollingQueries(ctx context.Context, s *store.Store, gen *generator, client *http.Client, cfg Config) ([]QueryResult, error) {
	h := server.New(server.Config{Store: s, Logger: slog.New(slog.DiscardHandler), ResponseCacheBytes: server.DefaultResponseCacheBytes})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/graphql"
	now := time.Now().UTC().Truncate(time.Minute)
	window := map[string]any{"after": now.Add(-30 * 24 * time.Hour).Format(time.RFC3339), "before": now.Format(time.RFC3339)}
	var out []QueryResult
	for _, q := range []query{
		{"p_dashboard_cached", queries(gen, "")[0].body},
		{"p_stats_30d_cached", func(*rand.Rand) map[string]any { return map[string]any{"query": statsTrendQuery, "variables": window} }},
		{"p_facet_all_cached", func(*rand.Rand) map[string]any {
			return map[string]any{"query": `{ recordFacets(parent: "-", dimension: PIPELINE) { value count } }`}
		}},
	} {
		out = append(out, load(ctx, client, url, q, cfg.Clients, cfg.Requests))
	}
	return out, nil
}

// serverProcess builds and starts `annals serve` on the database, drives
// the dashboard, the 500 KB log and the storm against it from cfg.Clients
// clients, and returns its peak RSS (VmHWM) and the latencies seen.
func serverProcess(ctx context.Context, cfg Config, gen *generator, client *http.Client) (float64, []QueryResult, error) {
	dir, err := os.MkdirTemp("", "annals-bench")
	if err != nil {
		return 0, nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "annals")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/annals-dev/annals/cmd/annals").CombinedOutput(); err != nil {
		return 0, nil, fmt.Errorf("building: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.CommandContext(ctx, bin, "serve", "--listen", addr, "--database-url", cfg.DatabaseURL, "--migrate=false", "--log-level", "error",
		"--response-cache-bytes", "0") // every request executed, as in the figures of the in-process server
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	base := "http://" + addr
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return 0, nil, fmt.Errorf("not ready at %s", addr)
		}
	}
	url := base + "/graphql"
	var results []QueryResult
	dashboard := queries(gen, "")[0]
	dashboard.name = "server_process_dashboard"
	results = append(results, load(ctx, client, url, dashboard, cfg.Clients, cfg.Requests))
	cheap, expensive := storm(ctx, client, url, gen, cfg.Clients)
	results = append(results, cheap, expensive)
	for _, r := range results {
		if r.Errors > 0 {
			return 0, nil, fmt.Errorf("%s: %d errors", r.Name, r.Errors)
		}
	}
	return rssOf(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)), results, nil
}

func maxOf(v *atomic.Int64, n int64) {
	for {
		cur := v.Load()
		if n <= cur || v.CompareAndSwap(cur, n) {
			return
		}
	}
}

func ingest(ctx context.Context, s *store.Store, gen *generator, writers, records int) (IngestResult, error) {
	var written atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			var batch []store.RecordWrite
			target := records / writers
			done := 0
			for done < target {
				p := gen.newPipeline(rnd)
				for _, stage := range []int{0, 1, 2} {
					runs := gen.writes(rnd, p, stage)
					batch = append(batch, runs...)
					if stage == 2 {
						done += len(runs)
					}
				}
				if len(batch) >= writesPerBatch || done >= target {
					if err := s.UpsertRecords(ctx, batch); err != nil {
						once.Do(func() { firstErr = err })
						return
					}
					written.Add(int64(len(batch)))
					batch = batch[:0]
				}
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	return IngestResult{Writers: writers, Writes: int(written.Load()), RecordsPerSec: float64(written.Load()) / secs, WritesPerBatch: writesPerBatch}, firstErr
}

type query struct {
	name string
	body func(rnd *rand.Rand) map[string]any
}

const dashboardQuery = `query($ns: String!) { records(parent: $ns, where: {dataTypes: ["tekton.dev/v1.PipelineRun"]}, first: 50) {
  edges { node { name pipelineRun { name status duration pipelineName taskRuns(first: 20) { nodes { taskRun { name status steps { name exitCode finishedAt } } } } } } } } }`

func queries(gen *generator, deepCursor string) []query {
	week := time.Now().Add(-7 * 24 * time.Hour).UTC().Format(time.RFC3339)
	return []query{
		{"a_dashboard", func(rnd *rand.Rand) map[string]any {
			return map[string]any{"query": dashboardQuery, "variables": map[string]any{"ns": gen.namespaces[rnd.IntN(len(gen.namespaces))]}}
		}},
		{"b_cel_status_label", func(*rand.Rand) map[string]any {
			return map[string]any{"query": `{ records(parent: "-", first: 50, filter: "data.status.conditions[0].reason == 'Failed' && data.metadata.labels['app'] == 'web'") { edges { node { name } } } }`}
		}},
		{"c_typed_pipeline_window", func(rnd *rand.Rand) map[string]any {
			return map[string]any{"query": `query($p: String!, $after: Time!) { records(parent: "-", first: 50, where: {pipeline: $p, started: {after: $after}}) { edges { node { name } } } }`,
				"variables": map[string]any{"p": fmt.Sprintf("pipeline-%d", rnd.IntN(20)), "after": week}}
		}},
		{"d_record_by_name", func(rnd *rand.Rand) map[string]any {
			return map[string]any{"query": `query($n: String!) { record(name: $n) { name dataType } }`, "variables": map[string]any{"n": gen.someRecordName(rnd)}}
		}},
		{"e_first_page", func(*rand.Rand) map[string]any {
			return map[string]any{"query": `{ records(parent: "-", first: 50) { edges { node { name } } } }`}
		}},
		{"e_deep_page", func(*rand.Rand) map[string]any {
			return map[string]any{"query": `query($c: String) { records(parent: "-", first: 50, after: $c) { edges { node { name } } } }`, "variables": map[string]any{"c": deepCursor}}
		}},
	}
}

// seedLogs stores step logs of 10 to 500 KB on one TaskRun in a hundred
// (at most 200), and one of exactly 500 KB, whose TaskRun it returns.
func seedLogs(ctx context.Context, s *store.Store, records int) (string, error) {
	page, err := s.ListRecords(ctx, store.ListOptions{Filter: "data_type == TASK_RUN", First: min(200, max(1, records/100))})
	if err != nil {
		return "", err
	}
	if len(page.Items) == 0 {
		return "", fmt.Errorf("no TaskRuns to attach logs to")
	}
	rnd := rand.New(rand.NewPCG(3, 5))
	for i, tr := range page.Items {
		size := 10<<10 + rnd.IntN(490<<10)
		if i == 0 {
			size = 500 << 10
		}
		if _, err := s.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: "build", Container: "step-build"}, logText(size), 0); err != nil {
			return "", err
		}
	}
	return page.Items[0].Name, nil
}

// reusedLog returns the TaskRun holding the 500 KB log of an earlier run,
// writing it only when there is none: each run writing one more would make
// the TaskRun's logs, read whole by f_log_whole_500KB, grow run by run.
func reusedLog(ctx context.Context, s *store.Store) (string, error) {
	page, err := s.ListRecords(ctx, store.ListOptions{Filter: "data_type == TASK_RUN", First: 1})
	if err != nil {
		return "", err
	}
	if len(page.Items) == 1 {
		tr := page.Items[0]
		logs, err := s.LogsForTaskRuns(ctx, []store.Key{tr.Key()})
		if err != nil {
			return "", err
		}
		if len(logs[tr.Key()]) > 0 {
			return tr.Name, nil
		}
	}
	return seedLogs(ctx, s, 100)
}

// logText is size bytes of build output, line by line.
func logText(size int) io.Reader {
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "%06d compiling package %d of the web service: ok\n", i, i%400)
	}
	return strings.NewReader(b.String()[:size])
}

// logQueries read the 500 KB log whole and by its last 100 lines.
func logQueries(taskRun string) []query {
	vars := map[string]any{"n": taskRun}
	return []query{
		{"f_log_whole_500KB", func(*rand.Rand) map[string]any {
			return map[string]any{"query": `query($n: String!) { record(name: $n) { taskRun { logs { size text } } } }`, "variables": vars}
		}},
		{"f_log_tail_100_lines", func(*rand.Rand) map[string]any {
			return map[string]any{"query": `query($n: String!) { record(name: $n) { taskRun { logs { tail(lines: 100) } } } }`, "variables": vars}
		}},
	}
}

const expensiveQuery = `{ records(parent: "-", first: 500) { nodes { name data pipelineRun { taskRuns(first: 20) { nodes { name data } } } } } }`

// storm runs 1,000 record(name) lookups from clients clients while 10
// expensive queries (cost about 32,500: each may read 10,000 rows)
// run at once, and returns the latencies of both.
func storm(ctx context.Context, client *http.Client, url string, gen *generator, clients int) (cheap, expensive QueryResult) {
	var wg sync.WaitGroup
	wg.Go(func() {
		expensive = load(ctx, client, url, query{"storm_expensive_x10", func(*rand.Rand) map[string]any {
			return map[string]any{"query": expensiveQuery}
		}}, 10, 10)
	})
	time.Sleep(50 * time.Millisecond) // the expensive ones are under way
	cheap = load(ctx, client, url, query{"storm_cheap_record", func(rnd *rand.Rand) map[string]any {
		return map[string]any{"query": `query($n: String!) { record(name: $n) { name dataType } }`, "variables": map[string]any{"n": gen.someRecordName(rnd)}}
	}}, clients, 1000)
	wg.Wait()
	return cheap, expensive
}

// cursorAt walks the newest-first list to position pos and returns its cursor.
func cursorAt(ctx context.Context, client *http.Client, url string, pos int) (string, error) {
	cursor := ""
	for pos > 0 {
		step := min(pos, 1000)
		var out struct {
			Data struct {
				Records struct{ PageInfo struct{ EndCursor string } }
			}
		}
		body := map[string]any{"query": `query($c: String, $n: Int) { records(parent: "-", first: $n, after: $c) { pageInfo { endCursor } } }`,
			"variables": map[string]any{"c": nilIfEmpty(cursor), "n": step}}
		if err := post(ctx, client, url, "walk", body, &out); err != nil {
			return "", err
		}
		cursor, pos = out.Data.Records.PageInfo.EndCursor, pos-step
	}
	return cursor, nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func post(ctx context.Context, client *http.Client, url, name string, body map[string]any, out any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Bench-Query", name)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || bytes.Contains(raw, []byte(`"errors"`)) {
		return fmt.Errorf("%s: status %d: %.300s", name, resp.StatusCode, raw)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// load runs requests of one query from clients concurrent clients.
func load(ctx context.Context, client *http.Client, url string, q query, clients, requests int) QueryResult {
	return measure(q.name, clients, requests, func(rnd *rand.Rand) error {
		return post(ctx, client, url, q.name, q.body(rnd), nil)
	})
}

// measure runs do requests times from clients concurrent clients and
// returns the latencies of the calls that succeeded.
func measure(name string, clients, requests int, do func(rnd *rand.Rand) error) QueryResult {
	var mu sync.Mutex
	var latencies []time.Duration
	var errs atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(c), 7))
			for next.Add(1) <= int64(requests) {
				t := time.Now()
				if err := do(rnd); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, err)
					}
					continue
				}
				mu.Lock()
				latencies = append(latencies, time.Since(t))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Microseconds()) / 1000
	}
	return QueryResult{Name: name, Requests: requests, Errors: int(errs.Load()), P50ms: pct(0.50), P95ms: pct(0.95), P99ms: pct(0.99),
		PerSec: float64(len(latencies)) / elapsed}
}

// peakRSSMB is the process's peak resident memory (server and clients).
func peakRSSMB() float64 { return rssOf("/proc/self/status") }

// rssOf reads the peak resident memory (VmHWM) from a /proc status file.
func rssOf(statusFile string) float64 {
	b, err := os.ReadFile(statusFile)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

// generator makes realistic PipelineRuns with 3 to 8 TaskRuns each.
type generator struct {
	namespaces []string
	mu         sync.Mutex
	names      []string // a sample of stored record names, for record(name)
	base       time.Time
}

func newGenerator(namespaces int) *generator {
	g := &generator{base: time.Now().Add(-30 * 24 * time.Hour).UTC()}
	for i := range max(namespaces, 1) {
		g.namespaces = append(g.namespaces, fmt.Sprintf("team-%02d", i))
	}
	return g
}

type storeWhere = filter.RecordWhere

func (g *generator) pipelineRunsOnly() *storeWhere {
	return &storeWhere{DataTypes: []string{store.TypePipelineRun}}
}

func (g *generator) pipelineWindow() *storeWhere {
	p := "pipeline-3"
	after := time.Now().Add(-7 * 24 * time.Hour)
	w := &storeWhere{PipelineName: &p}
	w.Started.After = &after
	return w
}

// sampleNames fills the sample of record names from a database seeded
// earlier: TaskRuns of the first pages of the default order.
func (g *generator) sampleNames(ctx context.Context, s *store.Store) error {
	o := store.ListOptions{Filter: "data_type == TASK_RUN", First: 1000}
	for range 5 {
		page, err := s.ListRecords(ctx, o)
		if err != nil {
			return err
		}
		g.mu.Lock()
		for _, r := range page.Items {
			g.names = append(g.names, r.Name)
		}
		g.mu.Unlock()
		if !page.HasNextPage {
			break
		}
		o.After = page.EndCursor()
	}
	return nil
}

func (g *generator) someRecordName(rnd *rand.Rand) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.names) == 0 {
		return "none/results/00000000-0000-4000-8000-000000000000/records/00000000-0000-4000-8000-000000000000"
	}
	return g.names[rnd.IntN(len(g.names))]
}

var padding = strings.Repeat("The quick brown fox builds and tests the web service. ", 40)

// writes returns the writes of one PipelineRun and its TaskRuns at a
// stage: 0 started, 1 running, 2 finished. The three stages of a pipeline
// share its uids, so stages 1 and 2 are updates.
func (g *generator) writes(rnd *rand.Rand, p *pipelineState, stage int) []store.RecordWrite {
	ns := p.ns
	resultName := store.ResultName(ns, p.prUID)
	start := p.start
	status, reason := "Unknown", "Running"
	var end *time.Time
	if stage == 2 {
		e := start.Add(time.Duration(60+rnd.IntN(900)) * time.Second)
		end = &e
		status, reason = "True", "Succeeded"
		if p.failed {
			status, reason = "False", "Failed"
		}
	}
	writes := []store.RecordWrite{{ResultName: resultName, UID: p.prUID, DataType: store.TypePipelineRun, UpdateSummary: true,
		Data: runJSON("PipelineRun", ns, p.name, p.prUID, p.pipeline, "", status, reason, start, end, p.app, 0)}}
	for i, tr := range p.trUIDs {
		trStatus, trReason := status, reason
		if stage == 0 {
			trStatus, trReason = "Unknown", "Pending"
		}
		writes = append(writes, store.RecordWrite{ResultName: resultName, UID: tr, DataType: store.TypeTaskRun,
			Data: runJSON("TaskRun", ns, fmt.Sprintf("%s-task-%d", p.name, i), tr, p.pipeline, p.name, trStatus, trReason, start, end, p.app, 2+rnd.IntN(3))})
	}
	if stage == 2 && rnd.IntN(50) == 0 {
		g.mu.Lock()
		if len(g.names) < 10000 {
			g.names = append(g.names, store.RecordName(ns, p.prUID, p.trUIDs[0]))
		}
		g.mu.Unlock()
	}
	return writes
}

type pipelineState struct {
	ns, name, pipeline, app, prUID string
	trUIDs                         []string
	start                          time.Time
	failed                         bool
}

func (g *generator) newPipeline(rnd *rand.Rand) *pipelineState {
	id := uuid.NewString()
	p := &pipelineState{
		ns: g.namespaces[rnd.IntN(len(g.namespaces))], name: "run-" + id[:8], pipeline: fmt.Sprintf("pipeline-%d", rnd.IntN(20)),
		app: []string{"web", "api", "worker"}[rnd.IntN(3)], prUID: id,
		start:  g.base.Add(time.Duration(rnd.Int64N(int64(30 * 24 * time.Hour)))),
		failed: rnd.IntN(5) == 0,
	}
	for range 3 + rnd.IntN(6) {
		p.trUIDs = append(p.trUIDs, uuid.NewString())
	}
	return p
}

func runJSON(kind, ns, name, uid, pipeline, owner, status, reason string, start time.Time, end *time.Time, app string, steps int) json.RawMessage {
	labels := map[string]string{"app": app, "tekton.dev/pipeline": pipeline, "app.kubernetes.io/managed-by": "tekton-pipelines"}
	meta := map[string]any{"name": name, "namespace": ns, "uid": uid, "labels": labels,
		"annotations": map[string]string{"description": padding[:1500]}}
	if owner != "" {
		labels["tekton.dev/pipelineRun"] = owner
		labels["tekton.dev/task"] = "task-" + name[len(name)-1:]
	}
	st := map[string]any{"startTime": start.Format(time.RFC3339), "conditions": []any{map[string]any{"type": "Succeeded", "status": status, "reason": reason}}}
	if end != nil {
		st["completionTime"] = end.Format(time.RFC3339)
	}
	var stepStates []any
	for i := range steps {
		s := map[string]any{"name": fmt.Sprintf("step-%d", i), "container": fmt.Sprintf("step-step-%d", i)}
		if end != nil {
			s["terminated"] = map[string]any{"exitCode": 0, "startedAt": start.Format(time.RFC3339), "finishedAt": end.Format(time.RFC3339), "reason": "Completed"}
		}
		stepStates = append(stepStates, s)
	}
	if steps > 0 {
		st["steps"] = stepStates
	}
	obj := map[string]any{"apiVersion": "tekton.dev/v1", "kind": kind, "metadata": meta, "status": st,
		"spec": map[string]any{"params": []any{map[string]any{"name": "revision", "value": "main"}}, "description": padding[:1000+len(name)%1000]}}
	b, _ := json.Marshal(obj)
	return b
}
