package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/annals-dev/annals/server/buildinfo"
	"github.com/annals-dev/annals/store"
)

// maxOperationNames bounds the label values of operation latency: the
// first names seen get one each, the rest, and every unnamed operation,
// share otherOperation. Clients name a handful of operations; a client
// inventing names per request must not grow /metrics without end.
const (
	maxOperationNames = 100
	otherOperation    = "other"
)

// serviceMetrics are the operator's view beyond GraphQL outcomes: the
// process, the build, HTTP statuses, the database pool, long-lived
// connections and latency per operation.
type serviceMetrics struct {
	requests      *prometheus.CounterVec
	webSockets    prometheus.Gauge
	subscriptions prometheus.Gauge
	byOperation   *prometheus.HistogramVec

	mu    sync.Mutex
	names map[string]bool
}

func newServiceMetrics(reg prometheus.Registerer, s *store.Store, version string) *serviceMetrics {
	bi := buildinfo.Read(version)
	m := &serviceMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "annals_http_requests_total",
			Help: "HTTP requests by route (graphql, logs, tekton, playground, assets, health, metrics, other) and status code."}, []string{"route", "code"}),
		webSockets: prometheus.NewGauge(prometheus.GaugeOpts{Name: "annals_websocket_connections",
			Help: "WebSocket connections open on /graphql."}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "annals_graphql_active_subscriptions",
			Help: "GraphQL subscriptions running."}),
		byOperation: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "annals_graphql_operation_name_duration_seconds",
			Help:    "Time from the start of an operation to its response, by operation name (the first 100 names; unnamed and later ones are \"other\").",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, []string{"operation"}),
		names: map[string]bool{},
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{Name: "annals_build_info",
		Help:        "The build of this server: always 1, with its version and VCS revision as labels.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.Revision, "goversion": bi.GoVersion}})
	buildInfo.Set(1)
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo, m.requests, m.webSockets, m.subscriptions, m.byOperation, poolCollector{s},
	} {
		// A registry the caller passed may hold the Go and process
		// collectors already.
		if err := reg.Register(c); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			panic(err)
		}
	}
	return m
}

// operationLabel is the label value of an operation name.
func (m *serviceMetrics) operationLabel(name string) string {
	if name == "" {
		return otherOperation
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.names[name] {
		return name
	}
	if len(m.names) >= maxOperationNames {
		return otherOperation
	}
	m.names[name] = true
	return name
}

// route is the bounded label of a request path.
func route(path string) string {
	switch {
	case path == "/graphql":
		return "graphql"
	case strings.HasPrefix(path, "/logs/"):
		return "logs"
	case strings.HasPrefix(path, "/apis/"), strings.HasPrefix(path, "/tekton."):
		return "tekton"
	case path == "/":
		return "playground"
	case strings.HasPrefix(path, "/assets/"):
		return "assets"
	case path == "/healthz", path == "/readyz":
		return "health"
	case path == "/metrics":
		return "metrics"
	}
	return "other"
}

func (m *serviceMetrics) countRequest(path string, status int) {
	m.requests.WithLabelValues(route(path), strconv.Itoa(status)).Inc()
}

// countWebSockets keeps the gauge of open WebSocket connections.
func (m *serviceMetrics) countWebSockets(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.webSockets.Inc()
		defer m.webSockets.Dec()
		next.ServeHTTP(w, r)
	})
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
	graphql.ResponseInterceptor
} = (*serviceMetrics)(nil)

func (*serviceMetrics) ExtensionName() string                   { return "ServiceMetrics" }
func (*serviceMetrics) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation counts a subscription from its start until its last
// response or the end of its context, whichever comes first.
func (m *serviceMetrics) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	responses := next(ctx)
	oc := graphql.GetOperationContext(ctx)
	if oc.Operation == nil || oc.Operation.Operation != "subscription" {
		return responses
	}
	m.subscriptions.Inc()
	var once sync.Once
	done := func() { once.Do(m.subscriptions.Dec) }
	stop := context.AfterFunc(ctx, done)
	return func(ctx context.Context) *graphql.Response {
		resp := responses(ctx)
		if resp == nil {
			stop()
			done()
		}
		return resp
	}
}

// InterceptResponse observes the latency of queries and mutations by name
// and notes the name and cost for the access log.
func (m *serviceMetrics) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || !graphql.HasOperationContext(ctx) {
		return resp
	}
	oc := graphql.GetOperationContext(ctx)
	name := oc.OperationName
	if oc.Operation != nil {
		name = oc.Operation.Name
	}
	noteOperation(ctx, name)
	if oc.Operation != nil && oc.Operation.Operation == "subscription" {
		return resp // its latency is the life of the subscription
	}
	m.byOperation.WithLabelValues(m.operationLabel(name)).Observe(time.Since(oc.Stats.OperationStart).Seconds())
	return resp
}

// poolCollector reports the database connection pool at each scrape.
type poolCollector struct{ s *store.Store }

var (
	poolOpenDesc    = prometheus.NewDesc("annals_db_connections_open", "Database connections open (in use and idle).", nil, nil)
	poolInUseDesc   = prometheus.NewDesc("annals_db_connections_in_use", "Database connections running a statement or held by a transaction.", nil, nil)
	poolIdleDesc    = prometheus.NewDesc("annals_db_connections_idle", "Database connections idle in the pool.", nil, nil)
	poolMaxDesc     = prometheus.NewDesc("annals_db_connections_max_open", "Largest number of open database connections (0: no limit).", nil, nil)
	poolWaitsDesc   = prometheus.NewDesc("annals_db_connection_waits_total", "Times a statement waited for a free connection.", nil, nil)
	poolWaitSecDesc = prometheus.NewDesc("annals_db_connection_wait_seconds_total", "Time statements spent waiting for a free connection.", nil, nil)
)

func (poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolOpenDesc, poolInUseDesc, poolIdleDesc, poolMaxDesc, poolWaitsDesc, poolWaitSecDesc} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s == nil {
		return
	}
	st := c.s.PoolStats()
	ch <- prometheus.MustNewConstMetric(poolOpenDesc, prometheus.GaugeValue, float64(st.OpenConnections))
	ch <- prometheus.MustNewConstMetric(poolInUseDesc, prometheus.GaugeValue, float64(st.InUse))
	ch <- prometheus.MustNewConstMetric(poolIdleDesc, prometheus.GaugeValue, float64(st.Idle))
	ch <- prometheus.MustNewConstMetric(poolMaxDesc, prometheus.GaugeValue, float64(st.MaxOpenConnections))
	ch <- prometheus.MustNewConstMetric(poolWaitsDesc, prometheus.CounterValue, float64(st.WaitCount))
	ch <- prometheus.MustNewConstMetric(poolWaitSecDesc, prometheus.CounterValue, st.WaitDuration.Seconds())
}
