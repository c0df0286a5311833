package store

import (
	"cmp"
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/annals-dev/annals/store/filter"
)

// SummaryOptions is a request of Tekton Results' Summary API
// (…/records/summary): the Records it aggregates and what it computes, as the
// request's strings.
type SummaryOptions struct {
	Parent     string   // a namespace, or "-" (or "") for every namespace
	Namespaces []string // nil: no restriction; else only these namespaces are visible
	ResultName string   // "<namespace>/results/<uid>", or "" for every Result
	Filter     string   // CEL, as ListRecords takes it
	// FilterFlavor is the vocabulary of Filter, as in ListOptions.
	FilterFlavor filter.Flavor

	Summary string // comma list of keys; "" is "total"
	GroupBy string // "", a time unit with an optional time field, namespace, pipeline or repository
	OrderBy string // "<key> ASC|DESC" or "ASC|DESC <key>"; honoured with GroupBy only

	MaxGroups int // 0: DefaultMaxGroups
}

// SummaryRow is one row of a summary: each requested key with its value as
// Tekton Results renders it in JSON (counts as int64; last_runtime as Unix
// seconds, int64 or float64 when not whole; durations as PostgreSQL interval
// text; nil where there is no value), plus "group_value" when grouped
// (Unix seconds of the bucket for time groups, a string otherwise).
type SummaryRow map[string]any

// SummaryError is a refused summary request; its message is the one Tekton
// Results answers with. It matches ErrInvalidArgument.
type SummaryError struct{ Message string }

func (e *SummaryError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrInvalidArgument) hold.
func (e *SummaryError) Is(target error) bool { return target == ErrInvalidArgument }

func summaryError(parts ...string) error { return &SummaryError{Message: strings.Join(parts, "")} }

// summaryMetrics are the keys of the Summary API, in the terms of the engine.
var summaryMetrics = map[string]Metric{
	"total":          {Kind: MetricCount},
	"succeeded":      {Kind: MetricCount, Reasons: []string{"Succeeded", "Completed"}},
	"failed":         {Kind: MetricCount, Reasons: []string{"Failed"}},
	"cancelled":      {Kind: MetricCount, Reasons: []string{"Cancelled"}},
	"running":        {Kind: MetricCount, Reasons: []string{"Running"}},
	"others":         {Kind: MetricCountOtherReasons, Reasons: []string{"Failed", "Succeeded", "Cancelled", "Running", "Completed"}},
	"last_runtime":   {Kind: MetricLastStart},
	"avg_duration":   {Kind: MetricAvgDuration},
	"min_duration":   {Kind: MetricMinDuration},
	"max_duration":   {Kind: MetricMaxDuration},
	"total_duration": {Kind: MetricSumDuration},
}

var summaryTimeUnits = map[string]TimeUnit{
	"minute": UnitMinute, "hour": UnitHour, "day": UnitDay, "week": UnitWeek, "month": UnitMonth, "year": UnitYear,
}

var summaryFieldGroups = map[string]DimensionKind{
	"namespace": DimNamespace, "pipeline": DimPipeline, "repository": DimRepository,
}

// summaryOrder is Tekton Results' order_by syntax: one field, one direction.
var summaryOrder = regexp.MustCompile(`^([\w\.]+)\s*(ASC|asc|DESC|desc)?$`)

// summaryOrderReversed is the documented "ASC total" form, which Tekton
// Results refuses (its quirk B10) and Annals accepts.
var summaryOrderReversed = regexp.MustCompile(`^(ASC|asc|DESC|desc) ([\w\.]+)$`)

// summaryRequest is a parsed SummaryOptions.
type summaryRequest struct {
	keys    []string
	group   *Dimension
	orderBy string // a key of keys, "" for no order
	desc    bool
}

// parseSummary reads the request strings as Tekton Results does, with its
// quirks B3 (no summary means "total") and B10 ("ASC key") fixed.
func parseSummary(o SummaryOptions) (*summaryRequest, error) {
	req := &summaryRequest{}
	summary := strings.TrimSpace(o.Summary)
	if summary == "" {
		summary = "total"
	}
	for _, key := range strings.Split(summary, ",") {
		if _, ok := summaryMetrics[key]; !ok {
			return nil, summaryError("invalid aggregate query: ", key)
		}
		if !slices.Contains(req.keys, key) {
			req.keys = append(req.keys, key)
		}
	}
	group := strings.TrimSpace(o.GroupBy)
	if group == "" {
		return req, nil // order_by means nothing without groups and is not even checked
	}
	parts := strings.Split(group, " ")
	unit, isTime := summaryTimeUnits[parts[0]]
	kind, isField := summaryFieldGroups[parts[0]]
	switch {
	case isTime && len(parts) == 1:
		req.group = &Dimension{Kind: DimTime, Time: TimeCreation, Unit: unit}
	case isTime && len(parts) == 2:
		field := map[string]TimeField{"startTime": TimeStart, "completionTime": TimeCompletion}
		f, ok := field[parts[1]]
		if !ok {
			return nil, summaryError("group_by does not recognize ", parts[1])
		}
		req.group = &Dimension{Kind: DimTime, Time: f, Unit: unit}
	case isField && len(parts) == 1:
		req.group = &Dimension{Kind: kind}
	default:
		return nil, summaryError("group_by does not recognize ", group)
	}
	order := strings.TrimSpace(o.OrderBy)
	if order == "" {
		return req, nil
	}
	parts = strings.Split(order, " ")
	var key, dir string
	switch {
	case len(parts) == 2 && summaryOrder.MatchString(order): // two parts: the direction is there
		key, dir = parts[0], parts[1]
	case summaryOrderReversed.MatchString(order):
		key, dir = parts[1], parts[0]
	default:
		return nil, summaryError("order_by does not recognize ", order)
	}
	if !slices.Contains(req.keys, key) {
		return nil, summaryError("field name ", key, " is not allowed, must be one of summary")
	}
	req.orderBy, req.desc = key, strings.EqualFold(dir, "DESC")
	return req, nil
}

