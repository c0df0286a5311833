package tekton_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/annals-dev/annals/server"
	pb "github.com/annals-dev/annals/server/tekton/proto/v1alpha2"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// Runs summarized: three in ci (two of Pipeline build), one in prod.
const (
	sumA = "0f0f0f0f-0000-4000-8000-00000000000a" // ci, build, Succeeded, 30 s
	sumB = "0f0f0f0f-0000-4000-8000-00000000000b" // ci, build, Failed, 1 h
	sumC = "0f0f0f0f-0000-4000-8000-00000000000c" // ci TaskRun in B's Result, Running
	sumD = "0f0f0f0f-0000-4000-8000-00000000000d" // prod, no Pipeline, Cancelled, 2 h
)

func summaryFixture(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := context.Background()
	run := func(ns, result, uid, kind, pipeline, reason, created, start, end string) {
		if result == uid {
			if _, err := s.CreateResult(ctx, ns, uid, nil); err != nil {
				t.Fatal(err)
			}
		}
		labels := "{}"
		if pipeline != "" {
			labels = `{"tekton.dev/pipeline":"` + pipeline + `"}`
		}
		status := fmt.Sprintf(`"startTime":%q,"conditions":[{"type":"Succeeded","reason":%q}]`, start, reason)
		if end != "" {
			status += fmt.Sprintf(`,"completionTime":%q`, end)
		}
		data := fmt.Sprintf(`{"apiVersion":"tekton.dev/v1","kind":%q,"metadata":{"name":"r","namespace":%q,"uid":%q,"creationTimestamp":%q,"labels":%s},"status":{%s}}`,
			kind, ns, uid, created, labels, status)
		if _, err := s.CreateRecord(ctx, store.RecordWrite{ResultName: store.ResultName(ns, result), UID: uid, DataType: "tekton.dev/v1." + kind, Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}
	run("ci", sumA, sumA, "PipelineRun", "build", "Succeeded", "2026-11-01T00:00:00Z", "2026-11-01T00:00:00Z", "2026-11-01T00:00:30Z")
	run("ci", sumB, sumB, "PipelineRun", "build", "Failed", "2026-11-02T10:00:00Z", "2026-11-02T10:00:00Z", "2026-11-02T11:00:00Z")
	run("ci", sumB, sumC, "TaskRun", "", "Running", "2026-11-02T11:00:00Z", "2026-11-02T11:00:00Z", "")
	run("prod", sumD, sumD, "PipelineRun", "", "Cancelled", "2026-11-03T00:00:00Z", "2026-11-03T00:00:00Z", "2026-11-03T02:00:00Z")
}

func unix(s string) float64 {
	t, _ := time.Parse(time.RFC3339, s)
	return float64(t.Unix())
}

func TestRecordListSummary(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		summaryFixture(t, s)
		ts := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet}))
		t.Cleanup(ts.Close)
		c := client{t: t, url: ts.URL}
		all := "succeeded,failed,cancelled,running,others,total,last_runtime,avg_duration,min_duration,max_duration,total_duration"
		type row = map[string]any
		tests := []struct {
			name, path string
			query      url.Values
			want       []row // nil: the answer is {}
		}{
			{"every key, one row", "-/results/-", url.Values{"summary": {all}}, []row{{
				"succeeded": 1.0, "failed": 1.0, "cancelled": 1.0, "running": 1.0, "others": 0.0, "total": 4.0,
				"last_runtime": unix("2026-11-03T00:00:00Z"), "avg_duration": "01:00:10", "min_duration": "00:00:30", "max_duration": "02:00:00", "total_duration": "03:00:30"}}},
			{"no summary is total (B3); the console's page_size is ignored", "-/results/-", url.Values{"page_size": {"100"}}, []row{{"total": 4.0}}},
			{"nothing matches: one row, null durations", "-/results/-", url.Values{"summary": {"total,avg_duration,last_runtime"}, "filter": {`data_type == "x"`}},
				[]row{{"total": 0.0, "avg_duration": nil, "last_runtime": nil}}},
			{"Tekton's CEL, as ListRecords", "-/results/-", url.Values{"summary": {"total"}, "filter": {`data_type == PIPELINE_RUN && data.status.startTime > timestamp("2026-11-02T00:00:00Z")`}},
				[]row{{"total": 2.0}}},
			{"one namespace", "ci/results/-", url.Values{"summary": {"total"}}, []row{{"total": 3.0}}},
			{"one Result", "ci/results/" + sumB, url.Values{"summary": {"total,running"}}, []row{{"total": 2.0, "running": 1.0}}},
			{"one Result id in any namespace", "-/results/" + sumD, url.Values{"summary": {"cancelled"}}, []row{{"cancelled": 1.0}}},
			{"a parent Annals never stores", "no_such_ns/results/-", url.Values{"summary": {"total"}}, []row{{"total": 0.0}}},
			{"namespace, total DESC", "-/results/-", url.Values{"summary": {"total"}, "group_by": {"namespace"}, "order_by": {"total DESC"}},
				[]row{{"group_value": "ci", "total": 3.0}, {"group_value": "prod", "total": 1.0}}},
			{"namespace, ASC total (B10)", "-/results/-", url.Values{"summary": {"total"}, "group_by": {"namespace"}, "order_by": {"ASC total"}},
				[]row{{"group_value": "prod", "total": 1.0}, {"group_value": "ci", "total": 3.0}}},
			{"pipeline", "-/results/-", url.Values{"summary": {"total,avg_duration"}, "groupBy": {"pipeline"}},
				[]row{{"group_value": "ci/", "total": 1.0, "avg_duration": nil}, {"group_value": "ci/build", "total": 2.0, "avg_duration": "00:30:15"}, {"group_value": "prod/", "total": 1.0, "avg_duration": "02:00:00"}}},
			{"repository", "ci/results/-", url.Values{"summary": {"total"}, "group_by": {"repository"}}, []row{{"group_value": "ci/", "total": 3.0}}},
			{"day of creation", "-/results/-", url.Values{"summary": {"total"}, "group_by": {"day"}},
				[]row{{"group_value": unix("2026-11-01T00:00:00Z"), "total": 1.0}, {"group_value": unix("2026-11-02T00:00:00Z"), "total": 2.0}, {"group_value": unix("2026-11-03T00:00:00Z"), "total": 1.0}}},
			{"month of completion; nulls last", "-/results/-", url.Values{"summary": {"total"}, "group_by": {"month completionTime"}, "order_by": {"total asc"}},
				[]row{{"group_value": nil, "total": 1.0}, {"group_value": unix("2026-11-01T00:00:00Z"), "total": 3.0}}},
			{"hour of start, last_runtime DESC", "ci/results/-", url.Values{"summary": {"last_runtime"}, "group_by": {"hour startTime"}, "order_by": {"last_runtime DESC"}},
				[]row{{"group_value": unix("2026-11-02T11:00:00Z"), "last_runtime": unix("2026-11-02T11:00:00Z")}, {"group_value": unix("2026-11-02T10:00:00Z"), "last_runtime": unix("2026-11-02T10:00:00Z")}, {"group_value": unix("2026-11-01T00:00:00Z"), "last_runtime": unix("2026-11-01T00:00:00Z")}}},
			{"group_by and nothing matches: {}", "-/results/-", url.Values{"summary": {"total"}, "group_by": {"year"}, "filter": {`data_type == "x"`}}, nil},
			{"order_by is not read without group_by", "-/results/-", url.Values{"summary": {"total"}, "order_by": {"bogus"}}, []row{{"total": 4.0}}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a := c.do("GET", base+"parents/"+tt.path+"/records/summary?"+tt.query.Encode(), "")
				a.ok(t, nil)
				var got struct{ Summary []row }
				if err := json.Unmarshal(a.body, &got); err != nil {
					t.Fatal(err)
				}
				if tt.want == nil && string(a.body) != "{}" {
					t.Errorf("got %s; want {}", a.body)
				}
				if !reflect.DeepEqual(got.Summary, tt.want) {
					t.Errorf("got %s\nwant %v", a.body, tt.want)
				}
			})
		}
		errors := []struct{ query, message string }{
			{"summary=total,bogus", "invalid aggregate query: bogus"},
			{"summary=total&group_by=fortnight", "group_by does not recognize fortnight"},
			{"summary=total&group_by=day+creationTime", "group_by does not recognize creationTime"},
			{"summary=total&group_by=namespace&order_by=total+sideways", "order_by does not recognize total sideways"},
			{"summary=total&group_by=namespace&order_by=failed+ASC", "field name failed is not allowed, must be one of summary"},
			{"summary=total&filter=" + url.QueryEscape("data.x - data.y > 1"), ""},
		}
		for _, e := range errors {
			c.do("GET", base+"parents/-/results/-/records/summary?"+e.query, "").failed(t, 400, 3, e.message)
		}

		// gRPC: counts and times are numbers, durations strings, no value null.
		rpc := pb.NewResultsClient(dial(t, ts))
		out, err := rpc.GetRecordListSummary(context.Background(), &pb.RecordListSummaryRequest{Parent: "ci/results/-", Summary: "total,max_duration,last_runtime", GroupBy: "pipeline", OrderBy: "total DESC"})
		if err != nil || len(out.Summary) != 2 {
			t.Fatalf("gRPC summary: %v %v", out, err)
		}
		first := out.Summary[0].GetFields()
		if _, ok := first["total"].GetKind().(*structpb.Value_NumberValue); !ok || first["total"].GetNumberValue() != 2 || first["max_duration"].GetStringValue() != "01:00:00" || first["group_value"].GetStringValue() != "ci/build" {
			t.Errorf("gRPC row %v", first)
		}
		if _, ok := out.Summary[1].GetFields()["max_duration"].GetKind().(*structpb.Value_NullValue); !ok {
			t.Errorf("gRPC null duration: %v", out.Summary[1])
		}
		_, err = rpc.GetRecordListSummary(context.Background(), &pb.RecordListSummaryRequest{Parent: "ci", Summary: "total"})
		wantCode(t, err, codes.InvalidArgument, "parent must match")
	})
}
