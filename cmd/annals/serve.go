package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/server/auth"
	"github.com/annals-dev/annals/store"
)

func runServe(ctx context.Context, args []string) error {
	fs := newFlagSet("serve", "Serves the GraphQL API at /graphql, the GraphiQL playground at /, and Tekton Results' REST (/apis/results.tekton.dev/v1alpha2/) and gRPC API on the same port.")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	dbURL := databaseURLFlag(fs)
	migrate := fs.Bool("migrate", true, "apply pending database migrations at start")
	logDir := logDirFlag(fs)
	maxConns := fs.Int("max-open-conns", 0, "largest number of open database connections (0: 20 on PostgreSQL)")
	introspection := fs.Bool("introspection", true, "allow GraphQL schema introspection (the playground needs it)")
	maxDepth := fs.Int("max-depth", 15, "deepest nesting of selections a query may have")
	maxAliases := fs.Int("max-aliases", 200, "most aliased fields one operation may have")
	maxComplexity := fs.Int("max-complexity", 50000, "largest cost of one operation: fields counted, times the page size of each connection they are in")
	expensiveCost := fs.Int("expensive-cost", 5000, "operations of at least this cost count as expensive and run --expensive-concurrency at a time, so cheap ones never wait behind them")
	expensiveConcurrency := fs.Int("expensive-concurrency", server.DefaultExpensiveConcurrency(), "expensive operations run at once (default: half the CPUs); the others wait up to --request-timeout")
	maxBody := fs.Int64("max-body-bytes", 1<<20, "largest request body in bytes")
	timeout := fs.Duration("request-timeout", 30*time.Second, "time limit of one request; its SQL is cancelled past it")
	drain := fs.Duration("shutdown-timeout", 20*time.Second, "time given to requests under way to finish at shutdown")
	defaultAuth := "none"
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		defaultAuth = "kubernetes"
	}
	authMode := fs.String("auth", defaultAuth, "kubernetes: TokenReview and SubjectAccessReview on every request; none: no checks, loopback only (default: kubernetes inside a cluster)")
	authTTL := fs.Duration("auth-cache-ttl", 10*time.Second, "how long a checked token and an access decision are reused")
	audiences := fs.String("token-audiences", "", "comma-separated audiences tokens must carry (\"\": the API server's)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig for --auth=kubernetes (\"\": $KUBECONFIG, ~/.kube/config, or in-cluster)")
	insecureRemote := fs.Bool("insecure-allow-unauthenticated-remote-access", false,
		"with --auth=none, allow listening on a non-loopback address: anyone who can reach it reads and changes everything")
	tlsCert := fs.String("tls-cert", "", "PEM certificate (chain) to serve HTTPS with; reloaded when the file changes")
	tlsKey := fs.String("tls-key", "", "PEM private key of --tls-cert")
	clientCA := fs.String("tls-client-ca", "", "PEM CA bundle: client certificates it signed authenticate their callers (CN user, O groups)")
	otlpEndpoint := fs.String("otlp-endpoint", "", "send OpenTelemetry traces (requests, resolvers, SQL) to this OTLP/HTTP collector, e.g. http://otel-collector:4318 (\"\": tracing off)")
	sampleRatio := fs.Float64("trace-sample-ratio", 0.1, "share of requests traced when the caller did not decide (traceparent)")
	logger := loggingFlags(fs)
	log, err := parseAndLog(fs, args, logger)
	if err != nil {
		return err
	}
	var authz *auth.Kubernetes
	switch *authMode {
	case "none":
		if !isLoopback(*listen) && !*insecureRemote {
			return fmt.Errorf("--auth=none serves everything to anyone, so it listens on loopback only; %q is not. "+
				"Use --auth=kubernetes, or pass --insecure-allow-unauthenticated-remote-access if you really mean it", *listen)
		}
		if !isLoopback(*listen) {
			log.Warn("AUTHENTICATION IS OFF on a non-loopback address: anyone who can reach it reads and changes every run", "listen", *listen)
		}
	case "kubernetes":
		cfg, err := kubeConfig(*kubeconfig)
		if err != nil {
			return err
		}
		kube, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		authz = auth.NewKubernetes(kube, auth.Options{CacheTTL: *authTTL, Audiences: splitList(*audiences)})
	default:
		return fmt.Errorf("--auth %q: want kubernetes or none", *authMode)
	}
	if *otlpEndpoint != "" {
		shutdown, err := server.SetupTracing(ctx, *otlpEndpoint, *sampleRatio, version)
		if err != nil {
			return err
		}
		defer shutdown(context.WithoutCancel(ctx))
	}
	var tlsConfig *tls.Config
	if *tlsCert != "" || *tlsKey != "" {
		if *tlsCert == "" || *tlsKey == "" {
			return fmt.Errorf("--tls-cert and --tls-key go together")
		}
		if tlsConfig, err = server.TLSConfig(*tlsCert, *tlsKey, *clientCA, log); err != nil {
			return err
		}
	} else if *clientCA != "" {
		return fmt.Errorf("--tls-client-ca needs --tls-cert and --tls-key")
	}
	s, err := store.Open(ctx, *dbURL, store.Options{MaxOpenConns: *maxConns, LogDir: *logDir})
	if err != nil {
		return err
	}
	defer s.Close()
	if *migrate {
		status, err := s.Migrate(ctx)
		if err != nil {
			return err
		}
		log.Info("database ready", "schema_version", status.Version, "applied_now", len(status.Applied))
	} else if err := s.Ready(ctx); err != nil {
		return fmt.Errorf("database not migrated (run 'annals migrate' or drop --migrate=false): %w", err)
	}
	h := server.New(server.Config{
		Store: s, Logger: log, MaxBodyBytes: *maxBody, MaxDepth: *maxDepth, MaxAliases: *maxAliases, MaxComplexity: *maxComplexity,
		RequestTimeout: *timeout, Introspection: *introspection, Auth: authz,
		ExpensiveCost: *expensiveCost, ExpensiveConcurrency: *expensiveConcurrency,
	})
	return server.ServeTLS(ctx, *listen, tlsConfig, h, log, *drain)
}

// isLoopback reports whether addr (host:port) listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
