package server_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/annals-dev/annals/graph"
	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// smallBuffers keeps the kernel from buffering a whole log between server
// and client, so that the server is still reading the log when the test
// deletes it.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(16 << 10)
	}
	return c, err
}

func smallBufferClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetReadBuffer(16 << 10)
			}
			return c, err
		},
	}}
}

// bigLog stores a 4 MiB log for a TaskRun of the fixture and returns the
// log's Record and text.
func bigLog(t *testing.T, s *store.Store) (*store.Record, []byte) {
	t.Helper()
	ctx := context.Background()
	trs, err := s.GetRecordsByUID(ctx, "ci", []string{"5eed0000-0000-4000-8000-00000000000b"})
	if err != nil || trs["5eed0000-0000-4000-8000-00000000000b"] == nil {
		t.Fatalf("fixture TaskRun: %v", err)
	}
	var text bytes.Buffer
	for i := 0; text.Len() < 4<<20; i++ {
		fmt.Fprintf(&text, "line %07d of a long build\n", i)
	}
	log, err := s.WriteLog(ctx, store.LogWrite{UID: "1061e000-0000-4000-8000-000000000001", TaskRun: trs["5eed0000-0000-4000-8000-00000000000b"],
		Step: "build", Container: "step-build"}, bytes.NewReader(text.Bytes()), 0)
	if err != nil {
		t.Fatal(err)
	}
	return log, text.Bytes()
}

// TestLogDownloadCutShort: a log that disappears or cannot be read while
// it is downloaded reaches the client as a broken download (its
// Content-Length not met), never as a shorter log that looks whole.
func TestLogDownloadCutShort(t *testing.T) {
	type setup struct {
		kind, backend string
		cut           func(t *testing.T, s *store.Store, log *store.Record, logDir string)
		mayFinish     bool // an unlinked file is still read whole: then the full log is fine
	}
	deleteResult := func(t *testing.T, s *store.Store, log *store.Record, _ string) {
		if err := s.DeleteResult(context.Background(), log.ResultName, ""); err != nil {
			t.Fatal(err)
		}
	}
	logFile := func(dir string, log *store.Record) string {
		return filepath.Join(dir, log.Namespace, log.UID[:2], log.UID+".log")
	}
	for _, c := range []setup{
		{kind: "sqlite", backend: "rows", cut: deleteResult},
		{kind: "postgres", backend: "rows", cut: deleteResult},
		{kind: "sqlite", backend: "files", cut: func(t *testing.T, s *store.Store, log *store.Record, dir string) {
			if err := os.Truncate(logFile(dir, log), 1<<20); err != nil {
				t.Fatal(err)
			}
		}},
		{kind: "postgres", backend: "files", mayFinish: true, cut: func(t *testing.T, s *store.Store, log *store.Record, dir string) {
			deleteResult(t, s, log, dir)
			if err := os.Remove(logFile(dir, log)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.kind+"/"+c.backend, func(t *testing.T) {
			var opts store.Options
			if c.backend == "files" {
				opts.LogDir = t.TempDir()
			}
			s, _ := storetest.OpenWith(t, c.kind, opts)
			fixture(t, s)
			log, text := bigLog(t, s)
			srv := httptest.NewUnstartedServer(server.New(server.Config{Store: s, Logger: quiet}))
			srv.Listener = smallBuffers{srv.Listener}
			srv.Start()
			defer srv.Close()

			resp, err := smallBufferClient().Get(srv.URL + "/logs/" + log.Name)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(text)) {
				t.Fatalf("status %d, Content-Length %d; want 200 and %d", resp.StatusCode, resp.ContentLength, len(text))
			}
			first := make([]byte, 512<<10)
			if _, err := io.ReadFull(resp.Body, first); err != nil {
				t.Fatal(err)
			}
			c.cut(t, s, log, opts.LogDir)
			rest, err := io.ReadAll(resp.Body)
			got := append(first, rest...)
			switch {
			case err == nil && c.mayFinish && bytes.Equal(got, text):
			case err == nil:
				t.Errorf("the download ended cleanly after %d of %d bytes: a cut log passed for a whole one", len(got), len(text))
			case !errors.Is(err, io.ErrUnexpectedEOF):
				t.Errorf("download error %v; want unexpected EOF", err)
			}
		})
	}
}

// TestLogDownloadOpenError: a log file that cannot be opened is a 500 with
// a request id, not a crash of the handler.
func TestLogDownloadOpenError(t *testing.T) {
	dir := t.TempDir()
	s, _ := storetest.OpenWith(t, "sqlite", store.Options{LogDir: dir})
	fixture(t, s)
	log, _ := bigLog(t, s)
	path := filepath.Join(dir, log.Namespace, log.UID[:2], log.UID+".log")
	os.Remove(path)
	if err := os.Symlink(path, path); err != nil { // a loop: open fails with ELOOP
		t.Fatal(err)
	}
	srv := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/logs/" + log.Name)
	if err != nil {
		t.Fatalf("the server broke the connection: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "request id") {
		t.Errorf("status %d %q; want 500 with a request id", resp.StatusCode, body)
	}
}

// TestLocalOnlyWithoutAuth: without authentication the server answers
// only requests addressed to a loopback name and sent by no page or its
// own, on every route and for WebSocket upgrades too, so that neither a
// foreign page nor one on a rebound DNS name can use it.
func TestLocalOnlyWithoutAuth(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	fixture(t, s)
	for _, anyHost := range []bool{false, true} {
		srv := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet, AnyHost: anyHost}))
		defer srv.Close()
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
		for _, c := range []struct {
			name, host, origin      string
			refused, refusedAnyHost bool
		}{
			{name: "loopback IP", host: "127.0.0.1:" + port},
			{name: "other loopback IP", host: "127.0.0.2:" + port},
			{name: "localhost", host: "localhost:" + port},
			{name: "localhost without port", host: "LocalHost"},
			{name: "IPv6 loopback", host: "[::1]:" + port},
			{name: "own page", host: "localhost:" + port, origin: "http://localhost:" + port},
			{name: "rebound name", host: "attacker.example:" + port, refused: true},
			{name: "rebound name, same origin", host: "attacker.example:" + port, origin: "http://attacker.example:" + port, refused: true},
			{name: "LAN address", host: "192.168.1.10:" + port, refused: true},
			{name: "loopback-looking name", host: "127.0.0.1.attacker.example:" + port, refused: true},
			{name: "foreign page", host: "127.0.0.1:" + port, origin: "https://attacker.example", refused: true, refusedAnyHost: true},
			{name: "other port", host: "127.0.0.1:" + port, origin: "http://127.0.0.1:1", refused: true, refusedAnyHost: true},
			{name: "null origin", host: "127.0.0.1:" + port, origin: "null", refused: true, refusedAnyHost: true},
		} {
			refused := c.refused
			if anyHost {
				refused = c.refusedAnyHost
			}
			for _, route := range []string{"POST /graphql", "GET /graphql", "GET /logs/ci/results/x/records/y", "GET /readyz", "GET /", "WebSocket /graphql"} {
				t.Run(fmt.Sprintf("anyHost=%v/%s/%s", anyHost, c.name, route), func(t *testing.T) {
					status := send(t, srv.URL, route, c.host, c.origin)
					if refused && status != http.StatusForbidden {
						t.Errorf("status %d, want 403", status)
					}
					if !refused && status == http.StatusForbidden {
						t.Errorf("refused (403)")
					}
					if !refused && route == "WebSocket /graphql" && status != http.StatusSwitchingProtocols {
						t.Errorf("WebSocket upgrade answered %d", status)
					}
				})
			}
		}
	}
	// A real client on the loopback address still subscribes.
	srv := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(websocket.StatusNormalClosure, "")
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: http.Header{"Origin": {"https://attacker.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("WebSocket from a foreign page: %v", err)
	}
}

