package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/server/auth"
)

// reviewCounter counts the TokenReviews and SubjectAccessReviews a server
// sends to the real API server, and the most access reviews in flight at
// once, by wrapping the transport of its clients.
type reviewCounter struct {
	tokenReviews, accessReviews atomic.Int64
	inFlight, maxInFlight       atomic.Int64
}

func (c *reviewCounter) RoundTrip(next http.RoundTripper, r *http.Request) (*http.Response, error) {
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/tokenreviews"):
		c.tokenReviews.Add(1)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/subjectaccessreviews"):
		c.accessReviews.Add(1)
		n := c.inFlight.Add(1)
		defer c.inFlight.Add(-1)
		for m := c.maxInFlight.Load(); n > m && !c.maxInFlight.CompareAndSwap(m, n); m = c.maxInFlight.Load() {
		}
	}
	return next.RoundTrip(r)
}

func (c *reviewCounter) reset() {
	c.tokenReviews.Store(0)
	c.accessReviews.Store(0)
	c.maxInFlight.Store(0)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// countedServer serves w's store with authentication through clients of
// its own (as 'annals serve' makes them), counted by the returned counter.
func (w *authWorld) countedServer(t *testing.T, o auth.Options, cfg server.Config) (string, *reviewCounter) {
	t.Helper()
	counter := &reviewCounter{}
	rc := rest.CopyConfig(w.env.Config)
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) { return counter.RoundTrip(rt, r) })
	}
	authz, err := auth.NewKubernetesForConfig(rc, o)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Logger, cfg.Auth = w.store, quiet, authz
	ts := httptest.NewServer(server.New(cfg))
	t.Cleanup(ts.Close)
	return ts.URL, counter
}

type timedResponse struct {
	status   int
	header   http.Header
	body     gqlResponse
	duration time.Duration
}

// postAs sends a GraphQL request with a bearer token ("" none) to url.
func postAs(t *testing.T, url, token, query string, vars map[string]any) timedResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return timedResponse{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := timedResponse{status: resp.StatusCode, header: resp.Header, duration: time.Since(start)}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		t.Errorf("status %d, body %q", resp.StatusCode, raw)
	}
	return out
}

// p95 of a set of latencies.
func p95(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[(len(ds)*95+99)/100-1]
}

// withinRatio fails unless the p95 under attack is within 3x of the calm
// one, or under floor: CI machines are busy, tiny numbers jitter.
// victimFloor is the latency under which a victim is never said to be
// slowed: on a busy 2-core CI machine running the race detector beside the
// API server, scheduling alone moves a few-millisecond request by this much.
const victimFloor = 250 * time.Millisecond

func withinRatio(t *testing.T, what string, calm, attacked []time.Duration, floor time.Duration) {
	t.Helper()
	c, a := p95(calm), p95(attacked)
	worst := slices.Clone(attacked)
	slices.Sort(worst)
	t.Logf("%s: p95 calm %v, under attack %v (%d requests; slowest %v)", what, c, a, len(attacked), worst[max(0, len(worst)-5):])
	if a > max(3*c, floor) {
		t.Errorf("%s: p95 %v under attack, %v calm: more than 3x (and over %v)", what, a, c, floor)
	}
}

// victimLoop sends query as token until stop is closed (at least min
// times) and returns the latencies; every answer must be a success.
func victimLoop(t *testing.T, url, token, query string, min int, stop <-chan struct{}) []time.Duration {
	return victimLoopWith(t, url, token, func(int) (string, map[string]any) { return query, nil }, "", min, stop)
}

// freshQuestion is a victim's request that needs a SubjectAccessReview of
// its own each time (a namespace never asked about: a denial), beside one
// that is cached: it waits for the API server whenever the server's access
// reviews wait.
func freshQuestion(i int) (string, map[string]any) {
	return `query($n: String!) { results(parent: "ci") { totalCount } result(name: $n) { name } }`,
		map[string]any{"n": fmt.Sprintf("victim-%d-%d/results/0f0f0f0f-0000-4000-8000-000000000000", i, time.Now().UnixNano())}
}

