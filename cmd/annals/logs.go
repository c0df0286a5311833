package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/annals-dev/annals/store"
)

// logFlags are where the commands that read or write logs keep log bytes.
type logFlags struct {
	dir, store, compression *string
}

// logStorageFlags registers --log-dir, --log-store and --log-compression.
func logStorageFlags(fs *flag.FlagSet) logFlags {
	return logFlags{
		dir: fs.String("log-dir", "", "keep log bytes as files in this directory, shared by every replica (\"\": in the database); with --log-store, only read"),
		store: fs.String("log-store", "", "keep log bytes in this object store bucket: s3://BUCKET?region=R[&endpoint=URL&use_path_style=true], "+
			"gs://BUCKET, azblob://CONTAINER or file:///DIR (\"\": the database or --log-dir); credentials the cloud's standard way"),
		compression: fs.String("log-compression", "none", "with --log-store, compress log objects at rest: none, gzip or zstd (readers need not know)"),
	}
}

// apply sets the log storage of store options.
func (l logFlags) apply(o store.Options) store.Options {
	o.LogDir, o.LogStore, o.LogCompression = *l.dir, *l.store, *l.compression
	return o
}

// drainLogDeletes deletes the objects of deleted or replaced logs (the
// store's outbox) every interval until ctx ends; a failed delete is retried
// by the store with backoff.
func drainLogDeletes(ctx context.Context, s *store.Store, log *slog.Logger, interval time.Duration) {
	if !s.HasLogStore() {
		return
	}
	for {
		for {
			n, err := s.DrainLogDeletes(ctx, 500)
			if err != nil && ctx.Err() == nil {
				log.Warn("deleting log objects", "deleted", n, "error", err)
			}
			if n < 500 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

func runLogs(ctx context.Context, args []string) error {
	// One subcommand for now; its flags (and --help) also answer without it.
	switch {
	case len(args) > 0 && args[0] == "migrate":
		args = args[1:]
	case len(args) == 0 || !strings.HasPrefix(args[0], "-"):
		return fmt.Errorf("usage: annals logs migrate --log-store URL [flags] (see annals logs migrate --help)")
	}
	fs := newFlagSet("logs migrate", "Moves the bytes of logs kept in database rows or in --log-dir into the object store of --log-store, one Log\n"+
		"per transaction, while the API serves them: each log is read from its old place until its object is committed.\n"+
		"Stopping and running it again is safe; a second run moves nothing.")
	dbURL := databaseURLFlag(fs)
	logs := logStorageFlags(fs)
	batch := fs.Int("batch-size", 100, "Logs looked at per step, for the progress report")
	logger := loggingFlags(fs)
	log, err := parseAndLog(fs, args, logger)
	if err != nil {
		return err
	}
	if *logs.store == "" {
		return fmt.Errorf("--log-store is required: the object store to move logs into")
	}
	if *batch < 1 {
		return fmt.Errorf("--batch-size must be at least 1")
	}
	s, err := dbURL.open(ctx, logs.apply(store.Options{}))
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Ready(ctx); err != nil {
		return fmt.Errorf("database not migrated (run 'annals migrate'): %w", err)
	}
	var after store.Key
	var moved int
	var size int64
	start := time.Now()
	for {
		n, bytes, next, err := s.MigrateLogs(ctx, after, *batch)
		moved, size = moved+n, size+bytes
		if err != nil {
			return fmt.Errorf("after moving %d logs: %w (run again to go on)", moved, err)
		}
		if next == (store.Key{}) {
			break
		}
		log.Info("moving logs", "moved", moved, "bytes", size, "at", next.Namespace+"/"+next.UID)
		after = next
	}
	log.Info("logs moved to the object store", "logs", moved, "bytes", size, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
