package auth

import (
	"errors"
	"testing"

	authzv1 "k8s.io/api/authorization/v1"
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
