package graph

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

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

// run reads a Record's RunView (the compact view the store keeps beside
// the object) once, on first use: typed fields never decode the object.
type run struct {
	Record *store.Record
	once   sync.Once
	view   store.RunView
}

func (r *run) doc() *store.RunView {
	r.once.Do(func() { r.view = store.RunViewOf(r.Record) })
	return &r.view
}

func (r *run) message() string { return r.doc().Message }

// PipelineRun is the typed view of a PipelineRun Record: fields kept in
// columns come from the Record, the rest from its data, decoded lazily.
type PipelineRun struct{ run }

// TaskRun is the typed view of a TaskRun Record.
type TaskRun struct{ run }

func (p *PipelineRun) Name() string      { return p.Record.RunName }
func (p *PipelineRun) Namespace() string { return p.Record.Namespace }
func (p *PipelineRun) Status() RunStatus { return runStatus(p.Record.Status) }
func (p *PipelineRun) Reason() string    { return p.Record.Reason }
func (p *PipelineRun) Message() string {
	return p.message()
}
func (p *PipelineRun) StartTime() *time.Time      { return p.Record.StartTime }
func (p *PipelineRun) CompletionTime() *time.Time { return p.Record.CompletionTime }
func (p *PipelineRun) Duration() *float64         { return seconds(p.Record.DurationMillis) }
func (p *PipelineRun) PipelineName() string       { return p.Record.PipelineName }
func (p *PipelineRun) Labels() []*KeyValue        { return keyValues(p.Record.Labels) }
func (p *PipelineRun) Params() []*Param           { return params(p.doc().Params) }
func (p *PipelineRun) Results() []*Param          { return params(p.doc().Results) }

func (t *TaskRun) Name() string      { return t.Record.RunName }
func (t *TaskRun) Namespace() string { return t.Record.Namespace }
func (t *TaskRun) Status() RunStatus { return runStatus(t.Record.Status) }
func (t *TaskRun) Reason() string    { return t.Record.Reason }
func (t *TaskRun) Message() string {
	return t.message()
}
func (t *TaskRun) StartTime() *time.Time      { return t.Record.StartTime }
func (t *TaskRun) CompletionTime() *time.Time { return t.Record.CompletionTime }
func (t *TaskRun) Duration() *float64         { return seconds(t.Record.DurationMillis) }
func (t *TaskRun) TaskName() string           { return t.Record.TaskName }
func (t *TaskRun) PodName() string            { return t.doc().PodName }
func (t *TaskRun) Labels() []*KeyValue        { return keyValues(t.Record.Labels) }
func (t *TaskRun) Params() []*Param           { return params(t.doc().Params) }
func (t *TaskRun) Results() []*Param          { return params(t.doc().Results) }

func (t *TaskRun) Steps() []*Step {
	steps := t.doc().Steps
	out := make([]*Step, len(steps))
	for i, s := range steps {
		out[i] = &Step{Name: s.Name, Container: s.Container, ExitCode: s.ExitCode, Reason: s.Reason, StartedAt: s.StartedAt, FinishedAt: s.FinishedAt}
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

func seconds(ms *int64) *float64 {
	if ms == nil {
		return nil
	}
	s := float64(*ms) / 1000
	return &s
}

func keyValues(m map[string]string) []*KeyValue {
	out := make([]*KeyValue, 0, len(m))
	for k, v := range m {
		out = append(out, &KeyValue{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func params(ps []store.NameValue) []*Param {
	out := make([]*Param, 0, len(ps))
	for _, p := range ps {
		out = append(out, &Param{Name: p.Name, Value: JSON(p.Value)})
	}
	return out
}

// Node is any object with a global ID: a *store.Result or a *store.Record.
type Node interface{}

// Log is one step's log: its Log Record and the record's data.
type Log struct {
	Record *store.Record
	doc    store.LogData
}

func newLog(rec *store.Record) *Log {
	l := &Log{Record: rec}
	_ = json.Unmarshal(rec.Data, &l.doc)
	return l
}

func (l *Log) Step() string      { return l.doc.Spec.Step }
func (l *Log) Container() string { return l.doc.Spec.Container }
func (l *Log) Available() bool   { return l.doc.Status.Available }
func (l *Log) Truncated() bool   { return l.doc.Status.Truncated }
func (l *Log) Live() bool        { return store.LogIsLive(l.Record) }
func (l *Log) Size() int         { return int(l.doc.Status.Size) }

// DownloadPath is where the server streams the whole log.
func (l *Log) DownloadPath() string { return "/logs/" + l.Record.Name }
