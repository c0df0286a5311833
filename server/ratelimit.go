package server

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"golang.org/x/time/rate"

	"github.com/annals-dev/annals/graph"
	"github.com/annals-dev/annals/server/auth"
)

// Defaults of the per-client limits (Config).
const (
	DefaultClientRate           = 50
	DefaultClientBurst          = 100
	DefaultUnauthenticatedRate  = 20
	DefaultUnauthenticatedBurst = 40
	DefaultMaxRepresentations   = 100
)

// clientLimits gives each client a token bucket of requests: a caller whose
// credentials are already known good (a token accepted lately, a client
// certificate) is counted by name, wherever it comes from; every other
// request (no credentials, a token not seen lately, a rejected one) by the
// address it comes from, with a smaller budget. So a flood of made-up
// tokens is refused 429 at its address, and never costs a known caller its
// budget.
type clientLimits struct {
	known, unknown           rate.Limit
	knownBurst, unknownBurst int
	identify                 func(*http.Request) (string, bool)

	mu       sync.Mutex
	limiters *expirable.LRU[string, *rate.Limiter]
}

func newClientLimits(identify func(*http.Request) (string, bool), knownRate float64, knownBurst int, unknownRate float64, unknownBurst int) *clientLimits {
	return &clientLimits{
		known: rate.Limit(knownRate), knownBurst: knownBurst,
		unknown: rate.Limit(unknownRate), unknownBurst: unknownBurst,
		identify: identify,
		// A bucket untouched for this long is full again anyway.
		limiters: expirable.NewLRU[string, *rate.Limiter](100000, nil, 10*time.Minute),
	}
}

func (l *clientLimits) limiter(key string, r rate.Limit, burst int) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.limiters.Get(key)
	if !ok {
		lim = rate.NewLimiter(r, burst)
		l.limiters.Add(key, lim)
	}
	return lim
}

func (l *clientLimits) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var lim *rate.Limiter
		var who string
		if name, ok := l.identify(r); ok && l.known > 0 {
			lim, who = l.limiter("caller\x00"+name, l.known, l.knownBurst), fmt.Sprintf("caller %q", name)
		} else if !ok && l.unknown > 0 {
			addr := clientAddress(r)
			lim, who = l.limiter("address\x00"+addr, l.unknown, l.unknownBurst), "address "+addr+" (requests without credentials known to this server)"
		}
		if lim != nil {
			res := lim.Reserve()
			if delay := res.Delay(); !res.OK() || delay > 0 {
				res.Cancel()
				retry := max(1, int(math.Ceil(delay.Seconds())))
				if !res.OK() {
					retry = 1
				}
				w.Header().Set("Retry-After", strconv.Itoa(retry))
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprintf(w, `{"errors":[{"message":%q,"extensions":{"code":"RESOURCE_EXHAUSTED"}}]}`+"\n",
					fmt.Sprintf("too many requests from %s: the limit is %g per second (bursts of %d); retry in %d s", who, float64(lim.Limit()), lim.Burst(), retry))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// clientAddress is the IP address a request comes from. Forwarding headers
// are not trusted: anyone can set them.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// representationLimit refuses an operation whose _entities fields ask for
// more representations in all than max, before anything is resolved: each
// one is a lookup and an access decision.
type representationLimit struct{ max int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = representationLimit{}

func (representationLimit) ExtensionName() string                   { return "RepresentationLimit" }
func (representationLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (l representationLimit) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	n := 0
	for _, f := range graphql.CollectFields(oc, oc.Operation.SelectionSet, []string{"Query"}) {
		if f.Name != "_entities" {
			continue
		}
		if reps, ok := f.ArgumentMap(oc.Variables)["representations"].([]any); ok {
			n += len(reps)
		}
	}
	if n > l.max {
		err := gqlerror.Errorf("_entities was given %d representations; the limit is %d per request (--max-representations): send them in batches of at most %d", n, l.max, l.max)
		err.Extensions = map[string]any{"code": graph.CodeInvalidArgument}
		return err
	}
	return nil
}

// decisionScope gives each query and mutation its own decision memo, so
// that each (namespace, resource, verb) is decided once per operation
// whichever fields ask, with a bounded number of reviews in flight.
// Subscriptions get none: they live on and must see rights change.
type decisionScope struct{ perRequest int }

func (decisionScope) ExtensionName() string                   { return "DecisionScope" }
func (decisionScope) Validate(graphql.ExecutableSchema) error { return nil }

func (d decisionScope) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if oc := graphql.GetOperationContext(ctx); oc.Operation != nil && oc.Operation.Operation == ast.Subscription {
		return next(ctx)
	}
	return next(auth.WithRequestScope(ctx, d.perRequest))
}
