// Package server is the HTTP face of Annals: the GraphQL endpoint with its
// limits, the bundled GraphiQL playground, the health endpoints, and on the
// same port Tekton Results' own REST and gRPC API (package tekton).
package server

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vektah/gqlparser/v2/ast"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/annals-dev/annals/graph"
	"github.com/annals-dev/annals/server/access"
	"github.com/annals-dev/annals/server/auth"
	"github.com/annals-dev/annals/server/tekton"
	"github.com/annals-dev/annals/store"
)

// Config tunes the server. Zero values take the defaults below.
type Config struct {
	Store          *store.Store
	Logger         *slog.Logger
	MaxBodyBytes   int64         // largest request body; default 1 MiB
	MaxDepth       int           // deepest selection nesting; default 15
	MaxAliases     int           // most aliased fields in one operation; default 200
	MaxSelections  int           // most selections of a document, fragments expanded; default 10000
	MaxComplexity  int           // cost budget of one operation (connections multiply); default 50000
	RequestTimeout time.Duration // per request (and per query of a subscription), cancels the SQL; default 20s
	// LogSearchMaxBytes and LogSearchTimeout bound what one logSearch reads
	// (defaults 1 GiB, 10s; the search stops there and says so).
	LogSearchMaxBytes int64
	LogSearchTimeout  time.Duration
	Introspection     bool                 // allow schema introspection
	Metrics           *prometheus.Registry // served at /metrics; nil: a registry of the server's own
	Version           string               // of the build, for annals_build_info; "": the module's
	// Operations costing ExpensiveCost or more run at most
	// ExpensiveConcurrency at a time; defaults 5000 and half the CPUs.
	ExpensiveCost, ExpensiveConcurrency int
	// Auth authenticates callers of /graphql and /logs and authorizes each
	// field; nil serves everyone everything (--auth=none, loopback only),
	// and then only to requests addressed to a loopback name and sent by
	// this server's own pages or by no page (see localOnly).
	Auth *auth.Kubernetes
	// With Auth: requests in flight of each caller whose credentials are
	// known good (default 32), and optionally its rate and bursts; and the
	// rate and bursts of other requests by address (defaults 20/s, 40).
	// Beyond them, 429 with Retry-After. Negative: no limit.
	ClientConcurrency                 int
	ClientRate, UnauthenticatedRate   float64
	ClientBurst, UnauthenticatedBurst int
	// MaxRepresentations bounds the references one _entities request may
	// resolve; default 100.
	MaxRepresentations int
	// AnyHost lifts the loopback-name rule of Auth nil
	// (--insecure-allow-unauthenticated-remote-access); cross-origin
	// requests are still refused.
	AnyHost bool
	// ResponseCacheBytes sizes the cache of GraphQL query answers over
	// HTTP (see responseCache); 0 (the zero value) disables it.
	ResponseCacheBytes int64
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxDepth == 0 {
		c.MaxDepth = 15
	}
	if c.MaxAliases == 0 {
		c.MaxAliases = 200
	}
	if c.MaxSelections == 0 {
		c.MaxSelections = 10000
	}
	if c.MaxComplexity == 0 {
		c.MaxComplexity = 50000
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 20 * time.Second
	}
	if c.Metrics == nil {
		c.Metrics = prometheus.NewRegistry()
	}
	if c.ExpensiveCost == 0 {
		c.ExpensiveCost = 5000
	}
	if c.ExpensiveConcurrency == 0 {
		c.ExpensiveConcurrency = DefaultExpensiveConcurrency()
	}
	if c.ClientConcurrency == 0 {
		c.ClientConcurrency = DefaultClientConcurrency
	}
	if c.ClientBurst <= 0 {
		c.ClientBurst = max(1, int(2*c.ClientRate))
	}
	if c.UnauthenticatedRate == 0 {
		c.UnauthenticatedRate = DefaultUnauthenticatedRate
	}
	if c.UnauthenticatedBurst <= 0 {
		c.UnauthenticatedBurst = DefaultUnauthenticatedBurst
	}
	if c.MaxRepresentations <= 0 {
		c.MaxRepresentations = DefaultMaxRepresentations
	}
}

