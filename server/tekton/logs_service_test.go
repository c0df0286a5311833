package tekton_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/annals-dev/annals/server"
	pb "github.com/annals-dev/annals/server/tekton/proto/v1alpha2"
	pb3 "github.com/annals-dev/annals/server/tekton/proto/v1alpha3"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// A PipelineRun with two TaskRuns that started in the opposite order of
// their uids, and a lone TaskRun whose log comes from UpdateLog, as
// upstream's watcher uploads it.
const (
	tr2UID     = "81e74ef5-2d3c-4b5a-8f9e-000000000002"
	tr3UID     = "81e74ef5-2d3c-4b5a-8f9e-000000000003"
	trNoLogUID = "81e74ef5-2d3c-4b5a-8f9e-000000000004"
	uploadUID  = "0d0d0d0d-0000-4000-8000-000000000001"
	missingUID = "0d0d0d0d-0000-4000-8000-0000000000ff"
)

func runJSON(kind, name, uid, start string, steps ...string) []byte {
	var st []string
	for _, s := range steps {
		st = append(st, `{"name":"`+s+`"}`)
	}
	return []byte(fmt.Sprintf(`{"apiVersion":"tekton.dev/v1","kind":%q,"metadata":{"name":%q,"namespace":"ci","uid":%q,"labels":{"tekton.dev/pipelineRun":"build-1"}},`+
		`"status":{"startTime":%q,"steps":[%s]}}`, kind, name, uid, start, strings.Join(st, ",")))
}

