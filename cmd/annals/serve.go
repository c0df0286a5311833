package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/server/auth"
	"github.com/annals-dev/annals/store"
)

func runServe(ctx context.Context, args []string) error {
	fs := newFlagSet("serve", "Serves the GraphQL API at /graphql, the GraphiQL playground at /, and Tekton Results' REST (/apis/results.tekton.dev/v1alpha2/) and gRPC API on the same port.")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	dbURL := databaseURLFlag(fs)
	migrate := fs.Bool("migrate", true, "apply pending database migrations at start")
	logs := logStorageFlags(fs)
	maxConns := fs.Int("max-open-conns", 0, "largest number of open database connections (0: 20 on PostgreSQL)")
	introspection := fs.Bool("introspection", true, "allow GraphQL schema introspection (the playground needs it)")
	maxDepth := fs.Int("max-depth", 15, "deepest nesting of selections a query may have")
	maxAliases := fs.Int("max-aliases", 200, "most aliased fields one operation may have")
	maxSelections := fs.Int("max-selections", 10000, "most selections one query may have once its fragments are expanded (each spread counts its fragment again)")
	maxComplexity := fs.Int("max-complexity", 50000, "largest cost of one operation: fields counted, times the page size of each connection they are in")
	expensiveCost := fs.Int("expensive-cost", 5000, "operations of at least this cost count as expensive and run --expensive-concurrency at a time, so cheap ones never wait behind them")
	expensiveConcurrency := fs.Int("expensive-concurrency", server.DefaultExpensiveConcurrency(), "expensive operations run at once (default: half the CPUs); the others wait up to --request-timeout")
	maxBody := fs.Int64("max-body-bytes", 1<<20, "largest request body in bytes")
	responseCache := fs.Int64("response-cache-bytes", server.DefaultResponseCacheBytes,
		"bytes of GraphQL query answers kept for identical requests of the same caller, dropped on any run change and after --auth-cache-ttl (0: no cache)")
	timeout := fs.Duration("request-timeout", 20*time.Second, "time limit of one request (and of each query of a subscription); its SQL is cancelled past it")
	logSearchBytes := fs.Int64("log-search-max-bytes", 1<<30, "most log bytes one logSearch reads; it stops there and says so")
	logSearchTimeout := fs.Duration("log-search-timeout", 10*time.Second, "most time one logSearch reads logs (under --request-timeout); it stops there and says so")
	statementTimeout := fs.Duration("statement-timeout", 10*time.Second,
		"time limit of one SQL statement, enforced by the database (PostgreSQL statement_timeout, unless the URL sets one); 0: none")
	drain := fs.Duration("shutdown-timeout", 20*time.Second, "time given to requests under way to finish at shutdown; those still running then are cancelled, their SQL with them")
	defaultAuth := "none"
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		defaultAuth = "kubernetes"
	}
	authMode := fs.String("auth", defaultAuth, "kubernetes: TokenReview and SubjectAccessReview on every request; none: no checks, loopback only (default: kubernetes inside a cluster)")
	authTTL := fs.Duration("auth-cache-ttl", 10*time.Second, "how long a checked token (accepted or rejected, kept by hash) and an access decision are reused")
	audiences := fs.String("token-audiences", "", "comma-separated audiences tokens must carry (\"\": the API server's)")
	tokenQPS := fs.Float64("auth-token-review-qps", auth.DefaultTokenReviewQPS, "TokenReviews per second sent to the Kubernetes API, by a client of their own")
	tokenBurst := fs.Int("auth-token-review-burst", auth.DefaultTokenReviewBurst, "bursts of TokenReviews above --auth-token-review-qps")
	newTokens := fs.Int("auth-new-token-concurrency", auth.DefaultUnknownTokenConcurrency, "TokenReviews in flight for tokens not accepted lately; more wait up to 1s, then 429 (accepted tokens never wait for them)")
	reviewQPS := fs.Float64("auth-access-review-qps", auth.DefaultAccessReviewQPS, "SubjectAccessReviews per second sent to the Kubernetes API, by a client of their own")
	reviewBurst := fs.Int("auth-access-review-burst", auth.DefaultAccessReviewBurst, "bursts of SubjectAccessReviews above --auth-access-review-qps (a restricted caller's first parent \"-\" asks one per namespace)")
	namespaceTTL := fs.Duration("auth-namespace-cache-ttl", auth.DefaultNamespaceCacheTTL, "longest use of a restricted caller's namespaces for parent \"-\"; refreshed in the background after half of it")
	clientConcurrency := fs.Int("client-concurrency", server.DefaultClientConcurrency, "requests in flight of each caller with known credentials, then 429 (0: no limit)")
	clientRate := fs.Float64("client-rate", 0, "requests per second of each caller with known credentials, then 429 (0: no limit)")
	clientBurst := fs.Int("client-burst", 0, "bursts above --client-rate (0: twice the rate)")
	unauthRate := fs.Float64("unauthenticated-rate", server.DefaultUnauthenticatedRate, "requests per second from each address without credentials known to the server (none, new or rejected), then 429 (0: no limit)")
	unauthBurst := fs.Int("unauthenticated-burst", server.DefaultUnauthenticatedBurst, "bursts above --unauthenticated-rate")
	maxReps := fs.Int("max-representations", server.DefaultMaxRepresentations, "most references one federation _entities request may resolve")
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
	if err := checkTimeouts(*timeout, *statementTimeout, *drain); err != nil {
		return err
	}
	if *drain < *timeout {
		log.Warn("--shutdown-timeout is shorter than --request-timeout: requests still running when the drain ends are cancelled",
			"shutdown_timeout", *drain, "request_timeout", *timeout)
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
		authz, err = auth.NewKubernetesForConfig(cfg, auth.Options{CacheTTL: *authTTL, Audiences: splitList(*audiences),
			TokenReviewQPS: float32(*tokenQPS), TokenReviewBurst: *tokenBurst, UnknownTokenConcurrency: *newTokens,
			AccessReviewQPS: float32(*reviewQPS), AccessReviewBurst: *reviewBurst, NamespaceCacheTTL: *namespaceTTL})
		if err != nil {
			return err
		}
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
	// The port first: when it is taken, nothing else has started (no
	// migrations applied by a server that cannot serve).
	ln, err := server.Listen(*listen, tlsConfig)
	if err != nil {
		return err
	}
	defer ln.Close()
	if *migrate {
		// Migrations (and the wait for another replica's) may take longer
		// than a statement may when serving: a pool of their own.
		if err := migrateStore(ctx, dbURL, logs.apply(store.Options{MaxOpenConns: *maxConns}), log); err != nil {
			return err
		}
	}
	s, err := dbURL.open(ctx, logs.apply(store.Options{MaxOpenConns: *maxConns, StatementTimeout: *statementTimeout}))
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Ready(ctx); err != nil {
		return fmt.Errorf("database not migrated (run 'annals migrate' or drop --migrate=false): %w", err)
	}
	go drainLogDeletes(ctx, s, log, time.Minute)
	h := server.New(server.Config{
		Store: s, Logger: log, MaxBodyBytes: *maxBody, MaxDepth: *maxDepth, MaxAliases: *maxAliases, MaxComplexity: *maxComplexity,
		RequestTimeout: *timeout, LogSearchMaxBytes: *logSearchBytes, LogSearchTimeout: *logSearchTimeout, Introspection: *introspection, Auth: authz, AnyHost: *insecureRemote, MaxSelections: *maxSelections,
		ExpensiveCost: *expensiveCost, ExpensiveConcurrency: *expensiveConcurrency, MaxRepresentations: *maxReps, ResponseCacheBytes: *responseCache,
		Version: version, ClientConcurrency: int(noLimitIfZero(float64(*clientConcurrency))), ClientRate: *clientRate, ClientBurst: *clientBurst, UnauthenticatedRate: noLimitIfZero(*unauthRate), UnauthenticatedBurst: *unauthBurst,
	})
	return server.ServeListener(ctx, ln, h, log, *drain)
}

