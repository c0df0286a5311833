package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// Namespaces own their objects: a uid is unique within a namespace only, and
// nothing written in one namespace can link to, change or reveal an object
// of another.

// TestSameUIDInTwoNamespacesAreTwoObjects: a Result and a Record of the same
// uid in ci and prod are independent objects.
func TestSameUIDInTwoNamespacesAreTwoObjects(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		uid, recUID := uuid.NewString(), uuid.NewString()
		ci, err := s.CreateResult(ctx, "ci", uid, map[string]string{"team": "ci"})
		if err != nil {
			t.Fatal(err)
		}
		prod, err := s.CreateResult(ctx, "prod", uid, map[string]string{"team": "prod"})
		if err != nil {
			t.Fatalf("createResult in prod with a uid taken in ci: %v; want its own Result", err)
		}
		if prod.Name != store.ResultName("prod", uid) {
			t.Errorf("prod Result named %q", prod.Name)
		}
		if _, err := s.CreateResult(ctx, "prod", uid, nil); !errors.Is(err, store.ErrConflict) {
			t.Errorf("second createResult in prod: %v, want conflict", err)
		}
		for _, ns := range []string{"ci", "prod"} {
			if _, err := s.CreateRecord(ctx, store.RecordWrite{ResultName: store.ResultName(ns, uid), UID: recUID, DataType: "x/v1.Note",
				Data: []byte(`{"ns":"` + ns + `"}`)}); err != nil {
				t.Fatalf("createRecord %s in %s: %v", recUID, ns, err)
			}
		}
		if _, err := s.UpdateResultAnnotations(ctx, prod.Name, map[string]string{"team": "changed"}, nil, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateRecord(ctx, store.RecordName("prod", uid, recUID), []byte(`{"ns":"prod","v":2}`), ""); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetResult(ctx, ci.Name)
		if err != nil || got.Version != 1 {
			t.Fatalf("ci Result after prod's changed: %+v %v", got, err)
		}
		rec, err := s.GetRecord(ctx, store.RecordName("ci", uid, recUID))
		if err != nil || strings.ReplaceAll(string(rec.Data), " ", "") != `{"ns":"ci"}` || rec.Version != 1 {
			t.Fatalf("ci Record after prod's changed: %+v %v", rec, err)
		}
		page, err := s.ListRecords(ctx, store.ListOptions{ResultName: ci.Name})
		if err != nil || len(page.Items) != 1 || page.Items[0].Namespace != "ci" {
			t.Fatalf("records of the ci Result: %v %v", page, err)
		}
		res, err := s.ListResults(ctx, store.ListOptions{Parent: "ci", Filter: `annotations["team"] == "changed"`})
		if err != nil || len(res.Items) != 0 {
			t.Errorf("an annotation of prod's Result matched on ci's: %v %v", res, err)
		}
		if err := s.DeleteResult(ctx, prod.Name, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetRecord(ctx, store.RecordName("ci", uid, recUID)); err != nil {
			t.Errorf("deleting prod's Result took ci's Record: %v", err)
		}
		if _, err := s.GetRecord(ctx, store.RecordName("prod", uid, recUID)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("prod's Record outlived its Result: %v", err)
		}
	})
}

// TestCreateRecordUnderForeignResultIsNotFound: a Result uid that exists only
// in another namespace answers exactly as a uid that exists nowhere.
func TestCreateRecordUnderForeignResultIsNotFound(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ci, err := s.CreateResult(ctx, "ci", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		nowhere := uuid.NewString()
		_, foreign := s.CreateRecord(ctx, store.RecordWrite{ResultName: store.ResultName("prod", ci.UID), DataType: "x/v1.Note", Data: []byte(`{}`)})
		_, missing := s.CreateRecord(ctx, store.RecordWrite{ResultName: store.ResultName("prod", nowhere), DataType: "x/v1.Note", Data: []byte(`{}`)})
		if !errors.Is(foreign, store.ErrNotFound) || !errors.Is(missing, store.ErrNotFound) {
			t.Fatalf("createRecord under prod/results/<ci uid>: %v; under a uid that exists nowhere: %v; want not found for both", foreign, missing)
		}
		if strings.ReplaceAll(foreign.Error(), ci.UID, "UID") != strings.ReplaceAll(missing.Error(), nowhere, "UID") {
			t.Errorf("the answers differ: %q vs %q", foreign, missing)
		}
		page, err := s.ListRecords(ctx, store.ListOptions{ResultName: ci.Name})
		if err != nil || len(page.Items) != 0 {
			t.Errorf("ci's Result got records: %v %v", page, err)
		}
	})
}

