package graph

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/annals-dev/annals/store"
)

// MarshalTime writes the Time scalar as gqlgen does: RFC 3339 with nanoseconds.
func MarshalTime(t time.Time) graphql.Marshaler {
	return graphql.MarshalTime(t)
}

// UnmarshalTime reads the Time scalar. Its errors are the caller's to fix,
// so they are INVALID_ARGUMENT and say which form is expected.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		if n, isNumber := v.(json.Number); isNumber {
			s = n.String()
		} else {
			return time.Time{}, fmt.Errorf("%w: a Time must be a string holding an RFC 3339 timestamp such as \"2026-01-02T15:04:05Z\", not %T %v",
				store.ErrInvalidArgument, v, v)
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q is not a Time: write an RFC 3339 timestamp with a time zone, such as \"2026-01-02T15:04:05Z\" or \"2026-01-02T17:04:05+02:00\" (relative times such as \"-24h\" are not accepted: compute the instant on the client)",
			store.ErrInvalidArgument, s)
	}
	return t, nil
}
