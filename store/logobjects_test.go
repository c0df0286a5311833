package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// objectStoreFixture is a store on one database with a file:// log store,
// and a TaskRun to hang logs on.
type objectStoreFixture struct {
	s        *store.Store
	dbURL    string
	logStore string
	tr       *store.Record
}

func newObjectStoreFixture(t *testing.T, kind string, opts store.Options) *objectStoreFixture {
	t.Helper()
	if opts.LogStore == "" {
		opts.LogStore = "file://" + t.TempDir() + "?metadata=skip"
	}
	s, dbURL := storetest.OpenWith(t, kind, opts)
	trUID := uuid.NewString()
	tr := storetest.Upsert(t, s, store.RecordWrite{ResultName: store.ResultName("ci", trUID), UID: trUID, DataType: store.TypeTaskRun, UpdateSummary: true,
		Data: run("TaskRun", "ci", "tr", trUID, "True", "", nil, nil, nil)})[0]
	return &objectStoreFixture{s: s, dbURL: dbURL, logStore: opts.LogStore, tr: tr}
}

func (f *objectStoreFixture) write(t *testing.T, step, text string) *store.Record {
	t.Helper()
	log, err := f.s.WriteLog(context.Background(), store.LogWrite{UID: uuid.NewString(), TaskRun: f.tr, Step: step}, strings.NewReader(text), 0)
	if err != nil {
		t.Fatal(err)
	}
	return log
}

func readAll(t *testing.T, s *store.Store, log *store.Record) string {
	t.Helper()
	rc, err := s.OpenLog(context.Background(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A Result deleted, then the process dies before the outbox is drained:
// the next drain, by another process, removes the objects.
func TestLogObjectsDeletedAfterCrash(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			f := newObjectStoreFixture(t, kind, store.Options{})
			f.write(t, "build", "compiling\n")
			f.write(t, "test", "testing\n")
			if n := len(storetest.Objects(t, f.logStore)); n != 2 {
				t.Fatalf("%d objects after two writes", n)
			}
			if _, _, err := f.s.DeleteResults(ctx, []string{f.tr.ResultName}); err != nil {
				t.Fatal(err)
			}
			// The "crash": the delete committed, no drain ran.
			f.s.Close()
			if n := len(storetest.Objects(t, f.logStore)); n != 2 {
				t.Fatalf("%d objects before any drain, want 2", n)
			}
			restarted, err := store.Open(ctx, f.dbURL, store.Options{LogStore: f.logStore})
			if err != nil {
				t.Fatal(err)
			}
			defer restarted.Close()
			if n, err := restarted.DrainLogDeletes(ctx, 10); err != nil || n != 2 {
				t.Fatalf("drain after the restart deleted %d (%v), want 2", n, err)
			}
			if left := storetest.Objects(t, f.logStore); len(left) != 0 {
				t.Errorf("objects left: %v", left)
			}
			// A second drain finds nothing; an object already gone counts as deleted.
			if n, err := restarted.DrainLogDeletes(ctx, 10); err != nil || n != 0 {
				t.Errorf("second drain: %d %v", n, err)
			}
		})
	}
}

// A write whose process dies after the object is stored, before the Log
// row commits: the object is removed by the drain once the write grace has
// passed, and not before.
func TestLogObjectsOrphanedByCrashedWrite(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			f := newObjectStoreFixture(t, kind, store.Options{})
			key, err := f.s.WriteObjectOnly(ctx, store.Key{Namespace: "ci", UID: uuid.NewString()}, strings.NewReader("half done\n"))
			if err != nil {
				t.Fatal(err)
			}
			if n, err := f.s.DrainLogDeletes(ctx, 10); err != nil || n != 0 {
				t.Fatalf("a write within its grace was drained: %d %v", n, err)
			}
			if left := storetest.Objects(t, f.logStore); !slices.Equal(left, []string{key}) {
				t.Fatalf("objects %v, want %s", left, key)
			}
			f.s.Close()
			later, err := store.Open(ctx, f.dbURL, store.Options{LogStore: f.logStore, LogWriteGrace: time.Nanosecond})
			if err != nil {
				t.Fatal(err)
			}
			defer later.Close()
			// due_at was set with the first store's grace (a day): a store
			// with a short grace drains only what is due, so pretend a day
			// passed by writing a second orphan with the short grace.
			key2, err := later.WriteObjectOnly(ctx, store.Key{Namespace: "ci", UID: uuid.NewString()}, strings.NewReader("also half done\n"))
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(1100 * time.Millisecond) // due_at has a resolution of a second
			if n, err := later.DrainLogDeletes(ctx, 10); err != nil || n != 1 {
				t.Fatalf("drain of the orphan past its grace: %d %v", n, err)
			}
			if left := storetest.Objects(t, f.logStore); slices.Contains(left, key2) || !slices.Contains(left, key) {
				t.Errorf("objects %v: want %s gone and %s (within its grace) kept", left, key2, key)
			}
		})
	}
}

