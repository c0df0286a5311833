package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
)

// Error codes in extensions.code.
const (
	CodeInvalidArgument   = "INVALID_ARGUMENT"
	CodeNotFound          = "NOT_FOUND"
	CodeConflict          = "CONFLICT"
	CodeUnauthenticated   = "UNAUTHENTICATED"
	CodePermissionDenied  = "PERMISSION_DENIED"
	CodeResourceExhausted = "RESOURCE_EXHAUSTED"
	CodeUnavailable       = "UNAVAILABLE"
	CodeInternal          = "INTERNAL"
)

// ErrShuttingDown is the cause of the requests the server cancels when its
// shutdown drain ends.
var ErrShuttingDown = errors.New("the server is shutting down")

// ErrorPresenter maps store errors to error codes. Errors the caller cannot
// fix (the database failing, a bug) are logged with the request id and
// answered with that id only: their details could reveal data or schema.
func ErrorPresenter(log *slog.Logger, requestID func(context.Context) string) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		var code string
		var coded interface{ ErrorCode() string }
		switch {
		case errors.As(err, &coded):
			code = coded.ErrorCode() // refusals of the auth layer: UNAUTHENTICATED, PERMISSION_DENIED
		case errors.Is(err, store.ErrInvalidArgument), errors.Is(err, filter.ErrInvalid):
			code = CodeInvalidArgument
			gqlErr.Message = invalidArgumentMessage(err)
			var at *filter.PositionError
			if errors.As(err, &at) {
				// Where, for a client to point at; the message stays one line.
				if gqlErr.Extensions == nil {
					gqlErr.Extensions = map[string]any{}
				}
				gqlErr.Extensions["filter"] = map[string]any{"line": at.Line, "column": at.Column, "context": at.Context}
			}
		case errors.Is(err, store.ErrNotFound):
			code = CodeNotFound
		case errors.Is(err, store.ErrConflict):
			code = CodeConflict
		case store.IsUnavailable(err) && !errors.Is(err, context.Canceled):
			// The database did not answer: worth a retry, and the driver's
			// details (hosts, users) stay in the log.
			id := requestID(ctx)
			log.WarnContext(ctx, "database unavailable", "request_id", id, "path", gqlErr.Path.String(), "error", err)
			gqlErr.Message = fmt.Sprintf("the database is unavailable (unreachable, or no answer within the connect timeout); try again later, or quote request id %s to the operator", id)
			code = CodeUnavailable
		case store.IsStatementTimeout(err):
			gqlErr.Message = "a database statement of this request ran past the statement timeout (serve --statement-timeout) and was stopped: " +
				"narrow the query (a namespace instead of \"-\", a time window, typed where: filters, fewer or anchored regular expressions, smaller pages)"
			code = CodeResourceExhausted
		case ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrShuttingDown):
			gqlErr.Message = "the server is shutting down and stopped this request: retry it"
			code = CodeUnavailable
		case ctx.Err() != nil && store.IsCancelled(err):
			gqlErr.Message = "the request ran past its time limit (serve --request-timeout) and its database work was stopped: " +
				"narrow the query (a namespace, a time window, typed where: filters, smaller pages) or split it"
			code = CodeResourceExhausted
		case errors.Is(err, context.DeadlineExceeded):
			// A deadline of a part of the request (a statement's own, on
			// SQLite) while the request itself goes on.
			gqlErr.Message = "a database statement of this request ran past its time limit (serve --statement-timeout) and was stopped: " +
				"narrow the query (a namespace, a time window, typed where: filters, smaller pages)"
			code = CodeResourceExhausted
		case gqlErr.Message == "introspection disabled": // gqlgen's generated code has no sentinel for it
			gqlErr.Message = "schema introspection is turned off on this server (--introspection=false); ask its operator for the schema"
			code = CodeInvalidArgument
		default:
			var existing *gqlerror.Error
			if errors.As(err, &existing) && existing.Extensions["code"] != nil {
				return gqlErr // already classified (validation, parsing, limits)
			}
			if errors.As(err, &existing) && existing.Unwrap() == nil {
				// Raised by the executor itself: a bad argument value.
				code = CodeInvalidArgument
				break
			}
			id := requestID(ctx)
			log.ErrorContext(ctx, "request failed", "request_id", id, "path", gqlErr.Path.String(), "error", err)
			gqlErr.Message = fmt.Sprintf("internal error; quote request id %s to the operator", id)
			code = CodeInternal
		}
		if gqlErr.Extensions == nil {
			gqlErr.Extensions = map[string]any{}
		}
		gqlErr.Extensions["code"] = code
		return gqlErr
	}
}

// invalidArgumentMessage is the message of a caller's mistake said once:
// the code already says "invalid argument", and the layers that wrapped the
// sentinel each added it again.
func invalidArgumentMessage(err error) string {
	var at *filter.PositionError
	if errors.As(err, &at) {
		return at.Error()
	}
	msg := strings.ReplaceAll(err.Error(), store.ErrInvalidArgument.Error()+": ", "")
	// gqlgen writes the input path of an argument error as "input: a.b.c message".
	if rest, ok := strings.CutPrefix(msg, "input: "); ok {
		if path, text, ok := strings.Cut(rest, " "); ok {
			msg = path + ": " + text
		}
	}
	return msg
}
