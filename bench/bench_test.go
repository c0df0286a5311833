package main

import (
	"context"
	"io"
	"testing"

	"github.com/annals-dev/annals/store/storetest"
)

// The harness runs end to end at its smallest size, on both databases: a
// smoke test that it works, not a measurement.
func TestHarnessSmoke(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			_, url := storetest.Open(t, kind)
			rep, err := Run(context.Background(), Config{DatabaseURL: url, Records: 300, Clients: 4, Requests: 20, Namespaces: 2}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range rep.Queries {
				if q.Errors > 0 {
					t.Errorf("%s: %d errors", q.Name, q.Errors)
				}
			}
			for _, row := range rep.SideBySide {
				if row.REST.Errors > 0 || row.GraphQL.Errors > 0 {
					t.Errorf("side by side, %s: %d REST errors, %d GraphQL errors", row.Work, row.REST.Errors, row.GraphQL.Errors)
				}
			}
			if len(rep.SideBySide) != len(sideBySideWork) || rep.SideBySide[0].Upstream != nil {
				t.Errorf("side by side without upstream: %+v", rep.SideBySide)
			}
			if len(rep.Plans) != 4 || rep.Ingest[1].Writes == 0 || rep.ServerRSS <= 0 || len(rep.ServerRun) != 3 {
				t.Errorf("report: %+v", rep)
			}
		})
	}
}