// victimLoopWith is victimLoop with a request per iteration and the code
// every answer must have ("" success).
func victimLoopWith(t *testing.T, url, token string, request func(int) (string, map[string]any), code string, min int, stop <-chan struct{}) []time.Duration {
	var out []time.Duration
	for i := 0; ; i++ {
		select {
		case <-stop:
			if i >= min {
				return out
			}
		default:
		}
		query, vars := request(i)
		r := postAs(t, url, token, query, vars)
		if r.status != http.StatusOK || r.body.code() != code {
			t.Errorf("victim: status %d, code %q, want %q: %+v", r.status, r.body.code(), code, r.body.Errors)
		}
		out = append(out, r.duration)
	}
}

// TestBogusTokenFloodDoesNotDelayKnownCallers: 300 requests with made-up
// tokens, 16 at a time, while a caller with a good token keeps asking (its
// token and decisions expiring every second, so it needs the API server
// too). Its p95 must stay within 3x of calm; the flood is refused 429 once
// past its address's budget (or, without one, once new tokens are checked
// as fast as they may be).
func TestBogusTokenFloodDoesNotDelayKnownCallers(t *testing.T) {
	w := setupAuthWorld(t)
	for _, c := range []struct {
		name string
		cfg  server.Config
	}{
		{"per-address limit", server.Config{}},
		{"no per-address limit: new-token checks bounded on their own", server.Config{UnauthenticatedRate: -1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			url, counter := w.countedServer(t, auth.Options{CacheTTL: time.Second}, c.cfg)
			query := `{ results(parent: "ci") { totalCount } }`
			calm := victimLoopWith(t, url, w.tokens["alice"], freshQuestion, "PERMISSION_DENIED", 40, closed())
			counter.reset()
			stop := make(chan struct{})
			var attacked []time.Duration
			var victimDone sync.WaitGroup
			victimDone.Add(1)
			go func() {
				defer victimDone.Done()
				attacked = victimLoopWith(t, url, w.tokens["alice"], freshQuestion, "PERMISSION_DENIED", 40, stop)
			}()
			var next atomic.Int64
			statuses := make([]atomic.Int64, 600)
			var flood sync.WaitGroup
			for range 16 {
				flood.Add(1)
				go func() {
					defer flood.Done()
					for i := next.Add(1); i <= 300; i = next.Add(1) {
						r := postAs(t, url, fmt.Sprintf("made-up-token-%d", i), query, nil)
						statuses[r.status].Add(1)
						if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") == "" {
							t.Errorf("429 without Retry-After")
						}
					}
				}()
			}
			flood.Wait()
			close(stop)
			victimDone.Wait()
			t.Logf("flood: %d answered 401, %d 429; %d TokenReviews sent", statuses[401].Load(), statuses[429].Load(), counter.tokenReviews.Load())
			if statuses[401].Load()+statuses[429].Load() != 300 {
				t.Errorf("flood answers: 401 %d, 429 %d, want 300 in all", statuses[401].Load(), statuses[429].Load())
			}
			withinRatio(t, "known caller during a bogus-token flood", calm, attacked, victimFloor)
		})
	}
}

func closed() chan struct{} { c := make(chan struct{}); close(c); return c }

// TestRejectedTokensAreRemembered: a rejected token is answered from memory
// the second time (no TokenReview), by its hash.
func TestRejectedTokensAreRemembered(t *testing.T) {
	w := setupAuthWorld(t)
	url, counter := w.countedServer(t, auth.Options{}, server.Config{})
	for i := range 2 {
		r := postAs(t, url, "a-bogus-token", `{ results(parent: "ci") { totalCount } }`, nil)
		if r.status != http.StatusUnauthorized || r.body.code() != "UNAUTHENTICATED" {
			t.Fatalf("request %d: status %d code %q", i, r.status, r.body.code())
		}
	}
	if n := counter.tokenReviews.Load(); n != 1 {
		t.Errorf("%d TokenReviews for the same bogus token twice, want 1", n)
	}
}

