package store

import (
	"context"
	"strings"
)

// Nested connections (a Result's Records, a PipelineRun's TaskRuns) are
// loaded for many parents at once: one statement numbers each parent's rows
// with ROW_NUMBER() and keeps the first page of each. Their cursors are
// those of the single-parent list, so the next page of one parent is asked
// for with ListRecords (or these calls, which then go parent by parent).

// ListRecordsForResults returns the first page of Records of each Result,
// by Result name.
func (s *Store) ListRecordsForResults(ctx context.Context, resultNames []string, o ListOptions) (map[string]*Page[*Record], error) {
	out := make(map[string]*Page[*Record], len(resultNames))
	if len(resultNames) == 0 {
		return out, nil
	}
	keys, err := resultKeys(resultNames)
	if err != nil {
		return nil, err
	}
	if o.After != "" || o.Before != "" {
		for _, name := range resultNames {
			one := o
			one.ResultName = name
			page, err := s.ListRecords(ctx, one)
			if err != nil {
				return nil, err
			}
			out[name] = page
		}
		return out, nil
	}
	o.ResultName = ""
	p, err := s.plan(recordsEntity, o)
	if err != nil {
		return nil, err
	}
	partition, args := keysSQL("r.namespace", "r.result_uid", keys)
	pages, err := s.listPartitioned(ctx, p, "r.namespace, r.result_uid", partition, args,
		func(r *Record) (string, []byte) { return r.ResultName, p.digestOf(r.ResultName, "") })
	if err != nil {
		return nil, err
	}
	return fillEmpty(pages, resultNames), nil
}

// CountRecordsForResults counts the Records of each Result (by name) that a
// nested list would page through, in one statement.
func (s *Store) CountRecordsForResults(ctx context.Context, resultNames []string, o ListOptions) (map[string]int, error) {
	out := make(map[string]int, len(resultNames))
	if len(resultNames) == 0 {
		return out, nil
	}
	keys, err := resultKeys(resultNames)
	if err != nil {
		return nil, err
	}
	o.ResultName = ""
	p, err := s.countPlan(recordsEntity, o)
	if err != nil {
		return nil, err
	}
	q := p.base
	cond, args := keysSQL("r.namespace", "r.result_uid", keys)
	q.where(cond, args...)
	var rows []struct {
		Namespace string `bun:"namespace"`
		ResultUID string `bun:"result_uid"`
		N         int    `bun:"n"`
	}
	if err := s.queryRows(ctx, &rows, "SELECT r.namespace, r.result_uid, count(*) AS n FROM records AS r"+q.whereSQL()+
		" GROUP BY r.namespace, r.result_uid", q.args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[ResultName(r.Namespace, r.ResultUID)] = r.N
	}
	return out, nil
}

// ListTaskRunsForPipelineRuns returns the first page of TaskRun Records of
// each PipelineRun Record, keyed by the PipelineRun Record's name.
func (s *Store) ListTaskRunsForPipelineRuns(ctx context.Context, prs []*Record, o ListOptions) (map[string]*Page[*Record], error) {
	out := make(map[string]*Page[*Record], len(prs))
	if len(prs) == 0 {
		return out, nil
	}
	keys := make([]string, len(prs))
	for i, pr := range prs {
		keys[i] = pr.Name
	}
	if o.After != "" || o.Before != "" {
		for _, pr := range prs {
			page, err := s.ListRecords(ctx, taskRunOptions(o, pr))
			if err != nil {
				return nil, err
			}
			out[pr.Name] = page
		}
		return out, nil
	}
	o.ResultName = ""
	p, err := s.plan(recordsEntity, o)
	if err != nil {
		return nil, err
	}
	partition, args, byParent := taskRunPartition(prs)
	pages, err := s.listPartitioned(ctx, p, "r.namespace, r.result_uid, r.pipeline_run_name", partition, args,
		func(r *Record) (string, []byte) {
			return byParent[[2]string{r.ResultName, r.PipelineRunName}], p.digestOf(r.ResultName, r.PipelineRunName)
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
	sql := "SELECT " + columnList("t", recordType) + " FROM (SELECT " + p.columns() +
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
		page.Cursors = append(page.Cursors, s.sealer.seal(dig, p.recordPosition(r)))
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
		ResultName      string `bun:"result_name"`
		PipelineRunName string `bun:"pipeline_run_name"`
		N               int    `bun:"n"`
	}
	if err := s.queryRows(ctx, &rows, "SELECT r.result_name, r.pipeline_run_name, count(*) AS n FROM records AS r"+q.whereSQL()+
		" GROUP BY r.result_name, r.pipeline_run_name", q.args...); err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[byParent[[2]string{r.ResultName, r.PipelineRunName}]] = r.N
	}
	return out, nil
}

// taskRunPartition is the condition selecting the TaskRuns of many
// PipelineRuns, each in its PipelineRun's Result (so namespace), and the map
// from (result name, run name) to the PipelineRun Record's name.
func taskRunPartition(prs []*Record) (string, []any, map[[2]string]string) {
	values := make([]string, 0, len(prs))
	var pairs []any
	byParent := map[[2]string]string{}
	seen := map[Key]bool{}
	var results []Key
	for _, pr := range prs {
		values = append(values, "(?, ?)")
		pairs = append(pairs, pr.ResultName, pr.RunName)
		byParent[[2]string{pr.ResultName, pr.RunName}] = pr.Name
		if k := (Key{pr.Namespace, pr.ResultUID}); !seen[k] {
			seen[k] = true
			results = append(results, k)
		}
	}
	// The (namespace, result uid) lists let the planner reach the rows
	// through the records_result index; the pairs then pick each
	// PipelineRun's TaskRuns.
	cond, args := keysSQL("r.namespace", "r.result_uid", results)
	args = append(append(args, TypeTaskRun, "tekton.dev/v1beta1.TaskRun"), pairs...)
	return cond + " AND r.data_type IN (?, ?) AND (r.result_name, r.pipeline_run_name) IN (VALUES " +
		strings.Join(values, ", ") + ")", args, byParent
}