// DefaultExpensiveConcurrency leaves half the CPUs to cheap operations.
func DefaultExpensiveConcurrency() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// New returns the HTTP handler of the whole service. It panics when the
// response cache cannot subscribe to the store's changes (a closed store).
func New(cfg Config) http.Handler {
	cfg.defaults()
	var cache *responseCache
	if cfg.ResponseCacheBytes > 0 {
		ttl := defaultResponseCacheTTL
		if cfg.Auth != nil {
			ttl = cfg.Auth.DecisionTTL()
		}
		var err error
		if cache, err = newResponseCache(cfg.ResponseCacheBytes, ttl, cfg.Store, cfg.Metrics); err != nil {
			panic(err)
		}
	}
	resolver := &graph.Resolver{Store: cfg.Store, SubscriptionQueryTimeout: cfg.RequestTimeout,
		LogSearchMaxBytes: cfg.LogSearchMaxBytes, LogSearchTimeout: cfg.LogSearchTimeout}
	authenticate, limitClients := func(h http.Handler) http.Handler { return h }, func(h http.Handler) http.Handler { return h }
	if cfg.Auth != nil {
		resolver.Auth, authenticate = cfg.Auth, cfg.Auth.Middleware
		limitClients = newClientLimits(cfg.Auth.KnownCaller, cfg).middleware
	}
	gql := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: resolver, Complexity: graph.Complexity()}))
	ws := transport.Websocket{KeepAlivePingInterval: 15 * time.Second, InitTimeout: 10 * time.Second,
		Implementation: goingAway{transport.CoderWebsocketImplementation{}}}
	if cfg.Auth != nil {
		// Browsers cannot set headers on a WebSocket: the token may come
		// in the connection_init payload instead ({"Authorization": "Bearer ..."}).
		ws.InitFunc = func(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
			if auth.UserFrom(ctx) != nil {
				return ctx, nil, nil
			}
			u, err := cfg.Auth.AuthenticateToken(ctx, p.Authorization())
			if err != nil {
				return ctx, nil, err
			}
			return auth.WithUser(ctx, u), nil, nil
		}
	}
	gql.AddTransport(ws)
	gql.AddTransport(transport.Options{})
	gql.AddTransport(transport.GET{})
	gql.AddTransport(transport.POST{})
	parsed := lru.New[*ast.QueryDocument](1000)
	gql.SetQueryCache(parsed)
	if cfg.Introspection {
		gql.Use(extension.Introspection{})
	}
	gql.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](1000)})
	// After the persisted query is looked up, before gqlgen validates the
	// document or computes its cost: both expand every fragment spread.
	gql.Use(shapeLimit{maxDepth: cfg.MaxDepth, maxAliases: cfg.MaxAliases, maxSelections: cfg.MaxSelections, parsed: parsed})
	gql.Use(graph.PerResponseLoaders{Store: cfg.Store})
	if cache != nil {
		gql.Use(cacheNoter{})
	}
	gql.Use(tracing{})
	gql.Use(graph.StatsGroupsWriter{})
	gql.Use(newMetrics(cfg.Metrics))
	service := newServiceMetrics(cfg.Metrics, cfg.Store, cfg.Version)
	gql.Use(service)
	gql.Use(unavailableStatus{})
	gql.Use(representationLimit{max: cfg.MaxRepresentations})
	if cfg.Auth != nil {
		gql.Use(decisionScope{perRequest: cfg.Auth.ReviewsPerRequest()})
	}
	gql.Use(extension.FixedComplexityLimit(cfg.MaxComplexity))
	gql.Use(newCostGate(cfg.ExpensiveCost, cfg.ExpensiveConcurrency, cfg.Metrics)) // after the cost is known
	gql.SetErrorPresenter(graph.ErrorPresenter(cfg.Logger, RequestID))
	gql.SetRecoverFunc(func(ctx context.Context, p any) error {
		cfg.Logger.ErrorContext(ctx, "resolver panicked", "request_id", RequestID(ctx), "panic", p)
		return fmt.Errorf("panic: %v", p) // presented as INTERNAL with the request id
	})

	mux := http.NewServeMux()
	var overHTTP http.Handler = withTimeout(cfg.RequestTimeout, withResponseStatus(gql))
	if cache != nil {
		overHTTP = cache.middleware(overHTTP)
	}
	overHTTP = authenticate(noteCaller(limitBody(cfg.MaxBodyBytes, overHTTP)))
	overWebSocket := service.countWebSockets(longLived(noteCaller(gql)))
	if cfg.Auth != nil {
		overWebSocket = cfg.Auth.WebSocketMiddleware(overWebSocket)
	}
	mux.Handle("/graphql", limitClients(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			overWebSocket.ServeHTTP(w, r)
			return
		}
		overHTTP.ServeHTTP(w, r)
	})))
	mux.HandleFunc("GET /{$}", playground)
	mux.Handle("GET /logs/{name...}", limitClients(authenticate(noteCaller(withTimeout(10*cfg.RequestTimeout, downloadLog(cfg.Store, access.Decider{Auth: resolver.Auth, Namespaces: cfg.Store.Namespaces}, cfg.Logger))))))
	mux.Handle("GET /assets/", playgroundAssets)
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{}))
	// Tekton Results' own API: REST here, gRPC on the same port below.
	tk := tekton.New(tekton.Config{Store: cfg.Store, Auth: cfg.Auth, Logger: cfg.Logger, RequestID: RequestID, RequestTimeout: cfg.RequestTimeout})
	// Log downloads get the same longer time as /logs/: a big log on a slow
	// link must not be cut at the request timeout.
	var tkREST http.Handler = tk.REST()
	if cache != nil {
		tkREST = cache.invalidateAfterWrites(false, tkREST)
	}
	mux.Handle(tekton.RESTPrefix, limitClients(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := cfg.RequestTimeout
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/logs/") {
			d = 10 * cfg.RequestTimeout
		}
		withTimeout(d, tkREST).ServeHTTP(w, r)
	})))
	mux.HandleFunc("GET /healthz", tk.Healthz) // {"status":"SERVING"}, as Tekton Results answers
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := cfg.Store.Ready(ctx); err != nil {
			cfg.Logger.WarnContext(ctx, "not ready", "error", err)
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	var h http.Handler = mux
	if cfg.Auth == nil {
		h = localOnly(cfg.AnyHost, h)
	}
	grpcCalls := http.Handler(http.HandlerFunc(tk.ServeGRPC))
	if cache != nil {
		grpcCalls = cache.invalidateAfterWrites(true, grpcCalls)
	}
	return withGRPC(grpcCalls, limitClients, traceRequests(withRequestLog(cfg.Logger, service, h)))
}

