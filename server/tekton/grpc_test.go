package tekton_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/annals-dev/annals/server"
	pb "github.com/annals-dev/annals/server/tekton/proto/v1alpha2"
	"github.com/annals-dev/annals/store"
	"github.com/annals-dev/annals/store/storetest"
)

// dial connects a generated client to the server's one port: h2c in clear
// text, or h2 over TLS.
func dial(t *testing.T, ts *httptest.Server) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if ts.TLS != nil {
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})
	}
	conn, err := grpc.NewClient("passthrough:///"+ts.Listener.Addr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func wantCode(t *testing.T, err error, code codes.Code, mention string) {
	t.Helper()
	if st := status.Convert(err); st.Code() != code || !strings.Contains(st.Message(), mention) {
		t.Errorf("got %v; want %v mentioning %q", err, code, mention)
	}
}

func TestResultsGRPC(t *testing.T) {
	storetest.Run(t, func(t *testing.T, s *store.Store) {
		ts := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet}))
		t.Cleanup(ts.Close)
		rpc := pb.NewResultsClient(dial(t, ts))
		ctx := context.Background()
		name := "ci/results/" + prUID

		res, err := rpc.CreateResult(ctx, &pb.CreateResultRequest{Parent: "ci", Result: &pb.Result{Name: name, Annotations: map[string]string{"a": "b"}}})
		if err != nil || res.Uid != prUID || res.Annotations["a"] != "b" {
			t.Fatalf("CreateResult: %v %v", res, err)
		}
		_, err = rpc.CreateResult(ctx, &pb.CreateResultRequest{Parent: "ci", Result: &pb.Result{Name: name}})
		wantCode(t, err, codes.AlreadyExists, "")
		_, err = rpc.GetResult(ctx, &pb.GetResultRequest{Name: "ci/results/0a0a0a0a-0000-4000-8000-000000000000"})
		wantCode(t, err, codes.NotFound, "record not found")
		_, err = rpc.GetResult(ctx, &pb.GetResultRequest{Name: "ci"})
		wantCode(t, err, codes.InvalidArgument, "name must match")
		// The server acts on UpdateResultRequest.name, as the watcher sends it.
		upd, err := rpc.UpdateResult(ctx, &pb.UpdateResultRequest{Name: name, Etag: res.Etag, Result: &pb.Result{Name: name,
			Summary: &pb.RecordSummary{Record: name + "/records/" + prUID, Type: "tekton.dev/v1.PipelineRun", Status: pb.RecordSummary_FAILURE}}})
		if err != nil || upd.Summary.GetStatus() != pb.RecordSummary_FAILURE || len(upd.Annotations) != 0 {
			t.Fatalf("UpdateResult: %v %v", upd, err)
		}
		_, err = rpc.UpdateResult(ctx, &pb.UpdateResultRequest{Name: name, Etag: res.Etag, Result: &pb.Result{}})
		wantCode(t, err, codes.FailedPrecondition, "etag")

		rec, err := rpc.CreateRecord(ctx, &pb.CreateRecordRequest{Parent: name, Record: &pb.Record{Name: name + "/records/" + trUID,
			Data: &pb.Any{Type: "tekton.dev/v1.TaskRun", Value: []byte(`{"kind":"TaskRun","metadata":{"name":"x"}}`)}}})
		if err != nil || string(rec.Data.Value) != `{"kind":"TaskRun","metadata":{"name":"x"}}` {
			t.Fatalf("CreateRecord: %v %v", rec, err)
		}
		got, err := rpc.GetRecord(ctx, &pb.GetRecordRequest{Name: rec.Name})
		if err != nil || got.Etag != rec.Etag || got.Data.Type != "tekton.dev/v1.TaskRun" {
			t.Fatalf("GetRecord: %v %v", got, err)
		}
		changed, err := rpc.UpdateRecord(ctx, &pb.UpdateRecordRequest{Etag: got.Etag, Record: &pb.Record{Name: rec.Name,
			Data: &pb.Any{Type: "tekton.dev/v1.TaskRun", Value: []byte(`{"kind":"TaskRun","metadata":{"name":"y"}}`)}}})
		if err != nil || changed.Etag == got.Etag {
			t.Fatalf("UpdateRecord: %v %v", changed, err)
		}
		// Lists, with the fields metadata.
		fields := metadata.AppendToOutgoingContext(ctx, "fields", "records.name")
		list, err := rpc.ListRecords(fields, &pb.ListRecordsRequest{Parent: "-/results/-", Filter: `data.metadata.name == "y"`})
		if err != nil || len(list.Records) != 1 || list.Records[0].Name != rec.Name || list.Records[0].Data != nil || list.Records[0].Uid != "" {
			t.Fatalf("ListRecords with fields: %v %v", list, err)
		}
		results, err := rpc.ListResults(ctx, &pb.ListResultsRequest{Parent: "ci", Filter: `summary.status == FAILURE`})
		if err != nil || len(results.Results) != 1 {
			t.Fatalf("ListResults: %v %v", results, err)
		}
		_, err = rpc.ListResults(ctx, &pb.ListResultsRequest{Parent: "ci", PageSize: 3})
		wantCode(t, err, codes.InvalidArgument, "invalid page size")
		if sum, err := rpc.GetRecordListSummary(ctx, &pb.RecordListSummaryRequest{Parent: "ci/results/-", Summary: "total"}); err != nil || sum.Summary[0].GetFields()["total"].GetNumberValue() != 1 {
			t.Errorf("GetRecordListSummary: %v %v", sum, err)
		}
		if _, err := rpc.DeleteRecord(ctx, &pb.DeleteRecordRequest{Name: rec.Name}); err != nil {
			t.Fatal(err)
		}
		if _, err := rpc.DeleteResult(ctx, &pb.DeleteResultRequest{Name: name}); err != nil {
			t.Fatal(err)
		}
		_, err = rpc.DeleteResult(ctx, &pb.DeleteResultRequest{Name: name})
		wantCode(t, err, codes.NotFound, "record not found")
	})
}

