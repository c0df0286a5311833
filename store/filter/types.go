// Package filter turns the filters of list calls into SQL: CEL expressions in
// the Tekton Results filter language, and the typed where inputs of the
// GraphQL API. The output is a boolean SQL fragment with ? placeholders and
// its arguments; every value a user gives (strings, numbers, times, JSON
// keys and paths) travels as a bound argument, never inside the SQL text.
//
// Record filters see: name, uid, parent (the Result's name), data_type,
// create_time, update_time and data (the stored object, any path:
// data.metadata.labels["app"], data.status.conditions[0].reason, ...).
// Result filters see: name, uid, create_time, update_time, annotations
// (a map) and summary.{status, type, record, start_time, end_time}, where
// status compares with SUCCESS, FAILURE, TIMEOUT, CANCELLED, RUNNING or
// UNKNOWN.
//
// Supported: == != < <= > >= && || ! in (a list of constants, or a key in a
// map), startsWith, endsWith, contains, matches (PostgreSQL only), size,
// has, timestamp("RFC 3339") and timestamp(<string field>). Anything else is
// refused with ErrInvalid naming the unsupported part and where it stands.
// Semantics follow CEL: a missing field makes its comparison an error, which
// SQL mirrors with NULL, so `!(x == "a")` does not match records without x.
package filter

import (
	"errors"
	"time"
)

// Dialect is the SQL dialect to write.
type Dialect int

const (
	Postgres Dialect = iota
	SQLite
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// Expr is a boolean SQL fragment with ? placeholders. The zero Expr means
// "no condition".
type Expr struct {
	SQL  string
	Args []any
}

// IsZero tells whether e imposes no condition.
func (e Expr) IsZero() bool { return e.SQL == "" }

// ErrInvalid is wrapped by every error about a filter the caller gave.
var ErrInvalid = errors.New("invalid filter")

// sqliteTimeLayout is how bun writes times into SQLite TEXT columns (always
// UTC); bound time arguments use the same layout so that they compare as text.
const sqliteTimeLayout = "2006-01-02 15:04:05.999999-07:00"

// TimeArg formats t as a bound argument for a time column of dialect d.
func TimeArg(d Dialect, t time.Time) any {
	t = t.UTC().Truncate(time.Microsecond)
	if d == SQLite {
		return t.Format(sqliteTimeLayout)
	}
	return t
}

// LabelOp is how a LabelMatch tests a key.
type LabelOp string

const (
	LabelEquals    LabelOp = "EQUALS"
	LabelIn        LabelOp = "IN"
	LabelExists    LabelOp = "EXISTS"
	LabelNotExists LabelOp = "NOT_EXISTS"
)

// LabelMatch tests one label (on Records) or annotation (on Results).
type LabelMatch struct {
	Key    string
	Op     LabelOp
	Values []string // one for EQUALS, one or more for IN, none otherwise
}

// TimeRange bounds a time: After is exclusive, Before is exclusive.
type TimeRange struct {
	After, Before *time.Time
}

// RecordWhere is the typed filter of Records.
type RecordWhere struct {
	Namespace       *string
	DataTypes       []string
	Statuses        []string
	Reasons         []string
	Labels          []LabelMatch
	PipelineRunName *string
	PipelineName    *string
	TaskName        *string
	NamePrefix      *string  // prefix of the run's metadata.name
	Kinds           []string // RunKinds keys: every API version of those kinds
	RunNames        []string // exact metadata.name of the run
	NameContains    *string  // text anywhere in metadata.name, case-sensitive
	Created         TimeRange
	CreationTime    TimeRange // metadata.creationTimestamp, not when Annals stored the Record
	Started         TimeRange
	Completed       TimeRange
}

// ResultWhere is the typed filter of Results.
type ResultWhere struct {
	Namespace    *string
	Statuses     []string
	SummaryTypes []string
	Annotations  []LabelMatch
	NamePrefix   *string // prefix of the Result's uid part of its name
	Created      TimeRange
	Updated      TimeRange
	Started      TimeRange
	Ended        TimeRange
}

// RunKinds maps each kind of run a typed filter names to its data types,
// one per Tekton API version that Annals stores (the watcher writes v1,
// imports and Tekton Results clients may write v1beta1).
var RunKinds = map[string][]string{
	"PIPELINE_RUN": {"tekton.dev/v1.PipelineRun", "tekton.dev/v1beta1.PipelineRun"},
	"TASK_RUN":     {"tekton.dev/v1.TaskRun", "tekton.dev/v1beta1.TaskRun"},
}

// MaxRunNames bounds the runNames of one filter.
const MaxRunNames = 1000

// Statuses are the run statuses the store derives; typed filters accept only these.
var Statuses = []string{"Succeeded", "Failed", "Running", "Cancelled", "Unknown"}
