package store

import (
	"context"
	"strings"

	"github.com/annals-dev/annals/store/filter"
)

// Nested connections (a Result's Records, a PipelineRun's TaskRuns) are
// loaded for many parents at once: one statement numbers each parent's rows
// with ROW_NUMBER() and keeps the first page of each. Their cursors are
// those of the single-parent list, so the next page of one parent is asked
// for with ListRecords (or these calls, which then go parent by parent).

// ListRecordsForResults returns the first page of Records of each Result.
func (s *Store) ListRecordsForResults(ctx context.Context, resultUIDs []string, o ListOptions) (map[string]*Page[*Record], error) {
	out := make(map[string]*Page[*Record], len(resultUIDs))
	if len(resultUIDs) == 0 {
		return out, nil
	}
	if o.After != "" || o.Before != "" {
		results, err := s.GetResultsByUID(ctx, resultUIDs)
		if err != nil {
			return nil, err
		}
		for uid, res := range results {
			one := o
			one.ResultName = res.Name
			page, err := s.ListRecords(ctx, one)
			if err != nil {
				return nil, err
			}
			out[uid] = page
		}
		return fillEmpty(out, resultUIDs), nil
	}
	o.ResultName = ""
	p, err := s.plan(recordsEntity, o)
	if err != nil {
		return nil, err
	}
	partition := "r.result_uid IN (" + filter.Placeholders(len(resultUIDs)) + ")"
	pages, err := s.listPartitioned(ctx, p, "r.result_uid", partition, filter.Args(resultUIDs),
		func(r *Record) (string, []byte) { return r.ResultUID, p.digestOf(r.ResultName, "") })
	if err != nil {
		return nil, err
	}
	return fillEmpty(pages, resultUIDs), nil
}

// CountRecordsForResults counts the Records of each Result that a nested
// list would page through, in one statement.
func (s *Store) CountRecordsForResults(ctx context.Context, resultUIDs []string, o ListOptions) (map[string]int, error) {
	out := make(map[string]int, len(resultUIDs))
	if len(resultUIDs) == 0 {
		return out, nil
	}
	o.ResultName = ""
	p, err := s.countPlan(recordsEntity, o)
	if err != nil {
		return nil, err
	}
	q := p.base
	q.where("r.result_uid IN ("+filter.Placeholders(len(resultUIDs))+")", filter.Args(resultUIDs)...)
	var rows []struct {
		ResultUID string `bun:"result_uid"`
		N         int    `bun:"n"`
	}
	if err := s.queryRows(ctx, &rows, "SELECT r.result_uid, count(*) AS n FROM records AS r"+q.whereSQL()+" GROUP BY r.result_uid", q.args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.ResultUID] = r.N
	}
	return out, nil
}

// ListTaskRunsForPipelineRuns returns the first page of TaskRun Records of
// each PipelineRun Record, keyed by the PipelineRun record's uid.
func (s *Store) ListTaskRunsForPipelineRuns(ctx context.Context, prs []*Record, o ListOptions) (map[string]*Page[*Record], error) {
	out := make(map[string]*Page[*Record], len(prs))
	if len(prs) == 0 {
		return out, nil
	}
	keys := make([]string, len(prs))
	for i, pr := range prs {
		keys[i] = pr.UID
	}
	if o.After != "" || o.Before != "" {
		for _, pr := range prs {
			page, err := s.ListRecords(ctx, taskRunOptions(o, pr))
			if err != nil {
				return nil, err
			}
			out[pr.UID] = page
		}
		return out, nil
	}
	o.ResultName = ""
	p, err := s.plan(recordsEntity, o)
	if err != nil {
		return nil, err
	}
	partition, args, byParent := taskRunPartition(prs)
	pages, err := s.listPartitioned(ctx, p, "r.result_uid, r.pipeline_run_name", partition, args,
		func(r *Record) (string, []byte) {
			return byParent[[2]string{r.ResultUID, r.PipelineRunName}], p.digestOf(r.ResultName, r.PipelineRunName)
		})
	if err != nil {
		return nil, err
	}
	return fillEmpty(pages, keys), nil
}

// taskRunOptions are the single-parent options whose cursors a batch of
// TaskRuns hands out.
func taskRunOptions(o ListOptions, pr *Record) ListOptions {
	o.ResultName, o.pipelineRun = pr.ResultName, pr.RunName
	return o
}

