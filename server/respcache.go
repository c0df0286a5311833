package server

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/annals-dev/annals/server/access"
	"github.com/annals-dev/annals/server/auth"
	"github.com/annals-dev/annals/store"
)

// DefaultResponseCacheBytes is --response-cache-bytes' default.
const DefaultResponseCacheBytes = 64 << 20

// defaultResponseCacheTTL bounds entries when there is no authorization
// (--auth=none): auth's own default decision TTL.
const defaultResponseCacheTTL = 10 * time.Second

// entryOverhead is what an entry costs beyond its body and strings: key,
// list element, map slot.
const entryOverhead = 256

// responseCache keeps the answers of GraphQL queries sent over HTTP, so
// that dashboards polling the same query are answered without executing
// it again. An answer is reused only for a request with the same body (or
// URL query), Accept and Content-Type, from the same identity as the
// authenticator gave it (user, uid, groups, extra; never the token), so
// that no caller is served what another may see. A Record change heard on
// the store's change feed drops the entries read from its namespace (as
// package access noted them) and those read from every namespace; any
// mutation and any write through the Tekton Results API of this process
// drop every entry. An entry also ends after the access decisions' TTL, so
// that it is never staler than the decisions it was built on (and writes
// of other processes that the feed does not carry, such as Result
// annotations, show within that time).
// Only answers with status 200 and no errors are kept.
type responseCache struct {
	max      int64 // bytes of all entries
	maxEntry int64 // bytes of one
	ttl      time.Duration
	now      func() time.Time
	store    *store.Store

	mu      sync.Mutex
	entries map[[32]byte]*list.Element // of *cacheEntry
	lru     *list.List                 // most recently used first
	used    int64
	// seq advances with every invalidation; an answer is kept only if
	// nothing it was read from changed since the seq it started at.
	seq     uint64
	allSeq  uint64            // of the last drop of every entry
	anySeq  uint64            // of the last change in any namespace
	nsSeq   map[string]uint64 // of the last change per namespace
	changes <-chan store.Change
	// inflight holds a channel per key being answered now, closed when the
	// answer is kept (or not): identical requests that arrive meanwhile
	// wait for it instead of running the same work at once.
	inflight map[[32]byte]chan struct{}

	hits, misses, evictions, invalidations prometheus.Counter
	bytes                                  prometheus.Gauge
}

type cacheEntry struct {
	key         [32]byte
	all         bool     // read from every namespace, or from unknown ones
	namespaces  []string // else the namespaces it was read from
	body        []byte
	contentType string
	operation   string
	cost        int
	hasCost     bool
	expires     time.Time
	size        int64
}

func newResponseCache(maxBytes int64, ttl time.Duration, s *store.Store, reg prometheus.Registerer) (*responseCache, error) {
	c := &responseCache{
		max: maxBytes, maxEntry: max(maxBytes/8, 1), ttl: ttl, now: time.Now, store: s,
		entries: map[[32]byte]*list.Element{}, lru: list.New(), inflight: map[[32]byte]chan struct{}{}, nsSeq: map[string]uint64{},
		hits: prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_response_cache_hits_total",
			Help: "GraphQL queries answered from the response cache."}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_response_cache_misses_total",
			Help: "GraphQL requests over HTTP the response cache did not answer (mutations included)."}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_response_cache_evictions_total",
			Help: "Response cache entries dropped for room or age."}),
		invalidations: prometheus.NewCounter(prometheus.CounterOpts{Name: "annals_response_cache_invalidations_total",
			Help: "Response cache entries dropped because runs changed (change feed, mutations, Tekton Results API writes)."}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "annals_response_cache_bytes",
			Help: "Bytes held by the response cache."}),
	}
	reg.MustRegister(c.hits, c.misses, c.evictions, c.invalidations, c.bytes)
	// For the life of the process, as the server itself: the store closes
	// the feed when it is closed.
	ch, err := s.Subscribe(context.Background())
	if err != nil {
		return nil, fmt.Errorf("subscribing the response cache to record changes: %w", err)
	}
	c.changes = ch
	return c, nil
}