// TestGRPCBesideHTTP: one port, over h2c and over TLS, serves gRPC (with
// health and reflection) and REST and GraphQL.
func TestGRPCBesideHTTP(t *testing.T) {
	s, _ := storetest.Open(t, "sqlite")
	plain := httptest.NewServer(server.New(server.Config{Store: s, Logger: quiet}))
	t.Cleanup(plain.Close)
	secure := httptest.NewUnstartedServer(server.New(server.Config{Store: s, Logger: quiet}))
	secure.EnableHTTP2 = true
	secure.StartTLS()
	t.Cleanup(secure.Close)
	for _, ts := range []*httptest.Server{plain, secure} {
		conn := dial(t, ts)
		ctx := context.Background()
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "tekton.results.v1alpha2.Results"})
		if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health: %v %v", h, err)
		}
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: ""}})
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var services []string
		for _, svc := range resp.GetListServicesResponse().GetService() {
			services = append(services, svc.Name)
		}
		for _, want := range []string{"tekton.results.v1alpha2.Results", "tekton.results.v1alpha2.Logs", "tekton.results.v1alpha3.Logs", "grpc.health.v1.Health"} {
			if !slices.Contains(services, want) {
				t.Errorf("reflection lists %v, not %s", services, want)
			}
		}
		if _, err := pb.NewResultsClient(conn).ListResults(ctx, &pb.ListResultsRequest{Parent: "-"}); err != nil {
			t.Errorf("ListResults: %v", err)
		}
		resp2, err := ts.Client().Get(ts.URL + base + "parents/-/results")
		if err != nil || resp2.StatusCode != http.StatusOK {
			t.Errorf("REST on the same port: %v %v", resp2, err)
		} else {
			resp2.Body.Close()
		}
	}
}
