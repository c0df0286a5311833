package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/uptrace/bun"
)

// Limits of a log search, whatever the caller asks.
const (
	// MaxLogSearchLogs is the most Logs one search scans.
	MaxLogSearchLogs = 1000
	// MaxLogSearchLinesPerLog is the most matching lines returned of one Log.
	MaxLogSearchLinesPerLog = 100
	// MaxLogSearchMatches is the most matching lines one search returns.
	MaxLogSearchMatches = 1000
	// logSearchLineLength: longer lines are searched in pieces this long
	// (a match across two pieces is missed), so that one endless line
	// cannot hold more than this in memory.
	logSearchLineLength = 64 << 10
	// logSearchShownLength is the most bytes of a matching line returned.
	logSearchShownLength = 1024
)

// LogSearch asks which Logs contain a literal string, and where.
type LogSearch struct {
	// Parent is a namespace, or "-" for all namespaces in Namespaces.
	Parent string
	// Namespaces restricts the search to these namespaces (the caller's
	// authorized scope); nil: no restriction, empty: nothing visible.
	Namespaces []string
	// Contains is the literal text to find within a line (not a pattern).
	Contains        string
	CaseInsensitive bool
	// Logs last written in [UpdatedAfter, UpdatedBefore) are searched;
	// UpdatedAfter is required, a zero UpdatedBefore means now.
	UpdatedAfter, UpdatedBefore time.Time
	// MaxLogs (default and at most MaxLogSearchLogs) Logs are scanned,
	// most recently written first.
	MaxLogs int
	// MaxBytes, when positive, stops the search once this many bytes have
	// been read.
	MaxBytes int64
	// Deadline, when set, stops the search at that time.
	Deadline time.Time
	// After continues a search that stopped: the Cursor of its result,
	// given back with the same Parent, Namespaces, Contains,
	// CaseInsensitive and window (anything else does not open it).
	After string
}

// LogSearchResult lists the Logs that matched, most recently written first.
type LogSearchResult struct {
	Logs         []*LogMatches
	LogsScanned  int
	BytesScanned int64
	// StoppedBy is empty when every Log of the window was scanned, else
	// what stopped the search: "logs", "bytes", "time" or "matches".
	StoppedBy string
	// Cursor continues the search where it stopped (LogSearch.After);
	// empty when StoppedBy is.
	Cursor string
}

// LogMatches are the matching lines of one Log.
type LogMatches struct {
	Log     *Record
	TaskRun string // the TaskRun's name
	Step    string
	Lines   []LogLine
	// MoreLines: the Log has more matching lines than returned.
	MoreLines bool
}

// LogLine is one matching line: its number (from 1) and its text, cut at
// 1 KiB.
type LogLine struct {
	Number int
	Text   string
}

