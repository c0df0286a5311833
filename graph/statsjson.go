package graph

import (
	"context"
	"io"
	"math"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// StatsGroupsWriter is the gqlgen extension that writes RecordStats.groups
// itself. A dashboard's trend asks for hundreds of groups (20 Pipelines by
// 31 days is 620), and gqlgen's execution of plain fields costs, per
// object, a field context, a deferred group with its path and a field set,
// and per list element a goroutine: 145,000 allocations for 620 groups,
// most of a request's CPU (BenchmarkRecordStats in server). The groups
// hold only values already computed, so this writes the selection as
// gqlgen would, byte for byte (TestStatsGroupsWriter compares the two):
// the same collected fields (fragments, aliases, @skip and @include,
// __typename) in the same order, through gqlgen's own scalar marshalers.
// Anything it does not handle, @defer or a value gqlgen would report as an
// error, is left to gqlgen.
type StatsGroupsWriter struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.FieldInterceptor
} = StatsGroupsWriter{}

func (StatsGroupsWriter) ExtensionName() string                   { return "StatsGroupsWriter" }
func (StatsGroupsWriter) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptField hands gqlgen a Marshaler in place of the groups: gqlgen
// writes a Marshaler that comes out of the field middleware as it is.
func (StatsGroupsWriter) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	res, err := next(ctx)
	fc := graphql.GetFieldContext(ctx)
	if err != nil || fc == nil || fc.Object != "RecordStats" || fc.Field.Name != "groups" {
		return res, err
	}
	groups, ok := res.([]*StatsGroup)
	if !ok {
		return res, err
	}
	w, ok := newStatsGroupsJSON(ctx, fc.Field.Selections, groups)
	if !ok {
		return res, err
	}
	return w, nil
}

// selection is the collected fields of one object type, and those of the
// objects under them, by response key.
type selection struct {
	fields []graphql.CollectedField
	sub    map[string]*selection
}

func collect(oc *graphql.OperationContext, set []graphql.CollectedField, typeOf map[string]string) (*selection, bool) {
	// CollectFields merges the fields of one response key into one.
	s := &selection{fields: set, sub: map[string]*selection{}}
	for _, f := range set {
		if len(f.Deferrables) > 0 {
			return nil, false
		}
		if typ, ok := typeOf[f.Name]; ok {
			sub, ok := collect(oc, graphql.CollectFields(oc, f.Selections, []string{typ}), nil)
			if !ok {
				return nil, false
			}
			s.sub[f.Alias] = sub
		}
	}
	return s, true
}

// statsGroupsJSON writes groups under a selection of StatsGroup.
type statsGroupsJSON struct {
	ctx    context.Context
	sel    *selection
	groups []*StatsGroup
}

func newStatsGroupsJSON(ctx context.Context, set ast.SelectionSet, groups []*StatsGroup) (*statsGroupsJSON, bool) {
	oc := graphql.GetOperationContext(ctx)
	sel, ok := collect(oc, graphql.CollectFields(oc, set, []string{"StatsGroup"}),
		map[string]string{"key": "StatsKey", "statusCounts": "StatusCounts", "duration": "DurationStats", "queueTime": "DurationStats"})
	if !ok {
		return nil, false
	}
	for _, g := range groups {
		// What gqlgen would report as errors stays gqlgen's to report.
		if g == nil || g.StatusCounts == nil || g.Duration == nil || g.QueueTime == nil ||
			!finite(g.SuccessRate, g.FailureShare) || !g.Duration.finite() || !g.QueueTime.finite() {
			return nil, false
		}
		for _, k := range g.Key {
			if k == nil || !k.Dimension.IsValid() {
				return nil, false
			}
		}
	}
	return &statsGroupsJSON{ctx: ctx, sel: sel, groups: groups}, true
}

func finite(vs ...*float64) bool {
	for _, v := range vs {
		if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
			return false
		}
	}
	return true
}

func (d *DurationStats) finite() bool {
	return finite(d.Min, d.Avg, d.Max, d.Sum, d.P50, d.P90, d.P95, d.P99)
}

