package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/99designs/gqlgen/graphql"

	"github.com/annals-dev/annals/graph"
)

// An answer that holds no data because the database (or the server) was
// unavailable goes out as HTTP 503 instead of 200, so that proxies, clients
// and load balancers can tell a retryable outage from a bug without reading
// the body. An answer with some data stays 200: the errors say which parts
// failed.

type responseStatusKey struct{}

// responseStatus is where the GraphQL layer leaves the HTTP status its
// answer calls for, for the writer that sends the header.
type responseStatus struct{ status int }

// withResponseStatus lets the GraphQL answer choose the status of a
// response that would otherwise be 200.
func withResponseStatus(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		holder := &responseStatus{}
		ctx := context.WithValue(r.Context(), responseStatusKey{}, holder)
		next.ServeHTTP(&statusOverride{ResponseWriter: w, holder: holder}, r.WithContext(ctx))
	})
}

type statusOverride struct {
	http.ResponseWriter
	holder      *responseStatus
	wroteHeader bool
}

func (s *statusOverride) WriteHeader(code int) {
	if s.wroteHeader {
		return
	}
	s.wroteHeader = true
	if code == http.StatusOK && s.holder.status != 0 {
		code = s.holder.status
		if code == http.StatusServiceUnavailable {
			s.Header().Set("Retry-After", "5")
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusOverride) Write(b []byte) (int, error) {
	if !s.wroteHeader {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusOverride) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// unavailableStatus marks answers that hold nothing because of an
// UNAVAILABLE error for HTTP 503.
type unavailableStatus struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = unavailableStatus{}

func (unavailableStatus) ExtensionName() string                   { return "UnavailableStatus" }
func (unavailableStatus) Validate(graphql.ExecutableSchema) error { return nil }

func (unavailableStatus) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	holder, _ := ctx.Value(responseStatusKey{}).(*responseStatus)
	if resp == nil || holder == nil {
		return resp
	}
	// The errors first: the data is read only when one is UNAVAILABLE.
	for _, e := range resp.Errors {
		if e.Extensions["code"] == graph.CodeUnavailable {
			if nothingAnswered(resp.Data) {
				holder.status = http.StatusServiceUnavailable
			}
			break
		}
	}
	return resp
}

// nothingAnswered tells whether data is null or holds only null fields.
func nothingAnswered(data json.RawMessage) bool {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return true
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return false
	}
	for _, v := range fields {
		if !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return false
		}
	}
	return true
}
