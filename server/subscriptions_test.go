package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/google/uuid"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// wsClient speaks graphql-transport-ws, as GraphiQL and Apollo clients do.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// dialGraphQL connects and completes the connection_init handshake; it
// returns the close error instead when the server refuses.
func dialGraphQL(t *testing.T, url string, init map[string]any) (*wsClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t, conn}
	t.Cleanup(func() { conn.Close(websocket.StatusNormalClosure, "") })
	payload, _ := json.Marshal(init)
	if err := wsjson.Write(ctx, conn, wsMessage{Type: "connection_init", Payload: payload}); err != nil {
		t.Fatal(err)
	}
	for {
		var m wsMessage
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			return nil, err
		}
		if m.Type == "connection_ack" {
			return c, nil
		}
	}
}

func (c *wsClient) subscribe(id, query string, vars map[string]any) {
	c.t.Helper()
	payload, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err := wsjson.Write(context.Background(), c.conn, wsMessage{ID: id, Type: "subscribe", Payload: payload}); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next message of subscription id (next, error or complete).
func (c *wsClient) next(id string) wsMessage {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		var m wsMessage
		if err := wsjson.Read(ctx, c.conn, &m); err != nil {
			c.t.Fatalf("reading subscription %s: %v", id, err)
		}
		switch {
		case m.Type == "ping":
			wsjson.Write(ctx, c.conn, wsMessage{Type: "pong"})
		case m.ID == id:
			return m
		}
	}
}

// nextRecord returns the name and status of the next Record sent.
func (c *wsClient) nextRecord(id string) (name, status string) {
	c.t.Helper()
	m := c.next(id)
	var p struct {
		Data struct {
			RecordChanged struct {
				Name    string
				TaskRun *struct{ Status string }
			}
		}
		Errors []any
	}
	json.Unmarshal(m.Payload, &p)
	if m.Type != "next" || len(p.Errors) > 0 {
		c.t.Fatalf("subscription %s: %s %s", id, m.Type, m.Payload)
	}
	if p.Data.RecordChanged.TaskRun != nil {
		status = p.Data.RecordChanged.TaskRun.Status
	}
	return p.Data.RecordChanged.Name, status
}

func writeTaskRun(t *testing.T, s *store.Store, ns, uid, status string) string {
	t.Helper()
	cond := map[string]any{"type": "Succeeded", "status": status, "reason": map[string]string{"True": "Succeeded", "Unknown": "Running"}[status]}
	data, _ := json.Marshal(map[string]any{"apiVersion": "tekton.dev/v1", "kind": "TaskRun",
		"metadata": map[string]any{"name": "live", "namespace": ns, "uid": uid},
		"status":   map[string]any{"conditions": []any{cond}}})
	recs := storetest.Upsert(t, s, store.RecordWrite{ResultName: store.ResultName(ns, uid), UID: uid,
		DataType: store.TypeTaskRun, Data: data, UpdateSummary: true})
	return recs[0].Name
}

const recordChanged = `subscription($parent: String!, $filter: String) {
  recordChanged(parent: $parent, filter: $filter) { name taskRun { status } }
}`

// TestRecordChangedFollowsARun: a run starts and finishes while a client
// listens; only the Records its subscription selects arrive.
func TestRecordChangedFollowsARun(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ts := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet}))
		defer ts.Close()
		c, err := dialGraphQL(t, ts.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.subscribe("1", recordChanged, map[string]any{"parent": "ci", "filter": "data_type == TASK_RUN"})
		time.Sleep(300 * time.Millisecond) // subscribed (and listening, on PostgreSQL)
		uid := uuid.NewString()
		writeTaskRun(t, s, "prod", uuid.NewString(), "Unknown") // another namespace: not sent
		name := writeTaskRun(t, s, "ci", uid, "Unknown")
		if got, status := c.nextRecord("1"); got != name || status != "RUNNING" {
			t.Fatalf("first: %s %s, want %s RUNNING", got, status, name)
		}
		writeTaskRun(t, s, "ci", uid, "True")
		if got, status := c.nextRecord("1"); got != name || status != "SUCCEEDED" {
			t.Fatalf("second: %s %s, want %s SUCCEEDED", got, status, name)
		}
	})
}

// TestSubscriptionsOnEveryReplica: two API servers on one PostgreSQL, the
// watcher writing through a third connection: both deliver.
func TestSubscriptionsOnEveryReplica(t *testing.T) {
	writer, url := storetest.Open(t, "postgres")
	ctx := context.Background()
	var clients []*wsClient
	for range 2 {
		s, err := store.Open(ctx, url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Ready(ctx); err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet}))
		defer ts.Close()
		c, err := dialGraphQL(t, ts.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.subscribe("r", recordChanged, map[string]any{"parent": "-"})
		clients = append(clients, c)
	}
	time.Sleep(300 * time.Millisecond)
	name := writeTaskRun(t, writer, "ci", uuid.NewString(), "Unknown")
	for i, c := range clients {
		if got, _ := c.nextRecord("r"); got != name {
			t.Errorf("replica %d sent %s, want %s", i, got, name)
		}
	}
}

