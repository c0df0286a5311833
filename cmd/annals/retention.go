package main

import (
	"context"
	"errors"
)

// runRetention is a placeholder until the owning helper writes the command.
func runRetention(ctx context.Context, args []string) error {
	return errors.New("not built yet")
}
