package server_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/store/storetest"
)

// TestShutdownClosesWebSocketsGoingAway: at shutdown a subscriber gets a
// close frame 1001 (going away: reconnect elsewhere), not a dropped
// connection nor 1000, and the server logs that it stopped.
func TestShutdownClosesWebSocketsGoingAway(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	ln, err := server.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- server.ServeListener(ctx, ln, server.New(server.Config{Store: s, Logger: quiet}), log, time.Second)
	}()
	c, err := dialGraphQL(t, "http://"+ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.subscribe("1", recordChanged, map[string]any{"parent": "ci"})
	time.Sleep(200 * time.Millisecond) // subscribed
	stop()
	readCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, _, err := c.conn.Read(readCtx)
		if err == nil {
			continue // an error message on the subscription, then the close
		}
		if status := websocket.CloseStatus(err); status != websocket.StatusGoingAway {
			t.Fatalf("connection ended with %v (close status %d); want 1001 going away", err, status)
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) && !strings.Contains(ce.Reason, "shutting down") {
			t.Errorf("close reason %q does not say why", ce.Reason)
		}
		break
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "msg=stopped") {
		t.Errorf("no line saying the server stopped:\n%s", logged.String())
	}
}