// A write whose reader fails midway leaves no object and no Log.
func TestLogObjectsFailedWriteLeavesNothing(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			f := newObjectStoreFixture(t, kind, store.Options{})
			broken := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("x"), 600<<10)), errReader{errors.New("pod log stream reset")})
			uid := uuid.NewString()
			if _, err := f.s.WriteLog(ctx, store.LogWrite{UID: uid, TaskRun: f.tr, Step: "build"}, broken, 0); err == nil || !strings.Contains(err.Error(), "stream reset") {
				t.Fatalf("write of a broken stream: %v", err)
			}
			if left := storetest.Objects(t, f.logStore); len(left) != 0 {
				t.Errorf("objects left by a failed write: %v", left)
			}
			if n, _ := f.s.PendingLogDeletes(ctx); n != 0 {
				t.Errorf("%d outbox rows left by a failed write", n)
			}
			if recs, _ := f.s.GetRecordsByUID(ctx, "ci", []string{uid}); recs[uid] != nil {
				t.Error("a failed write stored its Log")
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// SealLog moves a live log's database chunks into an object.
func TestSealLog(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			f := newObjectStoreFixture(t, kind, store.Options{LogCompression: store.CompressionZstd})
			log := f.write(t, "build", "") // an empty log: the record, no bytes
			text := strings.Repeat("step output with a NUL \x00 kept as it was\n", 20000)
			if err := f.s.InsertLogChunks(ctx, log.Key(), []byte(text)); err != nil {
				t.Fatal(err)
			}
			objectsBefore := len(storetest.Objects(t, f.logStore))
			if err := f.s.SealLog(ctx, log.Key()); err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, f.s, log); got != text {
				t.Errorf("sealed log reads %d bytes, want %d", len(got), len(text))
			}
			if n := len(storetest.Objects(t, f.logStore)); n != objectsBefore+1 {
				t.Errorf("%d objects after the seal, want %d", n, objectsBefore+1)
			}
			stored, err := f.s.LogsStored(ctx, []store.Key{log.Key()})
			if err != nil || !stored[log.Key()] {
				t.Errorf("sealed log not listed as stored: %v %v", stored, err)
			}
			// Sealed again: no chunks left, nothing to do.
			if err := f.s.SealLog(ctx, log.Key()); err != nil {
				t.Fatal(err)
			}
			if n := len(storetest.Objects(t, f.logStore)); n != objectsBefore+1 {
				t.Errorf("a second seal wrote an object: %d", n)
			}
			// Without a log store, sealing is a no-op.
			plain, err := store.Open(ctx, f.dbURL, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			if err := plain.SealLog(ctx, log.Key()); err != nil {
				t.Errorf("seal without a log store: %v", err)
			}
		})
	}
}

// MigrateLogs moves logs from database rows and from a log directory into
// the object store, resumably, and every log reads the same before, during
// and after.
func TestMigrateLogs(t *testing.T) {
	for _, kind := range storetest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			logDir := t.TempDir()
			logStore := "file://" + t.TempDir() + "?metadata=skip"
			rows, dbURL := storetest.OpenWith(t, kind, store.Options{})
			trUID := uuid.NewString()
			tr := storetest.Upsert(t, rows, store.RecordWrite{ResultName: store.ResultName("ci", trUID), UID: trUID, DataType: store.TypeTaskRun, UpdateSummary: true,
				Data: run("TaskRun", "ci", "tr", trUID, "True", "", nil, nil, nil)})[0]
			want := map[string]string{}
			var logs []*store.Record
			writeWith := func(s *store.Store, i int) {
				text := strings.Repeat(fmt.Sprintf("log %d line\n", i), 1000*(i+1))
				log, err := s.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: fmt.Sprint("step", i)}, strings.NewReader(text), 0)
				if err != nil {
					t.Fatal(err)
				}
				want[log.UID], logs = text, append(logs, log)
			}
			for i := range 3 {
				writeWith(rows, i)
			}
			files, err := store.Open(ctx, dbURL, store.Options{LogDir: logDir})
			if err != nil {
				t.Fatal(err)
			}
			defer files.Close()
			for i := 3; i < 5; i++ {
				writeWith(files, i)
			}
			if _, err := files.WriteLog(ctx, store.LogWrite{UID: uuid.NewString(), TaskRun: tr, Step: "gone"}, nil, 0); err != nil {
				t.Fatal(err)
			}
			migrating, err := store.Open(ctx, dbURL, store.Options{LogDir: logDir, LogStore: logStore, LogCompression: store.CompressionGzip})
			if err != nil {
				t.Fatal(err)
			}
			defer migrating.Close()
			check := func(stage string) {
				for _, log := range logs {
					if got := readAll(t, migrating, log); got != want[log.UID] {
						t.Errorf("%s: log %s reads %d bytes, want %d", stage, log.Name, len(got), len(want[log.UID]))
					}
				}
			}
			// Two Logs at a time, as a run that is stopped and started again.
			var after store.Key
			total := 0
			for range 10 {
				moved, _, next, err := migrating.MigrateLogs(ctx, after, 2)
				if err != nil {
					t.Fatal(err)
				}
				total += moved
				check(fmt.Sprintf("after moving %d", total))
				if next == (store.Key{}) {
					break
				}
				after = next
			}
			if total != 5 || len(storetest.Objects(t, logStore)) != 5 {
				t.Errorf("moved %d logs into %d objects, want 5", total, len(storetest.Objects(t, logStore)))
			}
			if left, _ := filepath.Glob(filepath.Join(logDir, "*", "*", "*.log")); len(left) != 0 {
				t.Errorf("log files left after the move: %v", left)
			}
			// Idempotent: a second run moves nothing.
			if moved, _, _, err := migrating.MigrateLogs(ctx, store.Key{}, 100); err != nil || moved != 0 {
				t.Errorf("second run moved %d (%v)", moved, err)
			}
			check("after the second run")
			// A store without the object store refuses to read them, clearly.
			if _, err := rows.ReadLogRange(ctx, logs[0], 0, 10); !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "no --log-store") {
				t.Errorf("reading an object without a log store: %v", err)
			}
		})
	}
}
