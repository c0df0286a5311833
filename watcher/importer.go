package watcher

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/annals-dev/annals/store"
)

// ImportReport tells what an import stored and what it skipped.
type ImportReport struct {
	PipelineRuns, TaskRuns int // runs written (created, updated or unchanged)
	// Created, Updated and Unchanged count the run Records by what the
	// write did: new, data changed, or stored already as it is.
	Created, Updated, Unchanged int
	Results                     int // Results the runs were written to
	// Skipped has one line per object (or log file) not stored, saying
	// why, unless ImportOptions.OnSkip took them; SkippedCount counts them
	// either way.
	Skipped      []string
	SkippedCount int
	// Repaired names the objects stored with invalid UTF-8 (or NUL
	// characters) replaced by U+FFFD (or removed), one line each.
	Repaired []string
	Logs     int // step logs stored
}

// ImportOptions tune an import. The zero value writes with one writer.
type ImportOptions struct {
	// Writers is how many store transactions run at once (0: 1). Runs are
	// shared out by Result, so a Result is only ever written by one of them.
	Writers int
	// BatchSize is how many runs one transaction writes at most (0: 200).
	BatchSize int
	// BatchBytes bounds the JSON bytes of the runs one transaction writes
	// (0: 1 MiB): a batch is written when it holds BatchSize runs or this
	// many bytes, whichever comes first. Memory follows bytes, not runs:
	// each writer holds its batch about four times over while writing it
	// (the objects, the rows, the statement text, the driver's buffer),
	// and runs vary from 2 KB to hundreds.
	BatchBytes int
	// LogsDir holds step logs to store beside the runs, as
	// <namespace>/<taskrun or pod name>/<step>.log ("": none).
	LogsDir  string
	LogLimit int64 // most bytes kept of one step's log (0: no limit)
	// Progress, when set, is updated as the import goes.
	Progress *ImportProgress
	// OnSkip, when set, receives each skipped line as it happens instead
	// of ImportReport.Skipped (a long import need not hold them all).
	OnSkip func(string)
}

// ImportProgress is how far an import is, for a progress display.
type ImportProgress struct {
	BytesRead  atomic.Int64
	BytesTotal atomic.Int64 // 0: unknown (standard input)
	Objects    atomic.Int64 // objects read
	Written    atomic.Int64 // runs written
}

// ImportSource is one input of an import.
type ImportSource struct {
	Name string
	Size int64 // -1: unknown
	Open func() (io.ReadCloser, error)
}

// importExtensions are the files a directory import reads.
var importExtensions = []string{".json", ".yaml", ".yml", ".ndjson"}

// ImportPaths turns a command-line argument into sources: "-" is standard
// input, a directory is every .json, .yaml, .yml and .ndjson file inside it
// (recursively, in lexical order of their paths), else the file itself.
func ImportPaths(path string) ([]ImportSource, error) {
	if path == "-" {
		return []ImportSource{{Name: "standard input", Size: -1,
			Open: func() (io.ReadCloser, error) { return io.NopCloser(os.Stdin), nil }}}, nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []ImportSource{fileSource(path, info.Size())}, nil
	}
	var sources []ImportSource
	err = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !hasImportExtension(p) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		sources = append(sources, fileSource(p, info.Size()))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("directory %s holds no %s file", path, strings.Join(importExtensions, ", "))
	}
	return sources, nil
}

func hasImportExtension(p string) bool {
	ext := strings.ToLower(filepath.Ext(p))
	for _, e := range importExtensions {
		if ext == e {
			return true
		}
	}
	return false
}

func fileSource(path string, size int64) ImportSource {
	return ImportSource{Name: path, Size: size, Open: func() (io.ReadCloser, error) { return os.Open(path) }}
}

// Import stores the TaskRuns and PipelineRuns of one input with one writer;
// see ImportSources.
func Import(ctx context.Context, s *store.Store, in io.Reader) (*ImportReport, error) {
	src := ImportSource{Name: "input", Size: -1, Open: func() (io.ReadCloser, error) { return io.NopCloser(in), nil }}
	return ImportSources(ctx, s, []ImportSource{src}, ImportOptions{})
}

