package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/annals-dev/annals/store/storetest"
)

// TestResponseCacheAnswersConcurrentRequestsOnce sends identical requests
// while the first is still running: they wait for it and take its answer,
// so the handler runs once. A request of another body runs on its own.
func TestResponseCacheAnswersConcurrentRequestsOnce(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	c, err := newResponseCache(1<<20, time.Minute, s, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var runs atomic.Int32
	h := c.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		runs.Add(1)
		<-release
		note := r.Context().Value(cacheNoteKey{}).(*cacheNote)
		note.kind, note.responses = ast.Query, 1
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":` + string(body) + `}`))
	}))
	do := func(body string) (string, string) {
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body)).WithContext(context.Background())
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Body.String(), rec.Header().Get("X-Annals-Cache")
	}
	const n = 6
	var wg sync.WaitGroup
	answers := make([]string, n)
	for i := range n {
		wg.Go(func() { answers[i], _ = do(`{"q":1}`) })
	}
	other := make(chan string, 1)
	go func() { a, _ := do(`{"q":2}`); other <- a }()
	// Wait until the first and the other body run and the rest wait.
	for runs.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	for {
		c.mu.Lock()
		waiting := len(c.inflight)
		c.mu.Unlock()
		if waiting == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the followers reach their wait; none may run meanwhile
	if got := runs.Load(); got != 2 {
		t.Fatalf("%d runs while the first was running, want 2 (one per body)", got)
	}
	close(release)
	wg.Wait()
	if a := <-other; a != `{"data":{"q":2}}` {
		t.Errorf("other body answered %q", a)
	}
	for i, a := range answers {
		if a != `{"data":{"q":1}}` {
			t.Errorf("request %d answered %q", i, a)
		}
	}
	if got := runs.Load(); got != 2 {
		t.Errorf("the handler ran %d times for %d identical requests and one other, want 2", got, n)
	}
}
