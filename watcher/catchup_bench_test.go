package watcher

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
	"github.com/annals-dev/annals/watcher/kubetest"
)

// BenchmarkCatchUp measures the watcher's own path, API server included:
// N runs exist when it starts (a restart after a busy hour), and the clock
// runs until every one is stored and annotated. Writes batched into shared
// transactions against one transaction per write.
//
//	ANNALS_CATCHUP_RUNS=1000 go test ./watcher -run XXX -bench CatchUp -benchtime 1x
func BenchmarkCatchUp(b *testing.B) {
	env := kubetest.Get(b)
	runs := 300
	fmt.Sscan(getenv("ANNALS_CATCHUP_RUNS", "300"), &runs)
	ctx := context.Background()
	ns, err := env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "catchup-"}}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range runs {
		tr := &pipelinev1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("run-%d", i), Namespace: ns.Name},
			Spec: pipelinev1.TaskRunSpec{TaskRef: &pipelinev1.TaskRef{Name: "t"}}}
		if _, err := env.Tekton.TektonV1().TaskRuns(ns.Name).Create(ctx, tr, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	for _, mode := range []struct {
		name  string
		limit int
	}{{"batched", 200}, {"one-per-transaction", 1}} {
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				s, _ := storetest.Open(b, "postgres")
				w, err := New(Config{Namespaces: []string{ns.Name}}, Options{Store: s, Kube: env.Kube, Tekton: env.Tekton})
				if err != nil {
					b.Fatal(err)
				}
				w.writes.limit = mode.limit
				start := time.Now()
				wctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- w.Run(wctx) }()
				for {
					page, err := s.ListRecords(ctx, store.ListOptions{Parent: ns.Name, First: 1})
					if err == nil && page != nil {
						n, _ := s.CountRecords(ctx, store.ListOptions{Parent: ns.Name})
						if n == runs {
							break
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
				elapsed := time.Since(start)
				cancel()
				<-done
				b.ReportMetric(float64(runs)/elapsed.Seconds(), "runs/s")
			}
		})
	}
}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
