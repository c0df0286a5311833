package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
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
	} `json:"spec"`
	Status struct {
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
			Reason string `json:"reason"`
		} `json:"conditions"`
		StartTime      any `json:"startTime"` // parsed leniently: a bad time must not hide the rest
		CompletionTime any `json:"completionTime"`
	} `json:"status"`
}

// isRunType tells whether a data type is a Tekton run whose fields are extracted.
func isRunType(dataType string) bool {
	return strings.HasPrefix(dataType, "tekton.dev/") &&
		(strings.HasSuffix(dataType, ".TaskRun") || strings.HasSuffix(dataType, ".PipelineRun"))
}

// cleanData validates JSON and removes NUL characters, which neither
// PostgreSQL text nor JSONB can hold (raw, or escaped as \u0000).
func cleanData(data json.RawMessage) (json.RawMessage, error) {
	if len(data) == 0 {
		return json.RawMessage("null"), nil
	}
	data = bytes.ReplaceAll(data, []byte{0}, nil)
	if bytes.Contains(data, []byte(`\u0000`)) {
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return nil, fmt.Errorf("%w: data is not valid JSON: %v", ErrInvalidArgument, err)
		}
		out, err := json.Marshal(stripNUL(v))
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return nil, fmt.Errorf("%w: data is not valid JSON: %v", ErrInvalidArgument, err)
	}
	return data, nil
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
	if err := json.Unmarshal(rec.Data, &run); err != nil {
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