// withGRPC sends gRPC calls to the Tekton Results API and everything else
// to next, on one port: over TLS with ALPN h2, and in clear text with h2c
// (HTTP/2 with prior knowledge) beside HTTP/1.1.
// gRPC calls are counted by the same per-client limits as HTTP requests.
func withGRPC(grpcHandler http.Handler, limit func(http.Handler) http.Handler, next http.Handler) http.Handler {
	grpcCalls := limit(grpcHandler)
	return h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tekton.IsGRPC(r) {
			grpcCalls.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	}), &http2.Server{})
}

type requestIDKey struct{}

// RequestID is the id of the request ctx belongs to; it is logged with every
// failure and given to the caller, so that the two can be matched.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// withRequestLog gives each request its id, counts it by status, and
// writes its access log line: what was asked (operation name and cost for
// GraphQL), by whom (address, caller name), how it went and how long it
// took. Probes, scrapes and asset loads get no line.
func withRequestLog(log *slog.Logger, m *serviceMetrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			b := make([]byte, 8)
			rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		info := &requestInfo{}
		ctx := context.WithValue(context.WithValue(r.Context(), requestIDKey{}, id), requestInfoKey{}, info)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(rec, r.WithContext(ctx))
		m.countRequest(r.URL.Path, rec.status)
		switch route(r.URL.Path) {
		case "health", "metrics", "assets":
			return
		}
		attrs := append([]any{"request_id", id, "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration", time.Since(start).Round(time.Microsecond).String(), "client", peerAddress(r)}, info.attrs()...)
		log.InfoContext(ctx, "request", attrs...)
	})
}

// limitBody refuses request bodies over max bytes with a clear error.
func limitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			http.Error(w, fmt.Sprintf(`{"errors":[{"message":"request body is %d bytes; the limit is %d","extensions":{"code":"INVALID_ARGUMENT"}}]}`, r.ContentLength, max), http.StatusRequestEntityTooLarge)
			return
		}
		body := bufio.NewReader(http.MaxBytesReader(w, r.Body, max))
		// Batches (a JSON array of operations) would multiply every limit
		// by their length: one operation per request.
		if first, err := firstNonSpace(body); err == nil && first == '[' {
			http.Error(w, `{"errors":[{"message":"batched operations are not accepted: send one operation per request","extensions":{"code":"INVALID_ARGUMENT"}}]}`, http.StatusBadRequest)
			return
		}
		r.Body = struct {
			io.Reader
			io.Closer
		}{body, r.Body}
		next.ServeHTTP(w, r)
	})
}

