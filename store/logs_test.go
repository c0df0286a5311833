package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestLogs runs on both databases, with log bytes in the database, in a
// log directory and in an object store (a file:// bucket; the S3 tests run
// against a real S3 server), plain and compressed.
func TestLogs(t *testing.T) {
	for _, kind := range storetest.Kinds {
		for _, backend := range []string{"rows", "files", "objects", "objects-gzip", "objects-zstd"} {
			t.Run(kind+"/"+backend, func(t *testing.T) {
				var opts store.Options
				switch backend {
				case "files":
					opts.LogDir = t.TempDir()
				case "objects", "objects-gzip", "objects-zstd":
					opts.LogStore = "file://" + t.TempDir() + "?metadata=skip"
					opts.LogCompression = strings.TrimPrefix(strings.TrimPrefix(backend, "objects"), "-")
				}
				s, _ := storetest.OpenWith(t, kind, opts)
				testLogs(t, s, opts.LogDir, opts.LogStore)
			})
		}
	}
}

func testLogs(t *testing.T, s *store.Store, logDir, logStore string) {
	ctx := context.Background()
	trUID := uuid.NewString()
	tr := storetest.Upsert(t, s, store.RecordWrite{ResultName: store.ResultName("ci", trUID), UID: trUID, DataType: store.TypeTaskRun, UpdateSummary: true,
		Data: run("TaskRun", "ci", "tr", trUID, "True", "", nil, nil, nil)})[0]
	var text bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&text, "line %05d of the build output\n", i) // 31 bytes a line, 620,000 bytes
	}
	const limit = 500_000
	log, err := s.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: "build", Container: "step-build"}, bytes.NewReader(text.Bytes()), limit)
	if err != nil {
		t.Fatal(err)
	}
	var doc store.LogData
	json.Unmarshal(log.Data, &doc)
	want := map[bool]string{true: "file"}[logDir != ""]
	if logStore != "" {
		want = "object"
	}
	if doc.Status.Storage != want {
		t.Errorf("log storage %q, want %q", doc.Status.Storage, want)
	}
	if log.OwnerUID != tr.UID || log.ResultUID != tr.ResultUID || !doc.Status.Truncated || doc.Spec.Step != "build" {
		t.Fatalf("log record: %+v %s", log, log.Data)
	}
	rc, _ := s.OpenLog(ctx, log)
	whole, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(whole, text.Bytes()[:limit]) || !bytes.HasSuffix(whole, []byte("[annals: log truncated at 500000 bytes]\n")) {
		t.Errorf("whole log: %d bytes, ends %q", len(whole), whole[len(whole)-60:])
	}
	part, err := s.ReadLogRange(ctx, log, 262_140, 10) // across the first chunk boundary
	if err != nil || string(part) != string(text.Bytes()[262_140:262_150]) {
		t.Errorf("range: %q %v", part, err)
	}
	if part, _ := s.ReadLogRange(ctx, log, 10_000_000, 10); len(part) != 0 {
		t.Errorf("range past the end: %q", part)
	}
	short, err := s.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: "test"}, strings.NewReader("one\ntwo\nthree\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if tail, _ := s.TailLog(ctx, short, 2); string(tail) != "two\nthree\n" {
		t.Errorf("tail: %q", tail)
	}
	if tail, _ := s.TailLog(ctx, log, 1); string(tail) != "[annals: log truncated at 500000 bytes]\n" {
		t.Errorf("tail of the long log: %q", tail)
	}
	gone, err := s.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: "gone"}, nil, 0)
	if err != nil || !strings.Contains(string(gone.Data), "logs unavailable") || strings.Contains(string(gone.Data), `"available": true`) {
		t.Fatalf("unavailable log: %v %s", err, gone.Data)
	}
	logs, err := s.LogsForTaskRuns(ctx, []store.Key{tr.Key()})
	if err != nil || len(logs[tr.Key()]) != 3 {
		t.Fatalf("logs of the taskrun: %v %v", logs, err)
	}
	// Rewriting a log replaces it; deleting the Result removes the bytes.
	if _, err := s.WriteLog(ctx, store.LogWrite{UID: short.UID, TaskRun: tr, Step: "test"}, strings.NewReader("again\n"), 0); err != nil {
		t.Fatal(err)
	}
	if rc, _ := s.OpenLog(ctx, short); func() string { b, _ := io.ReadAll(rc); return string(b) }() != "again\n" {
		t.Error("a rewritten log kept its old bytes")
	}
	if err := s.DeleteResult(ctx, tr.ResultName, ""); err != nil {
		t.Fatal(err)
	}
	if logDir != "" {
		// Files go with the next sweep, not with the Result.
		if n, size, err := s.SweepLogFiles(ctx, 0); err != nil || n != 2 || size < limit {
			t.Errorf("sweep removed %d files, %d bytes (%v); want the 2 logs", n, size, err)
		}
		files, _ := filepath.Glob(filepath.Join(logDir, "*", "*", "*"))
		if len(files) != 0 {
			t.Errorf("files left after the sweep: %v", files)
		}
	}
	if logStore != "" {
		// Objects go with the drain of the outbox: the rewritten log's
		// first object and the two of the deleted Result.
		if n, err := s.PendingLogDeletes(ctx); err != nil || n != 3 {
			t.Errorf("%d objects listed for deletion (%v), want 3", n, err)
		}
		if n, err := s.DrainLogDeletes(ctx, 100); err != nil || n != 3 {
			t.Errorf("drain deleted %d objects (%v), want 3", n, err)
		}
		if left := storetest.Objects(t, logStore); len(left) != 0 {
			t.Errorf("objects left after the drain: %v", left)
		}
	}
	if part, _ := s.ReadLogRange(ctx, log, 0, 10); len(part) != 0 {
		t.Errorf("log bytes outlived their Result: %q", part)
	}
}
