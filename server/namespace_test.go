package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// The runs of watcher/testdata: ci's PipelineRun build-web-7x2kq and one of
// its TaskRuns.
const (
	ciRunUID     = "5eed0000-0000-4000-8000-000000000001"
	ciTaskRunUID = "5eed0000-0000-4000-8000-00000000000c"
	sharedLogUID = "0e0e0e0e-0000-4000-8000-000000000001"
)

// TestNoLinksAcrossNamespacesOverGraphQL replays the forgeries a prod writer
// could try against ci's runs: a Record under prod/results/<ci uid>, a Run
// naming ci's PipelineRun as its owner, a Log naming ci's TaskRun and
// reusing the uid of ci's Log. None of them links to ci's objects, in
// either direction, and ci's tree reads exactly as before. Logs are kept in
// database rows and in a log directory.
func TestNoLinksAcrossNamespacesOverGraphQL(t *testing.T) {
	for _, kind := range storetest.Kinds {
		for _, backend := range []string{"rows", "files"} {
			t.Run(kind+"/"+backend, func(t *testing.T) {
				var opts store.Options
				if backend == "files" {
					opts.LogDir = t.TempDir()
				}
				s, _ := storetest.OpenWith(t, kind, opts)
				testNoLinksAcrossNamespaces(t, s)
			})
		}
	}
}

