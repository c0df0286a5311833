// Package kubetest runs a real kube-apiserver (and etcd) with the Tekton
// CRDs for tests, through controller-runtime's envtest. The binaries come
// from .ci/kube-assets.sh by way of KUBEBUILDER_ASSETS; without them the
// tests that need the API server are skipped, except in CI, where they fail.
package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	tekton "github.com/tektoncd/pipeline/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Env is a running API server and clients for it, with full rights.
type Env struct {
	Config *rest.Config
	Kube   kubernetes.Interface
	Tekton tekton.Interface

	env *envtest.Environment
}

var (
	shared    *Env
	sharedErr error
	once      sync.Once
)

// Main runs a test binary's tests and stops the shared API server after
// them, if one was started. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared != nil {
		_ = shared.env.Stop()
	}
	os.Exit(code)
}

// Get returns the API server shared by the tests of one binary, starting it
// on first use. It skips the test when the binaries are missing outside CI.
func Get(t testing.TB) *Env {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KUBEBUILDER_ASSETS is not set: in CI the tests against a real kube-apiserver must run (.ci/test sets it from .ci/kube-assets.sh)")
		}
		t.Skip("KUBEBUILDER_ASSETS is not set; run .ci/test, or export KUBEBUILDER_ASSETS=$(.ci/kube-assets.sh)")
	}
	once.Do(func() { shared, sharedErr = start() })
	if sharedErr != nil {
		t.Fatalf("starting kube-apiserver: %v", sharedErr)
	}
	return shared
}

func start() (*Env, error) {
	crds, err := tektonCRDs()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{crds}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		return nil, err
	}
	e := &Env{Config: cfg, env: env}
	if e.Kube, err = kubernetes.NewForConfig(cfg); err == nil {
		e.Tekton, err = tekton.NewForConfig(cfg)
	}
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return e, nil
}

// tektonCRDs finds config/300-crds of the tektoncd/pipeline module the
// project pins, so the CRDs always match the clientset.
func tektonCRDs() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tektoncd/pipeline").Output()
	if err != nil {
		return "", fmt.Errorf("locating the tektoncd/pipeline module: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "config", "300-crds"), nil
}

// WriteKubeconfig writes a kubeconfig for the API server, for commands
// under test that connect the way users do.
func (e *Env) WriteKubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.Config.CAData}
	cfg.AuthInfos["test"] = &clientcmdapi.AuthInfo{ClientCertificateData: e.Config.CertData, ClientKeyData: e.Config.KeyData, Token: e.Config.BearerToken}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	cfg.CurrentContext = "test"
	return clientcmd.WriteToFile(*cfg, path)
}
