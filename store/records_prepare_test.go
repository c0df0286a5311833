package store_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestUpsertRecordsNotPrepared checks that batch upserts are sent as plain
// statements on PostgreSQL: each batch's text differs (its data is in it),
// so a prepared one would only fill the driver's statement cache, keeping
// megabytes per connection (import's memory) and costing a round trip.
// A new Result (nil summary times) and a pending run (nil start time) are
// what made bun add a RETURNING clause, the path that prepares.
func TestUpsertRecordsNotPrepared(t *testing.T) {
	_, url := storetest.Open(t, "postgres")
	ctx := context.Background()
	// One connection, so that pg_prepared_statements (per session) sees
	// every statement; migrating needs two, hence a second store.
	s, err := store.Open(ctx, url, store.Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		prUID, trUID := uuid.NewString(), uuid.NewString()
		resultName := store.ResultName("ci", prUID)
		ws := []store.RecordWrite{
			{ResultName: resultName, UID: trUID, DataType: store.TypeTaskRun,
				Data: run("TaskRun", "ci", "tr-"+trUID[:8], trUID, "Unknown", "Pending", nil, nil, nil)},
			{ResultName: resultName, UID: prUID, DataType: store.TypePipelineRun, UpdateSummary: true,
				Data: run("PipelineRun", "ci", "pr-"+prUID[:8], prUID, "Unknown", "Running", nil, nil, nil)},
		}
		if _, err := s.UpsertRecordsCounted(ctx, ws); err != nil {
			t.Fatal(err)
		}
		if err := s.UpsertRecords(ctx, ws); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PreparedInserts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d INSERT statements prepared on the connection, want none", n)
	}
}
