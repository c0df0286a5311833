package watcher

import (
	"encoding/json"
	"testing"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestFinalizerOps(t *testing.T) {
	for _, tc := range []struct {
		name       string
		finalizers []string
		hold       bool
		want       string
	}{
		{"first finalizer tests the version", nil, true,
			`[{"op":"test","path":"/metadata/resourceVersion","value":"7"},{"op":"add","path":"/metadata/finalizers","value":["annals.dev/store"]}]`},
		{"appended after others", []string{"other"}, true, `[{"op":"add","path":"/metadata/finalizers/-","value":"annals.dev/store"}]`},
		{"already held", []string{"other", Finalizer}, true, `null`},
		{"release tests the index", []string{"other", Finalizer}, false,
			`[{"op":"test","path":"/metadata/finalizers/1","value":"annals.dev/store"},{"op":"remove","path":"/metadata/finalizers/1"}]`},
		{"nothing to release", []string{"other"}, false, `null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta := &metav1.ObjectMeta{Finalizers: tc.finalizers, ResourceVersion: "7"}
			got, _ := json.Marshal(finalizerOps(meta, tc.hold))
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestEscapePointer(t *testing.T) {
	if got := escapePointer("results.tekton.dev/re~cord"); got != "results.tekton.dev~1re~0cord" {
		t.Errorf("got %q", got)
	}
}

// The digest ignores what the watcher itself changes, and nothing else.
func TestDigestIgnoresOwnAnnotations(t *testing.T) {
	base := &pipelinev1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns", UID: "u", ResourceVersion: "1",
		Annotations: map[string]string{"team": "x"}}}
	digest := func(tr *pipelinev1.TaskRun) [32]byte {
		o, err := observe(tr)
		if err != nil {
			t.Fatal(err)
		}
		return o.digest
	}
	annotated := base.DeepCopy()
	annotated.ResourceVersion = "2"
	annotated.Annotations[AnnotationRecord] = "ns/results/u/records/u"
	annotated.Annotations[AnnotationStored] = "true"
	annotated.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "annals"}}
	if digest(base) != digest(annotated) {
		t.Error("the watcher's own patch changed the digest")
	}
	changed := base.DeepCopy()
	changed.Annotations["team"] = "y"
	if digest(base) == digest(changed) {
		t.Error("a user's annotation change did not change the digest")
	}
}
