package watcher

import (
	"fmt"
	"strings"
	"testing"
)

// Every form kubectl (or a script) writes is read object by object, and
// what is not an object is named, not lost silently.
func TestReadObjectsForms(t *testing.T) {
	run := func(name string) string {
		return fmt.Sprintf(`{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":%q,"namespace":"ci","uid":"u-%s"}}`, name, name)
	}
	yamlRun := func(name, indent string) string {
		return indent + "- apiVersion: tekton.dev/v1\n" + indent + "  kind: TaskRun\n" + indent + "  metadata:\n" +
			indent + "    name: " + name + "\n" + indent + "    namespace: ci\n"
	}
	for _, tc := range []struct {
		name    string
		input   string
		want    []string // TaskRun names, in order
		skipped int
	}{
		{"kubectl List, items before kind", `{"apiVersion":"v1","items":[` + run("a") + `,` + run("b") + `],"kind":"List","metadata":{"resourceVersion":""}}`, []string{"a", "b"}, 0},
		{"bare array", `[` + run("a") + `, ` + run("b") + `]`, []string{"a", "b"}, 0},
		{"NDJSON", run("a") + "\n" + run("b") + "\n\n" + run("c") + "\n", []string{"a", "b", "c"}, 0},
		{"single object", "\ufeff  " + run("a"), []string{"a"}, 0},
		{"empty List", `{"kind":"List","items":[]}`, nil, 0},
		{"List inside an array", `[{"kind":"TaskRunList","items":[` + run("a") + `]},` + run("b") + `]`, []string{"a", "b"}, 0},
		{"scalar among objects", run("a") + "\n42\n" + run("b"), []string{"a", "b"}, 1},
		{"YAML documents", "apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata:\n  name: a\n---\n# only a comment\n---\nkind: TaskRun\nmetadata: {name: b}\n...\n", []string{"a", "b"}, 0},
		{"kubectl -o yaml List", "apiVersion: v1\nitems:\n" + yamlRun("a", "") + "  spec:\n    script: |\n      echo one\n\n      - not an item\n" + yamlRun("b", "") + "kind: List\nmetadata:\n  resourceVersion: \"\"\n", []string{"a", "b"}, 0},
		{"YAML List with indented items, then a document", "kind: List\nitems:\n" + yamlRun("a", "  ") + yamlRun("b", "  ") + "---\n" + strings.TrimPrefix(strings.ReplaceAll(yamlRun("c", ""), "\n  ", "\n"), "- "), []string{"a", "b", "c"}, 0},
		{"broken YAML item", "items:\n- kind: TaskRun\n  metadata: {name: a}\n- kind: [unclosed\n- kind: TaskRun\n  metadata: {name: c}\n", []string{"a", "c"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			var skipped []string
			err := readObjects(strings.NewReader(tc.input), "in", func(obj []byte, where string) error {
				r, _ := parseLoose(obj)
				got = append(got, r)
				return nil
			}, func(why string) { skipped = append(skipped, why) })
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") || len(skipped) != tc.skipped {
				t.Errorf("read %q, skipped %q; want %q and %d skipped", got, skipped, tc.want, tc.skipped)
			}
		})
	}
}

// parseLoose returns the name of an object, for TestReadObjectsForms.
func parseLoose(obj []byte) (string, error) {
	d := describe(obj)
	_, name, _ := strings.Cut(d, " ")
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	return name, nil
}

// JSON that breaks off is an error naming where, not a silent end.
func TestReadObjectsBrokenJSON(t *testing.T) {
	for _, input := range []string{`{"kind":"List","items":[{"kind":"TaskRun"},{"kind":`, `[{"a":1} {"b":2}]`, `{"items":{"a":1}}`} {
		err := readObjects(strings.NewReader(input), "runs.json", func([]byte, string) error { return nil }, func(string) {})
		if err == nil || !strings.Contains(err.Error(), "runs.json") {
			t.Errorf("%s: %v, want an error naming the file", input, err)
		}
	}
}
