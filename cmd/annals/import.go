package main

import (
	"context"
	"errors"
)

// runImport is a placeholder until the owning helper writes the command.
func runImport(ctx context.Context, args []string) error {
	return errors.New("not built yet")
}
