package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// chunkSource gives the bytes of one log as numbered chunks of
// logChunkSize bytes, from database rows, a file or an object: every read
// (whole, range, tail, HTTP ranges) goes through it, whatever the backend.
type chunkSource interface {
	chunk(ctx context.Context, seq int) ([]byte, error) // ErrNotFound past the end
	last(ctx context.Context) (int, error)              // highest seq; -1 when empty
	size(ctx context.Context) (int64, error)            // bytes stored now
	close() error
}

// logBytes finds where a log's bytes are kept: its object when log_objects
// lists one, else its file when the store has
// a log directory and the file exists, else its database rows. Files live
// under the Log's namespace; a file written before uids became per
// namespace keeps its uid-only name, and only the Log listed as its owner
// in legacy_log_files reads it.
func (s *Store) logBytes(ctx context.Context, log *Record) (chunkSource, error) {
	if log == nil {
		return nil, fmt.Errorf("%w: no log given", ErrInvalidArgument)
	}
	if log.DataType != TypeLog {
		return nil, fmt.Errorf("%w: %q is a %s, not a Log record", ErrInvalidArgument, log.Name, log.DataType)
	}
	key := log.Key()
	if err := checkNamespace(key.Namespace); err != nil {
		return nil, err
	}
	if err := checkUID(key.UID); err != nil {
		return nil, err
	}
	return s.logSource(ctx, key, storedInFile(log))
}

// logSource is logBytes for a Log known by its key; inFile says that its
// data names a file (which matters for a legacy file only).
func (s *Store) logSource(ctx context.Context, key Key, inFile bool) (chunkSource, error) {
	obj, err := s.loadLogObject(ctx, s.db, key)
	if err != nil {
		return nil, err
	}
	if obj != nil {
		return newObjectChunks(s.logStore, obj)
	}
	if s.logDir != "" {
		f, err := os.Open(s.logPath(key))
		if err == nil {
			return fileChunks{f}, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("opening log file: %w", err)
		}
		if inFile {
			legacy, err := s.db.NewSelect().Table("legacy_log_files").Where("namespace = ?", key.Namespace).Where("uid = ?", key.UID).Exists(ctx)
			if err != nil {
				return nil, dbError(err)
			}
			if legacy {
				f, err := os.Open(s.legacyLogPath(key.UID))
				if err == nil {
					return fileChunks{f}, nil
				}
				if !errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("opening log file: %w", err)
				}
			}
		}
	}
	return dbChunks{s, key}, nil
}

func storedInFile(log *Record) bool {
	var doc LogData
	return json.Unmarshal(log.Data, &doc) == nil && doc.Status.Storage == "file"
}

// logPath spreads files over a directory per namespace and, within it, 256
// directories by the uid's first byte.
func (s *Store) logPath(log Key) string {
	return filepath.Join(s.logDir, log.Namespace, log.UID[:2], log.UID+".log")
}

// removeLogFile removes a Log's file once its bytes are elsewhere; one it
// cannot remove is only wasted space (SweepLogFiles skips owned files).
func (s *Store) removeLogFile(log Key) {
	if err := os.Remove(s.logPath(log)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		slog.Warn("removing a log file whose bytes moved to the object store", "path", s.logPath(log), "error", err)
	}
}

// legacyLogPath is where logs were kept before uids were per namespace.
func (s *Store) legacyLogPath(uid string) string {
	return filepath.Join(s.logDir, uid[:2], uid+".log")
}

type dbChunks struct {
	s   *Store
	log Key
}

func (d dbChunks) chunk(ctx context.Context, seq int) ([]byte, error) {
	var data []byte
	err := d.s.db.NewSelect().Table("log_chunks").Column("data").
		Where("namespace = ?", d.log.Namespace).Where("record_uid = ?", d.log.UID).Where("seq = ?", seq).Scan(ctx, &data)
	return data, dbError(err)
}

func (d dbChunks) size(ctx context.Context) (int64, error) {
	var n int64
	err := d.s.db.NewSelect().Table("log_chunks").ColumnExpr("COALESCE(SUM(length(data)), 0)").
		Where("namespace = ?", d.log.Namespace).Where("record_uid = ?", d.log.UID).Scan(ctx, &n)
	return n, dbError(err)
}

func (d dbChunks) last(ctx context.Context) (int, error) {
	var last *int
	err := d.s.db.NewSelect().Table("log_chunks").ColumnExpr("max(seq)").
		Where("namespace = ?", d.log.Namespace).Where("record_uid = ?", d.log.UID).Scan(ctx, &last)
	if err != nil || last == nil {
		return -1, dbError(err)
	}
	return *last, nil
}