// syncLocked applies the changes heard so far. It is called on every
// lookup and store rather than by a goroutine of its own, so that on
// SQLite, where a write publishes before it returns, a read that follows
// a write never finds an answer from before it. A feed that was dropped
// (it fell behind) is taken again and everything is dropped: changes in
// between are unknown.
func (c *responseCache) syncLocked() {
	changed := map[string]bool{}
	for {
		select {
		case ch, ok := <-c.changes:
			if !ok {
				if ch, err := c.store.Subscribe(context.Background()); err == nil {
					c.changes = ch
				} else {
					c.changes = nil // never ready: lookups keep missing until it is back
				}
				c.dropAllLocked()
				return
			}
			changed[ch.Namespace] = true
			continue
		default:
		}
		break
	}
	if len(changed) > 0 {
		c.dropNamespacesLocked(changed)
	}
}

// dropNamespacesLocked drops the entries read from a changed namespace,
// and those read from every namespace.
func (c *responseCache) dropNamespacesLocked(changed map[string]bool) {
	c.seq++
	c.anySeq = c.seq
	for ns := range changed {
		c.nsSeq[ns] = c.seq
	}
	for _, el := range c.entries {
		if e := el.Value.(*cacheEntry); e.all || slices.ContainsFunc(e.namespaces, func(ns string) bool { return changed[ns] }) {
			c.removeLocked(el)
			c.invalidations.Inc()
		}
	}
}

func (c *responseCache) dropAllLocked() {
	c.seq++
	c.allSeq, c.anySeq = c.seq, c.seq
	if len(c.entries) == 0 {
		return
	}
	c.invalidations.Add(float64(len(c.entries)))
	clear(c.entries)
	c.lru.Init()
	c.used = 0
	c.bytes.Set(0)
}

// invalidate drops every entry: a write went through this process.
func (c *responseCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropAllLocked()
}

func (c *responseCache) removeLocked(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.entries, e.key)
	c.used -= e.size
	c.bytes.Set(float64(c.used))
}

// get returns the live entry of key and the seq a miss computes its
// answer at.
func (c *responseCache) get(key [32]byte) (*cacheEntry, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.syncLocked()
	if c.changes == nil {
		// Retry the feed; until it is back nothing is served or kept.
		if ch, err := c.store.Subscribe(context.Background()); err == nil {
			c.changes = ch
		}
		c.seq++
		c.allSeq = c.seq
		return nil, c.seq
	}
	el, ok := c.entries[key]
	if !ok {
		return nil, c.seq
	}
	e := el.Value.(*cacheEntry)
	if !c.now().Before(e.expires) {
		c.removeLocked(el)
		c.evictions.Inc()
		return nil, c.seq
	}
	c.lru.MoveToFront(el)
	return e, c.seq
}

// join makes the caller the one answering key and returns nil, or returns
// a channel closed when the request answering it now is done.
func (c *responseCache) join(key [32]byte) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.inflight[key]; ok {
		return ch
	}
	c.inflight[key] = make(chan struct{})
	return nil
}

// leave ends the caller's answering of key, waking those that wait on it.
func (c *responseCache) leave(key [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.inflight[key])
	delete(c.inflight, key)
}

// put keeps e unless something it was read from changed since start (its
// answer may be from before the change), making room by dropping the least
// recently used.
func (c *responseCache) put(e *cacheEntry, start uint64) {
	e.size = int64(len(e.body)+len(e.contentType)+len(e.operation)) + entryOverhead
	if e.size > c.maxEntry {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.syncLocked()
	if c.allSeq > start || c.changes == nil || (e.all && c.anySeq > start) ||
		slices.ContainsFunc(e.namespaces, func(ns string) bool { return c.nsSeq[ns] > start }) {
		return
	}
	if el, ok := c.entries[e.key]; ok {
		c.removeLocked(el) // a concurrent miss of the same request
	}
	for c.used+e.size > c.max {
		c.removeLocked(c.lru.Back())
		c.evictions.Inc()
	}
	e.expires = c.now().Add(c.ttl)
	c.entries[e.key] = c.lru.PushFront(e)
	c.used += e.size
	c.bytes.Set(float64(c.used))
}

// cacheNote is what the GraphQL executor tells the cache about the
// request it ran: whether it was one query answered once without errors.
type cacheNote struct {
	mu        sync.Mutex
	reads     []*access.Reads // one per root field
	kind      ast.Operation
	responses int
	failed    bool
	operation string
	cost      int
	hasCost   bool
}

type cacheNoteKey struct{}

// cacheNoter is the GraphQL extension that fills the request's cacheNote.
type cacheNoter struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
	graphql.RootFieldInterceptor
} = cacheNoter{}

