package main

import (
	"context"
	"errors"
)

// runServe is a placeholder until the owning helper writes the command.
func runServe(ctx context.Context, args []string) error {
	return errors.New("not built yet")
}
