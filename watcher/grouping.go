package watcher

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/annals-dev/annals/store"
)

// Annotations Tekton Results puts on runs; Annals reads and writes the same.
const (
	AnnotationResult = "results.tekton.dev/result"
	AnnotationRecord = "results.tekton.dev/record"
	AnnotationStored = "results.tekton.dev/stored"
)

// Run is the part of a TaskRun or PipelineRun object that grouping reads.
type Run struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		UID             string            `json:"uid"`
		Labels          map[string]string `json:"labels"`
		Annotations     map[string]string `json:"annotations"`
		OwnerReferences []struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"ownerReferences"`
	} `json:"metadata"`
}

// ParseRun reads the identity of a run object and checks that it is one.
func ParseRun(obj []byte) (*Run, error) {
	var r Run
	if err := json.Unmarshal(obj, &r); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if r.Kind != "TaskRun" && r.Kind != "PipelineRun" {
		return nil, fmt.Errorf("kind %q is not a TaskRun or PipelineRun", r.Kind)
	}
	if !strings.HasPrefix(r.APIVersion, "tekton.dev/") {
		return nil, fmt.Errorf("apiVersion %q is not tekton.dev", r.APIVersion)
	}
	if r.Metadata.Name == "" || r.Metadata.Namespace == "" || r.Metadata.UID == "" {
		return nil, fmt.Errorf("metadata.name, metadata.namespace and metadata.uid are required")
	}
	return &r, nil
}

// DataType is the Record data type of the run, e.g. tekton.dev/v1.TaskRun.
func (r *Run) DataType() string { return r.APIVersion + "." + r.Kind }

// PipelineRunName is the PipelineRun that owns a TaskRun, "" when none does.
func (r *Run) PipelineRunName() (name, uid string) {
	for _, o := range r.Metadata.OwnerReferences {
		if o.Kind == "PipelineRun" {
			return o.Name, o.UID
		}
	}
	return r.Metadata.Labels["tekton.dev/pipelineRun"], r.Metadata.Labels["tekton.dev/pipelineRunUID"]
}

// PipelineRunUIDs finds the uid of a PipelineRun by namespace and name, for
// TaskRuns that name their owner by label only.
type PipelineRunUIDs func(namespace, name string) (uid string, ok bool)

// Group decides where a run is stored: a PipelineRun has its own Result; a
// TaskRun joins the Result of its PipelineRun (even when seen first, since
// the Result is named after the PipelineRun's uid); a lone TaskRun has its
// own Result; a Result annotation already on the run wins. Whatever the
// labels or annotations name, the Result is in the run's own namespace (a
// uid names a different Result in each namespace). The identity run
// of a Result (the PipelineRun, or the lone TaskRun) carries its summary.
func Group(r *Run, data []byte, uids PipelineRunUIDs) (store.RecordWrite, error) {
	w := store.RecordWrite{UID: r.Metadata.UID, DataType: r.DataType(), Data: data}
	ns := r.Metadata.Namespace
	resultUID := r.Metadata.UID
	w.UpdateSummary = true
	if r.Kind == "TaskRun" {
		if prName, prUID := r.PipelineRunName(); prName != "" {
			if prUID == "" && uids != nil {
				// Looked up in the run's own namespace, where its owner is.
				if uid, ok := uids(ns, prName); ok {
					prUID = uid
				}
			}
			if prUID != "" {
				resultUID, w.UpdateSummary = prUID, false
			}
		}
	}
	w.ResultName = store.ResultName(ns, resultUID)
	if given := r.Metadata.Annotations[AnnotationResult]; given != "" {
		if givenNS, _, err := store.ParseResultName(given); err != nil || givenNS != ns {
			return w, fmt.Errorf("annotation %s=%q is not a Result name in namespace %s", AnnotationResult, given, ns)
		}
		w.ResultName = given
	}
	if _, _, err := store.ParseResultName(w.ResultName); err != nil {
		return w, err
	}
	return w, nil
}
