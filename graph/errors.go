package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
)

// Error codes in extensions.code.
const (
	CodeInvalidArgument  = "INVALID_ARGUMENT"
	CodeNotFound         = "NOT_FOUND"
	CodeConflict         = "CONFLICT"
	CodeUnauthenticated  = "UNAUTHENTICATED"
	CodePermissionDenied = "PERMISSION_DENIED"
	CodeInternal         = "INTERNAL"
	CodeUnavailable      = "UNAVAILABLE"
)

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
