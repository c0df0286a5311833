package store

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func TestFillDerived(t *testing.T) {
	tests := []struct {
		file, dataType                                  string
		runName, status, reason, prName, pipeline, task string
		durationMs                                      int64
	}{
		{"testdata/pipelinerun.json", TypePipelineRun, "build-web-x7k2p", StatusFailed, "Failed", "", "build", "", 330000},
		{"testdata/taskrun.json", TypeTaskRun, "build-web-x7k2p-compile", StatusSucceeded, "Succeeded", "build-web-x7k2p", "build", "compile", 115000},
	}
	for _, tt := range tests {
		data, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		rec := &Record{DataType: tt.dataType, Data: data}
		fillDerived(rec)
		if rec.RunName != tt.runName || rec.Status != tt.status || rec.Reason != tt.reason ||
			rec.PipelineRunName != tt.prName || rec.PipelineName != tt.pipeline || rec.TaskName != tt.task {
			t.Errorf("%s: got %+v", tt.file, rec)
		}
		if rec.DurationMillis == nil || *rec.DurationMillis != tt.durationMs {
			t.Errorf("%s: duration %v, want %d", tt.file, rec.DurationMillis, tt.durationMs)
		}
		if rec.DurationMicros == nil || *rec.DurationMicros != tt.durationMs*1000 {
			t.Errorf("%s: exact duration %v, want %d µs", tt.file, rec.DurationMicros, tt.durationMs*1000)
		}
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct{ status, reason, want string }{
		{"True", "Succeeded", StatusSucceeded},
		{"False", "Failed", StatusFailed},
		{"False", "PipelineRunTimeout", StatusFailed},
		{"False", "Cancelled", StatusCancelled},
		{"False", "TaskRunCancelled", StatusCancelled},
		{"Unknown", "Running", StatusRunning},
		{"", "", StatusUnknown},
	}
	for _, tt := range tests {
		if got := statusOf(tt.status, tt.reason); got != tt.want {
			t.Errorf("statusOf(%q, %q) = %q, want %q", tt.status, tt.reason, got, tt.want)
		}
	}
}

func TestCleanData(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":"x\u0000y"}`, `{"a":"xy"}`},
		{"{\"a\":\"b\x00\"}", `{"a":"b"}`},
		{`{"a":1}`, `{"a":1}`},
	}
	for _, tt := range tests {
		got, err := cleanData(json.RawMessage(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("cleanData(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if _, err := cleanData(json.RawMessage(`{"a":`)); err == nil {
		t.Error("invalid JSON accepted")
	}
}

// TestRepairJSON: what PostgreSQL cannot store (NUL, invalid UTF-8, lone
// surrogate escapes) is removed or becomes U+FFFD, and only then is the
// data reported as repaired; valid data passes untouched.
func TestRepairJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
		repaired       bool
	}{
		{"valid", `{"a":"é\n","n":12345678901234567890}`, `{"a":"é\n","n":12345678901234567890}`, false},
		{"surrogate pair", `{"a":"\ud83d\ude00"}`, `{"a":"\ud83d\ude00"}`, false},
		{"escaped backslash before u", `{"a":"\\ud800"}`, `{"a":"\\ud800"}`, false},
		{"lone high surrogate", `{"a":"x\ud800y","n":12345678901234567890}`, `{"a":"x` + "\uFFFD" + `y","n":12345678901234567890}`, true},
		{"lone low surrogate", `{"a":"\uDC00"}`, `{"a":"` + "\uFFFD" + `"}`, true},
		{"high then not low", `{"a":"\ud800\u0041"}`, `{"a":"` + "\uFFFD" + `A"}`, true},
		{"invalid UTF-8 byte", "{\"a\":\"x\xffy\"}", `{"a":"x` + "\uFFFD" + `y"}`, true},
		{"NUL escape", `{"a":"x\u0000y"}`, `{"a":"xy"}`, true},
	}
	for _, tt := range tests {
		got, repaired, err := RepairJSON([]byte(tt.in))
		if err != nil || string(got) != tt.want || repaired != tt.repaired {
			t.Errorf("%s: RepairJSON(%q) = %s, %v, %v; want %s, %v", tt.name, tt.in, got, repaired, err, tt.want, tt.repaired)
		}
	}
}

// referenceRevision and referenceFailedStep are the generic readings of
// params and steps that fillDerived used before it decoded them once;
// their answers must not change (migration 00010's SQL gives the same).
func referenceRevision(params json.RawMessage) string {
	var list []any
	if json.Unmarshal(params, &list) != nil {
		return ""
	}
	for _, want := range revisionParams {
		for _, p := range list {
			obj, _ := p.(map[string]any)
			if name, _ := obj["name"].(string); name != want {
				continue
			}
			if v, _ := obj["value"].(string); v != "" {
				return v
			}
		}
	}
	return ""
}

func referenceFailedStep(steps json.RawMessage) string {
	var list []any
	if json.Unmarshal(steps, &list) != nil {
		return ""
	}
	for _, s := range list {
		step, _ := s.(map[string]any)
		terminated, _ := step["terminated"].(map[string]any)
		code, isNumber := terminated["exitCode"].(float64)
		name, hasName := step["name"].(string)
		if isNumber && code != 0 && hasName {
			return name
		}
	}
	return ""
}

// Params and steps are decoded once, leniently: odd elements and members
// of unexpected types are passed over as the generic reading did, keys
// match exactly, and the rest of the run is kept.
func TestLenientParamsAndSteps(t *testing.T) {
	params := []string{
		`null`, `{}`, `"x"`, `[]`, `[1, "a", null, []]`,
		`[{"name": "revision", "value": "abc"}]`,
		`[{"name": "commit", "value": "c"}, {"name": "revision", "value": "r"}]`,
		`["odd", {"name": "revision", "value": ""}, {"name": "commit", "value": "sha"}]`,
		`[{"name": "revision", "value": ["sha"]}, {"name": "revision", "value": 7}]`,
		`[{"Name": "revision", "value": "upper"}, {"name": "REVISION", "value": "caps"}]`,
		`[{"name": "rev\u0069sion", "value": "esc\"aped\u00e9"}]`,
		`[{"name": 1, "value": "n"}, {"value": "v", "name": "revision", "name": "commit"}]`,
		`[ { "name" : "revision" , "value" : { "nested" : ["]", "}", "\\"] } }, {"name":"commit","value":"k"} ]`,
	}
	steps := []string{
		`null`, `{}`, `[]`, `["s", 1, null]`,
		`[{"name": "a", "terminated": {"exitCode": 0}}, {"name": "b", "terminated": {"exitCode": 2}}]`,
		`[{"terminated": {"exitCode": 1}}, {"name": 3, "terminated": {"exitCode": 1}}, {"name": "c", "terminated": {"exitCode": 1.5}}]`,
		`[{"name": "d", "terminated": {"exitCode": "1"}}, {"name": "e", "terminated": "x"}, {"name": "f", "terminated": {"exitCode": -1}}]`,
		`[{"name": "g", "Terminated": {"exitCode": 1}}, {"name": "h", "terminated": {"ExitCode": 1}}, {"name": "", "terminated": {"exitCode": 1e2}}]`,
		`[{"name": "i", "terminated": {"exitCode": 1, "startedAt": "not a time", "finishedAt": 5}}, {"name": "j", "running": {"startedAt": "2026-11-01T10:00:00Z"}}]`,
		`[{"name": "k", "waiting": {"reason": "PodInitializing"}}, {"name": "l", "terminated": {"exitCode": 0, "exitCode": 9}}]`,
	}
	for _, p := range params {
		for _, s := range steps {
			data := []byte(`{"metadata": {"name": "r", "labels": {"app": "x"}}, "spec": {"params": ` + p + `},
				"status": {"conditions": [{"type": "Succeeded", "status": "False", "reason": "Failed"}], "podName": "pod", "steps": ` + s + `}}`)
			for _, dataType := range []string{TypePipelineRun, TypeTaskRun} {
				rec := &Record{DataType: dataType, Data: data}
				fillDerived(rec)
				wantRev, wantStep := referenceRevision(json.RawMessage(p)), referenceFailedStep(json.RawMessage(s))
				if dataType == TypeTaskRun {
					wantRev = ""
				} else {
					wantStep = ""
				}
				if rec.Revision != wantRev || rec.FailedStep != wantStep || rec.RunName != "r" || rec.Labels["app"] != "x" || rec.Status != StatusFailed {
					t.Errorf("%s params %s steps %s: revision %q (want %q), failed step %q (want %q), %+v", dataType, p, s, rec.Revision, wantRev, rec.FailedStep, wantStep, rec)
				}
				if view := RunViewOf(rec); view.PodName != "pod" {
					t.Errorf("params %s steps %s: view %+v", p, s, view)
				}
			}
		}
	}
	// A bad time no longer hides the steps after it.
	rec := &Record{DataType: TypeTaskRun, Data: []byte(`{"status": {"steps": [{"name": "i", "terminated": {"exitCode": 1, "startedAt": "not a time"}}, {"name": "j", "running": {"startedAt": "2026-11-01T10:00:00+02:00"}}]}}`)}
	fillDerived(rec)
	view := RunViewOf(rec)
	if len(view.Steps) != 2 || view.Steps[0].StartedAt != nil || *view.Steps[0].ExitCode != 1 || view.Steps[1].StartedAt == nil ||
		view.Steps[1].StartedAt.Format(time.RFC3339) != "2026-11-01T10:00:00+02:00" {
		t.Errorf("steps with a bad time: %+v", view.Steps)
	}
}

// BenchmarkFillDerived is the write path's extraction of one run: columns
// and view. Allocations per run, compared across commits.
func BenchmarkFillDerived(b *testing.B) {
	for _, f := range []struct{ file, dataType string }{
		{"testdata/pipelinerun.json", TypePipelineRun},
		{"testdata/taskrun.json", TypeTaskRun},
		{"testdata/taskrun-view.json", "tekton.dev/v1beta1.TaskRun"},
	} {
		data, err := os.ReadFile(f.file)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.TrimSuffix(strings.TrimPrefix(f.file, "testdata/"), ".json"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := &Record{DataType: f.dataType, Data: data}
				fillDerived(rec)
			}
		})
	}
}
