package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Flags may follow the argument; a skipped object fails the command unless
// --allow-skipped; an unknown database scheme is named.
func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "annals.db")
	mixed := filepath.Join(dir, "mixed.yaml")
	os.WriteFile(mixed, []byte("apiVersion: tekton.dev/v1\nkind: TaskRun\nmetadata: {name: a, namespace: ci, uid: 11111111-2222-4333-8444-555555555555}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error; "" for success
	}{
		{"flags after the file", []string{"../../watcher/testdata/runs.json", "--database-url", db, "--progress", "none"}, ""},
		{"a skipped object fails", []string{mixed, "--database-url=" + db, "--progress=none"}, "--allow-skipped"},
		{"unless allowed", []string{"--allow-skipped", mixed, "--database-url", db, "--progress", "none"}, ""},
		{"unknown scheme", []string{"../../watcher/testdata/runs.json", "--database-url", "mysql://u@h/db"}, `scheme "mysql" is not supported`},
		{"two files", []string{mixed, mixed, "--database-url", db}, "give one FILE or DIR"},
		{"bad progress", []string{mixed, "--database-url", db, "--progress", "fancy"}, "want auto, bar, lines or none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runImport(context.Background(), tc.args)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseImportFlagsAnywhere(t *testing.T) {
	fs := newFlagSet("import", "")
	url := fs.String("database-url", "", "")
	allow := fs.Bool("allow-skipped", false, "")
	paths, err := parseImportFlags(fs, []string{"--allow-skipped", "runs.json", "--database-url", "x.db", "--", "--odd-name.json"})
	if err != nil {
		t.Fatal(err)
	}
	if *url != "x.db" || !*allow || strings.Join(paths, ",") != "runs.json,--odd-name.json" {
		t.Errorf("url %q allow %v paths %q", *url, *allow, paths)
	}
}

// The progress line says how far, how fast and how long is left.
func TestProgressStatus(t *testing.T) {
	d, err := newProgressDisplay(os.Stderr, "lines")
	if err != nil {
		t.Fatal(err)
	}
	now := d.now()
	d.started = now.Add(-10e9)
	d.now = func() time.Time { return now }
	d.progress.BytesTotal.Store(400 << 20)
	d.progress.BytesRead.Store(100 << 20)
	d.progress.Objects.Store(30000)
	d.progress.Written.Store(25000)
	got := d.status()
	for _, want := range []string{" 25% 100.0 MB/400.0 MB", "30000 objects read", "2500 runs/s", "ETA 30s"} {
		if !strings.Contains(got, want) {
			t.Errorf("status %q: want %q", got, want)
		}
	}
}
