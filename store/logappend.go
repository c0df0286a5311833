package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
)

// A log followed live is written piece by piece: AppendLog adds the bytes
// that arrived, CompleteLog closes it. While open, the Log's data says
// status.live: true; a Log written whole (WriteLog) is never live, and a
// complete one takes no more bytes.

// LogProgress is what is stored of a log being appended to.
type LogProgress struct {
	// Size is the bytes of the source stored so far (the truncation marker
	// excluded): where the next append continues.
	Size int64
	// Live: the log is still open for appends.
	Live bool
	// Truncated: the limit was reached; the log ends with the marker and
	// is complete.
	Truncated bool
	// Exists: a Log Record is stored (false: nothing yet).
	Exists bool
	// Available is false for a Log stored as unavailable (its pod was gone).
	Available bool
}

// logStatusLive is the part of a Log's data only appended logs have.
type logStatusLive struct {
	Status struct {
		Live       bool  `json:"live"`
		SourceSize int64 `json:"sourceSize"` // bytes of the source stored: Size without the marker
	} `json:"status"`
}

// LogIsLive says whether a Log Record is still open for appends (its step
// is being followed), as opposed to complete.
func LogIsLive(rec *Record) bool {
	if rec == nil || rec.DataType != TypeLog {
		return false
	}
	var live logStatusLive
	json.Unmarshal(rec.Data, &live)
	return live.Status.Live
}

// LogProgressOf returns what is stored of a log, for resuming appends.
func (s *Store) LogProgressOf(ctx context.Context, log Key) (LogProgress, error) {
	recs, err := s.GetRecordsByUID(ctx, log.Namespace, []string{log.UID})
	if err != nil {
		return LogProgress{}, err
	}
	rec := recs[log.UID]
	if rec == nil {
		return LogProgress{}, nil
	}
	if rec.DataType != TypeLog {
		return LogProgress{}, fmt.Errorf("%w: %q is a %s, not a Log record", ErrInvalidArgument, rec.Name, rec.DataType)
	}
	return progressOf(rec.Data), nil
}

func progressOf(data []byte) LogProgress {
	var doc LogData
	var live logStatusLive
	json.Unmarshal(data, &doc)
	json.Unmarshal(data, &live)
	p := LogProgress{Size: doc.Status.Size, Live: live.Status.Live, Truncated: doc.Status.Truncated, Exists: true, Available: doc.Status.Available}
	if live.Status.Live {
		p.Size = live.Status.SourceSize // a complete log's Size includes its marker, if any
	}
	return p
}

// AppendLog appends p to a step's log at offset, the source bytes already
// stored (LogProgress.Size), creating the Log when offset is 0 and none is
// stored. Bytes go into the log's 256 KiB chunks: the last, partial chunk
// is filled first. At most limit bytes of the source are kept (0: no
// limit): the append that reaches it writes the truncation marker and
// completes the log. One transaction checks that the log is still live and
// that offset is where it ends, so that two writers (a restarted watcher
// and its predecessor) can never duplicate or skip bytes: a mismatch is
// ErrConflict. NUL bytes are dropped, as WriteLog does; offsets count
// source bytes without them.
func (s *Store) AppendLog(ctx context.Context, w LogWrite, offset int64, p []byte, limit int64) (LogProgress, error) {
	if offset < 0 || limit < 0 {
		return LogProgress{}, fmt.Errorf("%w: offset and limit cannot be negative", ErrInvalidArgument)
	}
	if bytes.IndexByte(p, 0) >= 0 { // ReplaceAll copies even when there is none
		p = bytes.ReplaceAll(p, []byte{0}, nil)
	}
	return s.changeLiveLog(ctx, w, offset, func(doc *LogData, live *logStatusLive) []byte {
		if limit > 0 && live.Status.SourceSize+int64(len(p)) > limit {
			p = p[:limit-live.Status.SourceSize]
			doc.Status.Truncated = true
		}
		live.Status.SourceSize += int64(len(p))
		if doc.Status.Truncated {
			live.Status.Live = false
			return append(p, truncationMarker(limit)...)
		}
		return p
	})
}

