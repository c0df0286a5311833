package server

import (
	"context"
	"net"
	"net/http"
	"sync"

	"github.com/99designs/gqlgen/graphql/handler/extension"

	"github.com/annals-dev/annals/server/auth"
)

// requestInfo collects, for the access log line written when a request
// ends, what inner layers learn: the operation, its cost, the caller.
type requestInfo struct {
	mu        sync.Mutex
	operation string
	cost      int
	hasCost   bool
	caller    string
}

type requestInfoKey struct{}

func requestInfoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return info
}

// note records a GraphQL operation's name.
func (i *requestInfo) note(name string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if name == "" {
		name = "(unnamed)"
	}
	i.operation = name
}

func (i *requestInfo) noteCost(cost int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.cost, i.hasCost = cost, true
}

func (i *requestInfo) noteCaller(u *auth.User) {
	if u == nil {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.caller = u.Name // the name TokenReview or the certificate gave; never the token
}

// attrs are the access log attributes the inner layers filled in.
func (i *requestInfo) attrs() []any {
	i.mu.Lock()
	defer i.mu.Unlock()
	var out []any
	if i.operation != "" {
		out = append(out, "operation", i.operation)
	}
	if i.hasCost {
		out = append(out, "cost", i.cost)
	}
	if i.caller != "" {
		out = append(out, "caller", i.caller)
	}
	return out
}

// noteCaller passes the caller that authentication found to the access log.
func noteCaller(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info := requestInfoFrom(r.Context()); info != nil {
			info.noteCaller(auth.UserFrom(r.Context()))
		}
		next.ServeHTTP(w, r)
	})
}

// noteOperation fills the access log from the GraphQL operation context:
// name, cost, and the caller of WebSocket connections authenticated by
// their init payload.
func noteOperation(ctx context.Context, name string) {
	info := requestInfoFrom(ctx)
	if info == nil {
		return
	}
	info.note(name)
	if stats := extension.GetComplexityStats(ctx); stats != nil {
		info.noteCost(stats.Complexity)
	}
	info.noteCaller(auth.UserFrom(ctx))
}

// peerAddress is the host of the peer; forwarding headers are not
// trusted, as anyone may set them.
func peerAddress(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
