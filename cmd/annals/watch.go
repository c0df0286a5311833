package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	tekton "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/annals-dev/annals/retention"
	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/watcher"
)

func runWatch(ctx context.Context, args []string) error {
	fs := newFlagSet("watch", "Watches TaskRuns and PipelineRuns (tekton.dev/v1) and records them, with their logs, into the store.\n"+
		"Connects with --kubeconfig, $KUBECONFIG, or the in-cluster service account.")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (\"\": $KUBECONFIG, ~/.kube/config, or in-cluster)")
	qps := fs.Float64("kube-api-qps", 50, "requests per second to the Kubernetes API, sustained")
	burst := fs.Int("kube-api-burst", 100, "requests to the Kubernetes API, in a burst")
	namespaces := fs.String("namespaces", "", "comma-separated namespaces to watch (\"\": all)")
	selector := fs.String("label-selector", "", "watch only runs matching this label selector, e.g. app=web,tier!=test")
	workers := fs.Int("workers", 16, "runs reconciled in parallel; their writes share store transactions")
	resync := fs.Duration("resync-period", 10*time.Hour, "replay every run this often, as a safety net")
	logs := fs.Bool("logs", true, "store the step logs of finished TaskRuns")
	logLimit := fs.Int64("log-limit-bytes", 16<<20, "most bytes kept of one step's log; longer logs are cut with a marker (0: no limit)")
	liveLogs := fs.Duration("live-log-interval", 2*time.Second, "follow the logs of running TaskRuns' steps and store what arrived at least this often, for reading them live (0: read each log once its TaskRun finishes)")
	logFollowers := fs.Int("log-followers", 64, "most step logs streamed from the Kubernetes API at once; more wait for a free stream")
	logStorage := logStorageFlags(fs)
	grace := fs.Duration("completed-run-grace-period", 0, "delete finished runs from the cluster this long after completion, once stored (0: never)")
	finalizers := fs.Bool("finalizers", false, "hold runs deleted by others with a finalizer until their final state and logs are stored")
	leaderElect := fs.Bool("leader-elect", true, "run only while holding the leader Lease, so that several replicas are safe")
	leaseNS := fs.String("leader-election-namespace", "", "namespace of the Lease (\"\": $POD_NAMESPACE, else default)")
	leaseName := fs.String("leader-election-id", "annals-watcher", "name of the Lease")
	listen := fs.String("listen", ":9090", "address of /metrics, /healthz and /readyz (\"\": none)")
	retentionPolicy := fs.String("retention-policy-file", "", "also prune old Results by this policy, on its runAt schedule, in this process (\"\": no; see 'annals retention')")
	dbURL := databaseURLFlag(fs)
	maxConns := fs.Int("max-open-conns", 0, "largest number of open database connections (0: 20 on PostgreSQL)")
	migrationWait := fs.Duration("wait-for-migrations", 5*time.Minute, "how long to wait at start for the database to be migrated (by 'annals serve' or 'annals migrate')")
	logger := loggingFlags(fs)
	log, err := parseAndLog(fs, args, logger)
	if err != nil {
		return err
	}
	cfg, err := kubeConfig(*kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst, cfg.UserAgent = float32(*qps), *burst, "annals-watcher"
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	tk, err := tekton.NewForConfig(cfg)
	if err != nil {
		return err
	}
	s, err := dbURL.open(ctx, logStorage.apply(store.Options{MaxOpenConns: *maxConns}))
	if err != nil {
		return err
	}
	defer s.Close()
	if err := waitReady(ctx, s, log, *migrationWait); err != nil {
		return err
	}
	go drainLogDeletes(ctx, s, log, time.Minute)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w, err := watcher.New(watcher.Config{
		Namespaces: splitList(*namespaces), LabelSelector: *selector, Workers: *workers, Resync: *resync,
		Logs: *logs, LogLimit: *logLimit, LiveLogInterval: *liveLogs, LogFollowers: *logFollowers, CompletedRunGracePeriod: *grace, Finalizers: *finalizers,
	}, watcher.Options{Store: s, Kube: kube, Tekton: tk, Log: log, Metrics: watcher.NewMetrics(reg)})
	if err != nil {
		return err
	}
	if *listen != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprintln(rw, "ok") })
		// A follower is ready: it is a healthy standby, and nothing routes to it.
		mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
			if err := s.Ping(r.Context()); err != nil {
				http.Error(rw, "database unreachable", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(rw, "ok")
		})
		go func() {
			if err := server.Serve(ctx, *listen, mux, log, 5*time.Second); err != nil {
				log.Error("metrics endpoint stopped", "error", err)
			}
		}()
	}
	if *retentionPolicy != "" {
		// Replicas may all run it: the agent's database lock lets one prune.
		cfg, err := retention.LoadFile(*retentionPolicy)
		if err != nil {
			return err
		}
		agent := &retention.Agent{Store: s, Config: cfg, Log: log.With("component", "retention"), BatchSize: 100,
			Metrics: retention.NewMetrics(reg), Reload: func() (*retention.Config, error) { return retention.LoadFile(*retentionPolicy) }}
		go func() {
			if err := agent.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("retention stopped", "error", err)
			}
		}()
	}
	if !*leaderElect {
		return w.Run(ctx)
	}
	ns := *leaseNS
	if ns == "" {
		if ns = os.Getenv("POD_NAMESPACE"); ns == "" {
			ns = "default"
		}
	}
	host, _ := os.Hostname()
	err = w.RunWithLeader(ctx, kube, watcher.Leader{Namespace: ns, Name: *leaseName, Identity: host + "_" + uuid.NewString()[:8]})
	if errors.Is(err, watcher.ErrLeadershipLost) {
		return fmt.Errorf("%w; exiting so that this replica restarts as a follower", err)
	}
	return err
}

// waitReady waits until the database is reachable and migrated, so that a
// watcher deployed beside the API starts once the API has migrated instead
// of failing in a loop.
func waitReady(ctx context.Context, s *store.Store, log *slog.Logger, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		err := s.Ready(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("database not ready (run 'annals migrate', or start 'annals serve', which migrates): %w", err)
		}
		log.Info("waiting for the database to be migrated", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// kubeConfig loads the client configuration: an explicit kubeconfig file,
// else $KUBECONFIG or ~/.kube/config, else the in-cluster service account.
func kubeConfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes configuration: %w", err)
	}
	return cfg, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
