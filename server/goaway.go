package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/annals-dev/annals/graph"
)

// goingAway accepts WebSockets as gqlgen's default does, but closes those
// the server's shutdown ends with 1001 (going away) instead of 1000: a
// client can tell "reconnect elsewhere" from "the server is done with you".
type goingAway struct {
	transport.WebsocketImplementation
}

func (g goingAway) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := g.WebsocketImplementation.Accept(w, r, opts)
	if err != nil {
		return nil, err
	}
	return &goingAwayConn{WebsocketConn: conn, ctx: r.Context()}, nil
}

const closeGoingAway = 1001

type goingAwayConn struct {
	transport.WebsocketConn
	ctx context.Context
}

func (c *goingAwayConn) WriteClose(code int, message string) error {
	if code == transport.WebsocketCloseNormalClosure && errors.Is(context.Cause(c.ctx), graph.ErrShuttingDown) {
		code, message = closeGoingAway, "the server is shutting down: reconnect"
	}
	return c.WebsocketConn.WriteClose(code, message)
}

// The optional abilities of the wrapped connection stay visible to gqlgen.

func (c *goingAwayConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

func (c *goingAwayConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}
