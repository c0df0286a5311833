package graph

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/annals-dev/annals/server/access"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/filter"
)

// Limits of log fields: more than this is downloaded, not put in JSON.
const (
	maxLogText   = 1 << 20
	maxTailLines = 10000
)

// Resolver answers GraphQL fields from the store.
type Resolver struct {
	Store *store.Store
	// Auth decides what the caller may do; nil allows everything (the
	// local --auth=none mode).
	Auth Authorizer
	// SubscriptionQueryTimeout bounds each query a subscription runs (a
	// subscription lives on, its queries must not); default 20s.
	SubscriptionQueryTimeout time.Duration
	// LogSearchMaxBytes bounds the log bytes one logSearch reads; default 1 GiB.
	LogSearchMaxBytes int64
	// LogSearchTimeout bounds the time one logSearch reads; default 10s.
	LogSearchTimeout time.Duration
}

func (r *Resolver) logSearchMaxBytes() int64 {
	if r.LogSearchMaxBytes <= 0 {
		return 1 << 30
	}
	return r.LogSearchMaxBytes
}

func (r *Resolver) logSearchTimeout() time.Duration {
	if r.LogSearchTimeout <= 0 {
		return 10 * time.Second
	}
	return r.LogSearchTimeout
}

// Authorizer decides, for the caller of ctx, whether verb on resource is
// allowed; see package access, which holds the decisions of every API.
type Authorizer = access.Authorizer

// The resources and verbs authorized, with Tekton Results' names.
const (
	resResults = access.Results
	resRecords = access.Records
	resLogs    = access.Logs

	verbGet    = access.Get
	verbList   = access.List
	verbCreate = access.Create
	verbUpdate = access.Update
	verbDelete = access.Delete
)

func (r *Resolver) access() access.Decider {
	return access.Decider{Auth: r.Auth, Namespaces: r.Store.Namespaces}
}

// allow checks one action in one namespace.
func (r *Resolver) allow(ctx context.Context, namespace, resource, verb string) error {
	return r.access().Allow(ctx, namespace, resource, verb)
}

// allowName checks an action on a named Result or Record, before anything
// is looked up, so that the answer never depends on whether it exists.
func (r *Resolver) allowName(ctx context.Context, name, resource, verb string) error {
	return r.access().AllowName(ctx, name, resource, verb)
}

// listScope authorizes listing resource under parent: one namespace, or
// with "-" the namespaces the caller may list (nil: all of them).
func (r *Resolver) listScope(ctx context.Context, parent, resource string) ([]string, error) {
	return r.access().ListScope(ctx, parent, resource, verbList)
}

func (r *Resolver) loaders(ctx context.Context) *Loaders { return loadersFrom(ctx) }

// Global IDs are the base64 of "<type>:<name>", opaque to clients.
func globalID(typ, name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(typ + ":" + name))
}

func parseGlobalID(id string) (typ, name string, err error) {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err == nil {
		var ok bool
		typ, name, ok = strings.Cut(string(raw), ":")
		if ok && (typ == "Result" || typ == "Record") {
			return typ, name, nil
		}
	}
	return "", "", fmt.Errorf("%w: %q is not an ID given out by this API", store.ErrInvalidArgument, id)
}

// loadNode authorizes the lookup of a global ID and returns the thunk that
// reads it.
func (r *Resolver) loadNode(ctx context.Context, id string) (func() (Node, error), error) {
	typ, name, err := parseGlobalID(id)
	if err != nil {
		return nil, err
	}
	if typ == "Result" {
		if err := r.allowName(ctx, name, resResults, verbGet); err != nil {
			return nil, err
		}
		return func() (Node, error) { return asNode(r.resultByName(ctx, name)) }, nil
	}
	if err := r.allowName(ctx, name, resRecords, verbGet); err != nil {
		return nil, err
	}
	return func() (Node, error) { return asNode(r.recordByName(ctx, name)) }, nil
}

// entityName reads the name out of a global ID of the given type, for
// federation references by id.
func entityName(id, wantType string) (string, error) {
	typ, name, err := parseGlobalID(id)
	if err == nil && typ != wantType {
		err = fmt.Errorf("%w: %q is the ID of a %s, not a %s", store.ErrInvalidArgument, id, typ, wantType)
	}
	return name, err
}

// listArgs are the arguments every connection field shares.
type listArgs struct {
	first, last   *int
	after, before *string
	filter        *string
	orderBy       *Order
}

func (a listArgs) options() store.ListOptions {
	o := store.ListOptions{First: deref(a.first), Last: deref(a.last), After: deref(a.after), Before: deref(a.before), Filter: deref(a.filter)}
	if a.orderBy != nil {
		o.OrderBy = store.OrderBy{Field: store.OrderField(a.orderBy.Field), Asc: a.orderBy.Direction == OrderDirectionAsc,
			UnfinishedFirst: a.orderBy.UnfinishedFirst}
	}
	return o
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func recordWhere(w *RecordWhere) *filter.RecordWhere {
	if w == nil {
		return nil
	}
	return &filter.RecordWhere{
		Namespace: w.Namespace, DataTypes: w.DataTypes, Statuses: storeStatuses(w.Statuses), Reasons: w.Reasons,
		Labels: keyMatches(w.Labels), PipelineRunName: w.PipelineRun, PipelineName: w.Pipeline, TaskName: w.Task,
		NamePrefix: w.NamePrefix, Created: timeRange(w.Created), Started: timeRange(w.Started), Completed: timeRange(w.Completed),
		Kinds: runKinds(w.Kinds), RunNames: w.RunNames, NameContains: w.NameContains, CreationTime: timeRange(w.CreationTimestamp),
	}
}

func runKinds(in []RunKind) []string {
	out := make([]string, len(in))
	for i, k := range in {
		out[i] = string(k)
	}
	return out
}

func resultWhere(w *ResultWhere) *filter.ResultWhere {
	if w == nil {
		return nil
	}
	return &filter.ResultWhere{
		Namespace: w.Namespace, Statuses: storeStatuses(w.Statuses), SummaryTypes: w.SummaryTypes,
		Annotations: keyMatches(w.Annotations), NamePrefix: w.NamePrefix,
		Created: timeRange(w.Created), Updated: timeRange(w.Updated), Started: timeRange(w.Started), Ended: timeRange(w.Ended),
	}
}

func keyMatches(in []*KeyMatch) []filter.LabelMatch {
	out := make([]filter.LabelMatch, len(in))
	for i, m := range in {
		out[i] = filter.LabelMatch{Key: m.Key, Op: filter.LabelOp(m.Op), Values: m.Values}
	}
	return out
}

func timeRange(r *TimeRange) filter.TimeRange {
	if r == nil {
		return filter.TimeRange{}
	}
	return filter.TimeRange{After: r.After, Before: r.Before}
}

func annotationMap(kvs []*KeyValueInput) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// asNode turns a looked-up object into a Node, keeping a missing one a
// true nil (a nil pointer in an interface would not be null).
func asNode[T any](v *T, err error) (Node, error) {
	if err != nil || v == nil {
		return nil, err
	}
	return v, nil
}
