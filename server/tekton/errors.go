package tekton

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/annals-dev/annals/server/auth"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
)

// notFound is upstream's message for any missing Result, Record or Log.
const notFound = "record not found"

func invalidf(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// accessError turns a refusal of package access into the gRPC status
// Tekton Results answers: every authentication and authorization failure is
// Unauthenticated (HTTP 401, never 403: B20); a Kubernetes API that cannot
// be asked is Unavailable, never an allow.
func accessError(err error) error {
	var refusal *auth.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &refusal):
		return status.Error(codes.Unauthenticated, "permission denied: "+refusal.Error())
	case errors.Is(err, store.ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Errorf(codes.Unavailable, "could not check access: %v", err)
}

// storeError maps an error of the store to the status Tekton Results' clients
// expect. conflict is the code of ErrConflict: AlreadyExists when creating,
// FailedPrecondition (a stale etag) when changing.
func (s *Service) storeError(ctx context.Context, err error, conflict codes.Code) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, notFound)
	case errors.Is(err, store.ErrInvalidArgument), errors.Is(err, filter.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, store.ErrConflict):
		if conflict == codes.AlreadyExists {
			return status.Error(codes.AlreadyExists, "already exists: "+err.Error())
		}
		return status.Error(conflict, "the etag mismatches: "+err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "the request took too long and was cancelled")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "the request was cancelled")
	}
	// Details stay in the log: they could reveal data or schema.
	var id string
	if s.RequestID != nil {
		id = s.RequestID(ctx)
	}
	s.logger().ErrorContext(ctx, "tekton results API request failed", "request_id", id, "error", err)
	if id == "" {
		return status.Error(codes.Internal, "internal error; the server log has the details")
	}
	return status.Errorf(codes.Internal, "internal error; quote request id %s to the operator", id)
}

func (s *Service) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}
