package auth

import (
	"context"
	"slices"
	"sync"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
)

// visibility is what one caller may do (one resource and verb) in each
// namespace holding Results, as found by a sweep of SubjectAccessReviews.
type visibility struct {
	checkedAt time.Time

	mu         sync.Mutex
	allowed    map[string]bool // namespace -> decision; a namespace absent was not asked
	refreshing bool
	lastTry    time.Time
}

// VisibleNamespaces returns nil when the caller may do verb on resource in
// every namespace; else those of candidates() where it may (possibly none).
// What it asks does not depend on what the caller may see.
//
// A caller without the cluster-wide right costs one SubjectAccessReview per
// candidate namespace, so the answer is kept per caller for
// NamespaceCacheTTL: the first request sweeps (once however many ask at
// the same time, NamespaceSweepConcurrency reviews at a time for all
// callers together); later ones answer from the kept decisions, checking
// only namespaces that appeared since, and once it is half as old as it may
// get a fresh sweep runs in the background while the kept one answers.
func (k *Kubernetes) VisibleNamespaces(ctx context.Context, resource, verb string, candidates func(context.Context) ([]string, error)) ([]string, error) {
	u := UserFrom(ctx)
	if u == nil {
		return nil, unauthenticated("no authenticated caller")
	}
	clusterWide := authzv1.ResourceAttributes{Verb: verb, Group: Group, Resource: resource}
	all, err := k.decide(ctx, u, clusterWide)
	if err != nil || all {
		return nil, err
	}
	names, err := candidates(ctx)
	if err != nil {
		return nil, err
	}
	key := decisionKey(u, clusterWide)
	v, ok := k.visibility.Get(key)
	if !ok {
		found, err, _ := k.sweepFlight.Do(key, func() (any, error) {
			allowed, err := k.sweep(ctx, u, resource, verb, names)
			if err != nil {
				return nil, err
			}
			v := &visibility{checkedAt: time.Now(), allowed: allowed}
			k.visibility.Add(key, v)
			return v, nil
		})
		if err != nil {
			return nil, err
		}
		v = found.(*visibility)
	}
	if missing := v.missing(names); len(missing) > 0 {
		allowed, err := k.sweep(ctx, u, resource, verb, missing)
		if err != nil {
			return nil, err
		}
		v.merge(allowed)
	}
	if time.Since(v.checkedAt) > max(k.namespaceTTL/2, k.refreshBackoff) {
		k.refreshVisibility(ctx, key, v, u, resource, verb, candidates)
	}
	return v.visible(names), nil
}

// refreshVisibility sweeps again in the background, one sweep at a time per
// kept answer, and replaces it when the sweep succeeds; a failed sweep is
// retried no sooner than refreshBackoff, and the kept answer expires as
// usual.
func (k *Kubernetes) refreshVisibility(ctx context.Context, key string, v *visibility, u *User, resource, verb string, candidates func(context.Context) ([]string, error)) {
	v.mu.Lock()
	if v.refreshing || time.Since(v.lastTry) < k.refreshBackoff {
		v.mu.Unlock()
		return
	}
	v.refreshing, v.lastTry = true, time.Now()
	v.mu.Unlock()
	go func() {
		defer func() {
			v.mu.Lock()
			v.refreshing = false
			v.mu.Unlock()
		}()
		// Detached from the request that noticed the age: it may end first.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.namespaceTTL)
		defer cancel()
		names, err := candidates(ctx)
		if err != nil {
			return
		}
		start := time.Now()
		allowed, err := k.sweep(ctx, u, resource, verb, names)
		if err != nil {
			return
		}
		k.visibility.Add(key, &visibility{checkedAt: start, allowed: allowed})
	}()
}

// sweep asks whether u may do verb on resource in each namespace, at most
// NamespaceSweepConcurrency reviews at a time and 3/4 of the review rate
// across all sweeps. Decisions
// still in the shared cache are reused; the sweep's own are kept in the
// visibility answer only, so that a big sweep does not push other callers'
// decisions out of the cache. Any failure fails the whole sweep (closed).
func (k *Kubernetes) sweep(ctx context.Context, u *User, resource, verb string, namespaces []string) (map[string]bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
	)
	allowed := make(map[string]bool, len(namespaces))
	record := func(ns string, ok bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if firstErr == nil {
				firstErr = err
				cancel()
			}
			return
		}
		allowed[ns] = ok
	}
	for _, ns := range namespaces {
		attrs := authzv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: Group, Resource: resource}
		if ok, cached := k.allowed.Get(decisionKey(u, attrs)); cached {
			record(ns, ok, nil)
			continue
		}
		if err := k.sweepRate.Wait(ctx); err != nil {
			record(ns, false, busy("sweeping the namespaces the caller may %s %s in: %v", verb, resource, err))
			break
		}
		if err := acquire(ctx, k.sweepSlots); err != nil {
			record(ns, false, err)
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-k.sweepSlots; wg.Done() }()
			ok, err := k.review(ctx, u, attrs)
			record(ns, ok, err)
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return allowed, nil
}

func (v *visibility) missing(names []string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for _, ns := range names {
		if _, ok := v.allowed[ns]; !ok {
			out = append(out, ns)
		}
	}
	return out
}

func (v *visibility) merge(allowed map[string]bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for ns, ok := range allowed {
		v.allowed[ns] = ok
	}
}

// visible returns those of names allowed, sorted; never nil.
func (v *visibility) visible(names []string) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]string, 0, len(names))
	for _, ns := range names {
		if v.allowed[ns] {
			out = append(out, ns)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
