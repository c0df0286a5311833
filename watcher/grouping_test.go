package watcher

import (
	"testing"

	"github.com/annals-dev/annals/store"
)

func TestGroup(t *testing.T) {
	const (
		prUID = "0b5c6a52-1d1e-4c39-9b8e-7a8f3c1d2e01"
		trUID = "6d1f8e4a-2b3c-4d5e-8f9a-0b1c2d3e4f50"
		other = "11111111-2222-4333-8444-555555555555"
	)
	byName := func(ns, name string) (string, bool) { return prUID, ns == "ci" && name == "pr" }
	tests := []struct {
		name       string
		obj        string
		wantResult string
		summary    bool
		wantErr    bool
	}{
		{"pipelinerun", `{"apiVersion":"tekton.dev/v1","kind":"PipelineRun","metadata":{"name":"pr","namespace":"ci","uid":"` + prUID + `"}}`,
			store.ResultName("ci", prUID), true, false},
		{"taskrun owned", `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr","namespace":"ci","uid":"` + trUID + `","ownerReferences":[{"kind":"PipelineRun","name":"pr","uid":"` + prUID + `"}]}}`,
			store.ResultName("ci", prUID), false, false},
		{"taskrun labelled only", `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr","namespace":"ci","uid":"` + trUID + `","labels":{"tekton.dev/pipelineRun":"pr"}}}`,
			store.ResultName("ci", prUID), false, false},
		{"taskrun labelled with a PipelineRun uid: a Result of its own namespace", `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr","namespace":"prod","uid":"` + trUID + `","labels":{"tekton.dev/pipelineRun":"pr","tekton.dev/pipelineRunUID":"` + prUID + `"}}}`,
			store.ResultName("prod", prUID), false, false},
		{"taskrun labelled with the name of a PipelineRun of another namespace", `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr","namespace":"prod","uid":"` + trUID + `","labels":{"tekton.dev/pipelineRun":"pr"}}}`,
			store.ResultName("prod", trUID), true, false},
		{"lone taskrun", `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr","namespace":"ci","uid":"` + trUID + `"}}`,
			store.ResultName("ci", trUID), true, false},
		{"result annotation wins", `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr","namespace":"ci","uid":"` + trUID + `","annotations":{"results.tekton.dev/result":"ci/results/` + other + `"}}}`,
			store.ResultName("ci", other), true, false},
		{"annotation in another namespace", `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr","namespace":"ci","uid":"` + trUID + `","annotations":{"results.tekton.dev/result":"prod/results/` + other + `"}}}`,
			"", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRun([]byte(tt.obj))
			if err != nil {
				t.Fatal(err)
			}
			w, err := Group(r, []byte(tt.obj), byName)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err == nil && (w.ResultName != tt.wantResult || w.UpdateSummary != tt.summary) {
				t.Errorf("got %s summary=%v, want %s summary=%v", w.ResultName, w.UpdateSummary, tt.wantResult, tt.summary)
			}
		})
	}
}

func TestParseRunRejects(t *testing.T) {
	for _, obj := range []string{`{`, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"a","uid":"x"}}`,
		`{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr"}}`} {
		if _, err := ParseRun([]byte(obj)); err == nil {
			t.Errorf("accepted %s", obj)
		}
	}
}
