package server

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// A known caller has at most ClientConcurrency requests in flight; the next
// is refused 429 with Retry-After, other callers and WebSockets are not
// counted against it, and a finished request frees its place.
func TestClientConcurrency(t *testing.T) {
	release := make(chan struct{})
	var started sync.WaitGroup
	blocking := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Done()
		<-release
	})
	identify := func(r *http.Request) (string, bool) { return r.Header.Get("X-Caller"), true }
	h := newClientLimits(identify, Config{ClientConcurrency: 2}).middleware(blocking)
	send := func(caller string, header http.Header) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		req.Header.Set("X-Caller", caller)
		for k, v := range header {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	var done sync.WaitGroup
	for range 2 {
		started.Add(1)
		done.Add(1)
		go func() { defer done.Done(); send("alice", nil) }()
	}
	started.Wait()
	if rec := send("alice", nil); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Errorf("third request in flight: %d %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	started.Add(2)
	go send("bob", nil)
	go send("alice", http.Header{"Upgrade": {"websocket"}})
	started.Wait() // both got through while alice had two in flight
	close(release)
	done.Wait()
	started.Add(1)
	if rec := send("alice", nil); rec.Code != http.StatusOK {
		t.Errorf("after the others finished: %d", rec.Code)
	}
}

func TestClientAddress(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.7:4444":              "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:4444": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:80":   "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:4444":     "::ffff:192.0.2.7",
		"not-an-address":              "not-an-address",
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		if got := clientAddress(r); got != want {
			t.Errorf("clientAddress(%q) = %q, want %q", remote, got, want)
		}
	}
}
