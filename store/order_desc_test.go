package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestDescendingOrdersUseIndexOnPostgres: NAME and PIPELINE descending sort
// "no value" last, which a backward scan of the ascending indexes does not
// give; migration 00011's indexes serve them, in both paging directions.
func TestDescendingOrdersUseIndexOnPostgres(t *testing.T) {
	s, url := storetest.Open(t, "postgres")
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ws []store.RecordWrite
	for i := range 3000 {
		uid := uuid.NewString()
		name := fmt.Sprintf("build-%05d", i)
		if i%10 == 0 {
			name = "" // no value: sorts last
		}
		ws = append(ws, store.RecordWrite{ResultName: store.ResultName("ci", uid), UID: uid, DataType: store.TypeTaskRun,
			Data: run("TaskRun", "ci", name, uid, "True", "", nil, nil, map[string]string{"tekton.dev/pipeline": fmt.Sprintf("p-%d", i%40)})})
	}
	if err := s.UpsertRecords(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("ANALYZE records"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		field store.OrderField
		index string
	}{{store.OrderName, "records_name_order"}, {store.OrderPipeline, "records_pipeline_order"}} {
		for _, o := range []store.ListOptions{
			{OrderBy: store.OrderBy{Field: c.field}, First: 20},
			{OrderBy: store.OrderBy{Field: c.field}, Last: 20},
			{OrderBy: store.OrderBy{Field: c.field, Asc: true}, First: 20},
			{OrderBy: store.OrderBy{Field: c.field, Asc: true}, Last: 20},
		} {
			plan, err := s.ExplainRecords(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(plan, c.index) || strings.Contains(plan, "Sort Key") {
				t.Errorf("%s asc=%v first=%d last=%d: no scan of an index %s* without a sort:\n%s",
					c.field, o.OrderBy.Asc, o.First, o.Last, c.index, plan)
			}
		}
	}
}
