package store

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/uptrace/bun"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob:// URLs
	_ "gocloud.dev/blob/fileblob"  // file:// URLs
	_ "gocloud.dev/blob/gcsblob"   // gs:// URLs
	_ "gocloud.dev/blob/s3blob"    // s3:// URLs
	"gocloud.dev/gcerrors"
)

// Compressions of log objects at rest (Options.LogCompression).
const (
	CompressionNone = "none"
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// DefaultLogWriteGrace is how long an object being written may stay
// unreferenced before the drain of log_object_deletes takes it for the
// leftover of a crashed write and deletes it.
const DefaultLogWriteGrace = 24 * time.Hour

// logStoreError is a failure of the object store: the store is down or
// refused the request. It counts as ErrUnavailable (HTTP 503, UNAVAILABLE),
// and a write that fails with it can be retried as a whole.
type logStoreError struct {
	op  string
	err error
}

func (e *logStoreError) Error() string {
	if credentialsRefused(e.err) {
		return fmt.Sprintf("log object store refused the credentials (%s): %v; check the cloud credentials of this process (see README, Logs)", e.op, e.err)
	}
	return fmt.Sprintf("log object store unavailable (%s): %v", e.op, e.err)
}
func (e *logStoreError) Unwrap() error        { return e.err }
func (e *logStoreError) Is(target error) bool { return target == ErrUnavailable }

// credentialsRefused tells an error of refused credentials (or rights)
// from the store being down, for a clear message: S3 says so in its error
// codes, GCS and Azure in HTTP statuses.
func credentialsRefused(err error) bool {
	if gcerrors.Code(err) == gcerrors.PermissionDenied {
		return true
	}
	msg := err.Error()
	for _, code := range []string{"InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthorizationHeaderMalformed", "AuthenticationFailed", "ExpiredToken", "InvalidToken"} {
		if strings.Contains(msg, code) {
			return true
		}
	}
	return false
}

// objectError maps an error of the object store: a missing object is
// ErrNotFound, a cancelled request stays what it is, anything else is the
// store being unavailable.
func objectError(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case gcerrors.Code(err) == gcerrors.NotFound:
		return fmt.Errorf("%w: log object (%s): %v", ErrNotFound, op, err)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return &logStoreError{op, err}
}

// openLogStore opens the bucket of a --log-store URL and checks that it
// answers, so that a wrong URL or credentials fail at start, clearly.
func openLogStore(ctx context.Context, storeURL string) (*blob.Bucket, error) {
	b, err := blob.OpenBucket(ctx, storeURL)
	if err != nil {
		return nil, fmt.Errorf("%w: log store URL %q: %v (accepted: s3://BUCKET?region=..., gs://BUCKET, azblob://CONTAINER, file:///DIR)", ErrInvalidArgument, withoutQuery(storeURL), err)
	}
	ok, err := b.IsAccessible(ctx)
	if err != nil {
		b.Close()
		return nil, objectError("opening "+withoutQuery(storeURL), err)
	}
	if !ok {
		b.Close()
		return nil, fmt.Errorf("%w: log store %s: the bucket does not exist; create it first", ErrInvalidArgument, withoutQuery(storeURL))
	}
	return b, nil
}

// withoutQuery drops a URL's query, where some drivers take secrets.
func withoutQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?..."
	}
	return u
}

func checkCompression(c string) error {
	switch c {
	case "", CompressionNone, CompressionGzip, CompressionZstd:
		return nil
	}
	return fmt.Errorf("%w: log compression %q: use gzip, zstd or none", ErrInvalidArgument, c)
}

// logObjectRow is a row of log_objects: where a Log's bytes are.
type logObjectRow struct {
	bun.BaseModel `bun:"table:log_objects"`

	Namespace   string `bun:"namespace"`
	RecordUID   string `bun:"record_uid"`
	ObjectKey   string `bun:"object_key"`
	Size        int64  `bun:"size"`
	Compression string `bun:"compression"`
	ChunkEnds   string `bun:"chunk_ends"`
}

