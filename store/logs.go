package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/uptrace/bun"
)

// LogData is the data of a Log Record (results.tekton.dev/v1alpha3.Log),
// shaped like Tekton Results' Log: which run and step it belongs to, and
// what was stored. The bytes themselves are kept in chunks beside it.
type LogData struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Resource struct {
			Kind      string `json:"kind"`
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
			UID       string `json:"uid"`
		} `json:"resource"`
		Step      string `json:"step"`
		Container string `json:"container"`
	} `json:"spec"`
	Status struct {
		Size      int64  `json:"size"`      // bytes stored, marker included
		Truncated bool   `json:"truncated"` // the log was longer than the limit
		Available bool   `json:"available"` // false: the pod was gone, nothing could be read
		Message   string `json:"message,omitempty"`
		Storage   string `json:"storage,omitempty"` // where written: "object" (object store), "file" (log directory), "" (database rows)
	} `json:"status"`
}

// LogWrite describes one step's log of a TaskRun.
type LogWrite struct {
	UID       string  // the Log Record's uid
	TaskRun   *Record // the TaskRun the log belongs to; the Log joins its Result
	Step      string
	Container string
}

// logChunkSize is how many bytes one stored chunk holds.
const logChunkSize = 256 << 10

// WriteLog stores a step's log read from r as a Log Record with its bytes,
// replacing any earlier version, in one transaction. At most limit bytes are
// kept (0: no limit); a longer log ends with a marker saying it was cut.
// A nil r records that the log was unavailable.
func (s *Store) WriteLog(ctx context.Context, w LogWrite, r io.Reader, limit int64) (*Record, error) {
	if w.TaskRun == nil {
		return nil, fmt.Errorf("%w: a log needs its TaskRun", ErrInvalidArgument)
	}
	if ns, _, err := ParseResultName(w.TaskRun.ResultName); err != nil || ns != w.TaskRun.Namespace {
		// The Log joins the TaskRun's Result and names the TaskRun as its
		// owner within that namespace: both must be the TaskRun's own.
		return nil, fmt.Errorf("%w: TaskRun %q of namespace %q is not under a Result of its namespace (%q)",
			ErrInvalidArgument, w.TaskRun.RunName, w.TaskRun.Namespace, w.TaskRun.ResultName)
	}
	var doc LogData
	doc.APIVersion, doc.Kind = "results.tekton.dev/v1alpha3", "Log"
	doc.Spec.Resource.Kind, doc.Spec.Resource.Namespace = "TaskRun", w.TaskRun.Namespace
	doc.Spec.Resource.Name, doc.Spec.Resource.UID = w.TaskRun.RunName, w.TaskRun.UID
	doc.Spec.Step, doc.Spec.Container = w.Step, w.Container

	var chunks [][]byte
	var object *pendingObject
	if r == nil {
		doc.Status.Message = "logs unavailable: the pod was gone before they could be read"
	} else {
		doc.Status.Available = true
		switch {
		case s.logStore != nil:
			doc.Status.Storage = "object"
		case s.logDir != "":
			doc.Status.Storage = "file"
		}
	}
	if w.UID == "" {
		w.UID = newUID()
	}
	if err := checkUID(w.UID); err != nil {
		return nil, err
	}
	key := Key{w.TaskRun.Namespace, w.UID} // the Log's, as newRecord makes it
	if r != nil {
		stream := newChunkStream(r, limit)
		if doc.Status.Storage == "object" {
			// Streamed: only one chunk and the upload buffers are in memory.
			var err error
			if object, err = s.writeLogObject(ctx, key, stream); err != nil {
				return nil, fmt.Errorf("storing the log: %w", err)
			}
			defer object.discard(ctx)
		} else {
			for {
				c, err := stream.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					return nil, err
				}
				chunks = append(chunks, c)
			}
		}
		doc.Status.Size, doc.Status.Truncated = stream.size, stream.truncated
	}
	data, _ := json.Marshal(doc)
	rec, err := newRecord(RecordWrite{ResultName: w.TaskRun.ResultName, UID: w.UID, DataType: TypeLog, Data: data})
	if err != nil {
		return nil, err
	}
	if rec.Key() != key {
		return nil, fmt.Errorf("%w: log %s: key %v, want %v", ErrInvalidArgument, w.UID, rec.Key(), key)
	}
	var file *pendingFile
	if doc.Status.Storage == "file" {
		if file, err = s.stageLogFile(rec.Key(), chunks); err != nil {
			return nil, err
		}
		chunks = nil
		defer file.discard()
	}
	var announced func()
	err = s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewInsert().Model(rec).On("CONFLICT (namespace, uid) DO UPDATE")
		for _, col := range []string{"data", "run_name", "owner_uid", "updated_at"} {
			q = q.Set("? = EXCLUDED.?", bun.Ident(col), bun.Ident(col))
		}
		if _, err := q.Set("version = record.version + 1").Exec(ctx); err != nil {
			return dbError(err)
		}
		// Earlier bytes go: chunks, an object (through the outbox), and a
		// file under the old, uid-only name.
		if err := dropLogBytes(ctx, tx, rec.Key()); err != nil {
			return err
		}
		if object != nil {
			if err := object.commit(ctx, tx); err != nil {
				return err
			}
		}
		for i, c := range chunks {
			row := map[string]any{"namespace": rec.Namespace, "record_uid": rec.UID, "seq": i, "data": c}
			if _, err := tx.NewInsert().Model(&row).TableExpr("log_chunks").Exec(ctx); err != nil {
				return dbError(err)
			}
		}
		if announced, err = s.announce(ctx, tx, []*Record{rec}); err != nil {
			return err
		}
		// The file is in place before the Record commits, so a stored Log
		// always has its bytes; a failed commit leaves a file the sweep removes.
		return file.place()
	})
	if err != nil {
		return nil, err
	}
	announced()
	if object != nil && s.logDir != "" {
		// A file of an earlier version is no longer read: it goes.
		s.removeLogFile(rec.Key())
	}
	return s.GetRecord(ctx, rec.Name)
}

