package watcher_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
	"github.com/annals-dev/annals/watcher"
)

func importFile(t *testing.T, s *store.Store, path string) *watcher.ImportReport {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := watcher.Import(context.Background(), s, f)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestImportIsIdempotentAndGroups(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		first := importFile(t, s, "testdata/runs.json")
		if first.PipelineRuns != 4 || first.TaskRuns != 9 || first.Results != 6 || len(first.Skipped) != 0 {
			t.Fatalf("first import: %+v", first)
		}
		before, _ := s.ListRecords(ctx, store.ListOptions{First: 100})
		importFile(t, s, "testdata/runs.json")
		after, _ := s.ListRecords(ctx, store.ListOptions{First: 100})
		if len(after.Items) != 13 || len(before.Items) != 13 {
			t.Fatalf("records: %d then %d, want 13", len(before.Items), len(after.Items))
		}
		for i := range after.Items {
			if after.Items[i].Version != before.Items[i].Version {
				t.Errorf("%s: re-import bumped the version", after.Items[i].Name)
			}
		}
		// The TaskRun listed before its PipelineRun joined the PipelineRun's Result.
		results, _ := s.ListResults(ctx, store.ListOptions{Parent: "ci", First: 100})
		for _, res := range results.Items {
			recs, _ := s.ListRecords(ctx, store.ListOptions{ResultName: res.Name})
			if strings.HasSuffix(res.SummaryRecord, "5eed0000-0000-4000-8000-000000000001") && len(recs.Items) != 4 {
				t.Errorf("the succeeded pipeline's result holds %d records, want 4", len(recs.Items))
			}
		}
	})
}

func TestImportYAMLAndBadObjects(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	yaml := `apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: lone
  namespace: ci
  uid: 11111111-2222-4333-8444-555555555555
status:
  conditions:
  - type: Succeeded
    status: "True"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: not-a-run
---
apiVersion: tekton.dev/v1
kind: TaskRun
metadata:
  name: no-uid
  namespace: ci
`
	rep, err := watcher.Import(context.Background(), s, strings.NewReader(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if rep.TaskRuns != 1 || len(rep.Skipped) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	if !strings.Contains(strings.Join(rep.Skipped, "\n"), "ConfigMap") {
		t.Errorf("skipped objects are not named: %v", rep.Skipped)
	}
	rec, err := s.GetRecord(context.Background(), store.RecordName("ci", "11111111-2222-4333-8444-555555555555", "11111111-2222-4333-8444-555555555555"))
	if err != nil || rec.Status != store.StatusSucceeded {
		t.Fatalf("lone taskrun: %+v %v", rec, err)
	}
}
