package tekton_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/annals-dev/annals/server/tekton"
	pb "github.com/annals-dev/annals/server/tekton/proto/v1alpha2"
	"github.com/annals-dev/annals/store/storetest"
)

// chunkedLogs is a Logs service that sends fixed chunks, then fails with
// err (if any): it drives the REST streaming of GetLog, which the Logs
// implementation relies on.
type chunkedLogs struct {
	pb.UnimplementedLogsServer
	chunks []string
	err    error
	asked  *string
}

func (l chunkedLogs) GetLog(req *pb.GetLogRequest, stream pb.Logs_GetLogServer) error {
	*l.asked = req.GetName()
	for _, c := range l.chunks {
		if err := stream.Send(&httpbody.HttpBody{ContentType: "text/plain", Data: []byte(c)}); err != nil {
			return err
		}
	}
	return l.err
}

func TestGetLogOverREST(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	tests := []struct {
		name   string
		logs   chunkedLogs
		status int
		body   string
		broken bool // the connection is cut: no JSON after log bytes (B22)
	}{
		{"bytes and one newline (B1)", chunkedLogs{chunks: []string{"line 1\n", "line 2"}}, 200, "line 1\nline 2\n", false},
		{"error before the first byte", chunkedLogs{err: status.Error(codes.NotFound, "record not found")}, 404, `{"error":{"code":5,"message":"record not found"}}` + "\n", false},
		{"error after the first byte", chunkedLogs{chunks: []string{"partial"}, err: status.Error(codes.Internal, "storage failed")}, 200, "partial", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked string
			tt.logs.asked = &asked
			tk := tekton.New(tekton.Config{Store: s, Logger: quiet, Logs: tt.logs})
			ts := httptest.NewServer(tk.REST())
			defer ts.Close()
			resp, err := http.Get(ts.URL + tekton.RESTPrefix + "parents/ci/results/" + prUID + "/logs/" + trUID)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if tt.broken != (err != nil) {
				t.Errorf("reading the body: %v; want a cut connection: %v", err, tt.broken)
			}
			if resp.StatusCode != tt.status || string(body) != tt.body || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%d %q (%s); want %d %q", resp.StatusCode, body, resp.Header.Get("Content-Type"), tt.status, tt.body)
			}
			if want := "ci/results/" + prUID + "/logs/" + trUID; asked != want {
				t.Errorf("GetLog asked for %q, want %q", asked, want)
			}
		})
	}
	// Without a Logs implementation, the store's logs are served: none here.
	ts := httptest.NewServer(tekton.New(tekton.Config{Store: s, Logger: quiet}).REST())
	defer ts.Close()
	resp, err := http.Get(ts.URL + tekton.RESTPrefix + "parents/ci/results/" + prUID + "/logs/" + trUID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GetLog of the store: %d", resp.StatusCode)
	}
}
