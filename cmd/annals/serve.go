package main

import (
	"context"
	"fmt"
	"time"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
)

func runServe(ctx context.Context, args []string) error {
	fs := newFlagSet("serve", "Serves the GraphQL API at /graphql and the GraphiQL playground at /.")
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	dbURL := databaseURLFlag(fs)
	migrate := fs.Bool("migrate", true, "apply pending database migrations at start")
	logDir := logDirFlag(fs)
	maxConns := fs.Int("max-open-conns", 0, "largest number of open database connections (0: 20 on PostgreSQL)")
	introspection := fs.Bool("introspection", true, "allow GraphQL schema introspection (the playground needs it)")
	maxDepth := fs.Int("max-depth", 15, "deepest nesting of selections a query may have")
	maxAliases := fs.Int("max-aliases", 200, "most aliased fields one operation may have")
	maxComplexity := fs.Int("max-complexity", 50000, "largest cost of one operation: fields counted, times the page size of each connection they are in")
	maxBody := fs.Int64("max-body-bytes", 1<<20, "largest request body in bytes")
	timeout := fs.Duration("request-timeout", 30*time.Second, "time limit of one request; its SQL is cancelled past it")
	drain := fs.Duration("shutdown-timeout", 20*time.Second, "time given to requests under way to finish at shutdown")
	logger := loggingFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := logger()
	if err != nil {
		return err
	}
	s, err := store.Open(ctx, *dbURL, store.Options{MaxOpenConns: *maxConns, LogDir: *logDir})
	if err != nil {
		return err
	}
	defer s.Close()
	if *migrate {
		status, err := s.Migrate(ctx)
		if err != nil {
			return err
		}
		log.Info("database ready", "schema_version", status.Version, "applied_now", len(status.Applied))
	} else if err := s.Ready(ctx); err != nil {
		return fmt.Errorf("database not migrated (run 'annals migrate' or drop --migrate=false): %w", err)
	}
	h := server.New(server.Config{
		Store: s, Logger: log, MaxBodyBytes: *maxBody, MaxDepth: *maxDepth, MaxAliases: *maxAliases, MaxComplexity: *maxComplexity,
		RequestTimeout: *timeout, Introspection: *introspection,
	})
	return server.Serve(ctx, *listen, h, log, *drain)
}
