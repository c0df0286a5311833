package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/annals-dev/annals/retention"
	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
)

func runRetention(ctx context.Context, args []string) error {
	fs := newFlagSet("retention", "Prunes old Results, with their Records and logs, by the policy in --policy-file (Tekton Results'\n"+
		"retention ConfigMap keys, or the same ConfigMap exported as YAML), on its runAt schedule or once.")
	policyFile := fs.String("policy-file", "", "YAML policy file or ConfigMap (required)")
	once := fs.Bool("once", false, "run once and exit (for a Kubernetes CronJob) instead of on the schedule")
	dryRun := fs.Bool("dry-run", false, "print what would be deleted, per policy and namespace, and delete nothing")
	batch := fs.Int("batch-size", 100, "Results deleted per transaction")
	metricsAddr := fs.String("metrics-listen", "", "address of the /metrics and /healthz endpoints while running on the schedule (\"\": none), e.g. :9090")
	dbURL := databaseURLFlag(fs)
	logs := logStorageFlags(fs)
	maxConns := fs.Int("max-open-conns", 0, "largest number of open database connections (0: 20 on PostgreSQL)")
	logger := loggingFlags(fs)
	log, err := parseAndLog(fs, args, logger)
	if err != nil {
		return err
	}
	if *policyFile == "" {
		return fmt.Errorf("--policy-file is required")
	}
	if *batch < 1 {
		return fmt.Errorf("--batch-size must be at least 1")
	}
	cfg, err := retention.LoadFile(*policyFile)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	s, err := dbURL.open(ctx, logs.apply(store.Options{MaxOpenConns: *maxConns}))
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Ready(ctx); err != nil {
		return fmt.Errorf("database not migrated (run 'annals migrate'): %w", err)
	}
	agent := &retention.Agent{Store: s, Config: cfg, Log: log, BatchSize: *batch, DryRun: *dryRun}
	if !*once && !*dryRun {
		go drainLogDeletes(ctx, s, log, time.Minute)
		if *metricsAddr != "" {
			reg := prometheus.NewRegistry()
			agent.Metrics = retention.NewMetrics(reg)
			mux := http.NewServeMux()
			mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
			go func() {
				if err := server.Serve(ctx, *metricsAddr, mux, log, 5*time.Second); err != nil {
					log.Error("metrics endpoint stopped", "error", err)
				}
			}()
		}
		agent.Reload = func() (*retention.Config, error) { return retention.LoadFile(*policyFile) }
		return agent.Run(ctx)
	}
	rep, err := agent.RunOnceAndLog(ctx)
	if errors.Is(err, retention.ErrLocked) {
		return nil // another agent is pruning: this run has nothing to do (logged)
	}
	if err != nil {
		return err
	}
	if !*dryRun {
		// The objects of the logs just deleted go now, not at a next run.
		if _, err := s.DrainLogDeletes(ctx, 1<<30); err != nil {
			log.Warn("deleting log objects (the next run retries)", "error", err)
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	verb := "deleted"
	if *dryRun {
		verb = "would delete"
	}
	fmt.Fprintf(w, "POLICY\tNAMESPACE\tRESULTS\tRECORDS (%s)\n", verb)
	results, records := 0, 0
	for _, c := range rep.Counts {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", c.Policy, c.Namespace, c.Results, c.Records)
		results, records = results+c.Results, records+c.Records
	}
	fmt.Fprintf(w, "total\t\t%d\t%d\n", results, records)
	return w.Flush()
}
