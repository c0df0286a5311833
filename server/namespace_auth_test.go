package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
)

// TestForgedLinksUnderRBAC: bob may write prod only. Whatever he writes in
// prod naming ci's uids, he reads nothing of ci through it, and alice, who
// reads ci, sees ci's tree unchanged and whole (a prod Log shown on a ci
// TaskRun would have nulled it, alice having no rights in prod).
func TestForgedLinksUnderRBAC(t *testing.T) {
	w := setupAuthWorld(t)
	ctx := context.Background()
	// A TaskRun of ci's PipelineRun build-web-7x2kq, with a log.
	ciRecord, err := w.store.GetRecord(ctx, store.RecordName("ci", ciRunUID, ciTaskRunUID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: ciRecord, Step: "build"}, strings.NewReader("ci secret log\n"), 0); err != nil {
		t.Fatal(err)
	}
	const aliceQuery = `query($r: String!) { record(name: $r) { name
  result { name records(first: 100) { totalCount nodes { name } } }
  taskRun { logs { step text } pipelineRun { name pipelineRun { taskRuns(first: 100) { totalCount nodes { name } } } } } } }`
	aliceVars := map[string]any{"r": ciRecord.Name}
	_, before := w.do(t, "alice", aliceQuery, aliceVars, nil)
	if len(before.Errors) > 0 || !strings.Contains(string(before.Data), "ci secret log") {
		t.Fatalf("alice's view of ci: %s %+v", before.Data, before.Errors)
	}

	const create = `mutation($r: String!, $uid: String, $t: String!, $d: JSON!) { createRecord(input: {result: $r, uid: $uid, dataType: $t, data: $d}) { name } }`
	taskRun := map[string]any{"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "metadata": map[string]any{"name": "forged", "namespace": "prod",
		"labels":          map[string]string{"tekton.dev/pipelineRun": ciRecord.PipelineRunName},
		"ownerReferences": []any{map[string]any{"kind": "PipelineRun", "name": ciRecord.PipelineRunName, "uid": ciRecord.ResultUID}}}}
	nowhere := uuid.NewString()
	_, foreign := w.do(t, "bob", create, map[string]any{"r": store.ResultName("prod", ciRecord.ResultUID), "t": store.TypeTaskRun, "d": taskRun}, nil)
	_, missing := w.do(t, "bob", create, map[string]any{"r": store.ResultName("prod", nowhere), "t": store.TypeTaskRun, "d": taskRun}, nil)
	if foreign.code() != "NOT_FOUND" || missing.code() != "NOT_FOUND" ||
		strings.ReplaceAll(foreign.Errors[0].Message, ciRecord.ResultUID, "UID") != strings.ReplaceAll(missing.Errors[0].Message, nowhere, "UID") {
		t.Fatalf("createRecord under prod/results/<ci uid>: %s %+v; under a uid that exists nowhere: %+v; want the same NOT_FOUND", foreign.Data, foreign.Errors, missing.Errors)
	}
	if _, r := w.do(t, "bob", `mutation($uid: String!) { createResult(input: {namespace: "prod", uid: $uid}) { name } }`, map[string]any{"uid": ciRecord.ResultUID}, nil); len(r.Errors) > 0 {
		t.Fatalf("createResult in prod with ci's uid: %+v", r.Errors)
	}
	prodResult := store.ResultName("prod", ciRecord.ResultUID)
	forgedUID := uuid.NewString()
	log := map[string]any{"apiVersion": "results.tekton.dev/v1alpha3", "kind": "Log",
		"spec": map[string]any{"resource": map[string]any{"kind": "TaskRun", "name": ciRecord.RunName, "uid": ciRecord.UID}, "step": "forged"}}
	for _, c := range []struct {
		uid, dataType string
		data          map[string]any
	}{{forgedUID, store.TypeTaskRun, taskRun}, {uuid.NewString(), store.TypeLog, log}} {
		if _, r := w.do(t, "bob", create, map[string]any{"r": prodResult, "uid": c.uid, "t": c.dataType, "d": c.data}, nil); len(r.Errors) > 0 {
			t.Fatalf("bob's %s in prod: %+v", c.dataType, r.Errors)
		}
	}

	_, bob := w.do(t, "bob", `query($r: String!) { record(name: $r) { name result { name records(first: 100) { nodes { name } } }
  taskRun { pipelineRun { name data } logs { step } } } }`, map[string]any{"r": store.RecordName("prod", ciRecord.ResultUID, forgedUID)}, nil)
	if len(bob.Errors) > 0 || strings.Contains(string(bob.Data), "ci/") || !strings.Contains(string(bob.Data), `"pipelineRun":null`) {
		t.Errorf("bob's forged Record leads to ci: %s %+v", bob.Data, bob.Errors)
	}
	onlyNamespace("prod", true)(t, w, bob.Data)

	_, after := w.do(t, "alice", aliceQuery, aliceVars, nil)
	if len(after.Errors) > 0 || string(after.Data) != string(before.Data) {
		t.Errorf("alice's view of ci changed:\nbefore %s\nafter  %s %+v", before.Data, after.Data, after.Errors)
	}
}
