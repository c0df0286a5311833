package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/store"
)

func TestFlagsFromEnvironment(t *testing.T) {
	fs := newFlagSet("demo", "a demo")
	listen := fs.String("listen", "127.0.0.1:8080", "address")
	level := fs.String("log-level", "info", "level")
	t.Setenv("ANNALS_LISTEN", "0.0.0.0:9999")
	t.Setenv("ANNALS_LOG_LEVEL", "debug")
	if err := parseFlags(fs, []string{"--log-level=warn"}); err != nil {
		t.Fatal(err)
	}
	if *listen != "0.0.0.0:9999" || *level != "warn" {
		t.Errorf("listen %q level %q: the environment fills flags, the command line wins", *listen, *level)
	}
	bad := newFlagSet("demo", "")
	bad.Int("workers", 1, "")
	t.Setenv("ANNALS_WORKERS", "many")
	if err := parseFlags(bad, nil); err == nil || !strings.Contains(err.Error(), "ANNALS_WORKERS") {
		t.Errorf("a bad environment value: %v", err)
	}
	if err := parseFlags(newFlagSet("demo", ""), []string{"stray"}); err == nil {
		t.Error("a stray argument was accepted")
	}
}

func TestHelpNamesEveryFlagAndVariable(t *testing.T) {
	var out bytes.Buffer
	fs := newFlagSet("serve", "Serves.")
	fs.SetOutput(&out)
	fs.String("database-url", "", "database")
	if err := parseFlags(fs, []string{"--help"}); err != flag.ErrHelp {
		t.Fatalf("--help: %v", err)
	}
	if !strings.Contains(out.String(), "--database-url") || !strings.Contains(out.String(), "$ANNALS_DATABASE_URL") {
		t.Errorf("help: %s", out.String())
	}
}

