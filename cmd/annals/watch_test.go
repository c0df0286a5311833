package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/watcher/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// TestWatchCommand runs `annals watch` as an operator would, from a
// kubeconfig, with leader election and its metrics endpoint.
func TestWatchCommand(t *testing.T) {
	env := kubetest.Get(t)
	ctx := context.Background()
	dir := t.TempDir()
	kubeconfig, db := filepath.Join(dir, "kubeconfig"), filepath.Join(dir, "annals.db")
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	if err := runMigrate(ctx, []string{"--database-url", db}); err != nil {
		t.Fatal(err)
	}
	ns, err := env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "watch-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := env.Tekton.TektonV1().TaskRuns(ns.Name).Create(ctx, &pipelinev1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: "lone"}, Spec: pipelinev1.TaskRunSpec{TaskRef: &pipelinev1.TaskRef{Name: "t"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte("defaultRetention: 30d\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- runWatch(wctx, []string{"--kubeconfig", kubeconfig, "--database-url", db, "--namespaces", ns.Name,
			"--leader-election-namespace", ns.Name, "--listen", addr, "--log-level", "error", "--retention-policy-file", policy})
	}()
	s, err := store.Open(ctx, db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		recs, err := s.GetRecordsByUID(ctx, tr.Namespace, []string{string(tr.UID)})
		if err == nil && recs[string(tr.UID)] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the TaskRun was not stored (%v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`annals_watcher_runs_stored_total{kind="TaskRun"} 1`, "annals_watcher_leader 1", "annals_watcher_queue_depth",
		"annals_retention_run_duration_seconds"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if _, err := env.Kube.CoordinationV1().Leases(ns.Name).Get(ctx, "annals-watcher", metav1.GetOptions{}); err != nil {
		t.Errorf("leader Lease: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("watch after shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("watch did not stop")
	}
}