func testNoLinksAcrossNamespaces(t *testing.T, s *store.Store) {
	ctx := context.Background()
	srv := httptest.NewServer(fixture(t, s))
	defer srv.Close()
	ciResult := store.ResultName("ci", ciRunUID)
	ciTaskRun := store.RecordName("ci", ciRunUID, ciTaskRunUID)
	tr, err := s.GetRecord(ctx, ciTaskRun)
	if err != nil {
		t.Fatal(err)
	}
	ciLog, err := s.WriteLog(ctx, store.LogWrite{UID: sharedLogUID, TaskRun: tr, Step: "build"}, strings.NewReader("ci secret log\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	const ciTree = `query($r: String!, $pr: String!, $tr: String!) {
  result(name: $r) { name annotations { key value } records(first: 100) { totalCount nodes { name } } }
  record(name: $pr) { pipelineRun { taskRuns(first: 100) { totalCount nodes { name } } } }
  taskRun: record(name: $tr) { taskRun { logs { step text(offset: 0) } pipelineRun { name } } }
  results(parent: "ci", first: 100) { totalCount nodes { name } }
}`
	ciVars := map[string]any{"r": ciResult, "pr": store.RecordName("ci", ciRunUID, ciRunUID), "tr": ciTaskRun}
	before := httpPost(t, srv.URL, ciTree, ciVars)
	if len(before.Errors) > 0 || !strings.Contains(string(before.Data), "ci secret log") {
		t.Fatalf("ci's tree: %s %+v", before.Data, before.Errors)
	}

	// A Result uid that exists only in ci is unknown in prod, exactly as
	// one that exists nowhere.
	const create = `mutation($r: String!, $uid: String, $t: String!, $d: JSON!) { createRecord(input: {result: $r, uid: $uid, dataType: $t, data: $d}) { name } }`
	forgedRun := func(uid string) map[string]any {
		return map[string]any{"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "metadata": map[string]any{
			"name": "build-web-7x2kq-forged", "namespace": "prod", "uid": uid,
			"labels":          map[string]string{"tekton.dev/pipelineRun": "build-web-7x2kq", "tekton.dev/pipelineRunUID": ciRunUID},
			"ownerReferences": []any{map[string]any{"kind": "PipelineRun", "name": "build-web-7x2kq", "uid": ciRunUID}}}}
	}
	nowhere := uuid.NewString()
	foreign := httpPost(t, srv.URL, create, map[string]any{"r": store.ResultName("prod", ciRunUID), "t": store.TypeTaskRun, "d": forgedRun(uuid.NewString())})
	missing := httpPost(t, srv.URL, create, map[string]any{"r": store.ResultName("prod", nowhere), "t": store.TypeTaskRun, "d": forgedRun(uuid.NewString())})
	if foreign.code() != "NOT_FOUND" || missing.code() != "NOT_FOUND" {
		t.Fatalf("createRecord under prod/results/<ci uid>: %s %+v; under a uid that exists nowhere: %+v; want NOT_FOUND for both", foreign.Data, foreign.Errors, missing.Errors)
	}
	if a, b := strings.ReplaceAll(foreign.Errors[0].Message, ciRunUID, "UID"), strings.ReplaceAll(missing.Errors[0].Message, nowhere, "UID"); a != b {
		t.Errorf("the answers differ: %q vs %q", a, b)
	}

	// prod may have its own Result of that uid, and fill it.
	r := httpPost(t, srv.URL, `mutation($uid: String!) { createResult(input: {namespace: "prod", uid: $uid}) { name } }`, map[string]any{"uid": ciRunUID})
	if len(r.Errors) > 0 {
		t.Fatalf("createResult in prod with ci's uid: %+v; want a Result of its own", r.Errors)
	}
	prodResult := store.ResultName("prod", ciRunUID)
	forgedUID := uuid.NewString()
	forgedLog := func(ns string) map[string]any {
		resource := map[string]any{"kind": "TaskRun", "name": "build-web-7x2kq-compile", "uid": ciTaskRunUID}
		if ns != "" {
			resource["namespace"] = ns
		}
		return map[string]any{"apiVersion": "results.tekton.dev/v1alpha3", "kind": "Log",
			"spec": map[string]any{"resource": resource, "step": "forged"}, "status": map[string]any{"available": true, "size": 14, "storage": "file"}}
	}
	for _, w := range []struct {
		what, uid, dataType string
		data                map[string]any
		code                string
	}{
		{"a TaskRun owned by ci's PipelineRun", forgedUID, store.TypeTaskRun, forgedRun(forgedUID), ""},
		{"a TaskRun reusing the uid of ci's TaskRun", ciTaskRunUID, store.TypeTaskRun, forgedRun(ciTaskRunUID), ""},
		{"a Log of ci's TaskRun uid, reusing the uid of ci's Log", sharedLogUID, store.TypeLog, forgedLog(""), ""},
		{"a Log naming a TaskRun of ci", uuid.NewString(), store.TypeLog, forgedLog("ci"), "INVALID_ARGUMENT"},
	} {
		r := httpPost(t, srv.URL, create, map[string]any{"r": prodResult, "uid": w.uid, "t": w.dataType, "d": w.data})
		if r.code() != w.code {
			t.Errorf("createRecord %s: %+v, want code %q", w.what, r.Errors, w.code)
		}
	}

	// From prod, nested fields lead only to prod's objects.
	forged := httpPost(t, srv.URL, `query($f: String!, $twin: String!) {
  forged: record(name: $f) { name result { name summary { record } records(first: 100) { nodes { name } } } taskRun { pipelineRun { name data } logs { step } } }
  twin: record(name: $twin) { name taskRun { pipelineRun { name } logs { record { name } step text(offset: 0) tail(lines: 5) downloadPath } } }
}`, map[string]any{"f": store.RecordName("prod", ciRunUID, forgedUID), "twin": store.RecordName("prod", ciRunUID, ciTaskRunUID)})
	if len(forged.Errors) > 0 {
		t.Fatalf("prod's records: %+v", forged.Errors)
	}
	if names := quotedNames(forged.Data); len(names) == 0 || strings.Contains(string(forged.Data), "ci/") {
		t.Errorf("prod's records lead to ci: %s", forged.Data)
	}
	var got struct {
		Forged struct {
			TaskRun struct {
				PipelineRun *struct{ Name string }
				Logs        []struct{ Step string }
			}
		}
		Twin struct {
			TaskRun struct {
				PipelineRun *struct{ Name string }
				Logs        []struct{ Step, Text, Tail, DownloadPath string }
			}
		}
	}
	if err := json.Unmarshal(forged.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Forged.TaskRun.PipelineRun != nil || got.Twin.TaskRun.PipelineRun != nil || len(got.Forged.TaskRun.Logs) != 0 {
		t.Errorf("a prod TaskRun reached ci's PipelineRun or a Log: %s", forged.Data)
	}
	logs := got.Twin.TaskRun.Logs
	if len(logs) != 1 || logs[0].Step != "forged" || logs[0].Text != "" || logs[0].Tail != "" {
		t.Fatalf("prod's Log of the same uid as ci's: %+v", logs)
	}
	if body := httpGet(t, srv.URL+logs[0].DownloadPath); body != "" {
		t.Errorf("downloading prod's Log gave %q", body)
	}
	if body := httpGet(t, srv.URL+"/logs/"+ciLog.Name); body != "ci secret log\n" {
		t.Errorf("downloading ci's Log gave %q", body)
	}

	// ci's tree is exactly as before.
	after := httpPost(t, srv.URL, ciTree, ciVars)
	if len(after.Errors) > 0 || string(after.Data) != string(before.Data) {
		t.Errorf("ci's tree changed:\nbefore %s\nafter  %s %+v", before.Data, after.Data, after.Errors)
	}
}

// httpPost sends one GraphQL request over HTTP.
func httpPost(t *testing.T, url, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	resp, err := http.Post(url+"/graphql", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out gqlResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("status %d, body %q: %v", resp.StatusCode, raw, err)
	}
	return out
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// quotedNames returns the values of every "name" field in a response.
func quotedNames(data json.RawMessage) []string {
	var out []string
	for _, part := range strings.Split(string(data), `"name":"`)[1:] {
		out = append(out, part[:strings.IndexByte(part, '"')])
	}
	return out
}
