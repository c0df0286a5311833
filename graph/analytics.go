package graph

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // time zones of recordStats without the system's database (distroless)

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/annals-dev/annals/store"
)

// StatsCost is what recordStats and recordFacets cost besides their
// groups: each reads every Record of its scope, whatever it returns.
const StatsCost = 1000

// RollupStatsCost is what a recordStats the daily rollup answers costs
// besides its groups (see Complexity).
const RollupStatsCost = 100

// RollupDayCost is what each day of its started window adds to such a
// recordStats: the days a first read of its scope fetches.
const RollupDayCost = 10

// startedDays is how many UTC days where's started window touches, when it
// has both ends.
func startedDays(where *RecordWhere) (int, bool) {
	if where == nil || where.Started == nil || where.Started.After == nil || where.Started.Before == nil {
		return 0, false
	}
	const day = 24 * time.Hour
	span := where.Started.Before.Sub(*where.Started.After)
	return max(int(span/day), 0) + 2, true
}

// statsGroupGuess is how many values a dimension is assumed to have when
// pricing a grouping without first: what a dashboard of one team sees.
var statsGroupGuess = map[StatsDimension]int{
	StatsDimensionStatus: 5, StatsDimensionKind: 2, StatsDimensionReason: 20,
}

const statsDefaultGuess = 100

// statsGroupEstimate is how many groups a recordStats may return, for its
// cost: first when given, else the product of each dimension's guess (a
// time dimension's buckets in where's window when it has both ends, else
// statsDefaultGuess), at most store.DefaultMaxGroups.
func statsGroupEstimate(where *RecordWhere, groupBy []*StatsGroupBy, first *int) int {
	if first != nil && *first > 0 {
		return min(*first, store.DefaultMaxGroups)
	}
	n := 1
	for _, g := range groupBy {
		if g == nil {
			continue
		}
		guess, ok := statsGroupGuess[g.Dimension]
		if !ok {
			guess = statsDefaultGuess
		}
		if g.Dimension == StatsDimensionTime && where != nil {
			r := map[StatsTimeField]*TimeRange{StatsTimeFieldCreation: where.Created, StatsTimeFieldStart: where.Started, StatsTimeFieldCompletion: where.Completed}[deref(g.TimeField)]
			if r != nil && r.After != nil && r.Before != nil {
				width := map[StatsTimeUnit]time.Duration{StatsTimeUnitHour: time.Hour, StatsTimeUnitDay: 24 * time.Hour,
					StatsTimeUnitWeek: 7 * 24 * time.Hour, StatsTimeUnitMonth: 28 * 24 * time.Hour}[deref(g.Unit)]
				if width > 0 {
					guess = max(int(r.Before.Sub(*r.After)/width)+2, 1)
				}
			}
		}
		n = min(n*guess, store.DefaultMaxGroups)
	}
	return n
}

var statsDimensions = map[StatsDimension]store.DimensionKind{
	StatsDimensionStatus: store.DimStatus, StatsDimensionReason: store.DimReason, StatsDimensionNamespace: store.DimNamespace,
	StatsDimensionPipeline: store.DimPipelineName, StatsDimensionTask: store.DimTask, StatsDimensionKind: store.DimKind,
	StatsDimensionLabel: store.DimLabel, StatsDimensionAnnotation: store.DimAnnotation, StatsDimensionTime: store.DimTime,
	StatsDimensionFailedStep: store.DimFailedStep,
}

var statsTimeFields = map[StatsTimeField]store.TimeField{
	StatsTimeFieldCreation: store.TimeCreation, StatsTimeFieldStart: store.TimeStart, StatsTimeFieldCompletion: store.TimeCompletion,
}

// statsQuery reads the arguments of recordStats.
func statsQuery(groupBy []*StatsGroupBy, zone string, fill bool, orderBy []*StatsOrder, first *int) (store.StatsQuery, error) {
	q := store.StatsQuery{Fill: fill}
	for _, g := range groupBy {
		d, err := statsDimension(g.Dimension, deref(g.Key))
		if err != nil {
			return q, err
		}
		if d.Kind == store.DimTime {
			d.Time, d.Unit = statsTimeFields[deref(g.TimeField)], store.TimeUnit(strings.ToLower(string(deref(g.Unit))))
			if g.TimeField == nil {
				d.Time = store.TimeStart
			}
			if g.Unit == nil {
				d.Unit = store.UnitDay
			}
		}
		q.GroupBy = append(q.GroupBy, d)
	}
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil || zone == "Local" {
		return q, fmt.Errorf("%w: time zone %q: give an IANA time zone name such as Europe/Berlin or UTC", store.ErrInvalidArgument, zone)
	}
	q.TimeZone = loc
	for _, o := range orderBy {
		q.OrderBy = append(q.OrderBy, store.StatsOrder{Metric: store.StatsMetric(strings.ToLower(string(o.Metric))), Desc: o.Direction == OrderDirectionDesc})
	}
	if first != nil {
		if *first <= 0 || *first > store.DefaultMaxGroups {
			return q, fmt.Errorf("%w: first must be 1 to %d groups, not %d", store.ErrInvalidArgument, store.DefaultMaxGroups, *first)
		}
		q.Limit = *first
	}
	return q, nil
}