// CompleteLog marks a step's log complete: it takes no more bytes, and
// SealLog moves it to its final storage. truncated says the source was not
// read to its end (its TaskRun was deleted while it was followed): the log
// then ends with the truncation marker. A log never appended to is stored
// empty. Completing a complete log changes nothing.
func (s *Store) CompleteLog(ctx context.Context, w LogWrite, truncated bool) (*Record, error) {
	rec, err := s.changeLog(ctx, w, func(doc *LogData, live *logStatusLive, exists bool) ([]byte, error) {
		if exists && !live.Status.Live {
			return nil, errAlreadyComplete
		}
		live.Status.Live = false
		if truncated {
			doc.Status.Truncated = true
			return fmt.Appendf(nil, "\n[annals: log truncated at %d bytes: its TaskRun was deleted while it was read]\n", live.Status.SourceSize), nil
		}
		return nil, nil
	})
	if errors.Is(err, errAlreadyComplete) {
		recs, err := s.GetRecordsByUID(ctx, w.TaskRun.Namespace, []string{w.UID})
		if err != nil {
			return nil, err
		}
		return recs[w.UID], nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.SealLog(ctx, rec.Key()); err != nil {
		return rec, fmt.Errorf("sealing log %s: %w", rec.Name, err)
	}
	return rec, nil
}

var errAlreadyComplete = errors.New("log already complete")

func truncationMarker(limit int64) []byte {
	return fmt.Appendf(nil, "\n[annals: log truncated at %d bytes]\n", limit)
}

// changeLiveLog appends what add returns to a live log that ends at offset.
func (s *Store) changeLiveLog(ctx context.Context, w LogWrite, offset int64, add func(*LogData, *logStatusLive) []byte) (LogProgress, error) {
	rec, err := s.changeLog(ctx, w, func(doc *LogData, live *logStatusLive, exists bool) ([]byte, error) {
		if exists && !live.Status.Live {
			return nil, fmt.Errorf("%w: log of step %q of TaskRun %q is complete: it takes no more bytes", ErrConflict, w.Step, w.TaskRun.RunName)
		}
		if live.Status.SourceSize != offset {
			return nil, fmt.Errorf("%w: log of step %q of TaskRun %q has %d bytes stored, not %d: append from there",
				ErrConflict, w.Step, w.TaskRun.RunName, live.Status.SourceSize, offset)
		}
		live.Status.Live = true
		return add(doc, live), nil
	})
	if err != nil {
		return LogProgress{}, err
	}
	return progressOf(rec.Data), nil
}

// changeLog reads a step's Log (a new, empty and live one when none is
// stored), lets change update its data and say which bytes to append, and
// writes both in one transaction. The version check makes a concurrent
// change fail with ErrConflict instead of being lost.
func (s *Store) changeLog(ctx context.Context, w LogWrite, change func(doc *LogData, live *logStatusLive, exists bool) ([]byte, error)) (*Record, error) {
	if w.TaskRun == nil {
		return nil, fmt.Errorf("%w: a log needs its TaskRun", ErrInvalidArgument)
	}
	if ns, _, err := ParseResultName(w.TaskRun.ResultName); err != nil || ns != w.TaskRun.Namespace {
		return nil, fmt.Errorf("%w: TaskRun %q of namespace %q is not under a Result of its namespace (%q)",
			ErrInvalidArgument, w.TaskRun.RunName, w.TaskRun.Namespace, w.TaskRun.ResultName)
	}
	if err := checkUID(w.UID); err != nil {
		return nil, err
	}
	var (
		out       *Record
		announced func()
	)
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var stored Record
		err := tx.NewSelect().Model(&stored).Where("namespace = ?", w.TaskRun.Namespace).Where("uid = ?", w.UID).Scan(ctx)
		exists := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return dbError(err)
		}
		if exists && stored.DataType != TypeLog {
			return fmt.Errorf("%w: %q is a %s, not a Log record", ErrInvalidArgument, stored.Name, stored.DataType)
		}
		if exists && storedInFile(&stored) {
			return fmt.Errorf("%w: log %s is stored in a file, whole: it takes no appends", ErrConflict, stored.Name)
		}
		var doc LogData
		var live logStatusLive
		if exists {
			json.Unmarshal(stored.Data, &doc)
			json.Unmarshal(stored.Data, &live)
		} else {
			doc.APIVersion, doc.Kind = "results.tekton.dev/v1alpha3", "Log"
			doc.Spec.Resource.Kind, doc.Spec.Resource.Namespace = "TaskRun", w.TaskRun.Namespace
			doc.Spec.Resource.Name, doc.Spec.Resource.UID = w.TaskRun.RunName, w.TaskRun.UID
			doc.Spec.Step, doc.Spec.Container = w.Step, w.Container
			doc.Status.Available = true
			live.Status.Live = true
		}
		start := doc.Status.Size // a live log has no marker: it ends with its last source byte
		add, err := change(&doc, &live, exists)
		if err != nil {
			return err
		}
		doc.Status.Size = start + int64(len(add))
		data, err := encodeLiveLog(doc, live)
		if err != nil {
			return err
		}
		if !exists {
			rec, err := newRecord(RecordWrite{ResultName: w.TaskRun.ResultName, UID: w.UID, DataType: TypeLog, Data: data})
			if err != nil {
				return err
			}
			res, err := tx.NewInsert().Model(rec).On("CONFLICT (namespace, uid) DO NOTHING").Exec(ctx)
			if err != nil {
				return dbError(err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("%w: log of step %q of TaskRun %q was created meanwhile: read it again", ErrConflict, w.Step, w.TaskRun.RunName)
			}
			out = rec
		} else {
			res, err := tx.NewUpdate().Table("records").Set("data = ?", string(data)).Set("updated_at = ?", now()).Set("version = version + 1").
				Where("namespace = ?", stored.Namespace).Where("uid = ?", stored.UID).Where("version = ?", stored.Version).Exec(ctx)
			if err != nil {
				return dbError(err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("%w: log %s changed meanwhile: read it again", ErrConflict, stored.Name)
			}
			stored.Data, stored.Version = data, stored.Version+1
			out = &stored
		}
		// After the Record: the chunks reference it.
		if err := appendChunks(ctx, tx, s.rebind, out.Key(), start, add); err != nil {
			return err
		}
		announced, err = s.announce(ctx, tx, []*Record{out})
		return err
	})
	if err != nil {
		return nil, err
	}
	announced()
	return out, nil
}

