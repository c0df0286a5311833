package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// runFields are the parts of a TaskRun or PipelineRun (tekton.dev v1 or
// v1beta1) that the store copies into columns.
type runFields struct {
	Metadata struct {
		Name              string         `json:"name"`
		Namespace         string         `json:"namespace"`
		CreationTimestamp any            `json:"creationTimestamp"`
		Labels            map[string]any `json:"labels"`
		Annotations       map[string]any `json:"annotations"`
		OwnerReferences   []struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		PipelineRef *struct {
			Name string `json:"name"`
		} `json:"pipelineRef"`
		TaskRef *struct {
			Name string `json:"name"`
		} `json:"taskRef"`
		Params paramList `json:"params"` // decoded leniently, once: revision and view
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type    string `json:"type"`
			Status  string `json:"status"`
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"conditions"`
		StartTime      any      `json:"startTime"` // parsed leniently: a bad time must not hide the rest
		CompletionTime any      `json:"completionTime"`
		Steps          stepList `json:"steps"` // decoded leniently, once: failed step and view

		PodName         string      `json:"podName"`
		Results         []NameValue `json:"results"`
		PipelineResults []NameValue `json:"pipelineResults"` // v1beta1 PipelineRuns
		TaskResults     []NameValue `json:"taskResults"`     // v1beta1 TaskRuns
	} `json:"status"`
}

// isRunType tells whether a data type is a Tekton run whose fields are extracted.
func isRunType(dataType string) bool {
	return strings.HasPrefix(dataType, "tekton.dev/") &&
		(strings.HasSuffix(dataType, ".TaskRun") || strings.HasSuffix(dataType, ".PipelineRun"))
}

// cleanData validates JSON and makes it storable: NUL characters, which
// neither PostgreSQL text nor JSONB can hold (raw, or escaped as \u0000),
// are removed, and invalid UTF-8 (raw bytes, or a lone surrogate escape
// such as \ud800, which PostgreSQL refuses) becomes U+FFFD, so that one
// broken string never costs a whole object.
func cleanData(data json.RawMessage) (json.RawMessage, error) {
	data, _, err := RepairJSON(data)
	return data, err
}

// RepairJSON is cleanData for callers that want to know whether anything
// was replaced or removed (to report the object), and refuses what is not
// JSON with ErrInvalidArgument.
func RepairJSON(data []byte) (out json.RawMessage, repaired bool, err error) {
	if len(data) == 0 {
		return json.RawMessage("null"), false, nil
	}
	if bytes.IndexByte(data, 0) >= 0 {
		data, repaired = bytes.ReplaceAll(data, []byte{0}, nil), true
	}
	if !utf8.Valid(data) {
		// Outside strings JSON is ASCII, so only string contents change.
		data, repaired = bytes.ToValidUTF8(data, []byte("\uFFFD")), true
	}
	if escapesToRepair(data) {
		// Go's decoder turns a lone surrogate into U+FFFD (and keeps pairs);
		// numbers stay as written.
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, false, fmt.Errorf("%w: data is not valid JSON: %v", ErrInvalidArgument, err)
		}
		if dec.More() {
			return nil, false, fmt.Errorf("%w: data is not valid JSON: more than one value", ErrInvalidArgument)
		}
		re, err := json.Marshal(stripNUL(v))
		if err != nil {
			return nil, false, err
		}
		return re, true, nil
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return nil, false, fmt.Errorf("%w: data is not valid JSON: %v", ErrInvalidArgument, err)
	}
	return data, repaired, nil
}

// escapesToRepair tells whether data holds a \u0000 escape or a lone
// surrogate escape (\uD800-\uDFFF not in a high-low pair), which
// PostgreSQL refuses. Backslashes occur only inside JSON strings, so a scan
// of escapes suffices.
func escapesToRepair(data []byte) bool {
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' {
			continue
		}
		r, ok := hexEscape(data, i)
		if !ok {
			i++ // an escaped character: skip it
			continue
		}
		switch {
		case r == 0, r >= 0xDC00 && r <= 0xDFFF:
			return true
		case r >= 0xD800 && r <= 0xDBFF:
			if low, ok := hexEscape(data, i+6); !ok || low < 0xDC00 || low > 0xDFFF {
				return true
			}
			i += 6
		}
		i += 5
	}
	return false
}

// hexEscape reads a \uXXXX escape at data[i:].
func hexEscape(data []byte, i int) (rune, bool) {
	if i+6 > len(data) || data[i] != '\\' || data[i+1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range data[i+2 : i+6] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func stripNUL(v any) any {
	switch x := v.(type) {
	case string:
		return strings.ReplaceAll(x, "\x00", "")
	case []any:
		for i := range x {
			x[i] = stripNUL(x[i])
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[strings.ReplaceAll(k, "\x00", "")] = stripNUL(val)
		}
		return out
	}
	return v
}

// fillDerived sets the denormalised columns of rec from its data. Data that
// is not a Tekton run, or does not decode as one, leaves them empty: the
// record is still stored whole.
func fillDerived(rec *Record) {
	rec.RunName, rec.Status, rec.Reason = "", StatusUnknown, ""
	rec.PipelineRunName, rec.PipelineName, rec.TaskName = "", "", ""
	rec.Labels, rec.StartTime, rec.CompletionTime, rec.DurationMillis, rec.runAnnotations = nil, nil, nil, nil, nil
	rec.OwnerUID, rec.ownerNamespace, rec.CreationTime, rec.Repository, rec.DurationMicros = "", "", nil, "", nil
	rec.Revision, rec.FailedStep = "", ""
	rec.RunView = nil
	if !isRunType(rec.DataType) {
		rec.CreationTime = creationTimestamp(rec.Data) // runs read it below, in their one decoding
	}
	if rec.DataType == TypeLog {
		var log LogData
		if json.Unmarshal(rec.Data, &log) == nil {
			rec.OwnerUID, rec.RunName = log.Spec.Resource.UID, log.Spec.Resource.Name
			rec.ownerNamespace = log.Spec.Resource.Namespace
		}
		return
	}
	if !isRunType(rec.DataType) {
		return
	}
	var run runFields
	err := json.Unmarshal(rec.Data, &run)
	// The decoder goes on past a field of an unexpected type, so the view
	// holds whatever is readable, as reading it from data would.
	rec.RunView = run.runView().encode()
	if err != nil {
		// A field of an unexpected type: keep what metadata alone gives.
		run = runFields{}
		var metaOnly struct {
			Metadata struct {
				Name              string         `json:"name"`
				Labels            map[string]any `json:"labels"`
				CreationTimestamp any            `json:"creationTimestamp"`
			} `json:"metadata"`
		}
		if json.Unmarshal(rec.Data, &metaOnly) != nil {
			rec.CreationTime = creationTimestamp(rec.Data)
			return
		}
		run.Metadata.Name, run.Metadata.Labels = metaOnly.Metadata.Name, metaOnly.Metadata.Labels
		run.Metadata.CreationTimestamp = metaOnly.Metadata.CreationTimestamp
	}
	rec.RunName = run.Metadata.Name
	rec.CreationTime = parseTime(run.Metadata.CreationTimestamp)
	if annotations := stringsOnly(run.Metadata.Annotations); len(annotations) > 0 {
		rec.runAnnotations = annotations
		rec.Repository = annotations["pipelinesascode.tekton.dev/repository"]
	}
	labels := stringsOnly(run.Metadata.Labels)
	if len(labels) > 0 {
		rec.Labels = labels
	}
	rec.PipelineName = labels["tekton.dev/pipeline"]
	if rec.PipelineName == "" && run.Spec.PipelineRef != nil {
		rec.PipelineName = run.Spec.PipelineRef.Name
	}
	rec.TaskName = labels["tekton.dev/task"]
	if rec.TaskName == "" && run.Spec.TaskRef != nil {
		rec.TaskName = run.Spec.TaskRef.Name
	}
	if strings.HasSuffix(rec.DataType, ".TaskRun") {
		rec.PipelineRunName = labels["tekton.dev/pipelineRun"]
		for _, o := range run.Metadata.OwnerReferences {
			if o.Kind == "PipelineRun" {
				rec.PipelineRunName = o.Name
			}
		}
	}
	for _, c := range run.Status.Conditions {
		if c.Type == "Succeeded" {
			rec.Status, rec.Reason = statusOf(c.Status, c.Reason), c.Reason
		}
	}
	isPipelineRun := strings.HasSuffix(rec.DataType, ".PipelineRun")
	rec.Revision = revisionOf(rec.runAnnotations, labels, run.Spec.Params, isPipelineRun)
	if !isPipelineRun && rec.Status == StatusFailed {
		rec.FailedStep = failedStepOf(run.Status.Steps)
	}
	rec.StartTime = parseTime(run.Status.StartTime)
	rec.CompletionTime = parseTime(run.Status.CompletionTime)
	if rec.StartTime != nil && rec.CompletionTime != nil {
		d := rec.CompletionTime.Sub(*rec.StartTime)
		ms, us := d.Milliseconds(), d.Microseconds()
		rec.DurationMillis, rec.DurationMicros = &ms, &us
	}
}

// creationTimestamp reads metadata.creationTimestamp of any object, as
// Tekton Results' Summary groups every data type by it.
func creationTimestamp(data []byte) *time.Time {
	var obj struct {
		Metadata struct {
			CreationTimestamp any `json:"creationTimestamp"`
		} `json:"metadata"`
	}
	if json.Unmarshal(data, &obj) != nil {
		return nil
	}
	return parseTime(obj.Metadata.CreationTimestamp)
}

// statusOf maps a Succeeded condition to a run status. Tekton marks
// cancellation with a False condition whose reason names it.
func statusOf(condStatus, reason string) string {
	switch condStatus {
	case "True":
		return StatusSucceeded
	case "False":
		if strings.Contains(reason, "Cancelled") || strings.Contains(reason, "Canceled") {
			return StatusCancelled
		}
		return StatusFailed
	case "Unknown":
		return StatusRunning
	}
	return StatusUnknown
}

// parseTime reads an RFC 3339 time; anything else is no time.
func parseTime(v any) *time.Time {
	s, ok := v.(string)
	if !ok {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Microsecond)
	return &t
}

// stringsOnly keeps the string values of a JSON object, as Kubernetes
// labels and annotations are.
func stringsOnly(m map[string]any) JSONMap {
	out := JSONMap{}
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// pacSHA is the commit pipelines-as-code runs a PipelineRun for, as an
// annotation and a label; Tekton copies both to the TaskRuns.
const pacSHA = "pipelinesascode.tekton.dev/sha"

// revisionParams are the PipelineRun params read as the revision, in order
// of preference, when pipelines-as-code gives none.
var revisionParams = []string{"revision", "commit"}

// revisionOf is the source revision a run built: the pipelines-as-code SHA
// annotation, else its label, else (PipelineRuns only: a TaskRun's params
// are its Task's) the first non-empty string param named revision, else
// commit. Migration 00010 computes the same for stored Records.
func revisionOf(annotations, labels JSONMap, params paramList, isPipelineRun bool) string {
	if v := annotations[pacSHA]; v != "" {
		return v
	}
	if v := labels[pacSHA]; v != "" {
		return v
	}
	if !isPipelineRun {
		return ""
	}
	for _, want := range revisionParams {
		for _, p := range params {
			if !p.hasName || p.name != want {
				continue
			}
			if v, ok := jsonString(p.value); ok && v != "" {
				return v
			}
		}
	}
	return ""
}

// failedStepOf is the name of the first step of a TaskRun that terminated
// with a non-zero exit code (steps without a string name are passed over),
// "" when none did. Migration 00010 computes the same for stored Records.
func failedStepOf(steps stepList) string {
	for _, s := range steps {
		if s.hasName && s.hasExitCode && s.exitCode != 0 {
			return s.view.Name
		}
	}
	return ""
}
