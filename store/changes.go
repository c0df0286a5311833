package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/annals-dev/annals/store/filter"
)

// Change says that a Record was written. Subscribers read the Record
// itself; the change carries only what is needed to route it.
type Change struct {
	UID       string `json:"u"`
	Namespace string `json:"n"`
}

// Key is the changed Record's namespace and uid.
func (c Change) Key() Key { return Key{c.Namespace, c.UID} }

// changeChannel is the PostgreSQL NOTIFY channel of Record writes.
const changeChannel = "annals_record_changes"

// SubscriberBuffer is how many changes may wait for one subscriber; a
// subscriber that falls further behind is dropped (its channel closed).
const SubscriberBuffer = 1024

// changeHub fans changes out to the subscribers of this process. On
// SQLite the store publishes after each commit; on PostgreSQL one LISTEN
// connection feeds it, so writes of every process (the watcher, other API
// replicas) reach every subscriber.
type changeHub struct {
	mu        sync.Mutex
	subs      map[chan Change]struct{}
	listening bool
	ready     chan struct{} // closed once the first LISTEN is in place
}

func (h *changeHub) publish(changes []Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		if !deliver(ch, changes) {
			// Too slow: drop it rather than let its backlog grow.
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// deliver queues changes for one subscriber without waiting; false when
// its buffer is full.
func deliver(ch chan Change, changes []Change) bool {
	for _, c := range changes {
		select {
		case ch <- c:
		default:
			return false
		}
	}
	return true
}

// Subscribe returns the Record changes of every writer from now on, until
// ctx ends or the subscriber falls SubscriberBuffer changes behind; then
// the channel is closed.
func (s *Store) Subscribe(ctx context.Context) (<-chan Change, error) {
	ch := make(chan Change, SubscriberBuffer)
	s.changes.mu.Lock()
	if s.changes.subs == nil {
		s.changes.subs = map[chan Change]struct{}{}
	}
	s.changes.subs[ch] = struct{}{}
	start := s.dialect == filter.Postgres && !s.changes.listening
	if start {
		s.changes.listening, s.changes.ready = true, make(chan struct{})
	}
	ready := s.changes.ready
	s.changes.mu.Unlock()
	if start {
		go s.listen(ready)
	}
	if ready != nil {
		// From the first LISTEN on, no committed write is missed.
		select {
		case <-ready:
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			slog.Warn("record change listener not up after 5s; subscribing anyway")
		}
	}
	go func() {
		<-ctx.Done()
		s.changes.mu.Lock()
		defer s.changes.mu.Unlock()
		if _, ok := s.changes.subs[ch]; ok {
			delete(s.changes.subs, ch)
			close(ch)
		}
	}()
	return ch, nil
}

// listen holds a LISTEN connection to PostgreSQL for the life of the
// store, reconnecting with backoff; changes missed while disconnected are
// lost to subscribers (they see the next ones).
func (s *Store) listen(ready chan struct{}) {
	backoff := 100 * time.Millisecond
	var once sync.Once
	for {
		err := s.listenOnce(func() { once.Do(func() { close(ready) }) })
		if errors.Is(err, errClosed) {
			return
		}
		slog.Warn("record change listener disconnected; reconnecting", "error", err, "in", backoff)
		time.Sleep(backoff)
		backoff = min(2*backoff, 10*time.Second)
	}
}

var errClosed = errors.New("store closed")

func (s *Store) listenOnce(listening func()) error {
	ctx := s.closing
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		if ctx.Err() != nil {
			return errClosed
		}
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+changeChannel); err != nil {
		return err
	}
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return errClosed
			}
			return err
		}
		var changes []Change
		if err := json.Unmarshal([]byte(n.Payload), &changes); err != nil {
			slog.Warn("ignoring a malformed record change notification", "error", err)
			continue
		}
		s.changes.publish(changes)
	}
}

// notifyBatch bounds one NOTIFY payload (PostgreSQL allows 8000 bytes; a
// change takes about 90).
const notifyBatch = 60

// announce tells subscribers about written Records: on PostgreSQL with
// NOTIFY inside tx, so that they hear of it only if it commits; on SQLite
// through after, which the caller runs once committed.
func (s *Store) announce(ctx context.Context, tx bun.IDB, recs []*Record) (after func(), err error) {
	changes := make([]Change, len(recs))
	for i, r := range recs {
		changes[i] = Change{UID: r.UID, Namespace: r.Namespace}
	}
	if s.dialect != filter.Postgres {
		return func() { s.changes.publish(changes) }, nil
	}
	for start := 0; start < len(changes); start += notifyBatch {
		payload, _ := json.Marshal(changes[start:min(start+notifyBatch, len(changes))])
		if _, err := tx.ExecContext(ctx, "SELECT pg_notify(?, ?)", changeChannel, string(payload)); err != nil {
			return nil, dbError(err)
		}
	}
	return func() {}, nil
}

// MatchingRecords returns those of the given Records that a listing with o
// would show (parent, namespaces, where and filter), in one statement: a
// subscription's view of a batch of changes.
func (s *Store) MatchingRecords(ctx context.Context, o ListOptions, keys []Key) ([]*Record, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	if len(keys) > MaxPageSize {
		return nil, fmt.Errorf("%w: at most %d records at once", ErrInvalidArgument, MaxPageSize)
	}
	o.keys, o.First, o.Last, o.After, o.Before = keys, len(keys), 0, "", ""
	page, err := s.ListRecords(ctx, o)
	if err != nil {
		return nil, err
	}
	return page.Items, nil
}
