// Package access is the one place that decides what a caller may do with
// Results, Records and Logs, for every API Annals serves (GraphQL, and
// Tekton Results' REST and gRPC): it finds the namespace an action is in
// (from a name, before anything is looked up, so that a refusal never tells
// whether something exists), asks the Authorizer about the resource and verb
// with Tekton Results' names, and narrows a "-" (every namespace) list to
// the namespaces the caller may list.
package access

import (
	"context"
	"fmt"
	"strings"

	"github.com/annals-dev/annals/store"
)

// Resources and verbs, with Tekton Results' names (group results.tekton.dev),
// so that its ClusterRoles keep working.
const (
	Results = "results"
	Records = "records"
	Logs    = "logs"

	Get    = "get"
	List   = "list"
	Create = "create"
	Update = "update"
	Delete = "delete"
)

// Authorizer decides, for the caller of ctx, whether verb on resource
// (results, records, logs) in a namespace is allowed; server/auth asks
// Kubernetes. VisibleNamespaces returns nil when every namespace is
// allowed, else the allowed ones among candidates.
type Authorizer interface {
	Authorize(ctx context.Context, namespace, resource, verb string) error
	VisibleNamespaces(ctx context.Context, resource, verb string, candidates func(context.Context) ([]string, error)) ([]string, error)
}

// Decider applies an Authorizer to the actions of the APIs. A nil Auth
// allows everything (--auth=none, loopback only).
type Decider struct {
	Auth Authorizer
	// Namespaces lists the namespaces that hold data: the candidates of a
	// "-" list for a caller who may not list everywhere.
	Namespaces func(context.Context) ([]string, error)
}

// Allow checks one action in one namespace.
func (d Decider) Allow(ctx context.Context, namespace, resource, verb string) error {
	noteRead(ctx, namespace)
	if d.Auth == nil {
		return nil
	}
	return d.Auth.Authorize(ctx, namespace, resource, verb)
}

// NamespaceOf returns the namespace a Result, Record or Log name is in: its
// first segment, which must be a valid namespace.
func NamespaceOf(name string) (string, error) {
	namespace, _, _ := strings.Cut(name, "/")
	if err := store.CheckNamespace(namespace); err != nil {
		return "", fmt.Errorf("%w: %q is not a name of the form <namespace>/results/<uid>[/records/<uid>]", store.ErrInvalidArgument, name)
	}
	return namespace, nil
}

// AllowName checks an action on a named Result, Record or Log, before
// anything is looked up, so that the answer never depends on whether it
// exists.
func (d Decider) AllowName(ctx context.Context, name, resource, verb string) error {
	namespace, err := NamespaceOf(name)
	if err != nil {
		return err
	}
	return d.Allow(ctx, namespace, resource, verb)
}

// ListScope authorizes verb (list, or get for aggregates) on resource
// under parent: one namespace, or with "-" (or "") the namespaces where the
// caller may do it. nil means no restriction; an empty list means none is
// visible, and the list must then come back empty.
func (d Decider) ListScope(ctx context.Context, parent, resource, verb string) ([]string, error) {
	if parent != "-" && parent != "" {
		return nil, d.Allow(ctx, parent, resource, verb)
	}
	if d.Auth == nil {
		noteReadAll(ctx)
		return nil, nil
	}
	visible, err := d.Auth.VisibleNamespaces(ctx, resource, verb, d.Namespaces)
	if visible == nil {
		noteReadAll(ctx)
	} else {
		noteRead(ctx, visible...)
	}
	return visible, err
}
