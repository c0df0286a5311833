package server

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts GraphQL operations: how many, how long, their cost, and
// the codes of the errors they answered with.
type metrics struct {
	operations *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	errors     *prometheus.CounterVec
	cost       prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "annals_graphql_operations_total",
			Help: "GraphQL operations by type (query, mutation) and outcome (ok, error)."}, []string{"type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "annals_graphql_operation_duration_seconds",
			Help: "Time from the start of an operation to its response.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}, []string{"type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "annals_graphql_errors_total",
			Help: "GraphQL errors by extensions.code."}, []string{"code"}),
		cost: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "annals_graphql_operation_cost",
			Help: "Cost of operations as the complexity limit counts it.", Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
	}
	reg.MustRegister(m.operations, m.duration, m.errors, m.cost)
	return m
}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = (*metrics)(nil)

func (*metrics) ExtensionName() string                   { return "Metrics" }
func (*metrics) Validate(graphql.ExecutableSchema) error { return nil }

func (m *metrics) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil {
		return nil
	}
	opType, start := "unknown", time.Now()
	if graphql.HasOperationContext(ctx) { // not when the request could not be read
		oc := graphql.GetOperationContext(ctx)
		start = oc.Stats.OperationStart
		if oc.Operation != nil {
			opType = string(oc.Operation.Operation)
		}
		if stats := extension.GetComplexityStats(ctx); stats != nil {
			m.cost.Observe(float64(stats.Complexity))
		}
	}
	outcome := "ok"
	for _, e := range resp.Errors {
		outcome = "error"
		code, _ := e.Extensions["code"].(string)
		if code == "" {
			code = "UNKNOWN"
		}
		m.errors.WithLabelValues(code).Inc()
	}
	m.operations.WithLabelValues(opType, outcome).Inc()
	m.duration.WithLabelValues(opType).Observe(time.Since(start).Seconds())
	return resp
}