func (j *statsGroupsJSON) MarshalGQL(w io.Writer) {
	io.WriteString(w, "[")
	for i, g := range j.groups {
		if i > 0 {
			io.WriteString(w, ",")
		}
		writeObject(w, j.sel, func(f graphql.CollectedField) {
			switch f.Name {
			case "__typename":
				graphql.MarshalString("StatsGroup").MarshalGQL(w)
			case "key":
				io.WriteString(w, "[")
				for i, k := range g.Key {
					if i > 0 {
						io.WriteString(w, ",")
					}
					writeObject(w, j.sel.sub[f.Alias], func(f graphql.CollectedField) {
						switch f.Name {
						case "__typename":
							graphql.MarshalString("StatsKey").MarshalGQL(w)
						case "dimension":
							k.Dimension.MarshalGQL(w)
						case "value":
							writeOptional(w, k.Value, graphql.MarshalString)
						case "time":
							writeOptional(w, k.Time, MarshalTime)
						}
					})
				}
				io.WriteString(w, "]")
			case "count":
				graphql.MarshalInt(g.Count).MarshalGQL(w)
			case "statusCounts":
				c := g.StatusCounts
				writeObject(w, j.sel.sub[f.Alias], func(f graphql.CollectedField) {
					switch f.Name {
					case "__typename":
						graphql.MarshalString("StatusCounts").MarshalGQL(w)
					case "succeeded":
						graphql.MarshalInt(c.Succeeded).MarshalGQL(w)
					case "failed":
						graphql.MarshalInt(c.Failed).MarshalGQL(w)
					case "cancelled":
						graphql.MarshalInt(c.Cancelled).MarshalGQL(w)
					case "running":
						graphql.MarshalInt(c.Running).MarshalGQL(w)
					case "unknown":
						graphql.MarshalInt(c.Unknown).MarshalGQL(w)
					}
				})
			case "successRate":
				j.writeFloat(w, g.SuccessRate)
			case "failureShare":
				j.writeFloat(w, g.FailureShare)
			case "duration":
				j.writeDuration(w, j.sel.sub[f.Alias], g.Duration)
			case "queueTime":
				j.writeDuration(w, j.sel.sub[f.Alias], g.QueueTime)
			case "lastRunTime":
				writeOptional(w, g.LastRunTime, MarshalTime)
			}
		})
	}
	io.WriteString(w, "]")
}

func (j *statsGroupsJSON) writeDuration(w io.Writer, sel *selection, d *DurationStats) {
	writeObject(w, sel, func(f graphql.CollectedField) {
		switch f.Name {
		case "__typename":
			graphql.MarshalString("DurationStats").MarshalGQL(w)
		case "count":
			graphql.MarshalInt(d.Count).MarshalGQL(w)
		case "min":
			j.writeFloat(w, d.Min)
		case "avg":
			j.writeFloat(w, d.Avg)
		case "max":
			j.writeFloat(w, d.Max)
		case "sum":
			j.writeFloat(w, d.Sum)
		case "p50":
			j.writeFloat(w, d.P50)
		case "p90":
			j.writeFloat(w, d.P90)
		case "p95":
			j.writeFloat(w, d.P95)
		case "p99":
			j.writeFloat(w, d.P99)
		}
	})
}

// writeFloat writes a finite float (newStatsGroupsJSON checked) as gqlgen.
func (j *statsGroupsJSON) writeFloat(w io.Writer, v *float64) {
	if v == nil {
		graphql.Null.MarshalGQL(w)
		return
	}
	_ = graphql.MarshalFloatContext(*v).MarshalGQLContext(j.ctx, w)
}

// writeOptional writes null, or *v as marshal does.
func writeOptional[T any](w io.Writer, v *T, marshal func(T) graphql.Marshaler) {
	if v == nil {
		graphql.Null.MarshalGQL(w)
		return
	}
	marshal(*v).MarshalGQL(w)
}

// writeObject writes {"alias":value,...} in the selection's order, value
// written by field.
func writeObject(w io.Writer, sel *selection, field func(graphql.CollectedField)) {
	io.WriteString(w, "{")
	for i, f := range sel.fields {
		if i > 0 {
			io.WriteString(w, ",")
		}
		graphql.MarshalString(f.Alias).MarshalGQL(w)
		io.WriteString(w, ":")
		field(f)
	}
	io.WriteString(w, "}")
}
