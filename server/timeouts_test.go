package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/annals-dev/annals/graph"
	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// Regular expressions outside RE2 (back-references: exponential on
// PostgreSQL) are refused on both databases, saying why; RE2 ones run on
// PostgreSQL; each costs graph.RegexCost.
func TestRegexFilters(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		for _, c := range []struct{ name, filter, code, says string }{
			{"back-references", `name.matches('^(.*)(.*)(.*)(.*)(.*)(.*)\\6\\5\\4\\3\\2\\1$')`, "INVALID_ARGUMENT", "not RE2"},
			{"look-ahead", `data.metadata.name.matches('build(?=-web)')`, "INVALID_ARGUMENT", "not RE2"},
			{"too many repetitions for PostgreSQL", `name.matches('a{300}')`, "INVALID_ARGUMENT", "the limit is 255"},
		} {
			t.Run(c.name, func(t *testing.T) {
				ctx, statements := store.CountStatements(context.Background())
				r := post(t, ctx, h, `query($f: String) { records(parent: "-", filter: $f) { totalCount } }`, map[string]any{"f": c.filter})
				if r.code() != c.code || !strings.Contains(r.Errors[0].Message, c.says) {
					t.Errorf("got %+v, want %s saying %q", r.Errors, c.code, c.says)
				}
				if statements.Load() != 0 {
					t.Errorf("a refused filter ran %d statements", statements.Load())
				}
			})
		}
		if s.Dialect().String() == "postgres" {
			r := post(t, context.Background(), h, `{ records(parent: "-", filter: "data.metadata.name.matches('^build-web-[0-9a-z]{5}$')") { totalCount } }`, nil)
			if len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"totalCount":3`) {
				t.Errorf("an RE2 filter: %s %+v", r.Data, r.Errors)
			}
		}
	})
	s, _ := storetest.Open(t, "sqlite")
	h := server.New(server.Config{Store: s, Logger: quiet, MaxComplexity: graph.RegexCost})
	for filter, refused := range map[string]bool{`name.startsWith("ci/")`: false, `name.matches("^ci/")`: true} {
		r := post(t, context.Background(), h, `query($f: String) { records(parent: "-", filter: $f) { totalCount } }`, map[string]any{"f": filter})
		if got := r.code() == "COMPLEXITY_LIMIT_EXCEEDED"; got != refused {
			t.Errorf("%s under a cost limit of %d: %+v", filter, graph.RegexCost, r.Errors)
		}
	}
}

// lockRecords holds an ACCESS EXCLUSIVE lock on the records table of the
// schema of dbURL until the returned function is called: every statement
// reading Records waits, as behind a slow one.
func lockRecords(t *testing.T, dbURL string) (unlock func()) {
	t.Helper()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("LOCK TABLE records IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	unlock = func() { once.Do(func() { tx.Rollback(); db.Close() }) }
	t.Cleanup(unlock)
	return unlock
}

// withAppName gives the connections of dbURL an application_name, by
// which pg_stat_activity tells them apart from other tests'.
func withAppName(t *testing.T, dbURL, name string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// activeStatements counts the statements running for application name.
func activeStatements(t *testing.T, name string) int {
	t.Helper()
	db, err := sql.Open("pgx", storetest.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A statement running past the statement timeout is stopped by PostgreSQL
// and answered RESOURCE_EXHAUSTED, saying which limit it hit; its
// connection goes back to the pool, so that more slow requests than the
// pool holds never starve cheap ones.
func TestStatementTimeoutOnPostgres(t *testing.T) {
	_, dbURL := storetest.Open(t, "postgres")
	app := "annals-test-stmt-" + uuid.NewString()[:8]
	s, err := store.Open(context.Background(), withAppName(t, dbURL, app), store.Options{MaxOpenConns: 2, StatementTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := fixtureOn(t, s, server.Config{RequestTimeout: 20 * time.Second})
	resultName := store.ResultName("ci", "5eed0000-0000-4000-8000-000000000001")
	unlock := lockRecords(t, dbURL)
	var wg sync.WaitGroup
	slow := make([]gqlResponse, 6) // three times the pool
	for i := range slow {
		wg.Go(func() { slow[i] = post(t, context.Background(), h, `{ records(parent: "-") { totalCount } }`, nil) })
	}
	for range 5 { // while the slow ones come and go, cheap ones pass
		if r := post(t, context.Background(), h, `query($n: String!) { result(name: $n) { name } }`, map[string]any{"n": resultName}); len(r.Errors) > 0 {
			t.Errorf("a cheap query beside slow ones: %+v", r.Errors)
		}
	}
	wg.Wait()
	for i, r := range slow {
		if r.code() != "RESOURCE_EXHAUSTED" || !strings.Contains(r.Errors[0].Message, "--statement-timeout") {
			t.Errorf("slow query %d: %s %+v, want RESOURCE_EXHAUSTED naming --statement-timeout", i, r.Data, r.Errors)
		}
	}
	if n := activeStatements(t, app); n != 0 {
		t.Errorf("%d statements still running after their timeout", n)
	}
	unlock()
	if r := post(t, context.Background(), h, `{ records(parent: "-") { totalCount } }`, nil); len(r.Errors) > 0 {
		t.Errorf("after the lock: %+v", r.Errors)
	}
}

// Past the request timeout a request's SQL is cancelled and the answer is
// RESOURCE_EXHAUSTED naming the request timeout, not INTERNAL.
func TestRequestTimeoutIsResourceExhausted(t *testing.T) {
	s, dbURL := storetest.Open(t, "postgres")
	h := fixtureOn(t, s, server.Config{RequestTimeout: 300 * time.Millisecond})
	lockRecords(t, dbURL)
	r := post(t, context.Background(), h, `{ records(parent: "-") { totalCount } }`, nil)
	if r.code() != "RESOURCE_EXHAUSTED" || !strings.Contains(r.Errors[0].Message, "--request-timeout") {
		t.Errorf("got %+v, want RESOURCE_EXHAUSTED naming --request-timeout", r.Errors)
	}
}

// A subscription's queries have a deadline although the subscription has
// none: one stuck behind a lock gives up (ending the subscription) instead
// of holding its connection for ever.
func TestSubscriptionQueriesHaveADeadline(t *testing.T) {
	s, dbURL := storetest.Open(t, "postgres")
	app := "annals-test-sub-" + uuid.NewString()[:8]
	served, err := store.Open(context.Background(), withAppName(t, dbURL, app), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer served.Close()
	if err := served.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Config{Store: served, Logger: quiet, RequestTimeout: 500 * time.Millisecond}))
	defer srv.Close()
	c, err := dialGraphQL(t, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.subscribe("p", recordChanged, map[string]any{"parent": "ci"})
	// The subscription listens a moment after the subscribe message: write
	// until one write is heard.
	written := make(chan string, 64)
	stopWriting := make(chan struct{})
	go func() {
		for {
			uid := uuid.NewString()
			data, _ := json.Marshal(map[string]any{"apiVersion": "tekton.dev/v1", "kind": "TaskRun", "metadata": map[string]any{"name": "live", "namespace": "ci", "uid": uid}})
			if s.UpsertRecords(context.Background(), []store.RecordWrite{{ResultName: store.ResultName("ci", uid), UID: uid, DataType: store.TypeTaskRun, Data: data}}) == nil {
				written <- store.RecordName("ci", uid, uid)
			}
			select {
			case <-stopWriting:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	got, _ := c.nextRecord("p")
	close(stopWriting)
	for heard := false; !heard; {
		select {
		case name := <-written:
			heard = name == got
		case <-time.After(5 * time.Second):
			t.Fatalf("first change: %q, not one of the TaskRuns written", got)
		}
	}
	lockRecords(t, dbURL)
	// A change announced while Records cannot be read.
	payload, _ := json.Marshal([]store.Change{{UID: uuid.NewString(), Namespace: "ci"}})
	notify, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	if _, err := notify.Exec("SELECT pg_notify('annals_changes_' || md5(current_schema()), $1)", string(payload)); err != nil {
		t.Fatal(err)
	}
	// Announce it again every half second: on a busy machine the listener
	// may be reconnecting when the first announcement goes out, and what
	// is tested here is the deadline, not the delivery.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
				notify.Exec("SELECT pg_notify('annals_changes_' || md5(current_schema()), $1)", string(payload))
			}
		}
	}()
	if m := c.next("p"); m.Type != "complete" && m.Type != "error" {
		t.Errorf("subscription after a stuck query: %s %s, want it ended", m.Type, m.Payload)
	}
	deadline := time.Now().Add(5 * time.Second)
	for activeStatements(t, app) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription's query still runs")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fixtureOn is fixture with a server configuration of the test's own.
func fixtureOn(t *testing.T, s *store.Store, cfg server.Config) http.Handler {
	t.Helper()
	if err := s.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	fixture(t, s) // loads the runs
	cfg.Store, cfg.Logger = s, quiet
	return server.New(cfg)
}