// listPartitioned runs one statement returning the first page of every
// partition; parentOf names a row's parent and the digest of its cursor.
func (s *Store) listPartitioned(ctx context.Context, p *plan, partitionBy, partition string, partitionArgs []any,
	parentOf func(*Record) (string, []byte)) (map[string]*Page[*Record], error) {
	q := p.base
	q.where(partition, partitionArgs...)
	sql := "SELECT " + columnList("t", recordType) + " FROM (SELECT " + p.ent.columns +
		", ROW_NUMBER() OVER (PARTITION BY " + partitionBy + " ORDER BY " + p.orderSQL() + ") AS rn FROM " + p.ent.from + q.whereSQL() +
		") AS t WHERE t.rn <= ? ORDER BY t.rn"
	var rows []*Record
	if err := s.queryRows(ctx, &rows, sql, append(q.args, p.limit+1)...); err != nil {
		return nil, err
	}
	out := map[string]*Page[*Record]{}
	for _, r := range rows {
		parent, dig := parentOf(r)
		page := out[parent]
		if page == nil {
			page = &Page[*Record]{}
			out[parent] = page
		}
		if len(page.Items) == p.limit {
			page.HasNextPage = true
			continue
		}
		page.Items = append(page.Items, r)
		page.Cursors = append(page.Cursors, s.sealer.seal(dig, p.position(recordSortTime(p, r), r.DurationMillis, r.UID)))
	}
	if p.back {
		for _, page := range out {
			reversePage(page)
			page.HasPreviousPage, page.HasNextPage = page.HasNextPage, false
		}
	}
	return out, nil
}

func reversePage(p *Page[*Record]) {
	for i, j := 0, len(p.Items)-1; i < j; i, j = i+1, j-1 {
		p.Items[i], p.Items[j] = p.Items[j], p.Items[i]
		p.Cursors[i], p.Cursors[j] = p.Cursors[j], p.Cursors[i]
	}
}

func fillEmpty(pages map[string]*Page[*Record], keys []string) map[string]*Page[*Record] {
	for _, k := range keys {
		if pages[k] == nil {
			pages[k] = &Page[*Record]{}
		}
	}
	return pages
}

// CountTaskRunsForPipelineRuns counts, in one statement, the TaskRun
// Records of each PipelineRun Record that a nested list would page through.
func (s *Store) CountTaskRunsForPipelineRuns(ctx context.Context, prs []*Record, o ListOptions) (map[string]int, error) {
	out := make(map[string]int, len(prs))
	if len(prs) == 0 {
		return out, nil
	}
	o.ResultName = ""
	p, err := s.countPlan(recordsEntity, o)
	if err != nil {
		return nil, err
	}
	q := p.base
	partition, args, byParent := taskRunPartition(prs)
	q.where(partition, args...)
	var rows []struct {
		ResultUID       string `bun:"result_uid"`
		PipelineRunName string `bun:"pipeline_run_name"`
		N               int    `bun:"n"`
	}
	if err := s.queryRows(ctx, &rows, "SELECT r.result_uid, r.pipeline_run_name, count(*) AS n FROM records AS r"+q.whereSQL()+
		" GROUP BY r.result_uid, r.pipeline_run_name", q.args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[byParent[[2]string{r.ResultUID, r.PipelineRunName}]] = r.N
	}
	return out, nil
}

// taskRunPartition is the condition selecting the TaskRuns of many
// PipelineRuns, and the map from (result uid, run name) to the PipelineRun
// record's uid.
func taskRunPartition(prs []*Record) (string, []any, map[[2]string]string) {
	values := make([]string, 0, len(prs))
	var pairs []any
	byParent := map[[2]string]string{}
	resultUIDs := map[string]bool{}
	var uids []any
	for _, pr := range prs {
		values = append(values, "(?, ?)")
		pairs = append(pairs, pr.ResultUID, pr.RunName)
		byParent[[2]string{pr.ResultUID, pr.RunName}] = pr.UID
		if !resultUIDs[pr.ResultUID] {
			resultUIDs[pr.ResultUID] = true
			uids = append(uids, pr.ResultUID)
		}
	}
	// The result_uid list lets the planner reach the rows through the
	// records_result index; the pairs then pick each PipelineRun's TaskRuns.
	args := append(append(uids, TypeTaskRun, "tekton.dev/v1beta1.TaskRun"), pairs...)
	return "r.result_uid IN (" + filter.Placeholders(len(uids)) + ") AND r.data_type IN (?, ?) AND (r.result_uid, r.pipeline_run_name) IN (VALUES " +
		strings.Join(values, ", ") + ")", args, byParent
}