func (cacheNoter) ExtensionName() string                   { return "ResponseCacheNote" }
func (cacheNoter) Validate(graphql.ExecutableSchema) error { return nil }

func (cacheNoter) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	note, _ := ctx.Value(cacheNoteKey{}).(*cacheNote)
	if note == nil {
		return resp
	}
	note.mu.Lock()
	defer note.mu.Unlock()
	note.responses++
	if !graphql.HasOperationContext(ctx) || graphql.GetOperationContext(ctx).Operation == nil {
		note.failed = true
		return resp
	}
	oc := graphql.GetOperationContext(ctx)
	// The kind first: a mutation that failed may still have written.
	note.kind, note.operation = oc.Operation.Operation, oc.OperationName
	if resp == nil || len(resp.Errors) > 0 || resp.HasNext != nil {
		note.failed = true
		return resp
	}
	if note.operation == "" {
		note.operation = oc.Operation.Name
	}
	if stats := extension.GetComplexityStats(ctx); stats != nil {
		note.cost, note.hasCost = stats.Complexity, true
	}
	return resp
}

// InterceptRootField notes the namespaces each root field read from. A
// root field that made no access decision counts as reading every
// namespace (access.Reads.Scope).
func (cacheNoter) InterceptRootField(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
	note, _ := ctx.Value(cacheNoteKey{}).(*cacheNote)
	if note == nil {
		return next(ctx)
	}
	ctx, reads := access.WithReads(ctx)
	note.mu.Lock()
	note.reads = append(note.reads, reads)
	note.mu.Unlock()
	return next(ctx)
}

// scope is the namespaces the answer was read from: all, or those listed.
func (n *cacheNote) scope() (all bool, namespaces []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.reads) == 0 {
		return true, nil
	}
	for _, r := range n.reads {
		a, ns := r.Scope()
		if a {
			return true, nil
		}
		namespaces = append(namespaces, ns...)
	}
	slices.Sort(namespaces)
	return false, slices.Compact(namespaces)
}

// cacheable tells whether the executor answered one query without errors.
func (n *cacheNote) cacheable() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.kind == ast.Query && n.responses == 1 && !n.failed
}

func (n *cacheNote) mutation() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.kind == ast.Mutation
}

// middleware answers GraphQL requests over HTTP from the cache, and keeps
// the answers of queries. It runs after authentication and the body limit.
func (c *responseCache) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := c.keyOf(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		e, start := c.get(key)
		if e == nil {
			if answered := c.join(key); answered != nil {
				// The same request from the same caller is running: its
				// answer, once kept, is this one's too. If it is not kept
				// (an error, a change meanwhile), this one runs itself.
				select {
				case <-answered:
				case <-r.Context().Done():
				}
				e, start = c.get(key)
			} else {
				defer c.leave(key)
			}
		}
		if e != nil {
			c.hits.Inc()
			if info := requestInfoFrom(r.Context()); info != nil {
				info.note(e.operation)
				if e.hasCost {
					info.noteCost(e.cost)
				}
			}
			h := w.Header()
			h.Set("Content-Type", e.contentType)
			h.Set("X-Annals-Cache", "hit")
			w.WriteHeader(http.StatusOK)
			w.Write(e.body)
			return
		}
		c.misses.Inc()
		w.Header().Set("X-Annals-Cache", "miss")
		note := &cacheNote{}
		rec := &capturingWriter{ResponseWriter: w, limit: c.maxEntry}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), cacheNoteKey{}, note)))
		if note.mutation() {
			c.invalidate() // the mutation's own answer has been written: later reads see it
			return
		}
		if !note.cacheable() || rec.status != http.StatusOK || rec.overflow {
			return
		}
		all, namespaces := note.scope()
		c.put(&cacheEntry{key: key, body: rec.body.Bytes(), contentType: w.Header().Get("Content-Type"),
			operation: note.operation, cost: note.cost, hasCost: note.hasCost, all: all, namespaces: namespaces}, start)
	})
}

