package graph

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"knative.dev/pkg/apis"

	"github.com/annals-dev/annals/store"
)

// JSON is the JSON scalar: raw JSON in and out, never re-encoded.
type JSON json.RawMessage

// MarshalGQL writes the raw JSON.
func (j JSON) MarshalGQL(w io.Writer) {
	if len(j) == 0 {
		io.WriteString(w, "null")
		return
	}
	w.Write(j)
}

// UnmarshalGQL accepts any GraphQL input value (an object, a list, a
// string...) as JSON.
func (j *JSON) UnmarshalGQL(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("not a JSON value: %w", err)
	}
	*j = b
	return nil
}

// PipelineRun is the typed view of a PipelineRun Record, decoded once.
type PipelineRun struct {
	Record *store.Record
	Obj    pipelinev1.PipelineRun
}

// TaskRun is the typed view of a TaskRun Record, decoded once.
type TaskRun struct {
	Record *store.Record
	Obj    pipelinev1.TaskRun
}

func (p *PipelineRun) Name() string      { return p.Obj.Name }
func (p *PipelineRun) Namespace() string { return p.Obj.Namespace }
func (p *PipelineRun) Status() RunStatus { return runStatus(p.Record.Status) }
func (p *PipelineRun) Reason() string    { return p.Record.Reason }
func (p *PipelineRun) Message() string {
	return conditionMessage(p.Obj.Status.GetCondition(apis.ConditionSucceeded))
}
func (p *PipelineRun) StartTime() *time.Time      { return p.Record.StartTime }
func (p *PipelineRun) CompletionTime() *time.Time { return p.Record.CompletionTime }
func (p *PipelineRun) Duration() *float64         { return seconds(p.Record.DurationMillis) }
func (p *PipelineRun) PipelineName() string       { return p.Record.PipelineName }
func (p *PipelineRun) Labels() []*KeyValue        { return keyValues(p.Obj.Labels) }
func (p *PipelineRun) Params() []*Param           { return params(p.Obj.Spec.Params) }

func (p *PipelineRun) Results() []*Param {
	out := make([]*Param, 0, len(p.Obj.Status.Results))
	for _, r := range p.Obj.Status.Results {
		out = append(out, &Param{Name: r.Name, Value: jsonOf(r.Value)})
	}
	return out
}

func (t *TaskRun) Name() string      { return t.Obj.Name }
func (t *TaskRun) Namespace() string { return t.Obj.Namespace }
func (t *TaskRun) Status() RunStatus { return runStatus(t.Record.Status) }
func (t *TaskRun) Reason() string    { return t.Record.Reason }
func (t *TaskRun) Message() string {
	return conditionMessage(t.Obj.Status.GetCondition(apis.ConditionSucceeded))
}
func (t *TaskRun) StartTime() *time.Time      { return t.Record.StartTime }
func (t *TaskRun) CompletionTime() *time.Time { return t.Record.CompletionTime }
func (t *TaskRun) Duration() *float64         { return seconds(t.Record.DurationMillis) }
func (t *TaskRun) TaskName() string           { return t.Record.TaskName }
func (t *TaskRun) PodName() string            { return t.Obj.Status.PodName }
func (t *TaskRun) Labels() []*KeyValue        { return keyValues(t.Obj.Labels) }
func (t *TaskRun) Params() []*Param           { return params(t.Obj.Spec.Params) }

func (t *TaskRun) Results() []*Param {
	out := make([]*Param, 0, len(t.Obj.Status.Results))
	for _, r := range t.Obj.Status.Results {
		out = append(out, &Param{Name: r.Name, Value: jsonOf(r.Value)})
	}
	return out
}

func (t *TaskRun) Steps() []*Step {
	out := make([]*Step, 0, len(t.Obj.Status.Steps))
	for _, s := range t.Obj.Status.Steps {
		step := &Step{Name: s.Name, Container: s.Container}
		switch {
		case s.Terminated != nil:
			code := int(s.Terminated.ExitCode)
			reason := s.Terminated.Reason
			step.ExitCode, step.Reason = &code, &reason
			step.StartedAt = timeOf(s.Terminated.StartedAt.Time)
			step.FinishedAt = timeOf(s.Terminated.FinishedAt.Time)
		case s.Running != nil:
			step.StartedAt = timeOf(s.Running.StartedAt.Time)
		case s.Waiting != nil:
			reason := s.Waiting.Reason
			step.Reason = &reason
		}
		out = append(out, step)
	}
	return out
}

// decodeRun decodes a run Record's data into obj; other types give false.
func decodeRun(rec *store.Record, kind string, obj any) bool {
	if !strings.HasPrefix(rec.DataType, "tekton.dev/") || !strings.HasSuffix(rec.DataType, "."+kind) {
		return false
	}
	return json.Unmarshal(rec.Data, obj) == nil
}

func runStatus(s string) RunStatus {
	st := RunStatus(strings.ToUpper(s))
	if !st.IsValid() {
		return RunStatusUnknown
	}
	return st
}

func storeStatuses(in []RunStatus) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s[:1]) + strings.ToLower(string(s[1:]))
	}
	return out
}

func conditionMessage(c *apis.Condition) string {
	if c == nil {
		return ""
	}
	return c.Message
}

func seconds(ms *int64) *float64 {
	if ms == nil {
		return nil
	}
	s := float64(*ms) / 1000
	return &s
}

func timeOf(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func keyValues(m map[string]string) []*KeyValue {
	out := make([]*KeyValue, 0, len(m))
	for k, v := range m {
		out = append(out, &KeyValue{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func params(ps pipelinev1.Params) []*Param {
	out := make([]*Param, 0, len(ps))
	for _, p := range ps {
		out = append(out, &Param{Name: p.Name, Value: jsonOf(p.Value)})
	}
	return out
}

func jsonOf(v any) JSON {
	b, err := json.Marshal(v)
	if err != nil {
		return JSON("null")
	}
	return b
}

// Node is any object with a global ID: a *store.Result or a *store.Record.
type Node interface{}
