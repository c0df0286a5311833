package server_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// Lists read Records without their data unless the query selects it; data
// asked anywhere (a nested list, a fragment, the owner of a TaskRun) is
// still the whole object.
func TestDataReadWhereSelected(t *testing.T) {
	const query = `query {
  records(parent: "ci", where: {dataTypes: ["tekton.dev/v1.PipelineRun"]}, first: 5) { nodes { name
    pipelineRun { name params { name } taskRuns(first: 5) { nodes { ...whole taskRun { name steps { name } pipelineRun { data } } } } }
  } }
}
fragment whole on Record { data }`
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		resp := post(t, context.Background(), h, query, nil)
		if len(resp.Errors) > 0 {
			t.Fatalf("errors: %+v", resp.Errors)
		}
		type object struct {
			Kind     string
			Metadata struct{ Name string }
		}
		var got struct {
			Records struct {
				Nodes []struct {
					Name        string
					PipelineRun struct {
						Name     string
						TaskRuns struct {
							Nodes []struct {
								Data    *object
								TaskRun struct {
									Name        string
									PipelineRun struct{ Data *object }
								}
							}
						}
					}
				}
			}
		}
		if err := json.Unmarshal(resp.Data, &got); err != nil {
			t.Fatal(err)
		}
		taskRuns := 0
		for _, pr := range got.Records.Nodes {
			for _, tr := range pr.PipelineRun.TaskRuns.Nodes {
				taskRuns++
				if tr.Data == nil || tr.Data.Kind != "TaskRun" || tr.Data.Metadata.Name != tr.TaskRun.Name {
					t.Errorf("TaskRun %s: data %+v", tr.TaskRun.Name, tr.Data)
				}
				if owner := tr.TaskRun.PipelineRun.Data; owner == nil || owner.Kind != "PipelineRun" || owner.Metadata.Name != pr.PipelineRun.Name {
					t.Errorf("owner of TaskRun %s: data %+v, want PipelineRun %s", tr.TaskRun.Name, owner, pr.PipelineRun.Name)
				}
			}
		}
		if taskRuns == 0 {
			t.Fatalf("no TaskRuns in %s", resp.Data)
		}
	})
}
