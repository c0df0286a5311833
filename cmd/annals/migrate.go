package main

import (
	"context"
	"fmt"

	"github.com/annals-dev/annals/store"
)

func runMigrate(ctx context.Context, args []string) error {
	fs := newFlagSet("migrate", "Applies pending database migrations and reports the schema version. Safe to run from several replicas at once.")
	dbURL := databaseURLFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	s, err := dbURL.open(ctx, store.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	status, err := s.Migrate(ctx)
	if err != nil {
		return err
	}
	for _, m := range status.Applied {
		fmt.Println("applied", m)
	}
	fmt.Println("schema version", status.Version)
	return nil
}
