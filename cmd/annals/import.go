package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/watcher"
)

func runImport(ctx context.Context, args []string) error {
	fs := newFlagSet("import", "Loads TaskRuns and PipelineRuns from the output of `kubectl get taskruns,pipelineruns -o json` (or -o yaml),\n"+
		"from FILE or from standard input (-), grouped into Results as the watcher does. Importing twice stores nothing twice.\n\n"+
		"Usage: annals import [flags] FILE|-\n"+
		"       annals import [flags] --from-tekton-results postgres://... [--tekton-logs-dir PATH]\n\n"+
		"The second form copies a Tekton Results database (its Results, Records and, from --tekton-logs-dir, log bytes) with\n"+
		"their names, times and annotations; running it again changes nothing.")
	dbURL := databaseURLFlag(fs)
	fromTekton := fs.String("from-tekton-results", "", "copy the Tekton Results database at this PostgreSQL URL instead of reading FILE")
	tektonLogs := fs.String("tekton-logs-dir", "", "with --from-tekton-results: the directory holding Tekton Results' log files (its LOGS_PATH, or a copy of its S3 bucket); without it log bytes are not imported")
	batch := fs.Int("batch-size", 500, "with --from-tekton-results: rows read and written at a time")
	logs := logStorageFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *fromTekton != "" {
		if fs.NArg() != 0 {
			return fmt.Errorf("give either FILE or --from-tekton-results, not both")
		}
		return runTektonImport(ctx, dbURL, logs, *fromTekton, *tektonLogs, *batch)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("give one FILE, or - for standard input")
	}
	var in io.Reader = os.Stdin
	if path := fs.Arg(0); path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	s, err := dbURL.open(ctx, logs.apply(store.Options{}))
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		return err
	}
	rep, err := watcher.Import(ctx, s, in)
	if err != nil {
		return err
	}
	for _, what := range rep.Repaired {
		fmt.Fprintln(os.Stderr, "repaired:", what)
	}
	for _, why := range rep.Skipped {
		fmt.Fprintln(os.Stderr, "skipped:", why)
	}
	fmt.Printf("stored %d PipelineRuns and %d TaskRuns in %d Results (%d objects skipped)\n",
		rep.PipelineRuns, rep.TaskRuns, len(rep.Results), len(rep.Skipped))
	return nil
}
