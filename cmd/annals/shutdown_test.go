package main

import (
	"database/sql"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store/storetest"
)

// An `annals serve` process stopped with SIGTERM while a request's
// statement runs (here: waits on a lock) leaves no statement behind on
// PostgreSQL: when the drain ends the request is cancelled, its SQL with
// it, before the process closes its pool and exits.
func TestSIGTERMLeavesNoStatementRunning(t *testing.T) {
	_, dbURL := storetest.Open(t, "postgres")
	app := "annals-test-sigterm-" + uuid.NewString()[:8]
	u, _ := url.Parse(dbURL)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()

	bin := filepath.Join(t.TempDir(), "annals")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building annals: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// The drain is shorter than the request timeout: the request is still
	// running when it ends.
	cmd := exec.Command(bin, "serve", "--listen", addr, "--database-url", u.String(), "--migrate=false",
		"--shutdown-timeout", "1s", "--log-level", "error")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("annals serve not ready")
		}
	}

	admin, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	lock, err := admin.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.Exec("LOCK TABLE records IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	go http.Post(base+"/graphql", "application/json", strings.NewReader(`{"query":"{ records(parent: \"-\") { totalCount } }"}`))
	running := func() int {
		var n int
		if err := admin.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'", app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); running() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request's statement never started")
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("annals serve after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("annals serve did not exit after SIGTERM")
	}
	if n := running(); n != 0 {
		t.Errorf("%d statements of the stopped process still running on PostgreSQL", n)
	}
}

// Timeouts that contradict one another are refused before anything starts,
// saying which and how to fix them.
func TestInconsistentTimeoutsRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--statement-timeout", "30s", "--request-timeout", "20s"}, "--statement-timeout 30s is longer than --request-timeout 20s"},
		{[]string{"--request-timeout", "0s"}, "--request-timeout 0s: want a positive duration"},
		{[]string{"--statement-timeout", "-1s"}, "--statement-timeout -1s"},
	} {
		err := runServe(t.Context(), append([]string{"--database-url", filepath.Join(t.TempDir(), "a.db"), "--log-level", "error"}, c.args...))
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.says)
		}
	}
}