// SearchLogs scans the Logs of a time window for lines containing a
// literal string. Logs are streamed chunk by chunk (OpenLog), never held
// whole; the search stops at its first limit (Logs, bytes, time, matches),
// says which in StoppedBy and gives a Cursor to continue from there.
func (s *Store) SearchLogs(ctx context.Context, q LogSearch) (*LogSearchResult, error) {
	if q.Contains == "" {
		return nil, fmt.Errorf("%w: contains is empty: give the text to find in log lines", ErrInvalidArgument)
	}
	if len(q.Contains) > logSearchShownLength {
		return nil, fmt.Errorf("%w: contains is %d bytes: at most %d", ErrInvalidArgument, len(q.Contains), logSearchShownLength)
	}
	if q.UpdatedAfter.IsZero() {
		return nil, fmt.Errorf("%w: a log search needs a time window: give updatedAfter", ErrInvalidArgument)
	}
	if !q.UpdatedBefore.IsZero() && !q.UpdatedBefore.After(q.UpdatedAfter) {
		return nil, fmt.Errorf("%w: updatedBefore (%s) must be after updatedAfter (%s)", ErrInvalidArgument, q.UpdatedBefore.Format(time.RFC3339), q.UpdatedAfter.Format(time.RFC3339))
	}
	if q.MaxLogs <= 0 || q.MaxLogs > MaxLogSearchLogs {
		q.MaxLogs = MaxLogSearchLogs
	}
	if q.Parent != "-" && q.Parent != "" {
		if err := checkNamespace(q.Parent); err != nil {
			return nil, err
		}
	}
	var from *logSearchPos
	if q.After != "" {
		pos, err := s.openLogSearchCursor(q, q.After)
		if err != nil {
			return nil, err
		}
		from = &pos
	}
	out := &LogSearchResult{Logs: []*LogMatches{}}
	if q.Namespaces != nil && len(q.Namespaces) == 0 {
		return out, nil // nothing visible
	}
	sel := s.db.NewSelect().Model((*Record)(nil)).Where("data_type = ?", TypeLog).Where("updated_at >= ?", q.UpdatedAfter)
	if !q.UpdatedBefore.IsZero() {
		sel = sel.Where("updated_at < ?", q.UpdatedBefore)
	}
	if q.Parent != "-" && q.Parent != "" {
		sel = sel.Where("namespace = ?", q.Parent)
	}
	if q.Namespaces != nil {
		sel = sel.Where("namespace IN (?)", bun.In(q.Namespaces))
	}
	if from != nil {
		// At or after the Log the search stopped in, in the order below.
		sel = sel.Where("(updated_at < ? OR (updated_at = ? AND (namespace > ? OR (namespace = ? AND uid >= ?))))",
			from.Updated, from.Updated, from.Namespace, from.Namespace, from.UID)
	}
	var logs []*Record
	if err := sel.Order("updated_at DESC", "namespace", "uid").Limit(int64(q.MaxLogs+1)).Scan(ctx, &logs); err != nil {
		return nil, dbError(err)
	}
	var next *Record // the first Log not scanned, when there are more
	if len(logs) > q.MaxLogs {
		logs, next, out.StoppedBy = logs[:q.MaxLogs], logs[q.MaxLogs], "logs"
	}
	needle := []byte(q.Contains)
	if q.CaseInsensitive {
		needle = bytes.ToLower(needle)
	}
	matches := 0
	var resume *logSearchPos
	for i, log := range logs {
		var at logSearchAt
		if from != nil && i == 0 && log.Namespace == from.Namespace && log.UID == from.UID {
			at = from.At // the Log it stopped in: from where it stopped
		}
		m, stop, end, err := s.searchLog(ctx, log, needle, q, out, MaxLogSearchMatches-matches, at)
		if err != nil {
			return nil, err
		}
		out.LogsScanned++
		if m != nil {
			out.Logs = append(out.Logs, m)
			matches += len(m.Lines)
		}
		if stop == "" {
			continue
		}
		out.StoppedBy = stop
		switch {
		case !end.done:
			resume = &logSearchPos{Updated: log.UpdatedAt, Namespace: log.Namespace, UID: log.UID, At: end.at}
		case i+1 < len(logs):
			next = logs[i+1]
		case next == nil: // stopped at the end of the last Log: nothing is left
			out.StoppedBy = ""
		}
		break
	}
	if resume == nil && next != nil && out.StoppedBy != "" {
		resume = &logSearchPos{Updated: next.UpdatedAt, Namespace: next.Namespace, UID: next.UID}
	}
	if resume != nil {
		out.Cursor = s.sealLogSearchCursor(q, *resume)
	}
	return out, nil
}

// logSearchAt is a place in one Log: the byte offset of a line (or of a
// piece of a long line), the number of the line before it, and whether it
// continues that line.
type logSearchAt struct {
	Offset    int64 `json:"o,omitempty"`
	Line      int   `json:"l,omitempty"`
	Continued bool  `json:"c,omitempty"`
	// Returned: the line it continues was returned already (a match in
	// an earlier piece), so a match in its remaining pieces is not new.
	Returned bool `json:"r,omitempty"`
}

// logSearchPos is where a search stopped: a Log, by its place in the
// search's order, and the place in it.
type logSearchPos struct {
	Updated   time.Time   `json:"t"`
	Namespace string      `json:"n"`
	UID       string      `json:"u"`
	At        logSearchAt `json:"a"`
}

// logSearchDigest binds a search cursor to the caller's scope and to the
// query, as list cursors are: one sealed for another scope or query does
// not open, so it cannot name a Log outside the caller's namespaces.
func logSearchDigest(q LogSearch) []byte {
	parent := q.Parent
	if parent == "" {
		parent = "-"
	}
	namespaces := slices.Clone(q.Namespaces)
	slices.Sort(namespaces)
	before := ""
	if !q.UpdatedBefore.IsZero() {
		before = q.UpdatedBefore.UTC().Format(time.RFC3339Nano)
	}
	return digest("logSearch", parent, namespaces, q.Namespaces == nil, q.Contains, q.CaseInsensitive,
		q.UpdatedAfter.UTC().Format(time.RFC3339Nano), before)
}

func (s *Store) sealLogSearchCursor(q LogSearch, pos logSearchPos) string {
	plain, _ := json.Marshal(pos)
	nonce := make([]byte, s.sealer.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.sealer.aead.Seal(nonce, nonce, plain, logSearchDigest(q)))
}

func (s *Store) openLogSearchCursor(q LogSearch, cursor string) (logSearchPos, error) {
	var pos logSearchPos
	if s.sealer == nil {
		return pos, fmt.Errorf("the database is not migrated: run 'annals migrate'")
	}
	invalid := fmt.Errorf("%w: the cursor is not valid for this search: pass back an unchanged cursor with the same parent, contains, caseInsensitive and window, or start without one", ErrInvalidArgument)
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	aead := s.sealer.aead
	if err != nil || len(cursor) > 1024 || len(raw) < aead.NonceSize()+aead.Overhead() {
		return pos, invalid
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], logSearchDigest(q))
	if err != nil || json.Unmarshal(plain, &pos) != nil || pos.At.Offset < 0 || pos.At.Line < 0 {
		return pos, invalid
	}
	return pos, nil
}