// appendChunks writes add after the first size bytes of a log's chunks,
// filling the last partial chunk first, so that every chunk but the last
// keeps logChunkSize bytes (ReadLogRange relies on it).
func appendChunks(ctx context.Context, tx bun.Tx, rebind func(string) string, log Key, size int64, add []byte) error {
	if len(add) == 0 {
		return nil
	}
	seq := int(size / logChunkSize)
	var cur []byte
	if size%logChunkSize != 0 {
		err := tx.NewSelect().Table("log_chunks").Column("data").
			Where("namespace = ?", log.Namespace).Where("record_uid = ?", log.UID).Where("seq = ?", seq).Scan(ctx, &cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return dbError(err)
		}
		cur = cur[:min(int64(len(cur)), size%logChunkSize)]
	}
	for len(add) > 0 {
		n := min(len(add), logChunkSize-len(cur))
		chunk := append(cur, add[:n]...)
		add, cur = add[n:], nil
		// A bound parameter, not bun's formatting, which would spell the
		// chunk out in the statement's text at twice its size: followers
		// append often, and memory is what bounds how many can at once.
		if _, err := tx.Tx.ExecContext(ctx, rebind(`INSERT INTO log_chunks (namespace, record_uid, seq, data) VALUES (?, ?, ?, ?)
ON CONFLICT (namespace, record_uid, seq) DO UPDATE SET data = EXCLUDED.data`), log.Namespace, log.UID, seq, chunk); err != nil {
			return dbError(err)
		}
		seq++
	}
	return nil
}

// encodeLiveLog writes a Log's data with the live fields beside LogData's.
func encodeLiveLog(doc LogData, live logStatusLive) ([]byte, error) {
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	var status map[string]any
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(top["status"], &status); err != nil {
		return nil, err
	}
	status["live"], status["sourceSize"] = live.Status.Live, live.Status.SourceSize
	if top["status"], err = json.Marshal(status); err != nil {
		return nil, err
	}
	return json.Marshal(top)
}
