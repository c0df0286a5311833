package store

import (
	"encoding/json"
	"os"
	"testing"
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
