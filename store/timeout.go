package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"

	"github.com/annals-dev/annals/store/filter"
)

// ErrStatementTimeout marks a statement the database stopped because it ran
// past Options.StatementTimeout. The API reports it as RESOURCE_EXHAUSTED.
var ErrStatementTimeout = errors.New("statement timeout")

// errStatementDeadline is the cause of a statement context that ended at
// the statement timeout (SQLite, where the deadline is ours).
var errStatementDeadline = errors.New("statement ran past the statement timeout")

// withStatementTimeout bounds every statement of a PostgreSQL pool on the
// server, through the statement_timeout runtime parameter of its
// connections, so that a statement stops even when no client is left to
// cancel it. A URL (either form) that sets statement_timeout itself, as a
// parameter or in options, keeps its own.
func withStatementTimeout(cfg *pgx.ConnConfig, d time.Duration) {
	if d <= 0 {
		return
	}
	if _, ok := cfg.RuntimeParams["statement_timeout"]; ok || strings.Contains(cfg.RuntimeParams["options"], "statement_timeout") {
		return
	}
	cfg.RuntimeParams["statement_timeout"] = fmt.Sprint(d.Milliseconds())
}

// cancelDelivery is how long a cancelled statement's connection waits for
// PostgreSQL to confirm the cancel request before it is dropped.
const cancelDelivery = 3 * time.Second

// openPostgres opens a PostgreSQL pool whose statements stop on the server
// when their context ends. pgx's default only drops the connection, and
// PostgreSQL goes on running a statement whose client is gone (behind a
// lock, for as long as it waits): here a cancel request is sent first.
func openPostgres(databaseURL string, statementTimeout time.Duration) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	withStatementTimeout(cfg, statementTimeout)
	cfg.BuildContextWatcherHandler = func(conn *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: conn, DeadlineDelay: cancelDelivery}
	}
	return stdlib.OpenDB(*cfg), nil
}

// statementContext bounds one statement on SQLite, where the deadline is
// the client's: modernc's driver interrupts a statement whose context
// ends. On PostgreSQL the server bounds it (withStatementTimeout).
func (s *Store) statementContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.statementTimeout <= 0 || s.dialect != filter.SQLite {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, s.statementTimeout, errStatementDeadline)
}

// timeoutError tells a statement stopped at the statement timeout from
// other failures: stmtCtx is the statement's context, parent the caller's.
func timeoutError(err error, parent, stmtCtx context.Context) error {
	if err != nil && parent.Err() == nil && context.Cause(stmtCtx) == errStatementDeadline {
		return fmt.Errorf("%w: %w", ErrStatementTimeout, err)
	}
	return err
}

// IsStatementTimeout tells whether err comes from a statement stopped at
// the statement timeout, whichever way it reached the caller.
func IsStatementTimeout(err error) bool {
	if errors.Is(err, ErrStatementTimeout) {
		return true
	}
	var pgErr *pgconn.PgError
	// 57014 query_canceled is also a cancel request (a caller gone): only
	// the statement timeout says so.
	return errors.As(err, &pgErr) && pgErr.Code == "57014" && strings.Contains(pgErr.Message, "statement timeout")
}

// IsCancelled tells whether err comes from a statement stopped because its
// context ended: the context's error, or PostgreSQL's answer to the cancel
// request sent for it.
func IsCancelled(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "57014"
}

// statementDeadline is the bun hook that bounds the statements bun builds
// and runs whole (query and rows) on SQLite. Statements run through
// database/sql directly (event.IQuery nil, their rows read after the hook
// returns) bound themselves with statementContext.
type statementDeadline struct{ s *Store }

type cancelKey struct{}

func (h statementDeadline) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if e.IQuery == nil {
		return ctx
	}
	ctx, cancel := h.s.statementContext(ctx)
	if e.Stash == nil {
		e.Stash = map[any]any{}
	}
	e.Stash[cancelKey{}] = cancel
	return ctx
}

func (statementDeadline) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if cancel, ok := e.Stash[cancelKey{}].(context.CancelFunc); ok {
		cancel()
	}
}
