package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/client-go/rest"

	"github.com/annals-dev/annals/watcher/kubetest"
)

func TestParseBearer(t *testing.T) {
	for _, c := range []struct {
		header, token string
		ok            bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer  abc ", "abc", true},
		{"Basic abc", "", false},
		{"Bearer", "", false},
		{"Bearer   ", "", false},
		{"", "", false},
	} {
		token, ok := parseBearer(c.header)
		if token != c.token || ok != c.ok {
			t.Errorf("parseBearer(%q) = %q, %v", c.header, token, ok)
		}
	}
}

// Decisions are cached by every part of the question: two questions that
// differ anywhere never share an answer.
func TestDecisionKeysDiffer(t *testing.T) {
	base := func() (*User, authzv1.ResourceAttributes) {
		return &User{Name: "alice", Groups: []string{"dev"}, Extra: map[string][]string{"scope": {"a"}}},
			authzv1.ResourceAttributes{Namespace: "ci", Verb: "get", Group: Group, Resource: "records"}
	}
	u, a := base()
	key := decisionKey(u, a)
	changes := []func(*User, *authzv1.ResourceAttributes){
		func(u *User, _ *authzv1.ResourceAttributes) { u.Name = "bob" },
		func(u *User, _ *authzv1.ResourceAttributes) { u.UID = "1" },
		func(u *User, _ *authzv1.ResourceAttributes) { u.Groups = []string{"dev", "ops"} },
		func(u *User, _ *authzv1.ResourceAttributes) { u.Groups = []string{"de", "v"} },
		func(u *User, _ *authzv1.ResourceAttributes) { u.Extra = nil },
		func(_ *User, a *authzv1.ResourceAttributes) { a.Namespace = "prod" },
		func(_ *User, a *authzv1.ResourceAttributes) { a.Verb = "list" },
		func(_ *User, a *authzv1.ResourceAttributes) { a.Resource = "logs" },
		func(_ *User, a *authzv1.ResourceAttributes) { a.Name = "x" },
	}
	for i, change := range changes {
		u, a := base()
		change(u, &a)
		if decisionKey(u, a) == key {
			t.Errorf("change %d did not change the cache key", i)
		}
	}
}

func TestRefusalsMatchTheirSentinels(t *testing.T) {
	err := denied("alice may not %s", "get")
	if !errors.Is(err, ErrPermissionDenied) || errors.Is(err, ErrUnauthenticated) {
		t.Errorf("denied: %v", err)
	}
	var coded interface{ ErrorCode() string }
	if !errors.As(err, &coded) || coded.ErrorCode() != "PERMISSION_DENIED" {
		t.Errorf("code of %v", err)
	}
}

// Within one request scope a question is decided once, however many ask it
// at the same time, and different questions each once.
func TestRequestScopeDecidesEachQuestionOnce(t *testing.T) {
	ctx := WithRequestScope(context.Background(), 2)
	scope := scopeFrom(ctx)
	var calls atomic.Int64
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := []string{"ci/records/get", "prod/records/get"}[i%2]
			allowed, err := scope.memo(ctx, key, func() (bool, error) {
				calls.Add(1)
				time.Sleep(10 * time.Millisecond)
				return key == "ci/records/get", nil
			})
			if err != nil || allowed != (key == "ci/records/get") {
				t.Errorf("%s: %v %v", key, allowed, err)
			}
		}()
	}
	wg.Wait()
	if n := calls.Load(); n != 2 {
		t.Errorf("%d decisions for 2 questions", n)
	}
}

// A caller's slots bound its reviews in flight; a waiter whose request ends
// is refused as busy, and the gate of a caller with nothing in flight is
// dropped.
func TestUserGates(t *testing.T) {
	g := newUserGates(2)
	ctx := context.Background()
	r1, _ := g.acquire(ctx, "alice")
	r2, _ := g.acquire(ctx, "alice")
	if _, err := g.acquire(ctx, "bob"); err != nil {
		t.Fatalf("bob waits for alice: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := g.acquire(short, "alice"); !errors.Is(err, ErrBusy) {
		t.Errorf("third slot of two: %v, want busy", err)
	}
	r1()
	r3, err := g.acquire(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	r2()
	r3()
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.gates["alice"]; ok {
		t.Error("alice's gate kept with nothing in flight")
	}
}

func TestVisibleListsOnlyAllowedSorted(t *testing.T) {
	v := &visibility{allowed: map[string]bool{"b": true, "a": true, "c": false}}
	if got := v.visible([]string{"c", "b", "a", "d"}); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("visible %v", got)
	}
	if got := v.missing([]string{"a", "d"}); !slices.Equal(got, []string{"d"}) {
		t.Errorf("missing %v", got)
	}
	if got := v.visible(nil); got == nil {
		t.Error("nil means every namespace: none visible must be empty, not nil")
	}
}

func TestMain(m *testing.M) { kubetest.Main(m) }

// TestDecisionMemoOutlivesTheCache: within a request scope a question is
// sent to the real API server once, even when the shared cache forgot it
// meanwhile (expired, or pushed out by others' decisions); outside one it
// is asked again.
func TestDecisionMemoOutlivesTheCache(t *testing.T) {
	env := kubetest.Get(t)
	var reviews atomic.Int64
	cfg := rest.CopyConfig(env.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if strings.HasSuffix(r.URL.Path, "/subjectaccessreviews") {
				reviews.Add(1)
			}
			return rt.RoundTrip(r)
		})
	}
	k, err := NewKubernetesForConfig(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := &User{Name: "system:serviceaccount:ci:nobody", Groups: []string{"system:authenticated"}}
	ask := func(ctx context.Context) {
		t.Helper()
		if err := k.Authorize(WithUser(ctx, u), "ci", Records, Get); !errors.Is(err, ErrPermissionDenied) {
			t.Fatalf("want a denial, got %v", err)
		}
	}
	request := WithRequestScope(context.Background(), 0)
	ask(request)
	k.allowed.Purge()
	ask(request)
	if n := reviews.Load(); n != 1 {
		t.Errorf("%d reviews for one question in one request, want 1", n)
	}
	k.allowed.Purge()
	ask(context.Background())
	if n := reviews.Load(); n != 2 {
		t.Errorf("%d reviews, want 2: outside the request the question is asked again", n)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
