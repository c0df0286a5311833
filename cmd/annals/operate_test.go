package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBinaryVersionAndStartupFailure builds the binary from this checkout
// once and checks what an operator sees first: "annals version" names the
// VCS revision, and a serve whose port is taken fails before it touches the
// database, saying so in the log format it was given.
func TestBinaryVersionAndStartupFailure(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "annals")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building annals: %v\n%s", err, out)
	}

	t.Run("version names the revision", func(t *testing.T) {
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(out), "annals ") {
			t.Errorf("annals version printed %q", out)
		}
		// What the toolchain recorded (nothing with -buildvcs=false, or in
		// a git worktree, which Go does not recognize) is what is printed.
		meta, err := exec.Command("go", "version", "-m", bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(meta), "\n") {
			if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[1], "vcs.revision=") {
				if rev := strings.TrimPrefix(f[1], "vcs.revision="); !strings.Contains(string(out), rev) {
					t.Errorf("annals version printed %q; want the revision %s", out, rev)
				}
			}
		}
	})

	t.Run("port in use, before migrations, as JSON", func(t *testing.T) {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		db := filepath.Join(t.TempDir(), "annals.db")
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "serve", "--listen", taken.Addr().String(), "--database-url", "sqlite:"+db, "--log-format", "json")
		cmd.Stderr = &stderr
		err = cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("serve on a taken port: %v; want exit code 1", err)
		}
		if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the database was opened (or migrated) before the port was bound: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		var last struct{ Level, Msg, Error string }
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
			t.Fatalf("the failure is not a JSON log line: %q", lines[len(lines)-1])
		}
		if last.Level != "ERROR" || !strings.Contains(last.Error, "address already in use") || !strings.Contains(last.Error, taken.Addr().String()) {
			t.Errorf("failure logged as %+v", last)
		}
	})
}

// TestLogDurationsReadable: durations read "1.5s" in both formats, not as
// nanoseconds; packages logging through slog's default use the same handler.
func TestLogDurationsReadable(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log, err := newLogger(&buf, format, "info")
		if err != nil {
			t.Fatal(err)
		}
		log.Info("retrying", "in", 1500*time.Millisecond)
		if !strings.Contains(buf.String(), "1.5s") || strings.Contains(buf.String(), "1500000000") {
			t.Errorf("%s: %s", format, buf.String())
		}
	}
	defer slog.SetDefault(slog.Default())
	fs := newFlagSet("test", "")
	logger := func() (*slog.Logger, error) { return newLogger(io.Discard, "json", "info") }
	log, err := parseAndLog(fs, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	if slog.Default().Handler() != log.Handler() {
		t.Error("slog's default logger is not the configured one: the store's listener would log plain text")
	}
	commandLog = nil
}