// SummarizeRecords answers Tekton Results' Summary API: the Records of the
// scope, of every data type, aggregated into the requested keys, in one row,
// or one row per group with GroupBy (none when nothing matches). See
// SummaryRow for the values.
func (s *Store) SummarizeRecords(ctx context.Context, o SummaryOptions) ([]SummaryRow, error) {
	req, err := parseSummary(o)
	if err != nil {
		return nil, err
	}
	q := AggregateQuery{
		Scope:     ListOptions{Parent: o.Parent, Namespaces: o.Namespaces, ResultName: o.ResultName, Filter: o.Filter, FilterFlavor: o.FilterFlavor},
		MaxGroups: o.MaxGroups,
	}
	for _, key := range req.keys {
		q.Metrics = append(q.Metrics, summaryMetrics[key])
	}
	if req.group != nil {
		q.GroupBy = []Dimension{*req.group}
	}
	rows, err := s.Aggregate(ctx, q)
	if err != nil {
		return nil, err
	}
	if req.orderBy != "" {
		col := slices.Index(req.keys, req.orderBy)
		slices.SortStableFunc(rows, func(a, b AggregateRow) int {
			return compareSummaryRows(a, b, col, summaryMetrics[req.orderBy].Kind, req.desc)
		})
	} else if req.group != nil {
		// Any order will do, but the same data should answer the same way.
		slices.SortStableFunc(rows, func(a, b AggregateRow) int { return compareGroups(a.Groups[0], b.Groups[0]) })
	}
	out := make([]SummaryRow, len(rows))
	for i, r := range rows {
		row := SummaryRow{}
		for j, key := range req.keys {
			row[key] = summaryValue(summaryMetrics[key].Kind, r.Values[j])
		}
		if req.group != nil {
			row["group_value"] = groupValue(*req.group, r.Groups[0])
		}
		out[i] = row
	}
	return out, nil
}

// compareSummaryRows orders by one metric as PostgreSQL orders its values:
// nulls last ascending and first descending; ties by group value, ascending.
func compareSummaryRows(a, b AggregateRow, col int, kind MetricKind, desc bool) int {
	va, vb := a.Values[col], b.Values[col]
	var c int
	switch kind {
	case MetricCount, MetricCountOtherReasons:
		c = cmp.Compare(va.Count, vb.Count)
	case MetricLastStart:
		if c = cmpNull(va.Time == nil, vb.Time == nil); c == 0 && va.Time != nil {
			c = va.Time.Compare(*vb.Time)
		}
	default:
		if c = cmpNull(va.Duration == nil, vb.Duration == nil); c == 0 && va.Duration != nil {
			c = cmp.Compare(va.Duration.TotalMicros(), vb.Duration.TotalMicros())
		}
	}
	if desc {
		c = -c
	}
	if c != 0 {
		return c
	}
	return compareGroups(a.Groups[0], b.Groups[0])
}

// cmpNull orders by nullness alone: NULL is greater than any value, as in
// PostgreSQL's ordering. 0 when both or neither are null.
func cmpNull(aNull, bNull bool) int {
	switch {
	case aNull == bNull:
		return 0
	case aNull:
		return 1
	}
	return -1
}

// compareGroups orders group values, nulls last.
func compareGroups(a, b GroupValue) int {
	if a.Null || b.Null {
		return cmpNull(a.Null, b.Null)
	}
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	return strings.Compare(a.Text, b.Text)
}

// summaryValue renders a metric value as Tekton Results' JSON does.
func summaryValue(kind MetricKind, v MetricValue) any {
	switch kind {
	case MetricCount, MetricCountOtherReasons:
		return v.Count
	case MetricLastStart:
		if v.Time == nil {
			return nil
		}
		return unixSeconds(*v.Time)
	}
	if v.Duration == nil {
		return nil
	}
	return v.Duration.String()
}

func unixSeconds(t time.Time) any {
	if t.Nanosecond() == 0 {
		return t.Unix()
	}
	return float64(t.UnixMicro()) / 1e6
}

func groupValue(d Dimension, g GroupValue) any {
	switch {
	case g.Null:
		return nil
	case d.Kind == DimTime:
		return g.Time.Unix()
	}
	return g.Text
}
