package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// Data types of the Records Annals understands beyond raw JSON.
const (
	TypePipelineRun = "tekton.dev/v1.PipelineRun"
	TypeTaskRun     = "tekton.dev/v1.TaskRun"
	TypeLog         = "results.tekton.dev/v1alpha3.Log"
)

// KnownDataTypes are the data types the typed dataTypes filter accepts: the
// Tekton runs in every API version Annals stores, and the Log Records of
// Annals and of Tekton Results. Clients of the Tekton Results API may store
// other types; CEL filters (data_type == "...") select those.
var KnownDataTypes = []string{
	"tekton.dev/v1.PipelineRun", "tekton.dev/v1.TaskRun",
	"tekton.dev/v1beta1.PipelineRun", "tekton.dev/v1beta1.TaskRun",
	TypeLog, "results.tekton.dev/v1alpha2.Log",
}

// checkDataTypes refuses a typed filter's data type that Annals does not
// know: a short name such as "PipelineRun" would otherwise match nothing,
// silently.
func checkDataTypes(types []string) error {
	for _, t := range types {
		if !slices.Contains(KnownDataTypes, t) {
			return fmt.Errorf("%w: unknown data type %q in dataTypes: use one of %s, or kinds: [PIPELINE_RUN, TASK_RUN] for runs of every API version; other types with the filter data_type == \"...\"",
				ErrInvalidArgument, t, strings.Join(KnownDataTypes, ", "))
		}
	}
	return nil
}

// Run statuses, derived from a run's Succeeded condition when it is written.
const (
	StatusUnknown   = "Unknown"
	StatusRunning   = "Running"
	StatusSucceeded = "Succeeded"
	StatusFailed    = "Failed"
	StatusCancelled = "Cancelled"
)

// Result groups the Records of one run tree: a PipelineRun and its TaskRuns,
// or a lone TaskRun. Its name is "<namespace>/results/<uid>".
type Result struct {
	bun.BaseModel `bun:"table:results"`

	UID       string `bun:"uid,pk"`
	Namespace string `bun:"namespace,pk"` // uids are unique within a namespace only
	Name      string `bun:"name,notnull,unique"`

	// Summary follows the run that gives the Result its identity.
	SummaryRecord      string     `bun:"summary_record,notnull"`
	SummaryType        string     `bun:"summary_type,notnull"`
	SummaryStatus      string     `bun:"summary_status,notnull"`
	SummaryStartTime   *time.Time `bun:"summary_start_time"`
	SummaryEndTime     *time.Time `bun:"summary_end_time"`
	SummaryAnnotations JSONMap    `bun:"summary_annotations,type:json"`

	CreatedAt time.Time `bun:"created_at,notnull"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
	Version   int64     `bun:"version,notnull"`
}

// Etag identifies one version of a Result for optimistic concurrency.
func (r *Result) Etag() string { return etag(r.UID, r.Version) }

// Annotation is one key/value pair on a Result.
type Annotation struct {
	bun.BaseModel `bun:"table:result_annotations"`

	Namespace string `bun:"namespace,pk"` // the Result's
	ResultUID string `bun:"result_uid,pk"`
	Key       string `bun:"key,pk"`
	Value     string `bun:"value,notnull"`
}

// Record is one stored object (a PipelineRun, a TaskRun, a Log...). Its name
// is "<namespace>/results/<result uid>/records/<uid>". The columns after Data
// are denormalised from Data on every write so that filters and orderings
// run on indexed columns instead of inside the JSON.
type Record struct {
	bun.BaseModel `bun:"table:records"`

	UID        string          `bun:"uid,pk"`
	ResultUID  string          `bun:"result_uid,notnull"` // the Result is always in the Record's namespace
	Namespace  string          `bun:"namespace,pk"`       // uids are unique within a namespace only
	Name       string          `bun:"name,notnull,unique"`
	ResultName string          `bun:"result_name,notnull"`
	DataType   string          `bun:"data_type,notnull"`
	Data       json.RawMessage `bun:"data,type:json"`

	RunName         string     `bun:"run_name,notnull"`          // metadata.name
	Status          string     `bun:"status,notnull"`            // one of the Status* constants
	Reason          string     `bun:"reason,notnull"`            // Succeeded condition reason
	PipelineRunName string     `bun:"pipeline_run_name,notnull"` // owning PipelineRun of a TaskRun
	PipelineName    string     `bun:"pipeline_name,notnull"`     // tekton.dev/pipeline label or spec ref
	TaskName        string     `bun:"task_name,notnull"`         // tekton.dev/task label or spec ref
	Labels          JSONMap    `bun:"labels,type:json"`          // metadata.labels
	StartTime       *time.Time `bun:"start_time"`                // status.startTime
	CompletionTime  *time.Time `bun:"completion_time"`           // status.completionTime
	DurationMillis  *int64     `bun:"duration_ms"`               // completion - start, when both are set
	OwnerUID        string     `bun:"owner_uid,notnull"`         // the Record this one is about, in its namespace: a Log's TaskRun
	CreationTime    *time.Time `bun:"creation_time"`             // metadata.creationTimestamp, of any data type
	Repository      string     `bun:"repository,notnull"`        // pipelinesascode.tekton.dev/repository annotation of a run
	DurationMicros  *int64     `bun:"duration_us"`               // exact completion - start, for aggregates
	Revision        string     `bun:"revision,notnull"`          // the source commit a run built (see revisionOf)
	FailedStep      string     `bun:"failed_step,notnull"`       // a failed TaskRun's first step with a non-zero exit code
	// RunView is a run's RunView as JSON (nil for other types, and for
	// rows written before it existed until the store fills them in): typed
	// queries read it instead of Data.
	RunView json.RawMessage `bun:"run_view,type:json,nullzero"`

	CreatedAt time.Time `bun:"created_at,notnull"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
	Version   int64     `bun:"version,notnull"`

	runAnnotations JSONMap // metadata.annotations, copied into the summary of the Result it identifies
	ownerNamespace string  // a Log's spec.resource.namespace: must be the Log's own
}

// Etag identifies one version of a Record for optimistic concurrency.
func (r *Record) Etag() string { return etag(r.UID, r.Version) }

// Key identifies a Result or Record by uid within its namespace: uids are
// unique per namespace only, so a bare uid names nothing.
type Key struct {
	Namespace string
	UID       string
}

// Key is the Result's namespace and uid.
func (r *Result) Key() Key { return Key{r.Namespace, r.UID} }

// Key is the Record's namespace and uid.
func (r *Record) Key() Key { return Key{r.Namespace, r.UID} }

// JSONMap is a string map stored as a JSON object (JSONB on PostgreSQL).
type JSONMap map[string]string

func etag(uid string, version int64) string { return fmt.Sprintf("%s-%d", uid, version) }

// IsEntity marks Results and Records as Apollo Federation entities: the
// graph package serves these types directly, and gqlgen's federation
// runtime requires the marker method on them.
func (*Result) IsEntity() {}

// IsEntity: see Result.IsEntity.
func (*Record) IsEntity() {}
