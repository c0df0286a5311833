package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"golang.org/x/time/rate"

	"github.com/annals-dev/annals/graph"
	"github.com/annals-dev/annals/server/auth"
	"github.com/annals-dev/annals/server/tekton"
)

// Defaults of the per-client limits (Config).
const (
	DefaultClientConcurrency    = 32
	DefaultUnauthenticatedRate  = 20
	DefaultUnauthenticatedBurst = 40
	DefaultMaxRepresentations   = 100
)

// clientLimits bounds what each client may ask at once. A caller whose
// credentials are already known good (a token accepted lately, a client
// certificate) is counted by name, wherever it comes from: at most a number
// of requests in flight, and optionally a rate. Every other request (no
// credentials, a token not seen lately, a rejected one) is counted by the
// address it comes from, with a token bucket. So a flood of made-up tokens
// is refused 429 at its address and never costs a known caller anything,
// and a known caller may ask as often as it likes one request at a time.
type clientLimits struct {
	identify     func(*http.Request) (string, bool)
	concurrency  int
	known        rate.Limit
	knownBurst   int
	unknown      rate.Limit
	unknownBurst int

	mu       sync.Mutex
	inFlight map[string]int
	limiters *expirable.LRU[string, *rate.Limiter]
}

func newClientLimits(identify func(*http.Request) (string, bool), cfg Config) *clientLimits {
	return &clientLimits{
		identify:    identify,
		concurrency: cfg.ClientConcurrency,
		known:       rate.Limit(cfg.ClientRate), knownBurst: cfg.ClientBurst,
		unknown: rate.Limit(cfg.UnauthenticatedRate), unknownBurst: cfg.UnauthenticatedBurst,
		inFlight: map[string]int{},
		// A bucket untouched for this long is full again anyway.
		limiters: expirable.NewLRU[string, *rate.Limiter](100000, nil, 10*time.Minute),
	}
}

// reserve takes one request from key's bucket, or says how long to wait.
func (l *clientLimits) reserve(key string, r rate.Limit, burst int) (time.Duration, bool) {
	l.mu.Lock()
	lim, ok := l.limiters.Get(key)
	if !ok {
		lim = rate.NewLimiter(r, burst)
		l.limiters.Add(key, lim)
	}
	l.mu.Unlock()
	res := lim.Reserve()
	if delay := res.Delay(); !res.OK() || delay > 0 {
		res.Cancel()
		return max(time.Second, delay), false
	}
	return 0, true
}

// enter counts a request of key in flight, unless it has too many already.
func (l *clientLimits) enter(key string) (leave func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inFlight[key] >= l.concurrency {
		return nil, false
	}
	l.inFlight[key]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.inFlight[key]--; l.inFlight[key] == 0 {
			delete(l.inFlight, key)
		}
	}, true
}

func (l *clientLimits) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, known := l.identify(r)
		if !known {
			addr := clientAddress(r)
			if l.unknown > 0 {
				if wait, ok := l.reserve("address\x00"+addr, l.unknown, l.unknownBurst); !ok {
					tooMany(w, r, wait, fmt.Sprintf("too many requests from address %s without credentials known to this server: the limit is %g per second (bursts of %d)", addr, float64(l.unknown), l.unknownBurst))
					return
				}
			}
			next.ServeHTTP(w, r)
			return
		}
		// Impersonated identities each count on their own: a gateway
		// acting for many users is not one client.
		key := "caller\x00" + name + "\x00" + r.Header.Get("Impersonate-User")
		if l.known > 0 {
			if wait, ok := l.reserve(key, l.known, l.knownBurst); !ok {
				tooMany(w, r, wait, fmt.Sprintf("too many requests from %s: the limit is %g per second (bursts of %d)", name, float64(l.known), l.knownBurst))
				return
			}
		}
		// A WebSocket lives as long as its subscriptions: it is not a
		// request in flight.
		if l.concurrency > 0 && !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			leave, ok := l.enter(key)
			if !ok {
				tooMany(w, r, time.Second, fmt.Sprintf("%s has %d requests under way already, the limit: wait for some to finish", name, l.concurrency))
				return
			}
			defer leave()
		}
		next.ServeHTTP(w, r)
	})
}

// tooMany answers 429 with Retry-After, in the shape GraphQL clients read.
func tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration, msg string) {
	retry := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	if tekton.IsGRPC(r) {
		// A gRPC client reads the status from a trailers-only answer:
		// RESOURCE_EXHAUSTED (8), with the same message.
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "8")
		w.Header().Set("Grpc-Message", url.PathEscape(fmt.Sprintf("%s; retry in %d s", msg, retry)))
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	body, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{
		"message": fmt.Sprintf("%s; retry in %d s", msg, retry), "extensions": map[string]string{"code": "RESOURCE_EXHAUSTED"}}}})
	w.Write(append(body, '\n'))
}

// clientAddress is the IP address a request comes from, IPv6 addresses by
// their /64 (one host commonly holds a whole /64). Forwarding headers are
// not trusted: anyone can set them.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() != nil {
		return host
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}

// representationLimit refuses an operation whose _entities fields ask for
// more representations in all than max, before anything is resolved: each
// one is a lookup and an access decision.
type representationLimit struct{ max int }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.OperationContextMutator
} = representationLimit{}

// MutateOperationParameters refuses, before the document is validated and
// its variables coerced (which for thousands of representations costs more
// than everything else the request does), an _entities request whose
// variables hold a list longer than the limit. MutateOperationContext below
// is the exact check, for representations written inline too.
func (l representationLimit) MutateOperationParameters(_ context.Context, params *graphql.RawParams) *gqlerror.Error {
	if !strings.Contains(params.Query, "_entities") {
		return nil
	}
	for name, v := range params.Variables {
		if list, ok := v.([]any); ok && len(list) > l.max {
			err := gqlerror.Errorf("variable $%s holds %d representations for _entities; the limit is %d per request (--max-representations): send them in batches of at most %d", name, len(list), l.max, l.max)
			err.Extensions = map[string]any{"code": graph.CodeInvalidArgument}
			return err
		}
	}
	return nil
}

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
