package graph

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
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

// PipelineRun is the typed view of a PipelineRun Record. Fields kept in
// columns are answered from the Record; the JSON is decoded once, and only
// when a field needs it, so that nested loads are not held up by decoding.
type PipelineRun struct {
	Record  *store.Record
	once    sync.Once
	decoded pipelinev1.PipelineRun
}

func (p *PipelineRun) obj() *pipelinev1.PipelineRun {
	p.once.Do(func() { _ = json.Unmarshal(p.Record.Data, &p.decoded) })
	return &p.decoded
}

// TaskRun is the typed view of a TaskRun Record, decoded like PipelineRun.
type TaskRun struct {
	Record  *store.Record
	once    sync.Once
	decoded pipelinev1.TaskRun
}

func (t *TaskRun) obj() *pipelinev1.TaskRun {
	t.once.Do(func() { _ = json.Unmarshal(t.Record.Data, &t.decoded) })
	return &t.decoded
}

func (p *PipelineRun) Name() string      { return p.Record.RunName }
func (p *PipelineRun) Namespace() string { return p.Record.Namespace }
func (p *PipelineRun) Status() RunStatus { return runStatus(p.Record.Status) }
func (p *PipelineRun) Reason() string    { return p.Record.Reason }
func (p *PipelineRun) Message() string {
	return conditionMessage(p.obj().Status.GetCondition(apis.ConditionSucceeded))
}
func (p *PipelineRun) StartTime() *time.Time      { return p.Record.StartTime }
func (p *PipelineRun) CompletionTime() *time.Time { return p.Record.CompletionTime }
func (p *PipelineRun) Duration() *float64         { return seconds(p.Record.DurationMillis) }
func (p *PipelineRun) PipelineName() string       { return p.Record.PipelineName }
func (p *PipelineRun) Labels() []*KeyValue        { return keyValues(p.obj().Labels) }
func (p *PipelineRun) Params() []*Param           { return params(p.obj().Spec.Params) }

func (p *PipelineRun) Results() []*Param {
	out := make([]*Param, 0, len(p.obj().Status.Results))
	for _, r := range p.obj().Status.Results {
		out = append(out, &Param{Name: r.Name, Value: jsonOf(r.Value)})
	}
	return out
}

func (t *TaskRun) Name() string      { return t.Record.RunName }
func (t *TaskRun) Namespace() string { return t.Record.Namespace }
func (t *TaskRun) Status() RunStatus { return runStatus(t.Record.Status) }
func (t *TaskRun) Reason() string    { return t.Record.Reason }
func (t *TaskRun) Message() string {
	return conditionMessage(t.obj().Status.GetCondition(apis.ConditionSucceeded))
}
func (t *TaskRun) StartTime() *time.Time      { return t.Record.StartTime }
func (t *TaskRun) CompletionTime() *time.Time { return t.Record.CompletionTime }
func (t *TaskRun) Duration() *float64         { return seconds(t.Record.DurationMillis) }
func (t *TaskRun) TaskName() string           { return t.Record.TaskName }
func (t *TaskRun) PodName() string            { return t.obj().Status.PodName }
func (t *TaskRun) Labels() []*KeyValue        { return keyValues(t.obj().Labels) }
func (t *TaskRun) Params() []*Param           { return params(t.obj().Spec.Params) }

func (t *TaskRun) Results() []*Param {
	out := make([]*Param, 0, len(t.obj().Status.Results))
	for _, r := range t.obj().Status.Results {
		out = append(out, &Param{Name: r.Name, Value: jsonOf(r.Value)})
	}
	return out
}

func (t *TaskRun) Steps() []*Step {
	out := make([]*Step, 0, len(t.obj().Status.Steps))
	for _, s := range t.obj().Status.Steps {
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

// isRun tells whether a Record holds a Tekton run of kind (any version).
func isRun(rec *store.Record, kind string) bool {
	return strings.HasPrefix(rec.DataType, "tekton.dev/") && strings.HasSuffix(rec.DataType, "."+kind)
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
