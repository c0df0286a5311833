package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestRepresentationsCapped: _entities refuses more references than the
// limit, in one field or spread over aliases, naming the limit; at the
// limit it answers.
func TestRepresentationsCapped(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := server.New(server.Config{Store: s, Logger: quiet, MaxRepresentations: 10})
		ctx := context.Background()
		for _, c := range []struct {
			name, query string
			n           int
			code        string
		}{
			{"at the limit", `query($r: [_Any!]!) { _entities(representations: $r) { ... on Record { name } } }`, 10, ""},
			{"over it", `query($r: [_Any!]!) { _entities(representations: $r) { ... on Record { name } } }`, 11, "INVALID_ARGUMENT"},
			{"over it through aliases", `query($r: [_Any!]!) { a: _entities(representations: $r) { ... on Record { name } } b: _entities(representations: $r) { ... on Record { name } } }`, 6, "INVALID_ARGUMENT"},
			{"over it in a fragment", `query($r: [_Any!]!) { ...F } fragment F on Query { _entities(representations: $r) { ... on Record { name } } }`, 11, "INVALID_ARGUMENT"},
		} {
			t.Run(c.name, func(t *testing.T) {
				resp := post(t, ctx, h, c.query, map[string]any{"r": entities(namespacesNamed("ns", c.n))})
				if resp.code() != c.code {
					t.Fatalf("code %q, want %q: %+v", resp.code(), c.code, resp.Errors)
				}
				if c.code != "" && !strings.Contains(resp.Errors[0].Message, "the limit is 10 per request") {
					t.Errorf("message does not name the limit: %s", resp.Errors[0].Message)
				}
			})
		}
	})
}