// LogsForTaskRuns returns the Log Records of many TaskRuns, by TaskRun
// key, in one statement, ordered by step name. A Log belongs to a TaskRun
// of its own namespace only.
func (s *Store) LogsForTaskRuns(ctx context.Context, taskRuns []Key) (map[Key][]*Record, error) {
	out := map[Key][]*Record{}
	if len(taskRuns) == 0 {
		return out, nil
	}
	cond, args := keysSQL("r.namespace", "r.owner_uid", taskRuns)
	var rows []*Record
	// owner_uid <> '' lets the planner use the partial records_owner index.
	if err := s.queryRows(ctx, &rows, "SELECT "+recordsEntity.columns+" FROM records AS r WHERE "+cond+
		" AND r.owner_uid <> '' AND r.data_type = ? ORDER BY r.namespace, r.owner_uid, r.created_at, r.uid", append(args, TypeLog)...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		k := Key{r.Namespace, r.OwnerUID}
		out[k] = append(out[k], r)
	}
	return out, nil
}

// OpenLog streams the bytes of a Log Record chunk by chunk, so that a large
// log is never held whole in memory.
func (s *Store) OpenLog(ctx context.Context, log *Record) (io.ReadCloser, error) {
	src, err := s.logBytes(ctx, log)
	if err != nil {
		return nil, err
	}
	return &logReader{ctx: ctx, src: src}, nil
}

// OpenLogSized is OpenLog that also tells how many bytes are stored as it
// opens: what a download announces, whatever size the Log's data claims, so
// that a log cut or deleted while it is read is told apart from a whole one.
func (s *Store) OpenLogSized(ctx context.Context, log *Record) (io.ReadCloser, int64, error) {
	src, size, err := s.openLogSized(ctx, log)
	if err != nil {
		return nil, 0, err
	}
	return &logReader{ctx: ctx, src: src}, size, nil
}

type logReader struct {
	ctx  context.Context
	src  chunkSource
	seq  int
	cur  []byte
	done bool
}

func (l *logReader) Read(p []byte) (int, error) {
	for len(l.cur) == 0 {
		if l.done {
			return 0, io.EOF
		}
		chunk, err := l.src.chunk(l.ctx, l.seq)
		if errors.Is(err, ErrNotFound) {
			l.done = true
			continue
		}
		if err != nil {
			return 0, err
		}
		l.cur, l.seq = chunk, l.seq+1
	}
	n := copy(p, l.cur)
	l.cur = l.cur[n:]
	return n, nil
}

func (l *logReader) Close() error { return l.src.close() }

// ReadLogRange returns length bytes of a log from offset (fewer at its end).
func (s *Store) ReadLogRange(ctx context.Context, log *Record, offset, length int64) ([]byte, error) {
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("%w: offset and length cannot be negative", ErrInvalidArgument)
	}
	src, err := s.logBytes(ctx, log)
	if err != nil {
		return nil, err
	}
	defer src.close()
	var out []byte
	first := offset / logChunkSize
	for seq := first; length > 0 && seq <= (offset+length-1)/logChunkSize; seq++ {
		chunk, err := src.chunk(ctx, int(seq))
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, chunk...)
	}
	skip := offset - first*logChunkSize
	if skip >= int64(len(out)) {
		return []byte{}, nil
	}
	out = out[skip:]
	return out[:min(int64(len(out)), length)], nil
}

