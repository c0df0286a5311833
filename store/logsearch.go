package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
}

// LogSearchResult lists the Logs that matched, most recently written first.
type LogSearchResult struct {
	Logs         []*LogMatches
	LogsScanned  int
	BytesScanned int64
	// StoppedBy is empty when every Log of the window was scanned, else
	// what stopped the search: "logs", "bytes", "time" or "matches".
	StoppedBy string
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
// whole; the search stops at its first limit (Logs, bytes, time, matches)
// and says which in StoppedBy.
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
	out := &LogSearchResult{Logs: []*LogMatches{}}
	if q.Namespaces != nil && len(q.Namespaces) == 0 {
		return out, nil // nothing visible
	}
	sel := s.db.NewSelect().Model((*Record)(nil)).Where("data_type = ?", TypeLog).Where("updated_at >= ?", q.UpdatedAfter)
	if !q.UpdatedBefore.IsZero() {
		sel = sel.Where("updated_at < ?", q.UpdatedBefore)
	}
	if q.Parent != "-" && q.Parent != "" {
		if err := checkNamespace(q.Parent); err != nil {
			return nil, err
		}
		sel = sel.Where("namespace = ?", q.Parent)
	}
	if q.Namespaces != nil {
		sel = sel.Where("namespace IN (?)", bun.In(q.Namespaces))
	}
	var logs []*Record
	if err := sel.Order("updated_at DESC", "namespace", "uid").Limit(int64(q.MaxLogs+1)).Scan(ctx, &logs); err != nil {
		return nil, dbError(err)
	}
	if len(logs) > q.MaxLogs {
		logs, out.StoppedBy = logs[:q.MaxLogs], "logs"
	}
	needle := []byte(q.Contains)
	if q.CaseInsensitive {
		needle = bytes.ToLower(needle)
	}
	matches := 0
	for _, log := range logs {
		m, stop, err := s.searchLog(ctx, log, needle, q, out, MaxLogSearchMatches-matches)
		if err != nil {
			return nil, err
		}
		out.LogsScanned++
		if m != nil {
			out.Logs = append(out.Logs, m)
			matches += len(m.Lines)
		}
		if stop != "" {
			out.StoppedBy = stop
			break
		}
	}
	return out, nil
}

// searchLog scans one Log, counting what it reads into out.BytesScanned.
func (s *Store) searchLog(ctx context.Context, log *Record, needle []byte, q LogSearch, out *LogSearchResult, matchesLeft int) (*LogMatches, string, error) {
	rc, err := s.OpenLog(ctx, log)
	if err != nil {
		return nil, "", err
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 0, 64<<10), logSearchLineLength)
	continued := false // the last token was a piece of a longer line
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return i + 1, data[:i], nil
		}
		if len(data) >= logSearchLineLength {
			return logSearchLineLength, data[:logSearchLineLength], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	var m *LogMatches
	line := 0
	var lower []byte
	for sc.Scan() {
		token := sc.Bytes()
		out.BytesScanned += int64(len(token)) + 1
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
			if len(m.Lines) == MaxLogSearchLinesPerLog || len(m.Lines) == matchesLeft {
				m.MoreLines = true
				if len(m.Lines) == matchesLeft {
					return m, "matches", nil
				}
			} else if len(m.Lines) == 0 || m.Lines[len(m.Lines)-1].Number != line {
				m.Lines = append(m.Lines, LogLine{Number: line, Text: string(token[:min(len(token), logSearchShownLength)])})
			}
		}
		if line%256 == 0 { // checks now and then: cheap enough, soon enough
			if q.MaxBytes > 0 && out.BytesScanned >= q.MaxBytes {
				return m, "bytes", nil
			}
			if !q.Deadline.IsZero() && time.Now().After(q.Deadline) {
				return m, "time", nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, "", fmt.Errorf("reading log %s: %w", log.Name, err)
	}
	if q.MaxBytes > 0 && out.BytesScanned >= q.MaxBytes {
		return m, "bytes", nil
	}
	if !q.Deadline.IsZero() && time.Now().After(q.Deadline) {
		return m, "time", nil
	}
	return m, "", nil
}

func newLogMatches(log *Record) *LogMatches {
	var doc LogData
	json.Unmarshal(log.Data, &doc)
	return &LogMatches{Log: log, TaskRun: doc.Spec.Resource.Name, Step: doc.Spec.Step}
}