// invalidateAfterWrites drops every entry after a request of the Tekton
// Results API that may write (REST methods other than GET and HEAD, gRPC
// methods other than Get and List), so that this process's own writes,
// Results' included, which the change feed does not carry, are seen at once.
func (c *responseCache) invalidateAfterWrites(grpc bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		write := r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions
		if grpc {
			method := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
			write = !strings.HasPrefix(method, "Get") && !strings.HasPrefix(method, "List")
		}
		next.ServeHTTP(w, r)
		if write {
			c.invalidate()
		}
	})
}

// keyOf derives the cache key of a GraphQL request over HTTP: a POST of
// application/json or a GET, by the caller's identity and everything the
// answer depends on. A POST's body is read here and put back.
func (c *responseCache) keyOf(r *http.Request) ([32]byte, bool) {
	var key [32]byte
	h := sha256.New()
	switch r.Method {
	case http.MethodPost:
		media, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || media != "application/json" {
			return key, false
		}
		body, err := io.ReadAll(r.Body)
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), errorReader{err}), r.Body}
		if err != nil {
			return key, false // too large, or cut: the handler reports it
		}
		writeField(h, "POST")
		writeField(h, r.Header.Get("Content-Type"))
		writeField(h, string(body))
	case http.MethodGet:
		if r.URL.Query().Get("query") == "" {
			return key, false
		}
		writeField(h, "GET")
		writeField(h, r.URL.RawQuery)
	default:
		return key, false
	}
	writeField(h, r.Header.Get("Accept"))
	writeIdentity(h, auth.UserFrom(r.Context()))
	h.Sum(key[:0])
	return key, true
}

// writeIdentity adds to h everything access decisions depend on, as
// auth's decision keys do: name, uid, groups in order, extra by key.
func writeIdentity(h hash.Hash, u *auth.User) {
	if u == nil {
		writeField(h, "\x00anonymous")
		return
	}
	writeField(h, "user")
	writeField(h, u.Name)
	writeField(h, u.UID)
	writeCount(h, len(u.Groups))
	for _, g := range u.Groups {
		writeField(h, g)
	}
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	writeCount(h, len(keys))
	for _, k := range keys {
		writeField(h, k)
		writeCount(h, len(u.Extra[k]))
		for _, v := range u.Extra[k] {
			writeField(h, v)
		}
	}
}

// writeField writes s length-first, so that no two sequences of fields
// hash alike by shifting bytes from one field to the next.
func writeField(h hash.Hash, s string) {
	writeCount(h, len(s))
	io.WriteString(h, s)
}

func writeCount(h hash.Hash, n int) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	h.Write(b[:])
}

// errorReader ends a body put back with the error reading it gave.
type errorReader struct{ err error }

func (e errorReader) Read([]byte) (int, error) {
	if e.err == nil {
		return 0, io.EOF
	}
	return 0, e.err
}

// capturingWriter passes a response on and keeps a copy of its body, up
// to limit bytes (past it, nothing is kept).
type capturingWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	body        bytes.Buffer
	limit       int64
	overflow    bool
}

func (c *capturingWriter) WriteHeader(code int) {
	if !c.wroteHeader {
		c.wroteHeader, c.status = true, code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *capturingWriter) Write(b []byte) (int, error) {
	if !c.wroteHeader {
		c.wroteHeader, c.status = true, http.StatusOK
	}
	if !c.overflow {
		if int64(c.body.Len()+len(b)) > c.limit {
			c.overflow = true
			c.body = bytes.Buffer{}
		} else {
			c.body.Write(b)
		}
	}
	return c.ResponseWriter.Write(b)
}

func (c *capturingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