// TestPerClientLimits: past its budget a client is answered 429 with
// Retry-After; known callers are counted by name, others by address, so
// neither spends the other's budget.
func TestPerClientLimits(t *testing.T) {
	w := setupAuthWorld(t)
	url, _ := w.countedServer(t, auth.Options{}, server.Config{ClientRate: 1, ClientBurst: 5, UnauthenticatedRate: 1, UnauthenticatedBurst: 5})
	query := `{ results(parent: "ci") { totalCount } }`
	send := func(token string, n int) (ok, limited int) {
		for range n {
			r := postAs(t, url, token, query, nil)
			switch r.status {
			case http.StatusTooManyRequests:
				limited++
				if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
					t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
				}
				if r.body.code() != "RESOURCE_EXHAUSTED" || !strings.Contains(r.body.Errors[0].Message, "the limit is 1 per second") {
					t.Errorf("429 body: %+v", r.body.Errors)
				}
			default:
				ok++
			}
		}
		return ok, limited
	}
	// Each one's first request is by address: its token is not known yet.
	send(w.tokens["alice"], 1)
	send(w.tokens["bob"], 1)
	if ok, limited := send(w.tokens["alice"], 10); ok < 5 || ok > 7 || limited == 0 {
		t.Errorf("alice: %d served, %d limited; want about 5 served (the burst), the rest 429", ok, limited)
	}
	if ok, _ := send(w.tokens["bob"], 3); ok != 3 {
		t.Errorf("bob was limited for alice's requests: %d of 3 served", ok)
	}
	if ok, limited := send("", 10); ok < 3 || ok > 5 || limited < 5 {
		t.Errorf("no credentials: %d answered, %d limited; want about 3 (the burst of 5 less alice's and bob's first), the rest 429", ok, limited)
	}
	if ok, _ := send(w.tokens["bob"], 2); ok != 2 {
		t.Errorf("bob was limited for anonymous requests from the same address: %d of 2 served", ok)
	}
}

// entities is a representations list of Records by name, one per namespace
// of names.
func entities(namespaces []string) []any {
	out := make([]any, len(namespaces))
	for i, ns := range namespaces {
		out[i] = map[string]any{"__typename": "Record", "name": fmt.Sprintf("%s/results/0d0d0d0d-0000-4000-8000-%012d/records/0d0d0d0d-0000-4000-8000-%012d", ns, i, i)}
	}
	return out
}

func namespacesNamed(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}

