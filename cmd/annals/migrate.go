package main

import (
	"context"
	"errors"
)

// runMigrate is a placeholder until the owning helper writes the command.
func runMigrate(ctx context.Context, args []string) error {
	return errors.New("not built yet")
}
