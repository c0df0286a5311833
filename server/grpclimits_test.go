package server_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/annals-dev/annals/server"
	"github.com/annals-dev/annals/server/auth"
	pb "github.com/annals-dev/annals/server/tekton/proto/v1alpha2"
)

// gRPC calls count against the same per-client limits as HTTP requests on
// the same port, and a refused call is RESOURCE_EXHAUSTED with the limit.
func TestPerClientLimitsCoverGRPC(t *testing.T) {
	w := setupAuthWorld(t)
	url, _ := w.countedServer(t, auth.Options{}, server.Config{ClientRate: 1, ClientBurst: 5})
	conn, err := grpc.NewClient(strings.TrimPrefix(url, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	results := pb.NewResultsClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+w.tokens["alice"])
	var served, limited int
	for range 12 {
		_, err := results.ListResults(ctx, &pb.ListResultsRequest{Parent: "ci"})
		switch status.Code(err) {
		case codes.OK:
			served++
		case codes.ResourceExhausted:
			limited++
			if msg := status.Convert(err).Message(); !strings.Contains(msg, "the limit is 1 per second") {
				t.Errorf("refusal: %q", msg)
			}
		default:
			t.Fatalf("ListResults: %v", err)
		}
	}
	// The first call is counted by address (the token is not known yet),
	// then the burst of 5 by name.
	if served < 5 || served > 8 || limited == 0 {
		t.Errorf("%d calls served, %d refused; want about 6 served, the rest RESOURCE_EXHAUSTED", served, limited)
	}
}
