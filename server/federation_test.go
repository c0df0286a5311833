package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// TestEntitiesResolveInOneStatement: a batch of references, by id and by
// name, costs one SQL statement per entity type.
func TestEntitiesResolveInOneStatement(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		h := fixture(t, s)
		ctx := context.Background()
		recs, err := s.ListRecords(ctx, store.ListOptions{Parent: "-", First: 10})
		if err != nil {
			t.Fatal(err)
		}
		var reps []any
		for i, r := range recs.Items {
			if i%2 == 0 {
				reps = append(reps, map[string]any{"__typename": "Record", "name": r.Name})
			} else {
				reps = append(reps, map[string]any{"__typename": "Record", "id": nodeID("Record", r.Name)})
			}
		}
		reps = append(reps, map[string]any{"__typename": "Record", "name": "ci/results/0b0b0b0b-0000-4000-8000-000000000000/records/0b0b0b0b-0000-4000-8000-000000000000"})
		cctx, count := store.CountStatements(ctx)
		resp := post(t, cctx, h, `query($r: [_Any!]!) { _entities(representations: $r) { ... on Record { name dataType } } }`, map[string]any{"r": reps})
		if len(resp.Errors) > 0 {
			t.Fatal(resp.Errors)
		}
		var out struct {
			Entities []*struct{ Name string } `json:"_entities"`
		}
		json.Unmarshal(resp.Data, &out)
		if len(out.Entities) != 11 || out.Entities[10] != nil || out.Entities[0].Name != recs.Items[0].Name || out.Entities[1].Name != recs.Items[1].Name {
			t.Errorf("entities %s", resp.Data)
		}
		if n := count.Load(); n != 1 {
			t.Errorf("%d statements for 11 references, want 1", n)
		}
	})
}

// TestFederationThroughApolloGateway composes Annals with a second
// subgraph behind a real Apollo gateway (Node.js, from the npm registry)
// and sends a query that crosses both.
func TestFederationThroughApolloGateway(t *testing.T) {
	dir := "testdata/federation"
	if _, err := os.Stat(dir + "/node_modules/@apollo/gateway"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("the Apollo gateway is not installed: .ci/test runs npm ci in server/testdata/federation")
		}
		t.Skip("run 'npm ci --prefix server/testdata/federation' (or .ci/test) to test federation through a real gateway")
	}
	s, _ := storetest.Open(t, "postgres")
	annals := httptest.NewServer(fixture(t, s))
	defer annals.Close()
	ctx := context.Background()
	prs, err := s.ListRecords(ctx, store.ListOptions{Parent: "ci", Filter: "data_type == PIPELINE_RUN", First: 2})
	if err != nil {
		t.Fatal(err)
	}
	servicesPort, gatewayPort := freePort(t), freePort(t)
	startNode(t, dir, "services subgraph ready", "services.mjs", servicesPort, prs.Items[0].Name, prs.Items[1].Name)
	startNode(t, dir, "gateway ready", "gateway.mjs", gatewayPort, annals.URL+"/graphql", "http://127.0.0.1:"+servicesPort+"/")

	query := `{ services { name recentRuns { name dataType pipelineRun { status pipelineName } result { summary { status } } } } }`
	body, _ := json.Marshal(map[string]any{"query": query})
	resp, err := http.Post("http://127.0.0.1:"+gatewayPort+"/", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Services []struct {
				Name       string
				RecentRuns []struct {
					Name, DataType string
					PipelineRun    struct{ Status, PipelineName string }
				}
			}
		}
		Errors []any
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Errors) > 0 || len(out.Data.Services) != 1 || len(out.Data.Services[0].RecentRuns) != 2 {
		t.Fatalf("through the gateway: %+v", out)
	}
	for i, run := range out.Data.Services[0].RecentRuns {
		if run.Name != prs.Items[i].Name || run.DataType != store.TypePipelineRun || run.PipelineRun.Status == "" {
			t.Errorf("run %d: %+v", i, run)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// startNode runs a Node.js script until the test ends, once it printed ready.
func startNode(t *testing.T, dir, ready string, args ...string) {
	t.Helper()
	cmd := exec.Command("node", args...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	up := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), ready) {
				up <- true
			}
		}
		close(up)
	}()
	select {
	case ok := <-up:
		if !ok {
			t.Fatalf("node %v exited before it was ready", args)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("node %v not ready after 60s", args)
	}
}
