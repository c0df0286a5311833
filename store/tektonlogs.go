package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ReplaceLogBytes stores the bytes of an existing Log Record, read from r,
// in database chunks, replacing whatever was stored before, database rows
// or file: Tekton Results' UpdateLog, where a retried upload must not
// append. Only one chunk is held in memory at a time. The Record's data is
// left to the caller, which says in it how many bytes are stored.
func (s *Store) ReplaceLogBytes(ctx context.Context, log *Record, r io.Reader) (int64, error) {
	if log == nil {
		return 0, fmt.Errorf("%w: no log given", ErrInvalidArgument)
	}
	key := log.Key()
	size, err := s.ImportLogBytes(ctx, key.Namespace, key.UID, r)
	if err != nil {
		return size, err
	}
	if s.logDir != "" {
		// A file of the log would be read before the rows: it goes.
		if err := os.Remove(s.logPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return size, fmt.Errorf("removing the replaced log file of %s: %w", log.Name, err)
		}
	}
	return size, nil
}