// firstNonSpace peeks at the first byte of a body that is not white space.
func firstNonSpace(r *bufio.Reader) (byte, error) {
	for i := 1; ; i++ {
		b, err := r.Peek(i)
		if err != nil {
			return 0, err
		}
		if c := b[i-1]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c, nil
		}
		if i >= 4096 {
			return 0, io.EOF
		}
	}
}

// longLived lifts the server's read and write deadlines from a connection
// about to become a WebSocket, which lives as long as its subscriptions.
func longLived(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		next.ServeHTTP(w, r)
	})
}

func withTimeout(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// downloadLog streams a log as plain text, chunk by chunk: whole (gzip
// when the client accepts it) or in HTTP ranges, fetching only the chunks
// a range covers.
func downloadLog(s *store.Store, decider access.Decider, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		// Decided before the lookup, so a refusal says nothing of existence.
		if err := decider.AllowName(r.Context(), name, access.Logs, access.Get); err != nil {
			status := http.StatusServiceUnavailable
			switch {
			case errors.Is(err, auth.ErrPermissionDenied):
				status = http.StatusForbidden
			case errors.Is(err, store.ErrInvalidArgument):
				status = http.StatusBadRequest
			}
			http.Error(w, err.Error(), status)
			return
		}
		rec, err := s.GetRecord(r.Context(), name)
		switch {
		case errors.Is(err, store.ErrInvalidArgument):
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		case errors.Is(err, store.ErrNotFound) || (err == nil && rec.DataType != store.TypeLog):
			http.Error(w, fmt.Sprintf("no log %q", name), http.StatusNotFound)
			return
		case err != nil:
			log.ErrorContext(r.Context(), "log download failed", "request_id", RequestID(r.Context()), "error", err)
			http.Error(w, "internal error; quote request id "+RequestID(r.Context()), http.StatusInternalServerError)
			return
		}
		body, size, err := s.OpenLogSeeker(r.Context(), rec)
		if err != nil {
			log.ErrorContext(r.Context(), "log download failed", "request_id", RequestID(r.Context()), "error", err)
			if errors.Is(err, store.ErrUnavailable) {
				http.Error(w, "the log store is unavailable, try again later; quote request id "+RequestID(r.Context()), http.StatusServiceUnavailable)
				return
			}
			http.Error(w, "internal error; quote request id "+RequestID(r.Context()), http.StatusInternalServerError)
			return
		}
		defer body.Close()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Add("Vary", "Accept-Encoding")
		read := &readFailure{ReadSeeker: body}
		if r.Method == http.MethodGet && r.Header.Get("Range") == "" && acceptsGzip(r) {
			// Whole logs only: a range is of the plain bytes.
			w.Header().Set("Content-Encoding", "gzip")
			zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
			n, err := io.CopyN(zw, read, size)
			if err == nil {
				err = zw.Close()
			}
			if err != nil {
				if read.err == nil && err == io.EOF {
					read.err = fmt.Errorf("the log ended after %d of its %d bytes (deleted or rewritten meanwhile)", n, size)
				}
				read.err = cmp.Or(read.err, err)
			}
		} else {
			// Content-Length, single and multiple ranges (206), 416 for a
			// range past the end.
			http.ServeContent(w, r, "", time.Time{}, read)
		}
		if read.err != nil {
			// A clean end would pass a cut log off as whole: break the
			// connection so that the client sees a truncated body.
			log.WarnContext(r.Context(), "log download cut short", "request_id", RequestID(r.Context()), "log", name, "error", read.err)
			panic(http.ErrAbortHandler)
		}
	}
}

// readFailure remembers the first read error of a log, which
// http.ServeContent does not report.
type readFailure struct {
	io.ReadSeeker
	err error
}

func (r *readFailure) Read(p []byte) (int, error) {
	n, err := r.ReadSeeker.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// acceptsGzip tells whether the client takes a gzip body (Accept-Encoding
// lists gzip without q=0).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
