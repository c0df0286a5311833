package access

import (
	"context"
	"slices"
	"sync"
)

// Reads gathers the namespaces a request read from, as the decisions made
// for it name them, for the response cache: an answer read from team-a
// alone stays valid when a run of team-b changes. Links between objects
// never cross a namespace, so the namespaces a request was allowed into are
// the ones its answer holds data of.
type Reads struct {
	mu         sync.Mutex
	all        bool // a list over every namespace, or unknown
	namespaces map[string]bool
}

type readsKey struct{}

// WithReads returns a context whose decisions note their namespaces in
// the returned Reads.
func WithReads(ctx context.Context) (context.Context, *Reads) {
	r := &Reads{namespaces: map[string]bool{}}
	return context.WithValue(ctx, readsKey{}, r), r
}

func noteRead(ctx context.Context, namespaces ...string) {
	if r, _ := ctx.Value(readsKey{}).(*Reads); r != nil {
		r.mu.Lock()
		for _, ns := range namespaces {
			r.namespaces[ns] = true
		}
		r.mu.Unlock()
	}
}

func noteReadAll(ctx context.Context) {
	if r, _ := ctx.Value(readsKey{}).(*Reads); r != nil {
		r.mu.Lock()
		r.all = true
		r.mu.Unlock()
	}
}

// Scope is what was noted: every namespace (all), or the namespaces
// listed. Nothing noted counts as every namespace: a read that made no
// decision cannot tell where its data came from.
func (r *Reads) Scope() (all bool, namespaces []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.all || len(r.namespaces) == 0 {
		return true, nil
	}
	for ns := range r.namespaces {
		namespaces = append(namespaces, ns)
	}
	slices.Sort(namespaces)
	return false, namespaces
}
