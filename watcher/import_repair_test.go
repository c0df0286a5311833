package watcher_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
	"github.com/annals-dev/annals/watcher"
)

// TestImportRepairsInvalidUTF8: an object with a lone surrogate escape or a
// byte that is not UTF-8 is stored with U+FFFD in their place and reported
// by name, and the objects around it are stored as well.
func TestImportRepairsInvalidUTF8(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f, err := os.Open("testdata/invalid-utf8.json")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rep, err := watcher.Import(ctx, s, f)
		if err != nil {
			t.Fatalf("one broken object failed the import: %v", err)
		}
		if rep.TaskRuns != 4 || len(rep.Skipped) != 0 {
			t.Errorf("stored %d TaskRuns, skipped %q; want all 4 stored", rep.TaskRuns, rep.Skipped)
		}
		repaired := strings.Join(rep.Repaired, "\n")
		for _, name := range []string{"ci/lone-surrogate", "ci/invalid-byte"} {
			if !strings.Contains(repaired, name) {
				t.Errorf("report of repaired objects %q does not name %s", rep.Repaired, name)
			}
		}
		if strings.Contains(repaired, "before-broken") || strings.Contains(repaired, "after-broken") {
			t.Errorf("intact objects reported as repaired: %q", rep.Repaired)
		}
		stored, err := s.GetRecordsByUID(ctx, "ci", []string{
			"0bad0000-0000-4000-8000-000000000001", "0bad0000-0000-4000-8000-000000000002",
			"0bad0000-0000-4000-8000-000000000003", "0bad0000-0000-4000-8000-000000000004"})
		if err != nil {
			t.Fatal(err)
		}
		for uid, want := range map[string]string{
			"0bad0000-0000-4000-8000-000000000002": "half an emoji: \uFFFD and a low one \uFFFD alone",
			"0bad0000-0000-4000-8000-000000000003": "latin-1 caf\uFFFD in a UTF-8 world",
			"0bad0000-0000-4000-8000-000000000004": `"note":"fine"`,
		} {
			rec := stored[uid]
			if rec == nil {
				t.Errorf("%s not stored", uid)
				continue
			}
			// Compared as stored (PostgreSQL may re-space JSONB), not as decoded:
			// decoding would hide a raw \ud800 escape behind Go's own U+FFFD.
			data := strings.ReplaceAll(string(rec.Data), `": "`, `":"`)
			if !strings.Contains(data, want) || bytes.Contains(rec.Data, []byte(`\ud8`)) || bytes.Contains(rec.Data, []byte(`\udc`)) {
				t.Errorf("%s stored as %s; want %q in it and no surrogate escape", uid, rec.Data, want)
			}
		}
	})
}