// send makes one request with the given Host and Origin and returns the
// status; a WebSocket upgrade is written by hand to set its Host.
func send(t *testing.T, base, route, host, origin string) int {
	t.Helper()
	method, path, _ := strings.Cut(route, " ")
	if method == "WebSocket" {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n"
		if origin != "" {
			req += "Origin: " + origin + "\r\n"
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{"query":"mutation { createResult(name: \"ci/results/6a6a6a6a-0000-4000-8000-000000000001\") { name } }"}`)
	} else if path == "/graphql" {
		path += "?query=%7B__typename%7D"
	}
	req, _ := http.NewRequest(method, base+path, body)
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestUnavailableCode: a database that cannot be reached is UNAVAILABLE,
// with a request id and without the driver's details.
func TestUnavailableCode(t *testing.T) {
	present := graph.ErrorPresenter(slog.New(slog.DiscardHandler), func(context.Context) string { return "r1" })
	err := present(context.Background(), fmt.Errorf("listing: %w", fmt.Errorf("failed to connect to `user=annals database=annals`: %w", store.ErrUnavailable)))
	if err.Extensions["code"] != graph.CodeUnavailable || !strings.Contains(err.Message, "r1") || strings.Contains(err.Message, "user=annals") {
		t.Errorf("presented as %q %v", err.Message, err.Extensions)
	}
}

// blackHole forwards connections to a database until it goes silent: then
// it drops the connections it forwards and accepts new ones without ever
// answering, as a database host behind a broken network path does.
type blackHole struct {
	ln     net.Listener
	mu     sync.Mutex
	silent bool
	conns  []net.Conn
}

func newBlackHole(t *testing.T, target string) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackHole{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			silent := b.silent
			b.mu.Unlock()
			if silent {
				continue // held, never answered
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			b.mu.Lock()
			b.conns = append(b.conns, up)
			b.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); b.silence() })
	return b
}

func (b *blackHole) silence() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.silent = true
	for _, c := range b.conns {
		c.Close()
	}
	b.conns = nil
}

// TestSilentDatabaseIsUnavailable: when the database stops answering, a
// request fails after the connect timeout with UNAVAILABLE, instead of
// waiting out the request timeout.
func TestSilentDatabaseIsUnavailable(t *testing.T) {
	_, dbURL := storetest.Open(t, "postgres") // migrated, in a schema of its own
	u, err := neturl.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	hole := newBlackHole(t, u.Host)
	u.Host = hole.ln.Addr().String()
	s, err := store.Open(context.Background(), u.String(), store.Options{ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := server.New(server.Config{Store: s, Logger: quiet, RequestTimeout: time.Minute})
	const q = `{ records(parent: "-") { totalCount } }`
	if r := post(t, context.Background(), h, q, nil); len(r.Errors) > 0 {
		t.Fatalf("before: %v", r.Errors)
	}
	hole.silence()
	// The first request finds its connection lost, the next has to open one.
	for _, what := range []string{"connection lost", "no answer to a new connection"} {
		done := make(chan gqlResponse, 1)
		go func() { done <- post(t, context.Background(), h, q, nil) }()
		select {
		case r := <-done:
			if r.code() != graph.CodeUnavailable {
				t.Errorf("%s: %+v; want UNAVAILABLE", what, r.Errors)
			}
		case <-time.After(30 * time.Second): // the connect timeout is 1 s, the request's a minute
			t.Fatalf("%s: the request waited for the request timeout", what)
		}
	}
}
