package store

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// ResultSummary is what a client states about the run a Result stands for,
// when it writes the summary itself (Tekton Results' UpdateResult) instead
// of letting the store derive it from the run's Record.
type ResultSummary struct {
	Record      string
	Type        string
	Status      string // one of the Status* constants
	StartTime   *time.Time
	EndTime     *time.Time
	Annotations map[string]string
}

// ReplaceResult replaces the annotations and the summary of a Result with
// the given ones (nil clears them), in one transaction, and bumps its
// version. An empty etag skips the version check.
func (s *Store) ReplaceResult(ctx context.Context, name, etag string, annotations map[string]string, summary *ResultSummary) (*Result, error) {
	if _, _, err := ParseResultName(name); err != nil {
		return nil, err
	}
	if err := checkAnnotationKeys(annotations); err != nil {
		return nil, err
	}
	if summary == nil {
		summary = &ResultSummary{Status: StatusUnknown}
	}
	var summaryAnnotations JSONMap
	if len(summary.Annotations) > 0 {
		summaryAnnotations = summary.Annotations
	}
	return s.changeResult(ctx, name, etag, func(ctx context.Context, tx bun.Tx, res *Result) error {
		if _, err := tx.NewDelete().Model((*Annotation)(nil)).Where("namespace = ?", res.Namespace).Where("result_uid = ?", res.UID).Exec(ctx); err != nil {
			return dbError(err)
		}
		return setAnnotations(ctx, tx, res.Key(), annotations)
	}, func(q *bun.UpdateQuery) *bun.UpdateQuery {
		return q.Set("summary_record = ?", summary.Record).
			Set("summary_type = ?", summary.Type).
			Set("summary_status = ?", summary.Status).
			Set("summary_start_time = ?", summary.StartTime).
			Set("summary_end_time = ?", summary.EndTime).
			Set("summary_annotations = ?", summaryAnnotations)
	})
}

// RecordReasons returns the Succeeded-condition reasons of the named
// Records, in one statement and without their data: Tekton Results' summary
// tells a timed-out run (reason ...Timeout) from a failed one.
func (s *Store) RecordReasons(ctx context.Context, names []string) (map[string]string, error) {
	out := make(map[string]string, len(names))
	if len(names) == 0 {
		return out, nil
	}
	var rows []struct {
		Name   string `bun:"name"`
		Reason string `bun:"reason"`
	}
	if err := s.db.NewSelect().Model((*Record)(nil)).Column("name", "reason").Where("name IN (?)", bun.In(names)).Scan(ctx, &rows); err != nil {
		return nil, dbError(err)
	}
	for _, r := range rows {
		out[r.Name] = r.Reason
	}
	return out, nil
}
