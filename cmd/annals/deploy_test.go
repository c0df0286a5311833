package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/annals-dev/annals/watcher/kubetest"
)

var overlays = []string{"../../deploy/overlays/quickstart", "../../deploy/overlays/production", "../../deploy/overlays/production-s3"}

// render builds an overlay as `kubectl apply -k` would.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range res.Resources() {
		raw, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			t.Fatal(err)
		}
		out = append(out, obj)
	}
	return out
}

// annalsContainers returns the containers running the annals image, with
// the ConfigMap data their envFrom brings.
func annalsContainers(t *testing.T, objs []*unstructured.Unstructured) map[string]corev1.Container {
	t.Helper()
	configMaps := map[string]map[string]string{}
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" {
			data, _, _ := unstructured.NestedStringMap(o.Object, "data")
			configMaps[o.GetName()] = data
		}
	}
	out := map[string]corev1.Container{}
	for _, o := range objs {
		path := map[string][]string{"Deployment": {"spec", "template", "spec"}, "CronJob": {"spec", "jobTemplate", "spec", "template", "spec"}}[o.GetKind()]
		if path == nil {
			continue
		}
		raw, _, _ := unstructured.NestedMap(o.Object, path...)
		var spec corev1.PodSpec
		if err := runtimeConvert(raw, &spec); err != nil {
			t.Fatal(err)
		}
		for _, c := range spec.Containers {
			if !strings.Contains(c.Image, "annals") {
				continue
			}
			for _, from := range c.EnvFrom {
				if from.ConfigMapRef != nil {
					for k, v := range configMaps[from.ConfigMapRef.Name] {
						c.Env = append(c.Env, corev1.EnvVar{Name: k, Value: v})
					}
				}
			}
			out[o.GetKind()+"/"+o.GetName()] = c
		}
	}
	return out
}

func runtimeConvert(in map[string]any, out any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(in, out)
}

// TestManifestsMatchFlags: every argument and ANNALS_* variable the
// manifests give an annals container is a flag of its command, with a valid
// value.
func TestManifestsMatchFlags(t *testing.T) {
	devnull, _ := os.Open(os.DevNull)
	stderr := os.Stderr
	os.Stderr = devnull // --help prints the usage
	defer func() { os.Stderr = stderr }()
	for _, dir := range overlays {
		containers := annalsContainers(t, render(t, dir))
		if want := map[bool]int{true: 2, false: 3}[strings.Contains(dir, "quickstart")]; len(containers) != want {
			// quickstart runs retention inside the watcher
			t.Errorf("%s: %d annals containers, want %d", dir, len(containers), want)
		}
		for name, c := range containers {
			if len(c.Args) == 0 {
				t.Errorf("%s %s: no command", dir, name)
				continue
			}
			cmd, ok := commands[c.Args[0]]
			if !ok {
				t.Errorf("%s %s: unknown command %q", dir, name, c.Args[0])
				continue
			}
			args := append([]string{}, c.Args[1:]...)
			for _, e := range c.Env {
				if !strings.HasPrefix(e.Name, "ANNALS_") {
					continue
				}
				value := e.Value
				if e.ValueFrom != nil {
					value = "postgres://from-secret@db:5432/annals"
				}
				args = append(args, fmt.Sprintf("--%s=%s", strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(e.Name, "ANNALS_")), "_", "-"), value))
			}
			if err := cmd.run(context.Background(), append(args, "--help")); !errors.Is(err, flag.ErrHelp) {
				t.Errorf("%s %s: annals %s %v: %v", dir, name, c.Args[0], args, err)
			}
		}
	}
}

// TestManifestsServerSideDryRun applies every overlay to the real API
// server with server-side dry run: anything it would reject fails, and so
// does any Pod Security warning from the restricted namespace.
func TestManifestsServerSideDryRun(t *testing.T) {
	env := kubetest.Get(t)
	ctx := context.Background()
	var mu sync.Mutex
	var warnings []string
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = warningFunc(func(msg string) {
		mu.Lock()
		warnings = append(warnings, msg)
		mu.Unlock()
	})
	dyn := dynamic.NewForConfigOrDie(cfg)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cfg)))
	kube := kubernetes.NewForConfigOrDie(cfg)
	for _, dir := range overlays {
		warnings = nil
		for _, obj := range render(t, dir) {
			if obj.GetKind() == "Namespace" {
				// Really created: the dry runs of its contents need it.
				ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: obj.GetName(), Labels: obj.GetLabels()}}
				if _, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					t.Fatal(err)
				}
				continue
			}
			gvk := obj.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Errorf("%s: %s %s: %v", dir, gvk, obj.GetName(), err)
				continue
			}
			body, err := obj.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
			if obj.GetNamespace() != "" {
				ri = dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
			}
			force := true
			if _, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body,
				metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: "annals-deploy-test", Force: &force}); err != nil {
				t.Errorf("%s: the API server rejects %s %s: %v", dir, gvk.Kind, obj.GetName(), err)
			}
		}
		for _, w := range warnings {
			t.Errorf("%s: API server warning: %s", dir, w)
		}
	}
}

type warningFunc func(string)

func (f warningFunc) HandleWarningHeader(_ int, _ string, msg string) { f(msg) }
