// Command annals is the one Annals binary: the GraphQL server, the watcher,
// the retention agent and the maintenance commands, chosen by subcommand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/annals-dev/annals/server/buildinfo"
	"github.com/annals-dev/annals/store"
)

// command is one subcommand: it parses its own flags from args.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

var commands = map[string]command{
	"version":   {"print the version and the VCS revision it was built from", runVersion},
	"serve":     {"serve the GraphQL API and playground", runServe},
	"migrate":   {"apply database migrations and report the schema version", runMigrate},
	"import":    {"load TaskRuns and PipelineRuns from kubectl JSON or YAML output", runImport},
	"logs":      {"logs migrate: move log bytes from the database or --log-dir into --log-store", runLogs},
	"retention": {"prune old Results by policy, once or on a schedule", runRetention},
	"watch":     {"record TaskRuns, PipelineRuns and their logs from a Kubernetes cluster", runWatch},
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(os.Stdout)
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "annals: unknown command %q\n\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		reportFailure(os.Stderr, os.Args[1], err)
		os.Exit(1)
	}
}

// commandLog is the logger of the running command once its flags are
// parsed: its failure is then logged in the format the operator chose.
var commandLog *slog.Logger

// reportFailure says why the command failed: through its logger when it
// has one (a JSON log stays JSON to its last line), else as plain text.
func reportFailure(stderr io.Writer, name string, err error) {
	if commandLog != nil {
		commandLog.Error("annals "+name+" failed", "error", err)
		return
	}
	fmt.Fprintf(stderr, "annals %s: %v\n", name, err)
}

func runVersion(_ context.Context, args []string) error {
	fs := newFlagSet("version", "Prints the version of this binary and, when it was built from a checkout, the VCS revision.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Println(buildinfo.Read(version))
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Annals keeps the history of Tekton runs and serves it as a GraphQL graph.")
	fmt.Fprintln(w, "\nUsage: annals COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun 'annals COMMAND --help' for the flags of a command.")
	fmt.Fprintln(w, "Every flag can also be set by environment: --database-url is ANNALS_DATABASE_URL.")
}

// newFlagSet returns a flag set for one subcommand whose --help shows the
// summary, every flag and its environment variable.
func newFlagSet(name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("annals "+name, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: annals %s [flags]\n\n%s\n\nFlags (each also settable by the environment variable shown):\n", name, summary)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			fmt.Fprintf(out, "  --%s  [$%s]\n      %s%s\n", f.Name, envName(f.Name), f.Usage, def)
		})
	}
	return fs
}

// envName is the environment variable that sets a flag: --log-level is ANNALS_LOG_LEVEL.
func envName(flagName string) string {
	return "ANNALS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args, then fills every flag not given on the command line
// from its environment variable. The command line wins over the environment.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags are written --name=value)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if setErr := fs.Set(f.Name, v); setErr != nil {
				err = fmt.Errorf("environment variable %s: %w", envName(f.Name), setErr)
			}
		}
	})
	return err
}

// databaseFlags are --database-url and --database-connect-timeout, shared
// by every command that opens the store.
type databaseFlags struct {
	url            *string
	connectTimeout *time.Duration
}

// databaseURLFlag registers the database flags.
func databaseURLFlag(fs *flag.FlagSet) databaseFlags {
	return databaseFlags{
		url: fs.String("database-url", "annals.db",
			"database to use: postgres://user:pass@host:5432/db?sslmode=verify-full (or libpq keyword form, 'host=db user=annals dbname=annals') for PostgreSQL; "+
				"sqlite:PATH, file:PATH, or a path ending in .db/.sqlite/.sqlite3 or starting with /, ./ or ../ for embedded SQLite"),
		connectTimeout: fs.Duration("database-connect-timeout", store.DefaultConnectTimeout,
			"give up opening a PostgreSQL connection after this long (whole seconds; a connect_timeout in the URL wins; 0: wait forever)"),
	}
}

// open opens the store the flags name, with opts.
func (d databaseFlags) open(ctx context.Context, opts store.Options) (*store.Store, error) {
	opts.ConnectTimeout = *d.connectTimeout
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = -1 // the flag's 0 is "no limit"; the store's is "default"
	}
	return store.Open(ctx, *d.url, opts)
}

// loggingFlags registers --log-format and --log-level and returns a function
// that builds the logger once flags are parsed.
func loggingFlags(fs *flag.FlagSet) func() (*slog.Logger, error) {
	format := fs.String("log-format", "text", "log format: text or json")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	return func() (*slog.Logger, error) { return newLogger(os.Stderr, *format, *level) }
}

// parseAndLog parses a long-running command's flags, builds its logger and
// logs the effective configuration.
func parseAndLog(fs *flag.FlagSet, args []string, logger func() (*slog.Logger, error)) (*slog.Logger, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	log, err := logger()
	if err != nil {
		return nil, err
	}
	// Every line through the chosen handler, those of packages that log
	// through slog's default too.
	slog.SetDefault(log)
	commandLog = log
	logConfig(log, fs)
	return log, nil
}

// logConfig logs the version and every flag's effective value, with every
// password redacted (of the database URL in any of its forms, or of any
// other flag holding a URL), so that what a process runs with is in its
// first log line.
func logConfig(log *slog.Logger, fs *flag.FlagSet) {
	bi := buildinfo.Read(version)
	attrs := []any{"version", bi.Version, "revision", bi.Revision}
	fs.VisitAll(func(f *flag.Flag) {
		v := store.RedactDatabaseURL(f.Value.String())
		attrs = append(attrs, f.Name, v)
	})
	log.Info("starting "+fs.Name(), attrs...)
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: readableDurations}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}

// readableDurations writes durations as "1.5s", not as nanoseconds (the
// JSON handler's way).
func readableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}
