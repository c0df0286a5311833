package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"gocloud.dev/blob"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/annals-dev/annals/store/filter"
)

// Page sizes of list calls.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// Options tune a Store. The zero value is ready to use.
type Options struct {
	MaxOpenConns int // 0: 20 on PostgreSQL; SQLite always uses one writer
	// LogDir, when set, keeps the bytes of new logs as files in this
	// directory (a volume every replica mounts) instead of database rows.
	// Logs stored earlier in the database stay readable.
	LogDir string
	// LogStore, when set, is the URL of an object store bucket (s3://,
	// gs://, azblob://, file://) that keeps the bytes of new logs; it
	// takes precedence over LogDir for writes. Logs stored earlier in the
	// database or LogDir stay readable.
	LogStore string
	// LogCompression compresses log objects at rest: gzip, zstd or none
	// (""). Readers need not know: each object says how it was written.
	LogCompression string
	// LogWriteGrace is how long an object being written may stay
	// unreferenced before it is taken for the leftover of a crashed write;
	// 0: DefaultLogWriteGrace.
	LogWriteGrace time.Duration
	// ConnectTimeout bounds the opening of one PostgreSQL connection unless
	// the URL sets connect_timeout; 0: DefaultConnectTimeout, negative: none.
	ConnectTimeout time.Duration
	// StatementTimeout, when set, stops every statement that runs longer
	// (ErrStatementTimeout): on PostgreSQL through the connections'
	// statement_timeout unless the URL sets one, on SQLite by a deadline.
	StatementTimeout time.Duration
	// DailyCacheBytes bounds the memory of whole days of statistics kept
	// between reads (rollup_daily_cache.go); 0: DefaultDailyCacheBytes,
	// negative: none kept.
	DailyCacheBytes int64
}

// Store is the shared persistence layer. It is safe for concurrent use.
type Store struct {
	db      *bun.DB
	dialect filter.Dialect
	sealer  *cursorSealer // nil until the cursor key is loaded after migration
	logDir  string

	logStore       *blob.Bucket // nil: log bytes go to the database or logDir
	logCompression string
	logWriteGrace  time.Duration

	statementTimeout time.Duration

	url    string    // for the LISTEN connection of change subscriptions
	target *database // what the URL named; redacts its password from errors

	lastHeartbeat atomic.Int64    // unix nanoseconds of Ready's last successful write; 0: none
	changes       changeHub       // Record changes, for subscriptions
	rollup        rollupFolder    // folds record count deltas in the background
	dailyCache    *dayCache       // whole days of statistics; nil: none kept
	fills         sync.Map        // scope fingerprint -> *sync.Mutex: one reader fills the cached days of a scope (statistics, FlakyTasks) at a time
	closing       context.Context // ends when the store is closed
	close         context.CancelFunc
}

// Open connects to databaseURL: PostgreSQL as a postgres:// URL (any case)
// or libpq keyword form, or embedded SQLite as sqlite:PATH, file:PATH or a
// plain file path (see AcceptedDatabaseURLs); anything else is refused.
// Errors never quote the URL's password. It does not migrate; call Migrate.
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	target, err := parseDatabaseURL(databaseURL, opts.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	if err := checkCompression(opts.LogCompression); err != nil {
		return nil, err
	}
	if opts.LogWriteGrace <= 0 {
		opts.LogWriteGrace = DefaultLogWriteGrace
	}
	s := &Store{logDir: opts.LogDir, url: target.dsn, target: target, statementTimeout: opts.StatementTimeout,
		logCompression: opts.LogCompression, logWriteGrace: opts.LogWriteGrace, dailyCache: newDayCache(opts.DailyCacheBytes)}
	s.closing, s.close = context.WithCancel(context.Background())
	if s.logDir != "" {
		if err := os.MkdirAll(s.logDir, 0o750); err != nil {
			return nil, fmt.Errorf("log directory: %w", err)
		}
	}
	switch target.dialect {
	case filter.Postgres:
		sqldb, err := openPostgres(target.dsn, opts.StatementTimeout)
		if err != nil {
			return nil, target.scrub(fmt.Errorf("%w: database URL: %v", ErrInvalidArgument, err))
		}
		if opts.MaxOpenConns == 0 {
			opts.MaxOpenConns = 20
		}
		sqldb.SetMaxOpenConns(opts.MaxOpenConns)
		sqldb.SetMaxIdleConns(opts.MaxOpenConns)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
		s.db = bun.NewDB(sqldb, pgdialect.New())
		s.dialect = filter.Postgres
	default:
		sqldb, err := sql.Open("sqlite", target.dsn)
		if err != nil {
			return nil, fmt.Errorf("%w: database URL: %v", ErrInvalidArgument, err)
		}
		// SQLite has one writer at a time; a single connection avoids
		// SQLITE_BUSY between our own goroutines, and WAL keeps readers of
		// other processes unblocked.
		sqldb.SetMaxOpenConns(1)
		s.db = bun.NewDB(sqldb, sqlitedialect.New())
		s.dialect = filter.SQLite
	}
	s.db.AddQueryHook(statementCounter{})
	s.db.AddQueryHook(sqlTracer{system: s.dialect.String()})
	s.db.AddQueryHook(statementDeadline{s})
	if err := s.Ping(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if opts.LogStore != "" {
		if s.logStore, err = openLogStore(ctx, opts.LogStore); err != nil {
			s.db.Close()
			return nil, err
		}
	}
	return s, nil
}

// sqliteDSN turns a file path (with an optional ?query) into a modernc DSN with the pragmas
// Annals relies on: foreign keys (cascading deletes), WAL and a busy timeout.
func sqliteDSN(path string) string {
	query := ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	v, _ := url.ParseQuery(query)
	v.Add("_pragma", "foreign_keys(1)")
	v.Add("_pragma", "busy_timeout(10000)")
	if path != ":memory:" {
		v.Add("_pragma", "journal_mode(WAL)")
	}
	v.Add("_pragma", "synchronous(NORMAL)")
	return "file:" + path + "?" + v.Encode()
}

// PoolStats reports the connection pool, for metrics.
func (s *Store) PoolStats() sql.DBStats { return s.db.DB.Stats() }

// Close releases the database connections.
func (s *Store) Close() error {
	s.close()
	s.rollup.wg.Wait()
	if s.logStore != nil {
		s.logStore.Close()
	}
	return s.db.Close()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		err = dbError(err)
		if errors.Is(err, ErrUnavailable) && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("%w\n(no answer within the connect timeout: set connect_timeout in the URL or --database-connect-timeout)", err)
		}
		return s.target.scrub(fmt.Errorf("database unreachable: %w", err))
	}
	return nil
}

