package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/annals-dev/annals/graph"
)

// Serve answers on addr until ctx ends, then stops taking connections and
// lets the requests under way finish (up to drain). Those still running when
// the drain ends are cancelled, so that their SQL stops, and Serve returns
// once they have given up (or after cancelGrace), before the caller closes
// the database pool: no statement outlives the process.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger, drain time.Duration) error {
	return ServeTLS(ctx, addr, nil, h, log, drain)
}

// cancelGrace is how long cancelled requests have to return at shutdown:
// enough for their statements' cancellation to reach the database.
const cancelGrace = 5 * time.Second

// ServeTLS is Serve with TLS when tlsConfig is not nil.
func ServeTLS(ctx context.Context, addr string, tlsConfig *tls.Config, h http.Handler, log *slog.Logger, drain time.Duration) error {
	ln, err := Listen(addr, tlsConfig)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, h, log, drain)
}

// Listener is a bound address of Listen.
type Listener struct {
	net.Listener
	scheme string // http:// or https://
}

// Listen binds addr (with TLS when tlsConfig is not nil), so that a caller
// learns that the port is taken before it starts anything else.
func Listen(addr string, tlsConfig *tls.Config) (*Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	if tlsConfig != nil {
		return &Listener{tls.NewListener(ln, tlsConfig), "https://"}, nil
	}
	return &Listener{ln, "http://"}, nil
}

// ServeListener is Serve on a listener of Listen, which it closes.
func ServeListener(ctx context.Context, ln *Listener, h http.Handler, log *slog.Logger, drain time.Duration) error {
	// Requests outlive ctx (they drain) but not base, cancelled when the
	// drain ends.
	base, cancelBase := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelBase(nil)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	address := ln.scheme + ln.Addr().String()
	log.Info("listening", "address", address, "playground", address+"/", "graphql", address+"/graphql")
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests", "timeout", drain.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	// Whatever is left (requests past the drain, subscriptions on hijacked
	// WebSocket connections, which Shutdown does not wait for) is cancelled.
	cancelBase(graph.ErrShuttingDown)
	if err != nil {
		if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		log.Warn("shutting down: drain over, cancelled the requests still running", "timeout", drain.String())
		graceCtx, cancel := context.WithTimeout(context.Background(), cancelGrace)
		defer cancel()
		if err := srv.Shutdown(graceCtx); err != nil {
			log.Warn("shutting down: requests still running after cancellation", "error", err)
			srv.Close()
		}
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}
