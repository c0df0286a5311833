package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
	"github.com/annals-dev/annals/watcher"
)

func runImport(ctx context.Context, args []string) error {
	fs := newFlagSet("import", "Loads TaskRuns and PipelineRuns from the output of `kubectl get taskruns,pipelineruns -o json` (or -o yaml, or NDJSON),\n"+
		"from FILE, from every .json/.yaml/.yml/.ndjson file of DIR, or from standard input (-), grouped into Results as the watcher does,\n"+
		"with the step logs of DIR/logs (or --step-logs-dir) laid out as <namespace>/<taskrun or pod name>/<step>.log.\n"+
		"Importing twice stores nothing twice. Flags may come before or after the argument.\n\n"+
		"Usage: annals import [flags] FILE|DIR|-\n"+
		"       annals import [flags] --from-tekton-results postgres://... [--tekton-logs-dir PATH]\n\n"+
		"The second form copies a Tekton Results database (its Results, Records and, from --tekton-logs-dir, log bytes) with\n"+
		"their names, times and annotations; running it again changes nothing.")
	dbURL := databaseURLFlag(fs)
	fromTekton := fs.String("from-tekton-results", "", "copy the Tekton Results database at this PostgreSQL URL instead of reading FILE")
	tektonLogs := fs.String("tekton-logs-dir", "", "with --from-tekton-results: the directory holding Tekton Results' log files (its LOGS_PATH, or a copy of its S3 bucket); without it log bytes are not imported")
	batch := fs.Int("batch-size", 0, "most runs written per transaction (0: 200; a transaction also ends at about 1 MiB of their JSON), or with --from-tekton-results rows read and written at a time (0: 500)")
	writers := fs.Int("writers", 0, "transactions writing at once (0: 8 on PostgreSQL, 1 on SQLite)")
	stepLogs := fs.String("step-logs-dir", "", "step logs to store beside the runs, as <namespace>/<taskrun or pod name>/<step>.log (default: DIR/logs when importing a directory DIR that has one)")
	logLimit := fs.Int64("log-limit-bytes", 16<<20, "most bytes kept of one step's log; longer logs are cut with a marker (0: no limit)")
	logs := logStorageFlags(fs)
	allowSkipped := fs.Bool("allow-skipped", false, "succeed even when objects or log files were skipped (they are still named)")
	progress := fs.String("progress", "auto", "progress display on standard error: auto (a bar on a terminal, else a line every 10s), bar, lines or none")
	paths, err := parseImportFlags(fs, args)
	if err != nil {
		return err
	}
	if *fromTekton != "" {
		if len(paths) != 0 {
			return fmt.Errorf("give either FILE or --from-tekton-results, not both")
		}
		if *batch == 0 {
			*batch = 500
		}
		return runTektonImport(ctx, dbURL, logs, *fromTekton, *tektonLogs, *batch)
	}
	if len(paths) != 1 {
		fs.Usage()
		return fmt.Errorf("give one FILE or DIR, or - for standard input")
	}
	if *writers < 0 || *batch < 0 {
		return fmt.Errorf("--writers %d, --batch-size %d: give 0 (the default) or more", *writers, *batch)
	}
	sources, err := watcher.ImportPaths(paths[0])
	if err != nil {
		return err
	}
	if *stepLogs == "" {
		if dir := filepath.Join(paths[0], "logs"); paths[0] != "-" && isDir(dir) {
			*stepLogs = dir
		}
	}
	// A soft limit that makes the collector work harder rather than let
	// garbage grow the process on a large input (GOMEMLIMIT wins).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(importMemoryLimit)
	}
	display, err := newProgressDisplay(os.Stderr, *progress)
	if err != nil {
		return err
	}
	s, err := dbURL.open(ctx, logs.apply(store.Options{}))
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		return err
	}
	if *writers == 0 {
		*writers = 1 // SQLite has one writer
		if s.Dialect() == filter.Postgres {
			*writers = 8
		}
	}
	opts := watcher.ImportOptions{Writers: *writers, BatchSize: *batch, LogsDir: *stepLogs, LogLimit: *logLimit,
		Progress: display.progress, OnSkip: func(line string) { display.println("skipped: " + line) }}
	start := time.Now()
	stop := display.start()
	rep, err := watcher.ImportSources(ctx, s, sources, opts)
	stop()
	if rep != nil {
		for _, what := range rep.Repaired {
			fmt.Fprintln(os.Stderr, "repaired:", what)
		}
		printImportReport(os.Stdout, rep, time.Since(start))
	}
	if err != nil {
		return err
	}
	if rep.SkippedCount > 0 && !*allowSkipped {
		return fmt.Errorf("%d objects or log files were skipped (each named above with the reason): fix them and import again, or pass --allow-skipped to accept this", rep.SkippedCount)
	}
	return nil
}

// importMemoryLimit is the soft memory limit of an import: the Go heap
// (and the runtime's own memory) the collector keeps under, which the
// process's resident size exceeds by its code and the C side (about 30 to
// 40 MB). An import's live heap is some 40 to 60 MB (the writers' batches,
// bounded by ImportOptions.BatchBytes, and the names of the PipelineRuns
// read); without a limit the collector would let garbage double it.
const importMemoryLimit = 96 << 20

// printImportReport writes the summary of an import.
func printImportReport(w io.Writer, rep *watcher.ImportReport, took time.Duration) {
	runs := rep.PipelineRuns + rep.TaskRuns
	fmt.Fprintf(w, "stored %d PipelineRuns and %d TaskRuns in %d Results: %d new, %d updated, %d unchanged; %d skipped",
		rep.PipelineRuns, rep.TaskRuns, rep.Results, rep.Created, rep.Updated, rep.Unchanged, rep.SkippedCount)
	if rep.Logs > 0 {
		fmt.Fprintf(w, "; %d step logs", rep.Logs)
	}
	fmt.Fprintf(w, " (%s, %.0f runs/s)\n", took.Round(time.Millisecond), float64(runs)/max(took.Seconds(), 1e-3))
}

// parseImportFlags parses flags wherever they are among the arguments
// (`annals import runs.json --database-url ...`), then fills the others
// from the environment, and returns the arguments that are not flags.
// Everything after "--" is an argument.
func parseImportFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if err := parseFlags(fs, nil); err != nil {
		return nil, err
	}
	return positional, nil
}

func isDir(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}
