package main

import (
	"context"
	"errors"
)

// runWatch is a placeholder until the owning helper writes the command.
func runWatch(ctx context.Context, args []string) error {
	return errors.New("not built yet")
}
