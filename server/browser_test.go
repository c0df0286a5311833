package server_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/annals-dev/annals/store/storetest"
)

// chromium is Debian's package: Playwright's own browser download is not
// used.
const chromium = "/usr/bin/chromium"

// TestPlaygroundInBrowser opens the playground in headless Chromium,
// driven by Playwright (server/testdata/browser/check.mjs): it runs the
// Dashboard and another tab, opens the Explorer and clicks a field into
// the query, with no console error and the bundles compressed.
func TestPlaygroundInBrowser(t *testing.T) {
	dir := "testdata/browser"
	inCI := os.Getenv("CI") == "true"
	missing := ""
	if _, err := os.Stat(dir + "/node_modules/playwright-core"); err != nil {
		missing = "playwright-core is not installed: run 'npm ci --prefix server/testdata/browser' (.ci/test does)"
	} else if _, err := os.Stat(chromium); err != nil {
		missing = chromium + " is missing: run 'apt-get install -y chromium' (.ci/test does when CI=true)"
	}
	if missing != "" {
		if inCI {
			t.Fatal(missing)
		}
		t.Skip(missing)
	}
	s, _ := storetest.Open(t, "sqlite")
	srv := httptest.NewServer(fixture(t, s))
	defer srv.Close()

	// Typically 10 to 40 s; the bound is for a browser that hangs.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "check.mjs", srv.URL+"/", chromium, "build-web-k8d9s")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("the playground in Chromium: %v", err)
	}
}