// The commands a newcomer runs: import, then serve (and stop on a signal).
func TestImportThenServe(t *testing.T) {
	db := filepath.Join(t.TempDir(), "annals.db")
	if err := runImport(context.Background(), []string{"--database-url", db, "../../watcher/testdata/runs.json"}); err != nil {
		t.Fatal(err)
	}
	if err := runMigrate(context.Background(), []string{"--database-url", db}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, []string{"--database-url", db, "--listen", addr, "--log-level", "error"})
	}()
	var body string
	for range 100 {
		resp, err := http.Post("http://"+addr+"/graphql", "application/json",
			strings.NewReader(`{"query":"{ records(parent: \"-\") { totalCount } }"}`))
		if err == nil {
			b := new(bytes.Buffer)
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			body = b.String()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body != `{"data":{"records":{"totalCount":13}}}` {
		t.Errorf("served %q", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestBadDatabaseAndFile(t *testing.T) {
	err := runServe(context.Background(), []string{"--database-url", "postgres://nobody@127.0.0.1:1/x?connect_timeout=1", "--listen", "127.0.0.1:0", "--log-level", "error"})
	if err == nil || !strings.Contains(err.Error(), "database unreachable") {
		t.Errorf("unreachable database: %v", err)
	}
	if err := runImport(context.Background(), []string{"--database-url", filepath.Join(t.TempDir(), "x.db"), "/no/such/file"}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestRetentionCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "annals.db")
	if err := runImport(context.Background(), []string{"--database-url", db, "../../watcher/testdata/runs.json"}); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.yaml")
	os.WriteFile(policy, []byte("defaultRetention: 7d\npolicies:\n- name: prod\n  selector: {matchNamespaces: [prod]}\n  retention: 3650d\n"), 0o644)
	for _, args := range [][]string{{"--dry-run"}, {"--once"}} {
		if err := runRetention(context.Background(), append([]string{"--database-url", db, "--policy-file", policy, "--log-level", "error"}, args...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	// The finished ci runs (March 2026) are past 7 days; prod is kept for ten
	// years; the running pipeline has no end and, as in Tekton Results, ages
	// from its own creation (March 2026 too), so it goes as well.
	s, err := store.Open(context.Background(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Migrate(context.Background())
	if n, err := s.CountRecords(context.Background(), store.ListOptions{}); err != nil || n != 3 {
		t.Errorf("%d records remain (%v), want prod's 3", n, err)
	}
	if err := runRetention(context.Background(), []string{"--database-url", db, "--log-level", "error"}); err == nil || !strings.Contains(err.Error(), "--policy-file") {
		t.Errorf("missing policy file: %v", err)
	}
}

func TestAuthNoneOnlyOnLoopback(t *testing.T) {
	db := filepath.Join(t.TempDir(), "annals.db")
	err := runServe(context.Background(), []string{"--database-url", db, "--auth", "none", "--listen", "0.0.0.0:0"})
	if err == nil || !strings.Contains(err.Error(), "--insecure-allow-unauthenticated-remote-access") {
		t.Errorf("--auth=none on 0.0.0.0: %v, want a refusal naming the override flag", err)
	}
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "localhost:1": true, "[::1]:80": true, ":8080": false, "0.0.0.0:80": false, "10.0.0.1:80": false} {
		if isLoopback(addr) != want {
			t.Errorf("isLoopback(%q) = %v", addr, !want)
		}
	}
}

func TestLogConfigRedactsPassword(t *testing.T) {
	var buf bytes.Buffer
	log, _ := newLogger(&buf, "json", "info")
	fs := newFlagSet("serve", "")
	databaseURLFlag(fs)
	if err := fs.Parse([]string{"--database-url", "postgres://annals:s3cret@db:5432/annals"}); err != nil {
		t.Fatal(err)
	}
	logConfig(log, fs)
	if strings.Contains(buf.String(), "s3cret") || !strings.Contains(buf.String(), "annals:xxxxx@db") {
		t.Errorf("config line: %s", buf.String())
	}
}

// TestReadmeTableListsEveryFlag: the README's flag table has a row naming
// every flag of every command, with the command in its second cell.
func TestReadmeTableListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{} // flag -> commands cell
	for _, line := range strings.Split(string(readme), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.Contains(cells[1], "`--") {
			continue
		}
		for _, f := range strings.Split(cells[1], ",") {
			rows[strings.Trim(strings.TrimSpace(f), "`")] = cells[2]
		}
	}
	devnull, _ := os.Open(os.DevNull)
	stderr := os.Stderr
	defer func() { os.Stderr = stderr }()
	for name, cmd := range commands {
		out, err := os.CreateTemp(t.TempDir(), "help")
		if err != nil {
			t.Fatal(err)
		}
		os.Stderr = out
		cmd.run(context.Background(), []string{"--help"})
		os.Stderr = devnull
		help, _ := os.ReadFile(out.Name())
		for _, line := range strings.Split(string(help), "\n") {
			fields := strings.Fields(line)
			if len(fields) == 0 || !strings.HasPrefix(fields[0], "--") {
				continue
			}
			cell, ok := rows[fields[0]]
			if !ok || !(strings.Contains(cell, name) || strings.TrimSpace(cell) == "all") {
				t.Errorf("README flag table: no row for %s of annals %s", fields[0], name)
			}
		}
	}
}

// TestDatabaseURLFormsAtStartup: every form of a PostgreSQL URL is taken
// for PostgreSQL (here unreachable, so the command fails saying so, instead
// of serving an empty SQLite file named after the URL), and its password
// appears neither in the startup log nor in the error.
func TestDatabaseURLFormsAtStartup(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, url := range []string{
		"host=127.0.0.1 port=1 user=postgres password=s3cret dbname=x",
		"host=127.0.0.1 port=1 user=postgres password='s3cret word' dbname=x",
		"Postgres://postgres:s3cret@127.0.0.1:1/x",
		"POSTGRESQL://postgres@127.0.0.1:1/x?password=s3cret",
		"postgres://postgres@127.0.0.1:1/x?sslmode=disable&sslpassword=s3cret",
	} {
		t.Run(url, func(t *testing.T) {
			out, err := os.CreateTemp(t.TempDir(), "stderr")
			if err != nil {
				t.Fatal(err)
			}
			stderr := os.Stderr
			os.Stderr = out
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err = runServe(ctx, []string{"--database-url", url, "--listen", "127.0.0.1:0", "--database-connect-timeout", "1s"})
			cancel()
			os.Stderr = stderr
			logged, _ := os.ReadFile(out.Name())
			if err == nil || !strings.Contains(err.Error(), "database unreachable") {
				t.Errorf("serve with an unreachable PostgreSQL: %v; want database unreachable", err)
			}
			if strings.Contains(string(logged), "s3cret") || (err != nil && strings.Contains(err.Error(), "s3cret")) {
				t.Errorf("password shown:\nlog: %s\nerror: %v", logged, err)
			}
			if !strings.Contains(string(logged), "xxxxx") {
				t.Errorf("startup log does not show the redacted URL: %s", logged)
			}
		})
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("files created: %v", files)
	}
	err := runMigrate(context.Background(), []string{"--database-url", "prod"})
	if err == nil || !strings.Contains(err.Error(), `"prod"`) || !strings.Contains(err.Error(), "sqlite:PATH") {
		t.Errorf("a bare word: %v; want a refusal naming it and the accepted forms", err)
	}
}