// TestUpsertNeverJoinsAnotherNamespace: the watcher's and import's write
// path puts a run in a Result of its own namespace whatever Result uid it
// names, and never touches another namespace's Result or Records.
func TestUpsertNeverJoinsAnotherNamespace(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		prUID, trUID := uuid.NewString(), uuid.NewString()
		start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		ciResult := store.ResultName("ci", prUID)
		storetest.Upsert(t, s, store.RecordWrite{ResultName: ciResult, UID: prUID, DataType: store.TypePipelineRun, UpdateSummary: true,
			Data: run("PipelineRun", "ci", "build", prUID, "True", "Succeeded", &start, &start, nil)})
		before, err := s.GetResult(ctx, ciResult)
		if err != nil {
			t.Fatal(err)
		}
		// A prod TaskRun naming ci's PipelineRun uid as its Result, and a
		// prod run reusing the uid of ci's PipelineRun, both with summaries.
		prodResult := store.ResultName("prod", prUID)
		if err := s.UpsertRecords(ctx, []store.RecordWrite{
			{ResultName: prodResult, UID: trUID, DataType: store.TypeTaskRun, UpdateSummary: true,
				Data: run("TaskRun", "prod", "build-x", trUID, "False", "Failed", &start, nil, map[string]string{"tekton.dev/pipelineRun": "build"})},
			{ResultName: prodResult, UID: prUID, DataType: store.TypePipelineRun,
				Data: run("PipelineRun", "prod", "build", prUID, "False", "Failed", &start, nil, nil)},
		}); err != nil {
			t.Fatal(err)
		}
		after, err := s.GetResult(ctx, ciResult)
		if err != nil || after.Version != before.Version || after.SummaryStatus != store.StatusSucceeded {
			t.Errorf("ci's Result changed: %+v -> %+v (%v)", before, after, err)
		}
		ciRecords, err := s.ListRecords(ctx, store.ListOptions{ResultName: ciResult})
		if err != nil || len(ciRecords.Items) != 1 || ciRecords.Items[0].Status != store.StatusSucceeded {
			t.Fatalf("records of ci's Result: %+v %v", ciRecords, err)
		}
		prod, err := s.GetResult(ctx, prodResult)
		if err != nil || prod.Namespace != "prod" || prod.SummaryStatus != store.StatusFailed {
			t.Fatalf("prod's Result: %+v %v", prod, err)
		}
		prodRecords, err := s.ListRecords(ctx, store.ListOptions{ResultName: prodResult})
		if err != nil || len(prodRecords.Items) != 2 {
			t.Fatalf("records of prod's Result: %+v %v", prodRecords, err)
		}
		for _, r := range prodRecords.Items {
			if r.Namespace != "prod" || r.ResultName != prodResult {
				t.Errorf("record %s in %s under %s", r.Name, r.Namespace, r.ResultName)
			}
		}
	})
}

// TestLogsStayInTheirNamespace: a Log is stored beside its TaskRun, in the
// TaskRun's namespace, and cannot name a run of another namespace.
func TestLogsStayInTheirNamespace(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		trUID := uuid.NewString()
		tr := storetest.Upsert(t, s, store.RecordWrite{ResultName: store.ResultName("ci", trUID), UID: trUID, DataType: store.TypeTaskRun, UpdateSummary: true,
			Data: run("TaskRun", "ci", "tr", trUID, "True", "", nil, nil, nil)})[0]
		forged := *tr
		forged.Namespace = "prod"
		if _, err := s.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: &forged, Step: "x"}, strings.NewReader("x\n"), 0); !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("a log of a prod TaskRun under a ci Result: %v, want invalid argument", err)
		}
		prod, err := s.CreateResult(ctx, "prod", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		log := `{"apiVersion":"results.tekton.dev/v1alpha3","kind":"Log","spec":{"resource":{"kind":"TaskRun","namespace":"ci","name":"tr","uid":"` + trUID + `"},"step":"forged"}}`
		_, err = s.CreateRecord(ctx, store.RecordWrite{ResultName: prod.Name, DataType: store.TypeLog, Data: []byte(log)})
		if !errors.Is(err, store.ErrInvalidArgument) || !strings.Contains(err.Error(), "own namespace") {
			t.Errorf("a prod Log naming a ci TaskRun: %v, want invalid argument", err)
		}
	})
}
