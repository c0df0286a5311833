package store

import "errors"

// Sentinel errors. Callers test them with errors.Is; the GraphQL layer maps
// them to error codes (NOT_FOUND, CONFLICT, INVALID_ARGUMENT, UNAVAILABLE).
var (
	ErrNotFound        = errors.New("not found")
	ErrConflict        = errors.New("conflict")
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnavailable: the database could not be reached (refused, or no
	// answer within the connect timeout). The API reports it as UNAVAILABLE.
	ErrUnavailable = errors.New("database unavailable")
)