// TestLogLinesStreamsNewLines: the lines stored so far, then the new ones.
func TestLogLinesStreamsNewLines(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		uid := uuid.NewString()
		writeTaskRun(t, s, "ci", uid, "Unknown")
		tr, err := s.GetRecordsByUID(ctx, "ci", []string{uid})
		if err != nil {
			t.Fatal(err)
		}
		lw := store.LogWrite{UID: uuid.NewString(), TaskRun: tr[uid], Step: "build"}
		log, err := s.WriteLog(ctx, lw, strings.NewReader("one\ntwo\n"), 0)
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet}))
		defer ts.Close()
		c, err := dialGraphQL(t, ts.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.subscribe("l", `subscription($log: String!) { logLines(log: $log) }`, map[string]any{"log": log.Name})
		lines := func() string {
			m := c.next("l")
			var p struct{ Data struct{ LogLines []string } }
			json.Unmarshal(m.Payload, &p)
			if m.Type != "next" {
				t.Fatalf("%s %s", m.Type, m.Payload)
			}
			return strings.Join(p.Data.LogLines, "|")
		}
		if got := lines(); got != "one|two" {
			t.Fatalf("first batch %q", got)
		}
		time.Sleep(300 * time.Millisecond)
		if _, err := s.WriteLog(ctx, lw, strings.NewReader("one\ntwo\nthree\nfour\n"), 0); err != nil {
			t.Fatal(err)
		}
		if got := lines(); got != "three|four" {
			t.Fatalf("second batch %q", got)
		}
		c.subscribe("bad", `subscription { logLines(log: "ci/results/0b0b0b0b-0000-4000-8000-000000000000/records/0b0b0b0b-0000-4000-8000-000000000000") }`, nil)
		if m := c.next("bad"); !strings.Contains(string(m.Payload), `"code":"NOT_FOUND"`) {
			t.Errorf("missing log: %s %s", m.Type, m.Payload)
		}
	})
}

// TestSubscriptionsAcrossProcesses: two `annals serve` processes on one
// PostgreSQL, and a write from a third (as the watcher's): both deliver it.
func TestSubscriptionsAcrossProcesses(t *testing.T) {
	writer, url := storetest.Open(t, "postgres")
	bin := filepath.Join(t.TempDir(), "annals")
	build := exec.Command("go", "build", "-o", bin, "../cmd/annals")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building annals: %v\n%s", err, out)
	}
	var clients []*wsClient
	for range 2 {
		port := freePort(t)
		cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:"+port, "--database-url", url, "--migrate=false", "--log-level", "error")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
		base := "http://127.0.0.1:" + port
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get(base + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("annals serve on %s not ready: %v", port, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		c, err := dialGraphQL(t, base, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.subscribe("p", recordChanged, map[string]any{"parent": "ci"})
		clients = append(clients, c)
	}
	time.Sleep(500 * time.Millisecond) // both LISTEN connections are up
	name := writeTaskRun(t, writer, "ci", uuid.NewString(), "Unknown")
	for i, c := range clients {
		if got, _ := c.nextRecord("p"); got != name {
			t.Errorf("process %d sent %s, want %s", i, got, name)
		}
	}
}

// TestRecordEventsAnnounceDeletes: recordEvents sends a run's creation,
// update and deletion, also when its Result is deleted, and a kinds filter
// selects deletes by data type; nothing of another namespace arrives.
func TestRecordEventsAnnounceDeletes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ts := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet}))
		defer ts.Close()
		c, err := dialGraphQL(t, ts.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.subscribe("1", `subscription { recordEvents(parent: "ci", where: {kinds: [TASK_RUN]}) { kind name dataType record { name } } }`, nil)
		time.Sleep(300 * time.Millisecond) // subscribed (and listening, on PostgreSQL)
		other := writeTaskRun(t, s, "prod", uuid.NewString(), "Unknown")
		if err := s.DeleteRecord(ctx, other, ""); err != nil {
			t.Fatal(err)
		}
		expect := func(want string) {
			t.Helper()
			if m := c.next("1"); !strings.Contains(string(m.Payload), want) {
				t.Fatalf("event %s %s, want %s", m.Type, m.Payload, want)
			}
		}
		// Each step waits for its event: changes within one batch window
		// are sent once, as their last (a write then a delete, a delete).
		uid := uuid.NewString()
		name := writeTaskRun(t, s, "ci", uid, "Unknown")
		expect(`{"kind":"CREATED","name":"` + name + `","dataType":"tekton.dev/v1.TaskRun","record":{"name":"` + name + `"}}`)
		writeTaskRun(t, s, "ci", uid, "True")
		expect(`{"kind":"UPDATED","name":"` + name + `"`)
		if err := s.DeleteRecord(ctx, name, ""); err != nil {
			t.Fatal(err)
		}
		expect(`{"kind":"DELETED","name":"` + name + `","dataType":"tekton.dev/v1.TaskRun","record":null}`)
		second := writeTaskRun(t, s, "ci", uuid.NewString(), "True")
		expect(`{"kind":"CREATED","name":"` + second + `"`)
		resultName, _, _ := strings.Cut(second, "/records/")
		if err := s.DeleteResult(ctx, resultName, ""); err != nil {
			t.Fatal(err)
		}
		expect(`{"kind":"DELETED","name":"` + second + `","dataType":"tekton.dev/v1.TaskRun","record":null}`)
	})
}
