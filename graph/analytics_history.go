package graph

import (
	"context"
	"fmt"

	"github.com/annals-dev/annals/store"
)

// historyScope reads the arguments flakyTasks and pipelineRecovery share
// with records, authorized as records is.
func (r *queryResolver) historyScope(ctx context.Context, parent string, result *string, where *RecordWhere, filter *string, first *int) (store.ListOptions, int, error) {
	limit := 20
	if first != nil {
		if *first < 1 || *first > store.MaxAnalyticsRows {
			return store.ListOptions{}, 0, fmt.Errorf("%w: first must be 1 to %d, not %d", store.ErrInvalidArgument, store.MaxAnalyticsRows, *first)
		}
		limit = *first
	}
	scope := store.ListOptions{Parent: parent, ResultName: deref(result), Filter: deref(filter), RecordWhere: recordWhere(where)}
	var err error
	if scope.Namespaces, err = r.listScope(ctx, parent, resRecords); err != nil {
		return scope, 0, err
	}
	return scope, limit, nil
}

// historyRowsCost is what flakyTasks and pipelineRecovery cost: a whole
// scope read in one statement, and each row they may return.
func historyRowsCost(child int, first *int) int {
	rows := 20
	if first != nil {
		rows = min(max(*first, 1), store.MaxAnalyticsRows)
	}
	return StatsCost + rows*child
}

func flakyOutput(res *store.FlakyResult) *FlakyTasks {
	out := &FlakyTasks{TotalCount: res.Total, Tasks: make([]*FlakyTask, len(res.Tasks))}
	for i, f := range res.Tasks {
		out.Tasks[i] = &FlakyTask{Namespace: f.Namespace, Pipeline: f.Pipeline, Task: f.Task, Revisions: int(f.Revisions),
			FlakyRevisions: int(f.FlakyRevisions), Runs: int(f.Runs), Succeeded: int(f.Succeeded), Failed: int(f.Failed),
			Flips: int(f.Flips), FlipRate: f.FlipRate(), LastFlakyRun: f.LastFlakyRun}
	}
	return out
}

func recoveryOutput(res *store.RecoveryResult) *PipelineRecoveries {
	out := &PipelineRecoveries{TotalCount: res.Total, Pipelines: make([]*PipelineRecovery, len(res.Pipelines))}
	for i, p := range res.Pipelines {
		pr := &PipelineRecovery{Namespace: p.Namespace, Pipeline: p.Pipeline, Recoveries: int(p.Recoveries),
			CurrentlyFailing: p.FailingSince != nil, FailingSince: p.FailingSince}
		if p.Recoveries > 0 {
			mean, median, longest := p.MeanMicros/1e6, float64(p.MedianMicros)/1e6, float64(p.MaxMicros)/1e6
			pr.Mean, pr.Median, pr.Max = &mean, &median, &longest
		}
		out.Pipelines[i] = pr
	}
	return out
}
