package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Serve answers on addr until ctx ends, then stops taking connections and
// lets the requests under way finish (up to drain).
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger, drain time.Duration) error {
	return ServeTLS(ctx, addr, nil, h, log, drain)
}

// ServeTLS is Serve with TLS when tlsConfig is not nil.
func ServeTLS(ctx context.Context, addr string, tlsConfig *tls.Config, h http.Handler, log *slog.Logger, drain time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	scheme := "http://"
	if tlsConfig != nil {
		ln, scheme = tls.NewListener(ln, tlsConfig), "https://"
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	base := scheme + ln.Addr().String()
	log.Info("listening", "address", base, "playground", base+"/", "graphql", base+"/graphql")
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests", "timeout", drain)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
