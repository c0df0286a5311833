package access_test

import (
	"context"
	"errors"
	"testing"

	"github.com/annals-dev/annals/server/access"
	"github.com/annals-dev/annals/store"
)

// The decisions against a real kube-apiserver are tested where they are
// used (server/auth_test.go for GraphQL, server/tekton/auth_test.go for
// REST and gRPC); here, what needs no cluster.
func TestNamespaceOf(t *testing.T) {
	for name, want := range map[string]string{
		"ci/results/x":           "ci",
		"ci/results/x/records/y": "ci",
		"ci":                     "ci",
	} {
		if got, err := access.NamespaceOf(name); err != nil || got != want {
			t.Errorf("NamespaceOf(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"", "CI/results/x", "-/results/x", "/results/x"} {
		if _, err := access.NamespaceOf(name); !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("NamespaceOf(%q): %v; want ErrInvalidArgument", name, err)
		}
	}
}

func TestNoAuthorizerAllowsEverything(t *testing.T) {
	d := access.Decider{}
	ctx := context.Background()
	if err := d.AllowName(ctx, "ci/results/x", access.Results, access.Delete); err != nil {
		t.Error(err)
	}
	if ns, err := d.ListScope(ctx, "-", access.Records, access.List); ns != nil || err != nil {
		t.Errorf("ListScope: %v %v; want no restriction", ns, err)
	}
	// A bad name is refused even so: it is a mistake, not a decision.
	if err := d.AllowName(ctx, "bad name", access.Results, access.Get); !errors.Is(err, store.ErrInvalidArgument) {
		t.Errorf("AllowName of a bad name: %v", err)
	}
}
