package watcher_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
	"github.com/annals-dev/annals/watcher"
	"github.com/annals-dev/annals/watcher/kubetest"
)

// TestRunsNeverJoinAnotherNamespace: anyone who may create TaskRuns in prod
// can label or annotate them with the uid or Result of a ci PipelineRun. The
// watcher stores each such run in a Result of prod, and ci's Result keeps
// exactly ci's runs, its summary and its logs.
func TestRunsNeverJoinAnotherNamespace(t *testing.T) {
	env := kubetest.Get(t)
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ci, prod := newNamespace(t, env), newNamespace(t, env)
		pr, err := env.Tekton.TektonV1().PipelineRuns(ci).Create(ctx, newPipelineRun(ci, "build-1"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ciTR, err := env.Tekton.TektonV1().TaskRuns(ci).Create(ctx, newTaskRun(ci, "build-1-compile", pr), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ciResult := store.ResultName(ci, string(pr.UID))

		forged := map[string]func(tr *pipelinev1.TaskRun){
			"label-uid": func(tr *pipelinev1.TaskRun) {
				tr.Labels["tekton.dev/pipelineRun"], tr.Labels["tekton.dev/pipelineRunUID"] = pr.Name, string(pr.UID)
			},
			"label-name": func(tr *pipelinev1.TaskRun) { tr.Labels["tekton.dev/pipelineRun"] = pr.Name },
			"annotation-own-ns": func(tr *pipelinev1.TaskRun) {
				tr.Annotations = map[string]string{watcher.AnnotationResult: store.ResultName(prod, string(pr.UID))}
			},
			"annotation-other-ns": func(tr *pipelinev1.TaskRun) {
				tr.Annotations = map[string]string{watcher.AnnotationResult: ciResult}
			},
		}
		for name, forge := range forged {
			tr := newTaskRun(prod, name, nil)
			forge(tr)
			tr, err := env.Tekton.TektonV1().TaskRuns(prod).Create(ctx, tr, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			finishTaskRun(t, env, tr, "compile")
		}
		finishTaskRun(t, env, ciTR, "compile")
		finishPipelineRun(t, env, pr, corev1.ConditionTrue, "Succeeded")
		logs := &fakeLogs{logs: map[string]string{"step-compile": "compiling\nok\n"}}
		startWatcher(t, env, s, watcher.Config{Namespaces: []string{ci, prod}, Logs: true}, logs, nil)

		// Every run and its log stored: 2 runs and a Log in ci, 4 TaskRuns
		// and 4 Logs in prod.
		count := func(ns string) int {
			n, err := s.CountRecords(ctx, store.ListOptions{Parent: ns})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		eventually(t, 30*time.Second, func() (bool, string) {
			return count(ci) == 3 && count(prod) == 8, fmt.Sprintf("%d records in ci, %d in prod", count(ci), count(prod))
		})

		page, err := s.ListRecords(ctx, store.ListOptions{Parent: prod})
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range page.Items {
			if !strings.HasPrefix(rec.ResultName, prod+"/") || rec.Namespace != prod {
				t.Errorf("%s (%s) stored under %s", rec.RunName, rec.DataType, rec.ResultName)
			}
		}
		// The watcher annotates each run with where it stored it.
		for name := range forged {
			eventually(t, 20*time.Second, func() (bool, string) {
				a := getTaskRun(t, env, prod, name).Annotations
				return a[watcher.AnnotationStored] == "true" && strings.HasPrefix(a[watcher.AnnotationResult], prod+"/results/"),
					fmt.Sprintf("TaskRun %s annotated %v", name, a)
			})
		}
		ciPage, err := s.ListRecords(ctx, store.ListOptions{ResultName: ciResult})
		if err != nil || len(ciPage.Items) != 3 {
			t.Fatalf("ci's Result holds %d records (%v), want its PipelineRun, TaskRun and Log", len(ciPage.Items), err)
		}
		for _, rec := range ciPage.Items {
			if rec.Namespace != ci {
				t.Errorf("ci's Result holds %s of %s", rec.Name, rec.Namespace)
			}
		}
		res, err := s.GetResult(ctx, ciResult)
		if err != nil || res.SummaryRecord != store.RecordName(ci, string(pr.UID), string(pr.UID)) || res.SummaryStatus != store.StatusSucceeded {
			t.Errorf("ci's Result summary: %+v %v", res, err)
		}
		if prodRes, err := s.GetResult(ctx, store.ResultName(prod, string(pr.UID))); err != nil || prodRes.Namespace != prod {
			t.Errorf("prod's Result named after ci's PipelineRun uid: %+v %v", prodRes, err)
		}
	})
}