// logFixture stores the runs and their step logs; it returns the large log.
func logFixture(t *testing.T, s *store.Store) (large []byte, stepLogUID string) {
	t.Helper()
	ctx := context.Background()
	result := "ci/results/" + prUID
	if _, err := s.CreateResult(ctx, "ci", prUID, nil); err != nil {
		t.Fatal(err)
	}
	for _, w := range []store.RecordWrite{
		{ResultName: result, UID: prUID, DataType: store.TypePipelineRun, Data: runJSON("PipelineRun", "build-1", prUID, "2026-11-01T00:00:00Z")},
		// Steps run prepare then build: the reverse of their names' order.
		{ResultName: result, UID: trUID, DataType: store.TypeTaskRun, Data: runJSON("TaskRun", "build-1-second", trUID, "2026-11-01T00:05:00Z", "prepare", "build")},
		{ResultName: result, UID: tr2UID, DataType: store.TypeTaskRun, Data: runJSON("TaskRun", "build-1-first", tr2UID, "2026-11-01T00:01:00Z", "big")},
		{ResultName: result, UID: tr3UID, DataType: store.TypeTaskRun, Data: runJSON("TaskRun", "lone", tr3UID, "2026-11-01T00:09:00Z")},
		{ResultName: result, UID: trNoLogUID, DataType: store.TypeTaskRun, Data: runJSON("TaskRun", "nolog", trNoLogUID, "2026-11-01T00:09:00Z", "gone")},
	} {
		if _, err := s.CreateRecord(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	tr := func(uid string) *store.Record {
		r, err := s.GetRecord(ctx, result+"/records/"+uid)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for i := 0; len(large) <= 100<<10; i++ {
		large = fmt.Appendf(large, "line %d of a log larger than one 32 KiB message\n", i)
	}
	logs := []struct {
		uid, run, step string
		body           []byte
	}{
		// Written build first: the order of steps, not of writes, wins.
		{"0e0e0e0e-0000-4000-8000-000000000001", trUID, "build", []byte("compiled\n")},
		{"0e0e0e0e-0000-4000-8000-000000000002", trUID, "prepare", []byte("fetched\nno final newline")},
		{"0e0e0e0e-0000-4000-8000-000000000003", tr2UID, "big", large},
	}
	for _, l := range logs {
		if _, err := s.WriteLog(ctx, store.LogWrite{UID: l.uid, TaskRun: tr(l.run), Step: l.step, Container: "step-" + l.step}, bytes.NewReader(l.body), 0); err != nil {
			t.Fatal(err)
		}
	}
	// A step whose pod was gone: a Log without bytes.
	if _, err := s.WriteLog(ctx, store.LogWrite{UID: "0e0e0e0e-0000-4000-8000-000000000004", TaskRun: tr(trNoLogUID), Step: "gone"}, nil, 0); err != nil {
		t.Fatal(err)
	}
	return large, logs[1].uid
}

func getLogREST(t *testing.T, url, result, id string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url + base + "parents/ci/results/" + result + "/logs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading log %s: %v", id, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// grpcLog reads a log over gRPC and checks every message is at most 32 KiB.
func grpcLog(t *testing.T, recv func() ([]byte, error)) ([]byte, error) {
	t.Helper()
	var out []byte
	for {
		data, err := recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if len(data) > 32<<10 || len(data) == 0 {
			t.Errorf("a message of %d bytes", len(data))
		}
		out = append(out, data...)
	}
}

func TestLogsService(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		large, stepLogUID := logFixture(t, s)
		ts := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet}))
		t.Cleanup(ts.Close)
		conn := dial(t, ts)
		logs, logs3 := pb.NewLogsClient(conn), pb3.NewLogsClient(conn)
		ctx := context.Background()
		taskRunLog := "fetched\nno final newline\ncompiled\n"

		tests := []struct {
			name, result, id string
			status           int
			want             string // the log, without REST's trailing newline
		}{
			{"TaskRun uid: its steps in step order, joined by lines", prUID, trUID, 200, taskRunLog},
			{"Log record id: that step alone", prUID, stepLogUID, 200, "fetched\nno final newline"},
			{"larger than one message", prUID, tr2UID, 200, string(large)},
			{"PipelineRun uid: its TaskRuns in start order", prUID, prUID, 200, string(large) + taskRunLog},
			{"missing record", prUID, missingUID, 404, `{"error":{"code":5,"message":"record not found"}}`},
			{"a run of another Result", missingUID, trUID, 404, `{"error":{"code":5,"message":"record not found"}}`},
			{"run without logs", prUID, tr3UID, 404, `{"error":{"code":5,"message":"Log doesn't exist"}}`},
			{"log not stored", prUID, trNoLogUID, 404, `{"error":{"code":5,"message":"Log doesn't exist"}}`},
			{"bad name", prUID, "Not_A_UID", 400, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				status, ctype, body := getLogREST(t, ts.URL, tt.result, tt.id)
				if ctype != "application/json" { // as upstream (B13)
					t.Errorf("Content-Type %q", ctype)
				}
				if status != tt.status || (tt.want != "" && body != tt.want+"\n") { // B1: one trailing newline
					t.Errorf("REST: %d %.200q; want %d %.200q", status, body, tt.status, tt.want+"\n")
				}
				name := "ci/results/" + tt.result + "/logs/" + tt.id
				stream, err := logs.GetLog(ctx, &pb.GetLogRequest{Name: name})
				if err != nil {
					t.Fatal(err)
				}
				got, err := grpcLog(t, func() ([]byte, error) { m, err := stream.Recv(); return m.GetData(), err })
				if tt.status == 200 && (err != nil || string(got) != tt.want) {
					t.Errorf("gRPC: %v, %d bytes; want %d", err, len(got), len(tt.want))
				}
				if tt.status != 200 {
					wantCode(t, err, map[int]codes.Code{404: codes.NotFound, 400: codes.InvalidArgument}[tt.status], "")
				}
				// tkn-results' default: v1alpha3.Logs/GetLog answers alike.
				stream3, err := logs3.GetLog(ctx, &pb3.GetLogRequest{Name: name})
				if err != nil {
					t.Fatal(err)
				}
				got3, err := grpcLog(t, func() ([]byte, error) { m, err := stream3.Recv(); return m.GetData(), err })
				if !bytes.Equal(got3, got) || (tt.status == 200) != (err == nil) {
					t.Errorf("v1alpha3: %v, %d bytes; want %d", err, len(got3), len(got))
				}
			})
		}

		// ListLogs: Log records only, named under /logs/, upstream's order_by names (B17).
		c := client{t: t, url: ts.URL}
		var list pb.ListRecordsResponse
		c.do("GET", base+"parents/ci/results/"+prUID+"/logs?order_by=created_time+asc", "").ok(t, &list)
		var names []string
		for _, r := range list.Records {
			names = append(names, r.Name)
			if r.Data.GetType() != store.TypeLog {
				t.Errorf("listed a %s", r.Data.GetType())
			}
		}
		want := []string{"0e0e0e0e-0000-4000-8000-000000000001", stepLogUID, "0e0e0e0e-0000-4000-8000-000000000003", "0e0e0e0e-0000-4000-8000-000000000004"}
		for i, id := range want {
			want[i] = "ci/results/" + prUID + "/logs/" + id
		}
		if !slices.Equal(names, want) {
			t.Errorf("ListLogs: %v; want %v", names, want)
		}
		c.do("GET", base+"parents/ci/results/-/logs?order_by=updated_time+desc&page_size=5&filter="+
			"data.spec.step+%3D%3D+%22big%22", "").ok(t, &list)
		if len(list.Records) != 1 || !strings.HasSuffix(list.Records[0].Name, "/logs/0e0e0e0e-0000-4000-8000-000000000003") {
			t.Errorf("ListLogs filtered: %v", &list)
		}
		c.do("GET", base+"parents/ci/results/-/logs?order_by=bogus", "").failed(t, 400, 3, "bogus")
		c.do("GET", base+"parents/ci/results/-/logs?page_size=-1", "").failed(t, 400, 3, "page size")
		if _, err := logs.ListLogs(ctx, &pb.ListRecordsRequest{Parent: "ci/results/-", OrderBy: "create_time"}); err != nil {
			t.Errorf("gRPC ListLogs: %v", err)
		}

		// UpdateLog: bytes of a Log record created first, replaced on each
		// upload (B12), every message naming the same log.
		result := "ci/results/" + prUID
		rpc := pb.NewResultsClient(conn)
		if _, err := rpc.CreateRecord(ctx, &pb.CreateRecordRequest{Parent: result, Record: &pb.Record{Name: result + "/records/" + uploadUID,
			Data: &pb.Any{Type: store.TypeLog, Value: []byte(`{"kind":"Log","apiVersion":"results.tekton.dev/v1alpha3","metadata":{"uid":"` + uploadUID + `"},` +
				`"spec":{"resource":{"kind":"TaskRun","namespace":"ci","name":"lone","uid":"` + tr3UID + `"},"type":"File"},"status":{"path":"ci/x/lone-log","size":0}}`)}}}); err != nil {
			t.Fatal(err)
		}
		logName := result + "/logs/" + uploadUID
		upload := func(msgs ...*pb.Log) (*pb.LogSummary, error) {
			stream, err := logs.UpdateLog(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if err := stream.Send(m); err != nil {
					break // the server answered already: CloseAndRecv has it
				}
			}
			return stream.CloseAndRecv()
		}
		sum, err := upload(&pb.Log{Name: logName, Data: []byte("hello ")}, &pb.Log{Name: logName, Data: []byte("world\n")})
		if err != nil || sum.GetRecord() != logName || sum.GetBytesReceived() != 12 {
			t.Fatalf("UpdateLog: %v %v", sum, err)
		}
		if status, _, body := getLogREST(t, ts.URL, prUID, tr3UID); status != 200 || body != "hello world\n\n" {
			t.Errorf("uploaded log by TaskRun uid: %d %q", status, body)
		}
		if sum, err := upload(&pb.Log{Name: logName, Data: []byte("again")}); err != nil || sum.GetBytesReceived() != 5 {
			t.Errorf("UpdateLog again: %v %v", sum, err)
		}
		if status, _, body := getLogREST(t, ts.URL, prUID, uploadUID); status != 200 || body != "again\n" {
			t.Errorf("uploaded again: %d %q; want the log replaced, not appended", status, body)
		}
		rec, err := rpc.GetRecord(ctx, &pb.GetRecordRequest{Name: result + "/records/" + uploadUID})
		var stored struct {
			Status struct {
				Size     int64
				IsStored bool
			}
		}
		if err != nil || json.Unmarshal(rec.GetData().GetValue(), &stored) != nil || stored.Status.Size != 5 || !stored.Status.IsStored {
			t.Errorf("the Log record's status after upload: %s %v", rec.GetData().GetValue(), err)
		}
		_, err = upload(&pb.Log{Name: logName, Data: []byte("a")}, &pb.Log{Name: result + "/logs/" + stepLogUID, Data: []byte("b")})
		wantCode(t, err, codes.InvalidArgument, "cannot put logs for multiple records in the same server")
		_, err = upload(&pb.Log{Name: result + "/logs/" + missingUID, Data: []byte("a")})
		wantCode(t, err, codes.NotFound, "record not found")
		_, err = upload(&pb.Log{Name: result + "/logs/" + tr3UID, Data: []byte("a")})
		wantCode(t, err, codes.InvalidArgument, "not a log")
		_, err = upload(&pb.Log{Name: result + "/records/" + uploadUID, Data: []byte("a")})
		wantCode(t, err, codes.InvalidArgument, "Invalid Name")

		// DeleteLog: the record and its bytes; a run is not a log.
		c.do("DELETE", base+"parents/ci/results/"+prUID+"/logs/"+tr3UID, "").failed(t, 400, 3, "not a log")
		c.do("DELETE", base+"parents/ci/results/"+prUID+"/logs/"+uploadUID, "").ok(t, nil)
		if status, _, _ := getLogREST(t, ts.URL, prUID, uploadUID); status != 404 {
			t.Errorf("deleted log: %d", status)
		}
		if _, err := s.GetRecord(ctx, result+"/records/"+uploadUID); err == nil {
			t.Errorf("the Log record outlived DeleteLog")
		}
		if _, err := logs.DeleteLog(ctx, &pb.DeleteLogRequest{Name: result + "/logs/" + stepLogUID}); err != nil {
			t.Errorf("gRPC DeleteLog: %v", err)
		}
		if status, _, body := getLogREST(t, ts.URL, prUID, trUID); status != 200 || body != "compiled\n\n" {
			t.Errorf("TaskRun log after a step log is deleted: %d %q", status, body)
		}
		c.do("DELETE", base+"parents/ci/results/"+prUID+"/logs/"+missingUID, "").failed(t, 404, 5, "record not found")
	})
}
