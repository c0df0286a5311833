package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/annals-dev/annals/store/filter"
)

// Change says that a Record was written or deleted. Subscribers read a
// written Record itself; the change carries only what is needed to route
// it. A deleted Record is gone, so its change also carries its name and
// data type (never its data).
type Change struct {
	UID       string `json:"u"`
	Namespace string `json:"n"`
	Deleted   bool   `json:"d,omitempty"`
	Name      string `json:"m,omitempty"` // deletes only
	DataType  string `json:"t,omitempty"` // deletes only
}

// Key is the changed Record's namespace and uid.
func (c Change) Key() Key { return Key{c.Namespace, c.UID} }

// changeChannelSQL names the PostgreSQL NOTIFY channel of Record writes:
// one per schema, because NOTIFY reaches every session of the database,
// and stores in other schemas of it (other installations, tests) must not
// hear each other's writes.
const changeChannelSQL = "'annals_changes_' || md5(current_schema())"

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
	var channel string
	if err := conn.QueryRow(ctx, "SELECT "+changeChannelSQL).Scan(&channel); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
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

// notifyLimit bounds one NOTIFY payload: PostgreSQL allows 8000 bytes.
const notifyLimit = 7500

// announce tells subscribers about written Records: on PostgreSQL with
// NOTIFY inside tx, so that they hear of it only if it commits; on SQLite
// through after, which the caller runs once committed.
func (s *Store) announce(ctx context.Context, tx bun.IDB, recs []*Record) (after func(), err error) {
	changes := make([]Change, len(recs))
	for i, r := range recs {
		changes[i] = Change{UID: r.UID, Namespace: r.Namespace}
	}
	return s.announceChanges(ctx, tx, changes)
}

func (s *Store) announceChanges(ctx context.Context, tx bun.IDB, changes []Change) (after func(), err error) {
	if s.dialect != filter.Postgres {
		return func() { s.changes.publish(changes) }, nil
	}
	for _, payload := range notifyPayloads(changes) {
		if _, err := tx.ExecContext(ctx, "SELECT pg_notify("+changeChannelSQL+", ?)", payload); err != nil {
			return nil, dbError(err)
		}
	}
	return func() {}, nil
}

// notifyPayloads packs changes into JSON arrays of at most notifyLimit bytes.
func notifyPayloads(changes []Change) []string {
	var out []string
	batch := []byte{'['}
	for _, c := range changes {
		one, _ := json.Marshal(c)
		if len(batch) > 1 && len(batch)+len(one)+1 > notifyLimit {
			out = append(out, string(append(batch, ']')))
			batch = []byte{'['}
		}
		if len(batch) > 1 {
			batch = append(batch, ',')
		}
		batch = append(batch, one...)
	}
	if len(batch) > 1 {
		out = append(out, string(append(batch, ']')))
	}
	return out
}

// deletedRecords reads, inside the deleting transaction and before the
// delete, the Records a delete will remove (also by cascade from their
// Result), as the changes that announce them.
func deletedRecords(ctx context.Context, tx bun.IDB, cond string, args ...any) ([]Change, error) {
	var rows []struct {
		Namespace string `bun:"namespace"`
		UID       string `bun:"uid"`
		Name      string `bun:"name"`
		DataType  string `bun:"data_type"`
	}
	if err := tx.NewSelect().TableExpr("records AS r").ColumnExpr("r.namespace, r.uid, r.name, r.data_type").
		Where(cond, args...).Scan(ctx, &rows); err != nil {
		return nil, dbError(err)
	}
	changes := make([]Change, len(rows))
	for i, r := range rows {
		changes[i] = Change{UID: r.UID, Namespace: r.Namespace, Deleted: true, Name: r.Name, DataType: r.DataType}
	}
	return changes, nil
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

// DeletedMatches tells whether a listing with o could have shown the
// deleted Record of c, from what a delete leaves: its namespace, name and
// data type. Conditions on anything else (status, labels, a CEL filter)
// cannot be tested any more and let it pass; the caller still checks access.
func DeletedMatches(o ListOptions, c Change) bool {
	if !c.Deleted {
		return false
	}
	if o.Parent != "" && o.Parent != "-" && c.Namespace != o.Parent {
		return false
	}
	if o.Namespaces != nil && !slices.Contains(o.Namespaces, c.Namespace) {
		return false
	}
	if o.ResultName != "" && !strings.HasPrefix(c.Name, o.ResultName+"/records/") {
		return false
	}
	w := o.RecordWhere
	if w == nil {
		return true
	}
	if w.Namespace != nil && *w.Namespace != c.Namespace {
		return false
	}
	if len(w.DataTypes) > 0 && !slices.Contains(w.DataTypes, c.DataType) {
		return false
	}
	if len(w.Kinds) > 0 && !slices.ContainsFunc(w.Kinds, func(k string) bool { return slices.Contains(filter.RunKinds[k], c.DataType) }) {
		return false
	}
	return true
}
