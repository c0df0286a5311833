// Command bench is the performance harness of Annals: it seeds a realistic
// dataset through the store's write path, measures ingest with one and eight
// writers, then drives the real HTTP server on loopback with concurrent
// GraphQL clients, and reports latencies, SQL statements per request, query
// plans and peak memory as a table and as JSON for comparison between commits.
//
//	go run ./bench --database-url postgres://postgres@127.0.0.1:5432/bench?sslmode=disable --records 100000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"time"
)

func main() {
	cfg := Config{}
	flag.StringVar(&cfg.DatabaseURL, "database-url", "", "database to seed and query (default: a fresh SQLite file in a temporary directory); use an empty database")
	flag.IntVar(&cfg.Records, "records", 10000, "Records to seed (PipelineRuns with 3-8 TaskRuns each)")
	flag.IntVar(&cfg.Clients, "clients", 16, "concurrent GraphQL clients")
	flag.IntVar(&cfg.Requests, "requests", 500, "requests per query kind")
	flag.IntVar(&cfg.Namespaces, "namespaces", 10, "namespaces the runs are spread over")
	flag.StringVar(&cfg.Upstream, "upstream", "", "a Tekton Results API server (http[s]://host:port) holding the same runs, to compare with side by side")
	flag.StringVar(&cfg.UpstreamToken, "upstream-token", "", "bearer token for --upstream")
	flag.BoolVar(&cfg.Reuse, "reuse", false, "when the database already holds Records (an earlier run's, same --namespaces), skip seeding and measure them")
	flag.BoolVar(&cfg.SeedOnly, "seed-only", false, "stop after seeding, for later runs with --reuse")
	only := flag.String("only", "", "measure only the queries whose names match this regular expression (e.g. '^g_stats'), and none of the later parts")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	out := flag.String("out", "", "write the report as JSON to this file (default bench/results/<time>.json)")
	flag.Parse()
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			fmt.Fprintf(os.Stderr, "--only: %v\n", err)
			os.Exit(2)
		}
		cfg.Only = re
	}
	if cfg.DatabaseURL == "" {
		dir, err := os.MkdirTemp("", "annals-bench")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(dir)
		cfg.DatabaseURL = filepath.Join(dir, "bench.db")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := Run(ctx, cfg, os.Stdout)
	if err != nil {
		pprof.StopCPUProfile()
		fail(err)
	}
	printTable(rep)
	if *out == "" {
		*out = filepath.Join("bench", "results", rep.Started.Format("20060102-150405")+".json")
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		fail(err)
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fail(err)
	}
	fmt.Println("report written to", *out)
}

func printTable(rep *Report) {
	fmt.Printf("\nAnnals benchmark: %d Records on %s (%s), %s\n\n", rep.Records, rep.Database, rep.Machine, rep.Started.Format(time.RFC3339))
	fmt.Println("| ingest | writes | Records/s |")
	fmt.Println("|---|---:|---:|")
	for _, in := range rep.Ingest {
		fmt.Printf("| %d writer(s), %d per batch | %d | %.0f |\n", in.Writers, in.WritesPerBatch, in.Writes, in.RecordsPerSec)
	}
	fmt.Println("\n| query | p50 ms | p95 ms | p99 ms | req/s | SQL statements | errors |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, q := range rep.Queries {
		fmt.Printf("| %s | %.1f | %.1f | %.1f | %.0f | %d | %d |\n", q.Name, q.P50ms, q.P95ms, q.P99ms, q.PerSec, q.MaxStatements, q.Errors)
	}
	fmt.Println()
	for name, p := range rep.Plans {
		fmt.Printf("plan %s: sequential scan on records: %v\n", name, p.SeqScan)
	}
	printSideBySide(os.Stdout, rep.SideBySide)
	fmt.Println()
	fmt.Printf("peak RSS (server and clients in one process): %.0f MB\n", rep.PeakRSSMB)
	fmt.Printf("\n`annals serve` as its own process, %d clients: peak RSS %.0f MB\n", rep.Clients, rep.ServerRSS)
	for _, q := range rep.ServerRun {
		fmt.Printf("| %s | %.1f | %.1f | %.1f | %.0f | | %d |\n", q.Name, q.P50ms, q.P95ms, q.P99ms, q.PerSec, q.Errors)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
