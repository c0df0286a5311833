package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// RunView is what the typed views of a TaskRun or PipelineRun show beyond
// the record's columns. The store extracts it from data on every write and
// keeps it as compact JSON (Record.RunView), a tenth of the object's size,
// so that a page of runs with their steps is read and decoded without
// touching the objects themselves.
type RunView struct {
	Message string      `json:"message,omitempty"` // of the first Succeeded condition
	PodName string      `json:"podName,omitempty"`
	Params  []NameValue `json:"params,omitempty"`
	Results []NameValue `json:"results,omitempty"` // results, then v1beta1's pipelineResults or taskResults
	Steps   []StepView  `json:"steps,omitempty"`
}

// NameValue is a param or a result: its value is any JSON.
type NameValue struct {
	Name  string          `json:"name"`
	Value json.RawMessage `json:"value"`
}

// StepView is one step's state: exit code, reason and times of a
// terminated step, the start of a running one, the reason of a waiting one.
type StepView struct {
	Name       string     `json:"name"`
	Container  string     `json:"container,omitempty"`
	ExitCode   *int       `json:"exitCode,omitempty"`
	Reason     *string    `json:"reason,omitempty"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// runView is the view of a decoded run: params and steps were decoded
// once, leniently, with the run (paramList, stepList).
func (run *runFields) runView() RunView {
	v := RunView{PodName: run.Status.PodName}
	for _, p := range run.Spec.Params {
		v.Params = append(v.Params, NameValue{Name: p.name, Value: p.value})
	}
	for _, c := range run.Status.Conditions {
		if c.Type == "Succeeded" {
			v.Message = c.Message
			break
		}
	}
	v.Results = append(append(append(v.Results, run.Status.Results...), run.Status.PipelineResults...), run.Status.TaskResults...)
	for _, s := range run.Status.Steps {
		v.Steps = append(v.Steps, s.view)
	}
	return v
}

// paramEntry is one element of spec.params. Elements that are not
// objects, and members of unexpected types, leave their fields empty: one
// odd param costs neither the others nor the run.
type paramEntry struct {
	name    string
	hasName bool            // name is a JSON string
	value   json.RawMessage // as written; nil when absent
}

// paramList is spec.params decoded leniently: anything but an array is
// no params. Keys match exactly (as jsonb's operators in migration 00010
// do), unlike encoding/json's case-insensitive struct fields.
type paramList []paramEntry

func (l *paramList) UnmarshalJSON(b []byte) error {
	*l = nil
	b = bytes.Clone(b) // values are kept: one copy for all of them
	eachElement(b, func(e []byte) {
		var p paramEntry
		eachMember(e, func(key, val []byte) {
			switch {
			case keyIs(key, "name"):
				p.name, p.hasName = jsonString(val)
			case keyIs(key, "value"):
				p.value = val
			}
		})
		*l = append(*l, p)
	})
	return nil
}

// stepEntry is one element of status.steps: its view, and what the
// failed step is found by.
type stepEntry struct {
	view        StepView
	hasName     bool    // name is a JSON string
	exitCode    float64 // terminated.exitCode
	hasExitCode bool    // terminated.exitCode is a JSON number
}

// stepList is status.steps decoded leniently, as paramList.
type stepList []stepEntry

func (l *stepList) UnmarshalJSON(b []byte) error {
	*l = nil
	eachElement(b, func(e []byte) {
		var s stepEntry
		var terminated, running, waiting []byte
		eachMember(e, func(key, val []byte) {
			switch {
			case keyIs(key, "name"):
				s.view.Name, s.hasName = jsonString(val)
			case keyIs(key, "container"):
				s.view.Container, _ = jsonString(val)
			case keyIs(key, "terminated"):
				terminated = objectOrNil(val)
			case keyIs(key, "running"):
				running = objectOrNil(val)
			case keyIs(key, "waiting"):
				waiting = objectOrNil(val)
			}
		})
		switch {
		case terminated != nil:
			code, reason := 0, ""
			eachMember(terminated, func(key, val []byte) {
				switch {
				case keyIs(key, "exitCode"):
					code, s.exitCode, s.hasExitCode = 0, 0, false
					if f, err := strconv.ParseFloat(string(val), 64); err == nil && isNumber(val) {
						s.exitCode, s.hasExitCode = f, true
						if n, err := strconv.Atoi(string(val)); err == nil {
							code = n
						}
					}
				case keyIs(key, "reason"):
					reason, _ = jsonString(val)
				case keyIs(key, "startedAt"):
					s.view.StartedAt = jsonTime(val)
				case keyIs(key, "finishedAt"):
					s.view.FinishedAt = jsonTime(val)
				}
			})
			s.view.ExitCode, s.view.Reason = &code, &reason
		case running != nil:
			eachMember(running, func(key, val []byte) {
				if keyIs(key, "startedAt") {
					s.view.StartedAt = jsonTime(val)
				}
			})
		case waiting != nil:
			reason := ""
			eachMember(waiting, func(key, val []byte) {
				if keyIs(key, "reason") {
					reason, _ = jsonString(val)
				}
			})
			s.view.Reason = &reason
		}
		*l = append(*l, s)
	})
	return nil
}

// The walkers below read JSON that encoding/json has already validated
// (they run inside its decoding), so they only find where values end.

// eachElement calls fn with each element of a JSON array; anything else
// has none.
func eachElement(b []byte, fn func(elem []byte)) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return
	}
	for i = skipSpace(b, i+1); i < len(b) && b[i] != ']'; {
		end := valueEnd(b, i)
		fn(b[i:end])
		if i = skipSpace(b, end); i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
}

// eachMember calls fn with each key (quoted, as written) and value of a
// JSON object; anything else has none.
func eachMember(b []byte, fn func(key, val []byte)) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return
	}
	for i = skipSpace(b, i+1); i < len(b) && b[i] == '"'; {
		keyEnd := valueEnd(b, i)
		v := skipSpace(b, keyEnd)
		if v >= len(b) || b[v] != ':' {
			return
		}
		v = skipSpace(b, v+1)
		end := valueEnd(b, v)
		fn(b[i:keyEnd], b[v:end])
		if i = skipSpace(b, end); i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// valueEnd is where the value starting at b[i] ends.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		for i++; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return i
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = valueEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// keyIs tells whether a quoted key is want, escapes read.
func keyIs(key []byte, want string) bool {
	if bytes.IndexByte(key, '\\') < 0 {
		return len(key) == len(want)+2 && string(key[1:len(key)-1]) == want
	}
	s, ok := jsonString(key)
	return ok && s == want
}

// jsonString reads a JSON string value; false for any other value.
func jsonString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// isNumber tells whether v is a JSON number (ParseFloat also takes Inf,
// NaN and hexadecimal, which JSON does not have).
func isNumber(v []byte) bool {
	return len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9')
}

// objectOrNil is v when it is a JSON object.
func objectOrNil(v []byte) []byte {
	if len(v) > 0 && v[0] == '{' {
		return v
	}
	return nil
}

// jsonTime reads an RFC 3339 time as time.Time's JSON decoding does; a
// time it cannot read is no time (it no longer stops the other steps).
func jsonTime(v []byte) *time.Time {
	if len(v) == 0 || v[0] != '"' {
		return nil
	}
	var t time.Time
	if t.UnmarshalJSON(v) != nil {
		return nil
	}
	return &t
}

// encode is the view as stored: never empty, so that a stored run always
// has one.
func (v RunView) encode() json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("a run view does not encode: %v", err)) // plain data and valid JSON values: cannot happen
	}
	return b
}

// RunViewOf returns the view of a run Record: from its stored view, or
// when it has none yet (a row written before views existed, not yet filled
// in), extracted from its data. A Record read without data always has its
// view: lists leave data out only where a view exists.
func RunViewOf(rec *Record) RunView {
	var v RunView
	if len(rec.RunView) > 0 && json.Unmarshal(rec.RunView, &v) == nil {
		return v
	}
	var run runFields
	_ = json.Unmarshal(rec.Data, &run) // as on write: what is readable
	return run.runView()
}

// recordColumnsWithoutData is the select list of records (aliased r)
// for readers that do not need data: data is read only where no run view
// stands in for it.
var recordColumnsWithoutData = replaceColumn(recordsEntity.columns, "r.data", "CASE WHEN r.run_view IS NULL THEN r.data END AS data")

func replaceColumn(columns, column, expr string) string {
	parts := strings.Split(columns, ", ")
	for i, c := range parts {
		if c == column {
			parts[i] = expr
		}
	}
	return strings.Join(parts, ", ")
}

// columns is the select list of the plan's statement.
func (p *plan) columns() string {
	if p.opts.WithoutData && p.ent.name == recordsEntity.name {
		return recordColumnsWithoutData
	}
	return p.ent.columns
}

// runViewsFilled is the setting that records that every run written before
// migration 00009 has its view.
const runViewsFilled = "run_views_filled"

// fillRunViews gives a view to the runs stored before views existed, a
// batch at a time in key order, once: a setting records that it is done.
// Until then, reads of those rows fall back to their data.
func (s *Store) fillRunViews(ctx context.Context) error {
	done, err := s.db.NewSelect().Table("settings").Where("key = ?", runViewsFilled).Exists(ctx)
	if err != nil || done {
		return dbError(err)
	}
	const batch = 500
	var last Key
	for {
		var rows []*Record
		err := s.db.NewSelect().Model(&rows).Column("uid", "namespace", "data_type", "data").
			Where("run_view IS NULL").Where("data_type LIKE 'tekton.dev/%'").
			Where("(namespace > ? OR (namespace = ? AND uid > ?))", last.Namespace, last.Namespace, last.UID).
			Order("namespace", "uid").Limit(batch).Scan(ctx)
		if err != nil {
			return dbError(err)
		}
		if len(rows) == 0 {
			break
		}
		err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			for _, r := range rows {
				if !isRunType(r.DataType) {
					continue
				}
				view := RunViewOf(r).encode()
				if _, err := tx.NewUpdate().Table("records").Set("run_view = ?", string(view)).
					Where("namespace = ?", r.Namespace).Where("uid = ?", r.UID).Where("run_view IS NULL").Exec(ctx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return dbError(err)
		}
		last = rows[len(rows)-1].Key()
	}
	_, err = s.db.NewInsert().Model(&map[string]any{"key": runViewsFilled, "value": time.Now().UTC().Format(time.RFC3339)}).
		TableExpr("settings").On("CONFLICT (key) DO NOTHING").Exec(ctx)
	return dbError(err)
}
