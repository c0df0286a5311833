package store

import (
	"context"
	"encoding/json"
	"fmt"
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

// stepState is a step as Tekton writes it in status.steps.
type stepState struct {
	Name       string `json:"name"`
	Container  string `json:"container"`
	Terminated *struct {
		ExitCode   int        `json:"exitCode"`
		Reason     string     `json:"reason"`
		StartedAt  *time.Time `json:"startedAt"`
		FinishedAt *time.Time `json:"finishedAt"`
	} `json:"terminated"`
	Running *struct {
		StartedAt *time.Time `json:"startedAt"`
	} `json:"running"`
	Waiting *struct {
		Reason string `json:"reason"`
	} `json:"waiting"`
}

// runView is the view of a decoded run.
func (run *runFields) runView() RunView {
	v := RunView{PodName: run.Status.PodName}
	// Params and steps are kept raw in runFields (revisionOf and
	// failedStepOf read them leniently too); decoding goes on past a field
	// of an unexpected type, so the view holds whatever is readable.
	var steps []stepState
	if len(run.Spec.Params) > 0 {
		_ = json.Unmarshal(run.Spec.Params, &v.Params)
	}
	if len(run.Status.Steps) > 0 {
		_ = json.Unmarshal(run.Status.Steps, &steps)
	}
	for _, c := range run.Status.Conditions {
		if c.Type == "Succeeded" {
			v.Message = c.Message
			break
		}
	}
	v.Results = append(append(append(v.Results, run.Status.Results...), run.Status.PipelineResults...), run.Status.TaskResults...)
	for _, s := range steps {
		step := StepView{Name: s.Name, Container: s.Container}
		switch {
		case s.Terminated != nil:
			code, reason := s.Terminated.ExitCode, s.Terminated.Reason
			step.ExitCode, step.Reason = &code, &reason
			step.StartedAt, step.FinishedAt = s.Terminated.StartedAt, s.Terminated.FinishedAt
		case s.Running != nil:
			step.StartedAt = s.Running.StartedAt
		case s.Waiting != nil:
			reason := s.Waiting.Reason
			step.Reason = &reason
		}
		v.Steps = append(v.Steps, step)
	}
	return v
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
