package server

import (
	"context"
	"fmt"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// costGate lets only a few expensive operations (cost at or above
// threshold) run at once; the others wait their turn, up to the request
// timeout. Cheap operations never wait, so a burst of heavy queries cannot
// starve the dashboards' light ones.
type costGate struct {
	threshold int
	slots     chan struct{}
	queued    prometheus.Counter
	running   prometheus.Gauge
}

func newCostGate(threshold, concurrency int, reg prometheus.Registerer) *costGate {
	g := &costGate{
		threshold: threshold,
		slots:     make(chan struct{}, concurrency),
		queued: prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_graphql_expensive_queued_total",
			Help: "Expensive operations that had to wait for a slot."}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "annals_graphql_expensive_running",
			Help: "Expensive operations running now."}),
	}
	reg.MustRegister(g.queued, g.running)
	return g
}

func (*costGate) ExtensionName() string                   { return "CostGate" }
func (*costGate) Validate(graphql.ExecutableSchema) error { return nil }

func (g *costGate) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	stats := extension.GetComplexityStats(ctx)
	oc := graphql.GetOperationContext(ctx)
	if stats == nil || stats.Complexity < g.threshold || (oc.Operation != nil && oc.Operation.Operation == "subscription") {
		return next(ctx)
	}
	select {
	case g.slots <- struct{}{}:
	default:
		g.queued.Inc()
		select {
		case g.slots <- struct{}{}:
		case <-ctx.Done():
			err := &gqlerror.Error{Message: fmt.Sprintf("the server is busy with expensive operations and yours (cost %d; %d and above count as expensive) waited until its deadline: retry later, or ask for smaller pages", stats.Complexity, g.threshold),
				Extensions: map[string]any{"code": "RESOURCE_EXHAUSTED"}}
			return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{err}})
		}
	}
	g.running.Inc()
	var once sync.Once
	release := func() { once.Do(func() { g.running.Dec(); <-g.slots }) }
	// Released after the response, or when the request ends, whichever
	// comes first: a slot is never kept by a request that went away.
	context.AfterFunc(ctx, release)
	handler := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		defer release()
		return handler(ctx)
	}
}
