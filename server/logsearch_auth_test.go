package server_test

import (
	"strings"
	"testing"
)

// TestLogSearchAuthorization: logSearch reads log lines, so it is scoped
// like a list of logs: a caller of ci never gets a line of prod, "-" means
// the namespaces where the caller may list logs, and one who may not read
// logs gets none.
func TestLogSearchAuthorization(t *testing.T) {
	w := setupAuthWorld(t)
	const q = `query($p: String!) { logSearch(parent: $p, contains: "secret", where: {updatedAfter: "2000-01-01T00:00:00Z"}) {
  matches { taskRun step lines { number text } log { record { name } } } stoppedBy } }`
	cases := []struct {
		caller, parent string
		code           string   // expected error code, or "" for none
		want, notWant  []string // texts that must (must not) be in the answer
	}{
		{caller: "alice", parent: "-", want: []string{"ci secret log"}, notWant: []string{"prod"}},
		{caller: "alice", parent: "ci", want: []string{"ci secret log"}, notWant: []string{"prod"}},
		{caller: "alice", parent: "prod", code: "PERMISSION_DENIED", notWant: []string{"prod secret log"}},
		{caller: "bob", parent: "-", want: []string{"prod secret log"}, notWant: []string{"ci secret log", `"ci/`}},
		{caller: "dave", parent: "-", notWant: []string{"secret log"}}, // may list records, not logs
		{caller: "dave", parent: "ci", code: "PERMISSION_DENIED", notWant: []string{"secret log"}},
		{caller: "carol", parent: "-", notWant: []string{"secret log"}},
		{caller: "admin", parent: "-", want: []string{"ci secret log", "prod secret log"}},
	}
	for _, c := range cases {
		t.Run(c.caller+"/"+c.parent, func(t *testing.T) {
			_, r := w.do(t, c.caller, q, map[string]any{"p": c.parent}, nil)
			if c.code != "" && r.code() != c.code {
				t.Errorf("code %q, want %q: %s %+v", r.code(), c.code, r.Data, r.Errors)
			}
			if c.code == "" && len(r.Errors) > 0 {
				t.Errorf("errors: %+v", r.Errors)
			}
			answer := string(r.Data)
			for _, e := range r.Errors {
				answer += e.Message
			}
			for _, s := range c.want {
				if !strings.Contains(answer, s) {
					t.Errorf("answer lacks %q: %s", s, answer)
				}
			}
			for _, s := range c.notWant {
				if strings.Contains(answer, s) {
					t.Errorf("answer has %q: %s", s, answer)
				}
			}
		})
	}
}