// loadLogObject returns the object row of a Log, or nil when its bytes
// are not in the object store.
func (s *Store) loadLogObject(ctx context.Context, db bun.IDB, log Key) (*logObjectRow, error) {
	var rows []logObjectRow
	err := db.NewSelect().Table("log_objects").Column("namespace", "record_uid", "object_key", "size", "compression", "chunk_ends").
		Where("namespace = ?", log.Namespace).Where("record_uid = ?", log.UID).Scan(ctx, &rows)
	if err != nil {
		return nil, dbError(err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return &rows[0], nil
}

// objectChunks reads a log object chunk by chunk with range requests.
type objectChunks struct {
	bucket *blob.Bucket
	row    *logObjectRow
	ends   []int64 // compressed objects: where each chunk ends in the object

	// A reader going forward chunk after chunk gets one streamed range
	// request to the object's end, instead of a request per chunk (a round
	// trip per 256 KiB held reads of S3 to about 13 MB/s); any other
	// access, such as a tail reading backwards, asks for the chunk alone.
	stream   io.ReadCloser
	streamAt int64 // where stream reads next
	prevEnd  int64 // where the chunk read last ended; -1: none
}

func newObjectChunks(bucket *blob.Bucket, row *logObjectRow) (*objectChunks, error) {
	if bucket == nil {
		return nil, &logStoreError{"reading " + row.ObjectKey, errors.New("this log is in the object store, but no --log-store is configured")}
	}
	c := &objectChunks{bucket: bucket, row: row, prevEnd: -1}
	if row.Compression != "" && row.Compression != CompressionNone {
		if err := json.Unmarshal([]byte(row.ChunkEnds), &c.ends); err != nil {
			return nil, fmt.Errorf("log object %s: chunk index: %w", row.ObjectKey, err)
		}
	}
	return c, nil
}

func (c *objectChunks) compressed() bool { return c.ends != nil }

func (c *objectChunks) last(context.Context) (int, error) {
	if c.compressed() {
		return len(c.ends) - 1, nil
	}
	return int((c.row.Size+logChunkSize-1)/logChunkSize) - 1, nil
}

func (c *objectChunks) size(context.Context) (int64, error) { return c.row.Size, nil }

func (c *objectChunks) chunk(ctx context.Context, seq int) ([]byte, error) {
	last, _ := c.last(ctx)
	if seq < 0 || seq > last {
		return nil, fmt.Errorf("%w: log chunk %d", ErrNotFound, seq)
	}
	var start, end int64
	if c.compressed() {
		if seq > 0 {
			start = c.ends[seq-1]
		}
		end = c.ends[seq]
	} else {
		start, end = int64(seq)*logChunkSize, min(c.row.Size, int64(seq+1)*logChunkSize)
	}
	raw, err := c.read(ctx, start, end)
	if err != nil {
		return nil, objectError("reading "+c.row.ObjectKey, err)
	}
	if !c.compressed() {
		return raw, nil
	}
	out, err := decompressChunk(c.row.Compression, raw)
	if err != nil {
		return nil, fmt.Errorf("log object %s chunk %d: %w", c.row.ObjectKey, seq, err)
	}
	return out, nil
}

// read returns the object's bytes [start, end): from the open stream when
// it stands at start, else from a stream opened to the object's end when
// the previous read ended at start, else from a range request of its own.
func (c *objectChunks) read(ctx context.Context, start, end int64) ([]byte, error) {
	sequential := c.prevEnd == start
	c.prevEnd = end
	if c.stream != nil && c.streamAt != start {
		c.closeStream()
	}
	if c.stream == nil && sequential {
		r, err := c.bucket.NewRangeReader(ctx, c.row.ObjectKey, start, -1, nil)
		if err != nil {
			return nil, err
		}
		c.stream, c.streamAt = r, start
	}
	if c.stream != nil {
		raw := make([]byte, end-start)
		if _, err := io.ReadFull(c.stream, raw); err == nil {
			c.streamAt = end
			return raw, nil
		}
		// The stream broke (or belonged to a caller's context that ended):
		// this chunk is asked for alone, and the next opens a stream again.
		c.closeStream()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	r, err := c.bucket.NewRangeReader(ctx, c.row.ObjectKey, start, end-start, nil)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func (c *objectChunks) closeStream() {
	if c.stream != nil {
		c.stream.Close()
		c.stream = nil
	}
}

func (c *objectChunks) close() error {
	c.closeStream()
	return nil
}

// check asks the store whether the object is there (a HEAD), so that a
// store that is down fails the open, before a download has begun.
func (c *objectChunks) check(ctx context.Context) error {
	_, err := c.bucket.Attributes(ctx, c.row.ObjectKey)
	return objectError("reading "+c.row.ObjectKey, err)
}

// zstd coders are safe for concurrent use of EncodeAll/DecodeAll.
var (
	zstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(4*logChunkSize))
)

// compressChunk compresses one chunk on its own (a gzip member, a zstd
// frame), so that any chunk can be read without those before it; the
// concatenation is still one valid .gz or .zst stream.
func compressChunk(compression string, chunk []byte) ([]byte, error) {
	switch compression {
	case CompressionGzip:
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
		if _, err := zw.Write(chunk); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case CompressionZstd:
		return zstdEncoder.EncodeAll(chunk, make([]byte, 0, len(chunk)/4)), nil
	}
	return chunk, nil
}

func decompressChunk(compression string, data []byte) ([]byte, error) {
	switch compression {
	case CompressionGzip:
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(io.LimitReader(zr, 2*logChunkSize))
	case CompressionZstd:
		return zstdDecoder.DecodeAll(data, make([]byte, 0, logChunkSize))
	}
	return data, nil
}

// pendingObject is a log object written whole but not yet referenced:
// commit points its Log at it in a transaction, discard deletes it.
type pendingObject struct {
	s         *Store
	row       logObjectRow
	ends      []int64
	truncated bool
	committed bool
}

// newObjectKey names a new object of a Log. Each write gets a new name, so
// that a rewrite never changes the bytes of an object a reader is reading.
func newObjectKey(log Key) string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return "logs/" + log.Namespace + "/" + log.UID + "/" + hex.EncodeToString(r[:])
}

// writeLogObject streams chunks to a new object of the Log, holding one
// chunk (and the bucket writer's upload buffers) in memory. The object is
// first listed in log_object_deletes, due after the write grace: if this
// process dies before commit, the drain removes it.
func (s *Store) writeLogObject(ctx context.Context, log Key, chunks *chunkStream) (*pendingObject, error) {
	p := &pendingObject{s: s, row: logObjectRow{Namespace: log.Namespace, RecordUID: log.UID, ObjectKey: newObjectKey(log), Compression: s.logCompression}}
	if p.row.Compression == CompressionNone {
		p.row.Compression = ""
	}
	due := time.Now().Add(s.logWriteGrace).Unix()
	if _, err := s.db.NewInsert().Model(&map[string]any{"object_key": p.row.ObjectKey, "due_at": due}).TableExpr("log_object_deletes").Exec(ctx); err != nil {
		return nil, dbError(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	contentType := "text/plain; charset=utf-8"
	if p.row.Compression != "" {
		contentType = "application/octet-stream"
	}
	w, err := s.logStore.NewWriter(wctx, p.row.ObjectKey, &blob.WriterOptions{ContentType: contentType})
	if err != nil {
		p.discard(ctx)
		return nil, objectError("writing "+p.row.ObjectKey, err)
	}
	var written int64
	for {
		chunk, err := chunks.next()
		if err == io.EOF {
			break
		}
		if err == nil {
			p.row.Size += int64(len(chunk))
			if chunk, err = compressChunk(p.row.Compression, chunk); err == nil {
				_, err = w.Write(chunk)
				err = objectError("writing "+p.row.ObjectKey, err)
				written += int64(len(chunk))
				p.ends = append(p.ends, written)
			}
		}
		if err != nil {
			cancel() // aborts the upload: nothing is stored under the key
			_ = w.Close()
			p.discard(ctx)
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		p.discard(ctx)
		return nil, objectError("writing "+p.row.ObjectKey, err)
	}
	p.truncated = chunks.truncated
	if p.row.Compression != "" {
		if p.ends == nil {
			p.ends = []int64{}
		}
		ends, _ := json.Marshal(p.ends)
		p.row.ChunkEnds = string(ends)
	}
	return p, nil
}

// commit points the Log at the object within tx: the Log's earlier bytes
// (rows, object) go, an earlier object through the outbox (the trigger on
// log_objects). It fails if the object was already taken for garbage.
func (p *pendingObject) commit(ctx context.Context, tx bun.IDB) error {
	res, err := tx.NewDelete().Table("log_object_deletes").Where("object_key = ?", p.row.ObjectKey).Exec(ctx)
	if err != nil {
		return dbError(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return &logStoreError{"committing " + p.row.ObjectKey, errors.New("the object outlived the write grace and was removed; write again")}
	}
	if err := dropLogBytes(ctx, tx, Key{p.row.Namespace, p.row.RecordUID}); err != nil {
		return err
	}
	if _, err := tx.NewInsert().Model(&p.row).Exec(ctx); err != nil {
		return dbError(err)
	}
	p.committed = true
	return nil
}

// dropLogBytes removes the stored bytes of a Log within tx, wherever they
// are in the database: chunks, object row (its object is then due for
// deletion by the trigger), legacy file listing.
func dropLogBytes(ctx context.Context, tx bun.IDB, log Key) error {
	for _, q := range []struct{ table, uidColumn string }{{"log_chunks", "record_uid"}, {"log_objects", "record_uid"}, {"legacy_log_files", "uid"}} {
		if _, err := tx.NewDelete().Table(q.table).Where("namespace = ?", log.Namespace).Where("? = ?", bun.Ident(q.uidColumn), log.UID).Exec(ctx); err != nil {
			return dbError(err)
		}
	}
	return nil
}

// discard deletes an object that was not committed, and its outbox row
// once it is gone; what fails here the drain retries after the grace.
func (p *pendingObject) discard(ctx context.Context) {
	if p == nil || p.committed {
		return
	}
	ctx = context.WithoutCancel(ctx)
	err := p.s.logStore.Delete(ctx, p.row.ObjectKey)
	if err == nil || gcerrors.Code(err) == gcerrors.NotFound {
		_, _ = p.s.db.NewDelete().Table("log_object_deletes").Where("object_key = ?", p.row.ObjectKey).Exec(ctx)
	}
}

// chunkStream cuts a log into chunks of logChunkSize bytes as it reads it,
// keeping at most limit bytes (0: all) and then a marker saying it was cut.
// NUL bytes are dropped: text columns cannot hold them and logs never need
// them.
type chunkStream struct {
	r         io.Reader
	limit     int64
	buf, cur  []byte
	size      int64
	truncated bool
	done      bool
	keepNUL   bool // bytes already stored (a seal, a migration) are moved as they are
}

func newChunkStream(r io.Reader, limit int64) *chunkStream {
	return &chunkStream{r: r, limit: limit, buf: make([]byte, logChunkSize)}
}

// next returns the next chunk (valid until the following call), io.EOF at
// the end.
func (c *chunkStream) next() ([]byte, error) {
	for !c.done && len(c.cur) < logChunkSize {
		n, err := io.ReadFull(c.r, c.buf)
		part := c.buf[:n]
		if !c.keepNUL {
			part = bytes.ReplaceAll(part, []byte{0}, nil)
		}
		if c.limit > 0 && c.size+int64(len(part)) > c.limit {
			part = part[:c.limit-c.size]
			c.truncated = true
		}
		c.cur = append(c.cur, part...)
		c.size += int64(len(part))
		if c.truncated || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			c.done = true
			if c.truncated {
				marker := fmt.Sprintf("\n[annals: log truncated at %d bytes]\n", c.limit)
				c.cur = append(c.cur, marker...)
				c.size += int64(len(marker))
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the log: %w", err)
		}
	}
	if len(c.cur) == 0 {
		return nil, io.EOF
	}
	n := min(len(c.cur), logChunkSize)
	out := bytes.Clone(c.cur[:n])
	c.cur = append(c.cur[:0], c.cur[n:]...)
	return out, nil
}

// DrainLogDeletes deletes the objects of log_object_deletes that are due,
// at most limit of them, and returns how many it deleted. A failed delete
// stays listed and is retried later, backing off with its attempts; an
// object already gone counts as deleted. Without an object store it does
// nothing.
func (s *Store) DrainLogDeletes(ctx context.Context, limit int) (int, error) {
	if s.logStore == nil {
		return 0, nil
	}
	var due []struct {
		ObjectKey string `bun:"object_key"`
		Attempts  int    `bun:"attempts"`
	}
	now := time.Now().Unix()
	if err := s.db.NewSelect().Table("log_object_deletes").Column("object_key", "attempts").
		Where("due_at <= ?", now).Order("due_at").Limit(int64(limit)).Scan(ctx, &due); err != nil {
		return 0, dbError(err)
	}
	deleted := 0
	var firstErr error
	for _, d := range due {
		err := s.logStore.Delete(ctx, d.ObjectKey)
		if err == nil || gcerrors.Code(err) == gcerrors.NotFound {
			if _, err := s.db.NewDelete().Table("log_object_deletes").Where("object_key = ?", d.ObjectKey).Exec(ctx); err != nil {
				return deleted, dbError(err)
			}
			deleted++
			continue
		}
		if firstErr == nil {
			firstErr = objectError("deleting "+d.ObjectKey, err)
		}
		// Back off: 1 minute doubling up to a day.
		backoff := time.Minute << min(d.Attempts, 10)
		if _, err := s.db.NewUpdate().Table("log_object_deletes").
			Set("attempts = attempts + 1").Set("due_at = ?", time.Now().Add(min(backoff, 24*time.Hour)).Unix()).
			Set("last_error = ?", truncateString(err.Error(), 500)).
			Where("object_key = ?", d.ObjectKey).Exec(ctx); err != nil {
			return deleted, dbError(err)
		}
	}
	return deleted, firstErr
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// PendingLogDeletes is how many objects are listed for deletion (due or
// not), for metrics and tests.
func (s *Store) PendingLogDeletes(ctx context.Context) (int, error) {
	n, err := s.db.NewSelect().Table("log_object_deletes").Count(ctx)
	return int(n), dbError(err)
}

// HasLogStore tells whether new log bytes go to an object store.
func (s *Store) HasLogStore() bool { return s.logStore != nil }

// SealLog moves the database chunks of a Log into an object, streaming,
// and points the Log at it, in one transaction that also checks the chunks
// did not change meanwhile (ErrConflict if they did). Without an object
// store, or when the Log has no chunks, it does nothing.
func (s *Store) SealLog(ctx context.Context, log Key) error {
	if s.logStore == nil {
		return nil
	}
	src := dbChunks{s, log}
	if last, err := src.last(ctx); err != nil || last < 0 {
		return err
	}
	if err := s.moveToObject(ctx, log, src); err != nil {
		return fmt.Errorf("sealing log %s/%s: %w", log.Namespace, log.UID, err)
	}
	return nil
}

// moveToObject copies a Log's bytes from src (its chunks or file) to a new
// object and points the Log at it. The commit checks that the bytes did
// not change meanwhile.
func (s *Store) moveToObject(ctx context.Context, log Key, src chunkSource) error {
	before, err := src.size(ctx)
	if err != nil {
		return err
	}
	_, fromRows := src.(dbChunks)
	chunks := newChunkStream(&logReader{ctx: ctx, src: src}, 0)
	chunks.keepNUL = true
	p, err := s.writeLogObject(ctx, log, chunks)
	if err != nil {
		return err
	}
	defer p.discard(ctx)
	if p.row.Size != before {
		return fmt.Errorf("%w: log %s/%s changed while it was moved", ErrConflict, log.Namespace, log.UID)
	}
	return s.writeTx(ctx, func(ctx context.Context, tx bun.IDB) error {
		var rows int64
		if err := tx.NewSelect().Table("log_chunks").ColumnExpr("COALESCE(SUM(length(data)), 0)").
			Where("namespace = ?", log.Namespace).Where("record_uid = ?", log.UID).Scan(ctx, &rows); err != nil {
			return dbError(err)
		}
		obj, err := s.loadLogObject(ctx, tx, log)
		if err != nil {
			return err
		}
		// From rows (a seal), the rows are the log: an object the Log had
		// is replaced. From a file, the Log must still have neither.
		if (fromRows && rows != before) || (!fromRows && (rows != 0 || obj != nil)) {
			return fmt.Errorf("%w: log %s/%s changed while it was moved", ErrConflict, log.Namespace, log.UID)
		}
		return p.commit(ctx, tx)
	})
}

// MigrateLogs moves logs kept in database chunks or in the log directory
// into the object store, up to limit Logs after the key after (in key
// order), and returns how many it moved, how many bytes, and the last key
// it looked at (the zero Key when none was left): call again from there
// until it is zero. Each Log moves in its own transaction and stays
// readable throughout, from its old place until the commit, then from its
// object; a Log already in an object is skipped, so a run can be stopped
// and started again at will.
func (s *Store) MigrateLogs(ctx context.Context, after Key, limit int) (moved int, size int64, next Key, err error) {
	if s.logStore == nil {
		return 0, 0, Key{}, fmt.Errorf("%w: migrating logs needs a log store (--log-store)", ErrInvalidArgument)
	}
	var recs []*Record
	q := s.db.NewSelect().Model(&recs).Where("data_type IN (?)", bun.In(tektonLogTypes)).
		Where("NOT EXISTS (SELECT 1 FROM log_objects AS o WHERE o.namespace = record.namespace AND o.record_uid = record.uid)").
		Where("(namespace > ? OR (namespace = ? AND uid > ?))", after.Namespace, after.Namespace, after.UID).
		Order("namespace", "uid").Limit(int64(limit))
	if err := q.Scan(ctx); err != nil {
		return 0, 0, Key{}, dbError(err)
	}
	for _, rec := range recs {
		next = rec.Key()
		src, err := s.logSource(ctx, rec.Key(), storedInFile(rec))
		if err != nil {
			return moved, size, next, err
		}
		fc, fromFile := src.(fileChunks)
		last, err := src.last(ctx)
		if err != nil || last < 0 {
			src.close()
			if err != nil {
				return moved, size, next, err
			}
			continue // no bytes stored (an unavailable log)
		}
		n, _ := src.size(ctx)
		err = s.moveToObject(ctx, rec.Key(), src)
		src.close()
		if err != nil {
			return moved, size, next, fmt.Errorf("moving log %s: %w", rec.Name, err)
		}
		if fromFile {
			if err := os.Remove(fc.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
				slog.Warn("removing a log file moved to the object store", "path", fc.f.Name(), "error", err)
			}
		}
		moved, size = moved+1, size+n
	}
	return moved, size, next, nil
}
