package store

import "errors"

// Sentinel errors. Callers test them with errors.Is; the GraphQL layer maps
// them to error codes (NOT_FOUND, CONFLICT, INVALID_ARGUMENT).
var (
	ErrNotFound        = errors.New("not found")
	ErrConflict        = errors.New("conflict")
	ErrInvalidArgument = errors.New("invalid argument")
)