// logSearchEnd is where the scan of one Log ended: done (read to its
// end), or at a place to continue from.
type logSearchEnd struct {
	done bool
	at   logSearchAt
}

// searchLog scans one Log from at, counting what it reads into
// out.BytesScanned.
func (s *Store) searchLog(ctx context.Context, log *Record, needle []byte, q LogSearch, out *LogSearchResult, matchesLeft int, at logSearchAt) (*LogMatches, string, logSearchEnd, error) {
	rc, err := s.openLogAt(ctx, log, at.Offset)
	if err != nil {
		return nil, "", logSearchEnd{}, err
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 0, 64<<10), logSearchLineLength)
	advance := 0 // bytes of the source the last token stands for
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			advance = i + 1
			return i + 1, data[:i], nil
		}
		if len(data) >= logSearchLineLength {
			advance = logSearchLineLength
			return logSearchLineLength, data[:logSearchLineLength], nil
		}
		if atEOF && len(data) > 0 {
			advance = len(data)
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	var m *LogMatches
	pos, line, continued := at.Offset, at.Line, at.Continued // continued: the last token was a piece of a longer line
	returned := -1                                           // a line returned by an earlier search
	if at.Continued && at.Returned {
		returned = at.Line
	}
	lastReturned := func() bool {
		return line == returned || m != nil && len(m.Lines) > 0 && m.Lines[len(m.Lines)-1].Number == line
	}
	var lower []byte
	tokens := 0
	for sc.Scan() {
		token := sc.Bytes()
		before := logSearchAt{Offset: pos, Line: line, Continued: continued}
		before.Returned = continued && lastReturned()
		pos += int64(advance)
		out.BytesScanned += int64(advance)
		if !continued {
			line++
		}
		continued = len(token) == logSearchLineLength
		hay := token
		if q.CaseInsensitive {
			lower = append(lower[:0], token...)
			hay = bytes.ToLower(lower)
		}
		if bytes.Contains(hay, needle) {
			if m == nil {
				m = newLogMatches(log)
			}
			switch {
			case lastReturned():
				// Another piece of a line returned already.
			case len(m.Lines) == matchesLeft:
				// Not returned: the next search continues with this line.
				if len(m.Lines) == 0 {
					m = nil
				} else {
					m.MoreLines = true
				}
				return m, "matches", logSearchEnd{at: before}, nil
			case len(m.Lines) == MaxLogSearchLinesPerLog:
				m.MoreLines = true
			default:
				m.Lines = append(m.Lines, LogLine{Number: line, Text: string(token[:min(len(token), logSearchShownLength)])})
			}
		}
		if tokens++; tokens%256 == 0 { // checks now and then: cheap enough, soon enough
			if stop := searchBudgetSpent(q, out); stop != "" {
				return m, stop, logSearchEnd{at: logSearchAt{Offset: pos, Line: line, Continued: continued, Returned: continued && lastReturned()}}, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, "", logSearchEnd{}, fmt.Errorf("reading log %s: %w", log.Name, err)
	}
	return m, searchBudgetSpent(q, out), logSearchEnd{done: true}, nil
}

// searchBudgetSpent says which budget of the search is spent, if any.
func searchBudgetSpent(q LogSearch, out *LogSearchResult) string {
	if q.MaxBytes > 0 && out.BytesScanned >= q.MaxBytes {
		return "bytes"
	}
	if !q.Deadline.IsZero() && time.Now().After(q.Deadline) {
		return "time"
	}
	return ""
}

// openLogAt streams a log from offset: only the chunks from the one that
// holds offset are read.
func (s *Store) openLogAt(ctx context.Context, log *Record, offset int64) (io.ReadCloser, error) {
	src, err := s.logBytes(ctx, log)
	if err != nil {
		return nil, err
	}
	r := &logReader{ctx: ctx, src: src, seq: int(offset / logChunkSize)}
	if skip := offset % logChunkSize; skip > 0 {
		if _, err := io.CopyN(io.Discard, r, skip); err != nil && !errors.Is(err, io.EOF) {
			r.Close()
			return nil, fmt.Errorf("reading log %s: %w", log.Name, err)
		}
	}
	return r, nil
}

func newLogMatches(log *Record) *LogMatches {
	var doc LogData
	json.Unmarshal(log.Data, &doc)
	return &LogMatches{Log: log, TaskRun: doc.Spec.Resource.Name, Step: doc.Spec.Step}
}