func statsDimension(dim StatsDimension, key string) (store.Dimension, error) {
	kind, ok := statsDimensions[dim]
	if !ok {
		return store.Dimension{}, fmt.Errorf("%w: unknown dimension %q", store.ErrInvalidArgument, dim)
	}
	d := store.Dimension{Kind: kind}
	switch kind {
	case store.DimLabel, store.DimAnnotation:
		if key == "" {
			return d, fmt.Errorf("%w: %s needs key: the label or annotation key, e.g. app.kubernetes.io/name", store.ErrInvalidArgument, dim)
		}
		d.Key = key
	default:
		if key != "" {
			return d, fmt.Errorf("%w: key is for LABEL and ANNOTATION, not %s", store.ErrInvalidArgument, dim)
		}
	}
	return d, nil
}

func facetDimension(dim FacetDimension, key string) (store.Dimension, error) {
	return statsDimension(StatsDimension(dim), key)
}

// statusName is a store status as the RunStatus enum spells it.
func statusName(s string) string { return strings.ToUpper(s) }

// statsOutput turns store groups into the graph's.
func statsOutput(res *store.StatsResult, groupBy []*StatsGroupBy) *RecordStats {
	out := &RecordStats{TotalGroups: res.TotalGroups, Groups: make([]*StatsGroup, len(res.Rows))}
	for i, row := range res.Rows {
		g := &StatsGroup{
			Count: int(row.Count),
			StatusCounts: &StatusCounts{Succeeded: int(row.Statuses.Succeeded), Failed: int(row.Statuses.Failed),
				Cancelled: int(row.Statuses.Cancelled), Running: int(row.Statuses.Running), Unknown: int(row.Statuses.Unknown)},
			SuccessRate: row.SuccessRate(),
			Duration:    distributionOutput(row.Duration, res.Percentiles),
			QueueTime:   distributionOutput(row.Queue, res.QueuePercentiles),
			LastRunTime: row.LastRun,
		}
		if res.Failed > 0 {
			share := float64(row.Statuses.Failed) / float64(res.Failed)
			g.FailureShare = &share
		}
		for j, v := range row.Groups {
			k := &StatsKey{Dimension: groupBy[j].Dimension}
			switch {
			case v.Null:
			case groupBy[j].Dimension == StatsDimensionTime:
				t := v.Time
				text := t.Format(time.RFC3339)
				k.Time, k.Value = &t, &text
			case groupBy[j].Dimension == StatsDimensionStatus:
				text := statusName(v.Text)
				k.Value = &text
			default:
				text := v.Text
				k.Value = &text
			}
			g.Key = append(g.Key, k)
		}
		if g.Key == nil {
			g.Key = []*StatsKey{}
		}
		out.Groups[i] = g
	}
	return out
}

// distributionOutput leaves percentiles null unless they were computed.
func distributionOutput(d store.Distribution, percentiles bool) *DurationStats {
	out := &DurationStats{Count: int(d.N)}
	if d.N == 0 {
		return out
	}
	sec := func(us int64) *float64 { v := float64(us) / 1e6; return &v }
	avg := d.Avg() / 1e6
	out.Min, out.Avg, out.Max, out.Sum = sec(d.Min), &avg, sec(d.Max), sec(d.Sum)
	if percentiles {
		out.P50, out.P90, out.P95, out.P99 = sec(d.P50), sec(d.P90), sec(d.P95), sec(d.P99)
	}
	return out
}

// selectsAny tells whether the selection under the current field holds a
// field of one of these names, at any depth, through fragments.
func selectsAny(ctx context.Context, names ...string) bool {
	return selectsUnder(ctx, "", names...)
}

// selectsUnder tells whether the selection under the current field holds,
// inside a field named under (anywhere; "" is the current field), a field
// of one of these names.
func selectsUnder(ctx context.Context, under string, names ...string) bool {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || !graphql.HasOperationContext(ctx) {
		return true
	}
	doc := graphql.GetOperationContext(ctx).Doc
	var walk func(set ast.SelectionSet, inside bool, seen map[string]bool) bool
	walk = func(set ast.SelectionSet, inside bool, seen map[string]bool) bool {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if inside && slices.Contains(names, s.Name) {
					return true
				}
				if !inside && s.Name == under {
					// A fragment spread outside may be spread here again.
					if walk(s.SelectionSet, true, map[string]bool{}) {
						return true
					}
					continue
				}
				if walk(s.SelectionSet, inside, seen) {
					return true
				}
			case *ast.InlineFragment:
				if walk(s.SelectionSet, inside, seen) {
					return true
				}
			case *ast.FragmentSpread:
				if seen[s.Name] {
					continue
				}
				seen[s.Name] = true
				if f := doc.Fragments.ForName(s.Name); f != nil && walk(f.SelectionSet, inside, seen) {
					return true
				}
			}
		}
		return false
	}
	return walk(fc.Field.Selections, under == "", map[string]bool{})
}