// noLimitIfZero maps a rate flag's 0 ("no limit") to server.Config's
// negative, as 0 there means the default.
func noLimitIfZero(r float64) float64 {
	if r == 0 {
		return -1
	}
	return r
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

// checkTimeouts refuses timeouts that contradict one another.
func checkTimeouts(request, statement, drain time.Duration) error {
	switch {
	case request <= 0:
		return fmt.Errorf("--request-timeout %v: want a positive duration", request)
	case statement < 0:
		return fmt.Errorf("--statement-timeout %v: want a positive duration, or 0 for none", statement)
	case drain < 0:
		return fmt.Errorf("--shutdown-timeout %v: want a positive duration, or 0 to cancel requests at once", drain)
	case statement > request:
		return fmt.Errorf("--statement-timeout %v is longer than --request-timeout %v: a statement could never run that long; "+
			"set it below the request timeout (or 0 to leave statements unbounded)", statement, request)
	}
	return nil
}

// migrateStore applies pending migrations through a pool without statement timeout.
func migrateStore(ctx context.Context, dbURL databaseFlags, opts store.Options, log *slog.Logger) error {
	s, err := dbURL.open(ctx, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	status, err := s.Migrate(ctx)
	if err != nil {
		return err
	}
	log.Info("database ready", "schema_version", status.Version, "applied_now", len(status.Applied))
	return nil
}
