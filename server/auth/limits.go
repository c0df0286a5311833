package auth

import (
	"context"
	"fmt"
	"sync"
)

// The work authentication and authorization may cause is bounded at every
// level, so that nobody, with or without credentials, can make the server
// queue other callers' checks behind theirs:
//
//   - TokenReviews of tokens not seen before run a few at a time (and wait
//     only briefly for a turn); tokens already accepted never wait for them.
//   - Within one request each question is asked once (a decision memo) and
//     at most a few SubjectAccessReviews are in flight.
//   - One caller has at most a few SubjectAccessReviews in flight across all
//     its requests.
//   - Namespace sweeps for "-" share one bounded pool of their own.

// busy is the refusal given when a bounded resource stayed full past the
// time a request may wait for it; it is answered 429 with Retry-After.
func busy(format string, args ...any) error {
	return &Error{"RESOURCE_EXHAUSTED", fmt.Sprintf(format, args...)}
}

// ErrBusy matches every refusal for want of capacity (errors.Is).
var ErrBusy = &Error{"RESOURCE_EXHAUSTED", "busy"}

// acquire takes a slot of sem, or gives up when ctx ends.
func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return busy("waited for a turn to check access until the request's deadline: the server is checking too much for this caller at once; retry later")
	}
}

// requestScope is the authorization state of one GraphQL operation (or one
// HTTP request): the answer to each question asked in it, and the slots that
// bound how many SubjectAccessReviews it has in flight.
type requestScope struct {
	mu        sync.Mutex
	decisions map[string]*memoEntry
	slots     chan struct{}
}

type memoEntry struct {
	done    chan struct{}
	allowed bool
	err     error
}

type scopeKey struct{}

// WithRequestScope returns ctx with a fresh decision memo: every question
// asked under it (namespace, resource, verb) is sent to the API server at
// most once, whichever path asks it, and at most perRequest reviews of it
// are in flight together. Give one to each query or mutation, never to a
// subscription, whose access must be decided anew as rights change.
func WithRequestScope(ctx context.Context, perRequest int) context.Context {
	if perRequest <= 0 {
		perRequest = DefaultReviewsPerRequest
	}
	return context.WithValue(ctx, scopeKey{}, &requestScope{decisions: map[string]*memoEntry{}, slots: make(chan struct{}, perRequest)})
}

func scopeFrom(ctx context.Context) *requestScope {
	s, _ := ctx.Value(scopeKey{}).(*requestScope)
	return s
}

// memo returns the answer to key in this scope, computing it with decide
// the first time; concurrent askers of the same key wait for the first.
func (s *requestScope) memo(ctx context.Context, key string, decide func() (bool, error)) (bool, error) {
	s.mu.Lock()
	e, found := s.decisions[key]
	if !found {
		e = &memoEntry{done: make(chan struct{})}
		s.decisions[key] = e
	}
	s.mu.Unlock()
	if found {
		select {
		case <-e.done:
			return e.allowed, e.err
		case <-ctx.Done():
			return false, fmt.Errorf("waiting for an access decision: %w", ctx.Err())
		}
	}
	e.allowed, e.err = decide()
	close(e.done)
	return e.allowed, e.err
}

// userGates bounds the SubjectAccessReviews in flight per caller, across
// all of that caller's requests.
type userGates struct {
	mu    sync.Mutex
	size  int
	gates map[string]*userGate
}

type userGate struct {
	slots chan struct{}
	users int // holders and waiters; the gate is dropped at zero
}

func newUserGates(size int) *userGates {
	return &userGates{size: size, gates: map[string]*userGate{}}
}

// acquire takes one of user's slots; release gives it back.
func (g *userGates) acquire(ctx context.Context, user string) (release func(), err error) {
	g.mu.Lock()
	gate := g.gates[user]
	if gate == nil {
		gate = &userGate{slots: make(chan struct{}, g.size)}
		g.gates[user] = gate
	}
	gate.users++
	g.mu.Unlock()
	done := func() {
		g.mu.Lock()
		if gate.users--; gate.users == 0 {
			delete(g.gates, user)
		}
		g.mu.Unlock()
	}
	if err := acquire(ctx, gate.slots); err != nil {
		done()
		return nil, err
	}
	return func() { <-gate.slots; done() }, nil
}