const entitiesQuery = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Record { name } } }`

// TestEntitiesAreBounded: _entities takes at most --max-representations
// references, counts them in the cost, decides each question once per
// request with a bounded number of reviews in flight, and a caller flooding
// it does not slow another's cheap query.
func TestEntitiesAreBounded(t *testing.T) {
	w := setupAuthWorld(t)
	url, counter := w.countedServer(t, auth.Options{}, server.Config{MaxComplexity: 5000})

	t.Run("over the cap: refused before any review, naming the limit", func(t *testing.T) {
		counter.reset()
		r := postAs(t, url, w.tokens["carol"], entitiesQuery, map[string]any{"r": entities(namespacesNamed("cap", 2000))})
		if r.body.code() != "INVALID_ARGUMENT" || !strings.Contains(r.body.Errors[0].Message, "the limit is 100") {
			t.Fatalf("code %q (%d errors): %+v", r.body.code(), len(r.body.Errors), r.body.Errors[:min(1, len(r.body.Errors))])
		}
		if n := counter.accessReviews.Load(); n != 0 {
			t.Errorf("%d SubjectAccessReviews for a refused request", n)
		}
	})
	t.Run("counted in the cost", func(t *testing.T) {
		// 100 references of 60 fields each cost over 5,000.
		var sel strings.Builder
		for i := range 60 {
			fmt.Fprintf(&sel, " f%d: name", i)
		}
		r := postAs(t, url, w.tokens["carol"], `query($r: [_Any!]!) { _entities(representations: $r) { ... on Record {`+sel.String()+` } } }`,
			map[string]any{"r": entities(namespacesNamed("cost", 100))})
		if r.body.code() != "COMPLEXITY_LIMIT_EXCEEDED" {
			t.Errorf("code %q: %+v", r.body.code(), r.body.Errors)
		}
	})
	t.Run("one review per namespace, a few at a time", func(t *testing.T) {
		counter.reset()
		r := postAs(t, url, w.tokens["carol"], entitiesQuery, map[string]any{"r": entities(namespacesNamed("spread", 100))})
		if r.body.code() != "PERMISSION_DENIED" {
			t.Fatalf("code %q", r.body.code())
		}
		if n := counter.accessReviews.Load(); n != 100 {
			t.Errorf("%d SubjectAccessReviews for 100 namespaces, want 100", n)
		}
		if m := counter.maxInFlight.Load(); m > int64(auth.DefaultReviewsPerRequest) {
			t.Errorf("%d reviews in flight at once for one request, want at most %d", m, auth.DefaultReviewsPerRequest)
		}
	})
	t.Run("a question is asked once per request, whichever path asks it", func(t *testing.T) {
		// (server/auth's TestDecisionMemoOutlivesTheCache shows the memo
		// holds even when the shared cache forgets mid-request.)
		url, counter := w.countedServer(t, auth.Options{}, server.Config{})
		reps := entities(slices.Repeat([]string{"ci"}, 50))
		reps = append(reps, map[string]any{"__typename": "Record", "name": w.names["ci-record"]})
		r := postAs(t, url, w.tokens["alice"], `query($r: [_Any!]!, $rec: String!, $ids: [ID!]!) {
			_entities(representations: $r) { ... on Record { name } }
			record(name: $rec) { name taskRun { pipelineRun { name } } }
			nodes(ids: $ids) { ... on Record { name } }
		}`, map[string]any{"r": reps, "rec": w.names["ci-record"], "ids": []string{nodeID("Record", w.names["ci-record"])}})
		if r.body.code() != "" {
			t.Fatalf("%+v", r.body.Errors)
		}
		// (ci, records, get) once; the TaskRun's pipelineRun asks the same.
		if n := counter.accessReviews.Load(); n != 1 {
			t.Errorf("%d SubjectAccessReviews, want 1", n)
		}
	})
	t.Run("a caller sending the largest batches does not slow another", func(t *testing.T) {
		url, _ := w.countedServer(t, auth.Options{CacheTTL: time.Second}, server.Config{})
		calm := victimLoopWith(t, url, w.tokens["alice"], freshQuestion, "PERMISSION_DENIED", 30, closed())
		stop := make(chan struct{})
		var attacked []time.Duration
		var done sync.WaitGroup
		done.Add(1)
		go func() {
			defer done.Done()
			attacked = victimLoopWith(t, url, w.tokens["alice"], freshQuestion, "PERMISSION_DENIED", 30, stop)
		}()
		// As reported: 2,000 references in 2,000 namespaces, then as many
		// as allowed, in namespaces never asked about, request after request.
		postAs(t, url, w.tokens["carol"], entitiesQuery, map[string]any{"r": entities(namespacesNamed("big", 2000))})
		for i := range 10 {
			postAs(t, url, w.tokens["carol"], entitiesQuery, map[string]any{"r": entities(namespacesNamed(fmt.Sprintf("batch-%d", i), 100))})
		}
		close(stop)
		done.Wait()
		withinRatio(t, "cheap query while another caller sends the largest _entities batches", calm, attacked, victimFloor)
	})
}

// TestAllNamespacesForRestrictedCaller: a caller without cluster-wide list
// asks for parent "-" over many namespaces holding Results. The first
// request sweeps them (once, a bounded number at a time), later ones answer
// from the kept decisions with no review, a namespace granted since shows up
// after the background refresh, and another caller's checks do not slow
// down meanwhile. ANNALS_AUTH_SWEEP_NAMESPACES sets how many (default 300).
func TestAllNamespacesForRestrictedCaller(t *testing.T) {
	w := setupAuthWorld(t)
	ctx := context.Background()
	n := 300
	if v, err := strconv.Atoi(os.Getenv("ANNALS_AUTH_SWEEP_NAMESPACES")); err == nil && v > 0 {
		n = v
	}
	spread := namespacesNamed("sweep", n)
	for i, ns := range spread {
		if _, err := w.store.CreateResult(ctx, ns, fmt.Sprintf("0e0e0e0e-0000-4000-8000-%012d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Each restricted caller may list in the first three, and later in a fourth.
	for _, ns := range spread[:4] {
		if _, err := w.env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
	restricted := []string{"sweeper"}
	for i := 2; i <= 8; i++ {
		restricted = append(restricted, fmt.Sprintf("sweeper%d", i))
	}
	for _, name := range restricted {
		w.tokens[name] = w.serviceAccount(t, "ci", name, "annals-test-viewer", spread[0])
		for _, ns := range spread[1:3] {
			w.serviceAccount(t, "ci", name, "annals-test-viewer", ns)
		}
	}
	url, counter := w.countedServer(t, auth.Options{CacheTTL: time.Second, NamespaceCacheTTL: 4 * time.Second}, server.Config{})
	query := `{ results(parent: "-") { totalCount } }`
	count := func(r timedResponse) int {
		var out struct{ Results struct{ TotalCount int } }
		json.Unmarshal(r.body.Data, &out)
		return out.Results.TotalCount
	}

	counter.reset()
	first := postAs(t, url, w.tokens["sweeper"], query, nil)
	if first.body.code() != "" || count(first) != 3 {
		t.Fatalf("first: %+v %s", first.body.Errors, first.body.Data)
	}
	firstReviews, firstMax := counter.accessReviews.Load(), counter.maxInFlight.Load()
	// The cluster-wide question, then one per namespace: ci, prod and the n.
	if firstReviews < int64(n) || firstReviews > int64(n)+3 {
		t.Errorf("first request: %d SubjectAccessReviews for %d namespaces", firstReviews, n)
	}
	if firstMax > int64(auth.DefaultNamespaceSweepConcurrency) {
		t.Errorf("%d reviews in flight at once, want at most %d", firstMax, auth.DefaultNamespaceSweepConcurrency)
	}
	time.Sleep(1100 * time.Millisecond) // past --auth-cache-ttl: every single decision expired
	counter.reset()
	second := postAs(t, url, w.tokens["sweeper"], query, nil)
	if second.body.code() != "" || count(second) != 3 {
		t.Fatalf("second: %+v %s", second.body.Errors, second.body.Data)
	}
	// Only the cluster-wide question may be asked again.
	if n := counter.accessReviews.Load(); n > 1 {
		t.Errorf("second request: %d SubjectAccessReviews, want at most 1", n)
	}
	t.Logf("%d namespaces: first request %v (%d reviews, %d at most in flight), second %v", n, first.duration, firstReviews, firstMax, second.duration)

	t.Run("a namespace granted later shows up after the background refresh", func(t *testing.T) {
		w.serviceAccount(t, "ci", "sweeper", "annals-test-viewer", spread[3])
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := postAs(t, url, w.tokens["sweeper"], query, nil)
			if r.body.code() != "" {
				t.Fatalf("%+v", r.body.Errors)
			}
			if count(r) == 4 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still %d namespaces after 30 s", count(r))
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("other callers are not slowed by first sweeps", func(t *testing.T) {
		victim := func(min int, stop <-chan struct{}) []time.Duration {
			return victimLoopWith(t, url, w.tokens["alice"], freshQuestion, "PERMISSION_DENIED", min, stop)
		}
		calm := victim(30, closed())
		stop := make(chan struct{})
		var attacked []time.Duration
		var done sync.WaitGroup
		done.Add(1)
		go func() { defer done.Done(); attacked = victim(30, stop) }()
		// Seven restricted callers' first requests, one after another: the
		// sweeps' burst, then sweeps at their paced rate.
		for _, name := range restricted[1:] {
			if r := postAs(t, url, w.tokens[name], query, nil); count(r) != 3 {
				t.Errorf("%s: %+v %s", name, r.body.Errors, r.body.Data)
			}
		}
		close(stop)
		done.Wait()
		withinRatio(t, "single checks during first sweeps", calm, attacked, victimFloor)
	})
}