// ImportSources stores the TaskRuns and PipelineRuns found in kubectl output
// (see readObjects for the forms read), grouped as the watcher groups them,
// then the step logs of opts.LogsDir. The input is read as a stream: memory
// holds the runs being written, not the input. Runs are keyed by uid, so
// importing again stores nothing twice. Objects that are not runs, or are
// broken, are skipped and reported.
//
// A TaskRun that names its PipelineRun by name only (no uid) joins its
// Result when the PipelineRun is in the input, before or after it: those
// whose PipelineRun has not been read yet wait in a temporary file until
// the end of the input.
func ImportSources(ctx context.Context, s *store.Store, sources []ImportSource, opts ImportOptions) (*ImportReport, error) {
	if opts.Writers <= 0 {
		opts.Writers = 1
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 200
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = 1 << 20
	}
	if opts.Progress == nil {
		opts.Progress = new(ImportProgress)
	}
	imp := &importer{s: s, opts: opts, rep: &ImportReport{}, prUIDs: map[string]string{}, results: map[uint64]struct{}{}}
	var total int64
	for _, src := range sources {
		total += max(src.Size, 0)
	}
	opts.Progress.BytesTotal.Store(total)
	if opts.LogsDir != "" {
		logs, err := scanLogs(opts.LogsDir, imp.skip)
		if err != nil {
			return nil, err
		}
		imp.logs = logs
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	imp.startWriters(ctx, cancel)
	readErr := imp.readSources(ctx, sources)
	if readErr == nil {
		readErr = imp.replayDeferred(ctx)
	}
	imp.stopWriters()
	if imp.spill != nil {
		imp.spill.Close()
		os.Remove(imp.spill.Name())
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return imp.rep, err // a writer failed: its error, not the cancellation it caused
	}
	if readErr != nil {
		return imp.rep, readErr
	}
	if err := imp.storeLogs(ctx); err != nil {
		return imp.rep, err
	}
	return imp.rep, nil
}

// importer is the state of one import.
type importer struct {
	s    *store.Store
	opts ImportOptions

	mu  sync.Mutex // guards rep and results
	rep *ImportReport
	// results holds a 64-bit hash of each Result name written, to count
	// them: a tenth of the memory of the names on a large import, and a
	// collision only makes the count one short.
	results map[uint64]struct{}

	prUIDs  map[string]string // "namespace/name" of every PipelineRun read -> uid
	spill   *os.File          // TaskRuns waiting for their PipelineRun's uid
	spillW  *bufio.Writer
	compact bytes.Buffer // one spilled object, on one line

	queues []chan pendingRun // one per writer
	wg     sync.WaitGroup

	logs *logDirs // nil: no logs to import
}

// pendingRun is one run on its way to the store.
type pendingRun struct {
	w    store.RecordWrite
	name string // Kind namespace/name, for the report
	kind string
}

func (imp *importer) skip(line string) {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	imp.rep.SkippedCount++
	if imp.opts.OnSkip != nil {
		imp.opts.OnSkip(line)
		return
	}
	imp.rep.Skipped = append(imp.rep.Skipped, line)
}

// readSources reads every source in turn, grouping and handing out its runs.
func (imp *importer) readSources(ctx context.Context, sources []ImportSource) error {
	for _, src := range sources {
		rc, err := src.Open()
		if err != nil {
			return err
		}
		err = readObjects(&countingReader{rc, &imp.opts.Progress.BytesRead}, src.Name,
			func(obj []byte, where string) error { return imp.take(ctx, obj, where) }, imp.skip)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// take groups one object read from the input and hands it to its writer.
func (imp *importer) take(ctx context.Context, obj []byte, where string) error {
	imp.opts.Progress.Objects.Add(1)
	r, err := ParseRun(obj)
	if err != nil {
		imp.skip(fmt.Sprintf("%s (%s): %v", where, describe(obj), err))
		return nil
	}
	// One broken string must not cost the object, nor the import: store it
	// with U+FFFD in place of what cannot be stored, and say so.
	if fixed, repaired, err := store.RepairJSON(obj); err == nil && repaired {
		obj = fixed
		imp.mu.Lock()
		imp.rep.Repaired = append(imp.rep.Repaired, fmt.Sprintf("%s %s/%s: invalid UTF-8 or NUL characters replaced with U+FFFD or removed",
			r.Kind, r.Metadata.Namespace, r.Metadata.Name))
		imp.mu.Unlock()
	}
	ns := r.Metadata.Namespace
	if r.Kind == "PipelineRun" {
		imp.prUIDs[ns+"/"+r.Metadata.Name] = r.Metadata.UID
	} else if prName, prUID := r.PipelineRunName(); prName != "" && prUID == "" && imp.prUIDs[ns+"/"+prName] == "" {
		return imp.defer_(obj, where)
	}
	return imp.group(ctx, r, obj)
}

// group decides the Result of a run and queues its write.
func (imp *importer) group(ctx context.Context, r *Run, obj []byte) error {
	name := fmt.Sprintf("%s %s/%s", r.Kind, r.Metadata.Namespace, r.Metadata.Name)
	w, err := Group(r, obj, func(ns, name string) (string, bool) {
		uid, ok := imp.prUIDs[ns+"/"+name]
		return uid, ok
	})
	if err != nil {
		imp.skip(fmt.Sprintf("%s: %v", name, err))
		return nil
	}
	if imp.logs != nil && r.Kind == "TaskRun" {
		imp.logs.note(r, w.ResultName, obj)
	}
	// A Result is always written by the same writer: its runs never race
	// one another in two transactions, whatever the order of the input.
	h := fnv.New32a()
	h.Write([]byte(w.ResultName))
	queue := imp.queues[h.Sum32()%uint32(len(imp.queues))]
	select {
	case queue <- pendingRun{w, name, r.Kind}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// defer_ keeps a TaskRun whose PipelineRun has not been read yet in the
// spill file, as a line of "where" (JSON string), a tab and the object.
func (imp *importer) defer_(obj []byte, where string) error {
	if imp.spill == nil {
		f, err := os.CreateTemp("", "annals-import-*.ndjson")
		if err != nil {
			return fmt.Errorf("a temporary file for TaskRuns read before their PipelineRun: %w", err)
		}
		imp.spill, imp.spillW = f, bufio.NewWriterSize(f, 256<<10)
	}
	w, _ := json.Marshal(where)
	imp.spillW.Write(w)
	imp.spillW.WriteByte('\t')
	imp.compact.Reset()
	if err := json.Compact(&imp.compact, obj); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	imp.spillW.Write(imp.compact.Bytes())
	return imp.spillW.WriteByte('\n')
}

// replayDeferred groups the TaskRuns that waited for the whole input; one
// whose PipelineRun never came gets a Result of its own.
func (imp *importer) replayDeferred(ctx context.Context) error {
	if imp.spill == nil {
		return nil
	}
	if err := imp.spillW.Flush(); err != nil {
		return err
	}
	if _, err := imp.spill.Seek(0, io.SeekStart); err != nil {
		return err
	}
	br := bufio.NewReaderSize(imp.spill, 256<<10)
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		quoted, obj, _ := strings.Cut(string(line), "\t")
		var where string
		json.Unmarshal([]byte(quoted), &where)
		data := []byte(strings.TrimSuffix(obj, "\n"))
		r, err := ParseRun(data)
		if err != nil {
			return fmt.Errorf("%s: re-reading: %w", where, err) // it parsed when written
		}
		if err := imp.group(ctx, r, data); err != nil {
			return err
		}
	}
}

func (imp *importer) startWriters(ctx context.Context, fail context.CancelCauseFunc) {
	for range imp.opts.Writers {
		// A short queue: memory holds the writers' batches, not the input.
		queue := make(chan pendingRun, 16)
		imp.queues = append(imp.queues, queue)
		imp.wg.Add(1)
		go func() {
			defer imp.wg.Done()
			if err := imp.write(ctx, queue); err != nil {
				fail(err)
				for range queue { // let the reader finish handing out
				}
			}
		}()
	}
}

// stopWriters lets the writers write what they hold and waits for them.
func (imp *importer) stopWriters() {
	for _, q := range imp.queues {
		close(q)
	}
	imp.wg.Wait()
}

// write stores the runs of one queue in transactions of at most BatchSize
// runs and about BatchBytes bytes.
func (imp *importer) write(ctx context.Context, queue <-chan pendingRun) error {
	batch := make([]pendingRun, 0, imp.opts.BatchSize)
	size := 0
	for p := range queue {
		batch = append(batch, p)
		size += len(p.w.Data)
		if len(batch) == imp.opts.BatchSize || size >= imp.opts.BatchBytes {
			if err := imp.flush(ctx, batch); err != nil {
				return err
			}
			clear(batch) // let the written objects go before the next ones come
			batch, size = batch[:0], 0
		}
	}
	return imp.flush(ctx, batch)
}

func (imp *importer) flush(ctx context.Context, batch []pendingRun) error {
	if len(batch) == 0 {
		return nil
	}
	ws := make([]store.RecordWrite, len(batch))
	for i, p := range batch {
		ws[i] = p.w
	}
	counts, err := imp.s.UpsertRecordsCounted(ctx, ws)
	if err == nil {
		imp.stored(batch, counts)
		return nil
	}
	// Find the run the store refuses, write by write, so that the rest goes
	// on; any other failure ends the import.
	for _, p := range batch {
		counts, err := imp.s.UpsertRecordsCounted(ctx, []store.RecordWrite{p.w})
		switch {
		case err == nil:
			imp.stored([]pendingRun{p}, counts)
		case errors.Is(err, store.ErrInvalidArgument):
			imp.skip(fmt.Sprintf("%s: %v", p.name, err))
		default:
			return err
		}
	}
	return nil
}

func (imp *importer) stored(batch []pendingRun, counts store.UpsertCounts) {
	imp.opts.Progress.Written.Add(int64(len(batch)))
	imp.mu.Lock()
	defer imp.mu.Unlock()
	imp.rep.Created += counts.Created
	imp.rep.Updated += counts.Updated
	imp.rep.Unchanged += counts.Unchanged
	for _, p := range batch {
		h := fnv.New64a()
		h.Write([]byte(p.w.ResultName))
		k := h.Sum64()
		if _, seen := imp.results[k]; !seen {
			imp.results[k] = struct{}{}
			imp.rep.Results++
		}
		if p.kind == "PipelineRun" {
			imp.rep.PipelineRuns++
		} else {
			imp.rep.TaskRuns++
		}
	}
}

// countingReader adds the bytes read to a progress counter.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