func (dbChunks) close() error { return nil }

type fileChunks struct{ f *os.File }

func (c fileChunks) chunk(_ context.Context, seq int) ([]byte, error) {
	buf := make([]byte, logChunkSize)
	n, err := c.f.ReadAt(buf, int64(seq)*logChunkSize)
	if n == 0 && (err == nil || errors.Is(err, io.EOF)) {
		return nil, fmt.Errorf("%w: log chunk %d", ErrNotFound, seq)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading log file: %w", err)
	}
	return buf[:n], nil
}

func (c fileChunks) last(context.Context) (int, error) {
	st, err := c.f.Stat()
	if err != nil {
		return -1, err
	}
	return int((st.Size()+logChunkSize-1)/logChunkSize) - 1, nil
}

func (c fileChunks) size(context.Context) (int64, error) {
	st, err := c.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (c fileChunks) close() error { return c.f.Close() }

// pendingFile is a log written to a temporary name, placed under its final
// name by place and removed by discard unless placed.
type pendingFile struct{ tmp, final string }

func (s *Store) stageLogFile(log Key, chunks [][]byte) (*pendingFile, error) {
	final := s.logPath(log)
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(final), log.UID+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	p := &pendingFile{tmp: f.Name(), final: final}
	for _, c := range chunks {
		if _, err = f.Write(c); err != nil {
			break
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		p.discard()
		return nil, fmt.Errorf("writing log file: %w", err)
	}
	return p, nil
}

func (p *pendingFile) place() error {
	if p == nil {
		return nil
	}
	if err := os.Rename(p.tmp, p.final); err != nil {
		return fmt.Errorf("placing log file: %w", err)
	}
	p.tmp = ""
	return nil
}

func (p *pendingFile) discard() {
	if p != nil && p.tmp != "" {
		os.Remove(p.tmp)
	}
}

// SweepLogFiles removes the files of the log directory that no Log Record
// owns any more (deleted by retention or by hand, or left by a write that
// failed), if older than minAge, so that a write in progress is never
// taken for garbage. It returns how many files and bytes it removed.
func (s *Store) SweepLogFiles(ctx context.Context, minAge time.Duration) (files int, size int64, err error) {
	if s.logDir == "" {
		return 0, 0, nil
	}
	type candidate struct {
		path string
		size int64
	}
	// Files by their owner's key; a legacy file (uid-only name) has an
	// empty namespace and is owned while legacy_log_files lists its uid.
	batch := map[Key]candidate{}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		byNamespace := map[string][]string{}
		for k := range batch {
			byNamespace[k.Namespace] = append(byNamespace[k.Namespace], k.UID)
		}
		owned := map[Key]bool{}
		for ns, uids := range byNamespace {
			if ns == "" {
				var found []string
				if err := s.db.NewSelect().Table("legacy_log_files").Column("uid").Where("uid IN (?)", bun.In(uids)).Scan(ctx, &found); err != nil {
					return dbError(err)
				}
				for _, uid := range found {
					owned[Key{"", uid}] = true
				}
				continue
			}
			recs, err := s.GetRecordsByUID(ctx, ns, uids)
			if err != nil {
				return err
			}
			for uid := range recs {
				owned[Key{ns, uid}] = true
			}
		}
		for k, c := range batch {
			if !owned[k] {
				if err := os.Remove(c.path); err == nil {
					files, size = files+1, size+c.size
				}
			}
		}
		clear(batch)
		return nil
	}
	cutoff := time.Now().Add(-minAge)
	err = filepath.WalkDir(s.logDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil || info.ModTime().After(cutoff) {
			return nil
		}
		name := d.Name()
		rel, _ := filepath.Rel(s.logDir, path)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		uid := strings.TrimSuffix(name, ".log")
		switch {
		case strings.HasSuffix(name, ".tmp"):
			if os.Remove(path) == nil {
				files, size = files+1, size+info.Size()
			}
		case !strings.HasSuffix(name, ".log") || checkUID(uid) != nil:
			// not a log file: leave it
		case len(parts) == 3 && checkNamespace(parts[0]) == nil:
			batch[Key{parts[0], uid}] = candidate{path, info.Size()}
		case len(parts) == 2:
			batch[Key{"", uid}] = candidate{path, info.Size()}
		}
		if len(batch) == maxBatch {
			if err := flush(); err != nil {
				return err
			}
		}
		return ctx.Err()
	})
	if err == nil {
		err = flush()
	}
	return files, size, err
}