// TailLog returns the last lines of a log, reading chunks from its end.
func (s *Store) TailLog(ctx context.Context, log *Record, lines int) ([]byte, error) {
	if lines <= 0 {
		return []byte{}, nil
	}
	src, err := s.logBytes(ctx, log)
	if err != nil {
		return nil, err
	}
	defer src.close()
	last, err := src.last(ctx)
	if err != nil || last < 0 {
		return []byte{}, err
	}
	var tail []byte
	for seq := last; seq >= 0; seq-- {
		chunk, err := src.chunk(ctx, seq)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		tail = append(chunk, tail...)
		// One newline more than lines: the log may end with a newline.
		if bytes.Count(tail, []byte{'\n'}) > lines {
			break
		}
	}
	trimmed := bytes.TrimSuffix(tail, []byte{'\n'})
	for i, seen := len(trimmed)-1, 0; i >= 0; i-- {
		if trimmed[i] == '\n' {
			if seen++; seen == lines {
				return tail[i+1:], nil
			}
		}
	}
	return tail, nil
}

// LogSize is how many bytes are stored for a Log Record, as stored now.
func (s *Store) LogSize(ctx context.Context, log Key) (int64, error) {
	recs, err := s.GetRecordsByUID(ctx, log.Namespace, []string{log.UID})
	if err != nil {
		return 0, err
	}
	rec := recs[log.UID]
	if rec == nil {
		return 0, fmt.Errorf("%w: log %s in namespace %s", ErrNotFound, log.UID, log.Namespace)
	}
	var doc LogData
	if err := json.Unmarshal(rec.Data, &doc); err != nil {
		return 0, fmt.Errorf("log %s in namespace %s: %w", log.UID, log.Namespace, err)
	}
	return doc.Status.Size, nil
}

// OpenLogSeeker opens a log for reads at any offset (HTTP ranges): a Seek
// costs nothing, and a Read fetches only the chunk it falls in. It also
// tells how many bytes are stored as it opens.
func (s *Store) OpenLogSeeker(ctx context.Context, log *Record) (io.ReadSeekCloser, int64, error) {
	src, size, err := s.openLogSized(ctx, log)
	if err != nil {
		return nil, 0, err
	}
	return &logSeeker{ctx: ctx, src: src, size: size, seq: -1}, size, nil
}

type logSeeker struct {
	ctx  context.Context
	src  chunkSource
	size int64
	off  int64
	seq  int    // the chunk held in cur; -1: none
	cur  []byte // chunk seq
}

func (l *logSeeker) Read(p []byte) (int, error) {
	if l.off >= l.size {
		return 0, io.EOF
	}
	seq := int(l.off / logChunkSize)
	if seq != l.seq {
		chunk, err := l.src.chunk(l.ctx, seq)
		if errors.Is(err, ErrNotFound) {
			// Shorter than it was when opened: deleted or rewritten.
			return 0, io.ErrUnexpectedEOF
		}
		if err != nil {
			return 0, err
		}
		l.seq, l.cur = seq, chunk
	}
	in := l.off - int64(seq)*logChunkSize
	if in >= int64(len(l.cur)) {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, l.cur[in:])
	l.off += int64(n)
	return n, nil
}

func (l *logSeeker) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += l.off
	case io.SeekEnd:
		offset += l.size
	}
	if offset < 0 {
		return 0, fmt.Errorf("%w: seek to a negative offset", ErrInvalidArgument)
	}
	l.off = offset
	return offset, nil
}

func (l *logSeeker) Close() error { return l.src.close() }

// openLogSized opens a log's bytes and reads how many are stored, checking
// that the source is readable (an object store that is down fails here,
// before anything is sent).
func (s *Store) openLogSized(ctx context.Context, log *Record) (chunkSource, int64, error) {
	src, err := s.logBytes(ctx, log)
	if err != nil {
		return nil, 0, err
	}
	size, err := src.size(ctx)
	if c, ok := src.(interface{ check(context.Context) error }); ok && err == nil {
		err = c.check(ctx)
	}
	if err != nil {
		src.close()
		return nil, 0, fmt.Errorf("log %s: %w", log.Name, err)
	}
	return src, size, nil
}