// Dialect tells which SQL dialect the store speaks.
func (s *Store) Dialect() filter.Dialect { return s.dialect }

// loadCursorKey reads the installation's cursor key, written by the first
// migration, so that every replica seals and opens cursors alike.
func (s *Store) loadCursorKey(ctx context.Context) error {
	var hexKey string
	if err := s.db.NewSelect().Table("settings").Column("value").Where("key = ?", "cursor_key").Scan(ctx, &hexKey); err != nil {
		return fmt.Errorf("reading cursor key: %w", err)
	}
	key, err := hex.DecodeString(hexKey)
	if err != nil || len(key) < 32 {
		return errors.New("settings.cursor_key is not a 32-byte hex key")
	}
	sealer, err := newCursorSealer(key[:32])
	if err != nil {
		return err
	}
	s.sealer = sealer
	return nil
}

// counterKey carries the statement counter of CountStatements.
type counterKey struct{}

// CountStatements returns a context under which every SQL statement the
// store runs is counted. Tests and the benchmark use it to prove that a
// GraphQL request costs a fixed number of statements.
func CountStatements(ctx context.Context) (context.Context, *atomic.Int64) {
	n := new(atomic.Int64)
	return context.WithValue(ctx, counterKey{}, n), n
}

func countStatement(ctx context.Context) {
	if n, ok := ctx.Value(counterKey{}).(*atomic.Int64); ok {
		n.Add(1)
	}
}

// statementCounter is the bun hook that counts bun's statements.
type statementCounter struct{}

func (statementCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	countStatement(ctx)
	return ctx
}

func (statementCounter) AfterQuery(context.Context, *bun.QueryEvent) {}

// queryRows runs a statement built by the store with real bound parameters:
// query uses ? placeholders, rebound to $n on PostgreSQL. bun's own
// placeholders are formatted into the SQL text by the client, which is why
// queries that carry user input (filters, cursors) take this path instead.
func (s *Store) queryRows(ctx context.Context, dest any, query string, args ...any) error {
	return s.readRows(ctx, query, args, func(rows *sql.Rows) error { return s.db.ScanRows(ctx, rows, dest) })
}

// readRows runs a statement as queryRows does and hands its rows to read,
// for callers that scan rows themselves.
func (s *Store) readRows(ctx context.Context, query string, args []any, read func(*sql.Rows) error) error {
	countStatement(ctx)
	if observeSQL != nil {
		observeSQL(query)
	}
	ctx, span := sqlTracer{system: s.dialect.String()}.start(ctx, "SELECT", query)
	stmtCtx, cancel := s.statementContext(ctx)
	defer cancel()
	rows, err := s.db.DB.QueryContext(stmtCtx, s.rebind(query), args...)
	defer func() { endSpan(span, err) }()
	if err != nil {
		return dbError(timeoutError(err, ctx, stmtCtx))
	}
	defer rows.Close()
	if err = read(rows); err == nil {
		err = rows.Err()
	}
	return dbError(timeoutError(err, ctx, stmtCtx))
}

// observeSQL, when set by a test, sees the SQL text of every statement that
// carries user input, before its arguments are bound.
var observeSQL func(query string)

// rebind turns ? placeholders into $1, $2... for PostgreSQL. The store writes
// no literal question marks in SQL, so every ? is a placeholder.
func (s *Store) rebind(query string) string {
	if s.dialect != filter.Postgres {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// dbError marks database failures so that callers never mistake them for an
// empty answer; the API reports them as INTERNAL.
func dbError(err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrUnavailable) {
		return err
	}
	if unavailable(err) && !errors.Is(err, context.Canceled) {
		return &unavailableError{err}
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || IsStatementTimeout(err) {
		return err
	}
	return fmt.Errorf("database: %w", err)
}
