package server

import (
	"context"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"
)

// withCost is an operation context whose complexity is cost.
func withCost(ctx context.Context, cost int) context.Context {
	oc := &graphql.OperationContext{Operation: &ast.OperationDefinition{Operation: ast.Query}}
	oc.Stats.SetExtension("ComplexityLimit", &extension.ComplexityStats{Complexity: cost, ComplexityLimit: 50000})
	return graphql.WithOperationContext(ctx, oc)
}

// TestCostGate: with one slot, a second expensive operation waits until
// the first answers, cheap ones pass meanwhile, and one that waits past
// its deadline is refused with RESOURCE_EXHAUSTED.
func TestCostGate(t *testing.T) {
	g := newCostGate(1000, 1, prometheus.NewRegistry())
	release := make(chan struct{})
	blocking := func(ctx context.Context) graphql.ResponseHandler {
		return func(ctx context.Context) *graphql.Response { <-release; return &graphql.Response{} }
	}
	quick := func(ctx context.Context) graphql.ResponseHandler {
		return func(ctx context.Context) *graphql.Response { return &graphql.Response{} }
	}
	first := g.InterceptOperation(withCost(context.Background(), 5000), blocking)
	firstDone := make(chan struct{})
	go func() { first(context.Background()); close(firstDone) }()

	// Cheap: straight through while the slot is held.
	if resp := g.InterceptOperation(withCost(context.Background(), 10), quick)(context.Background()); resp == nil || len(resp.Errors) > 0 {
		t.Fatalf("cheap operation: %+v", resp)
	}
	// Expensive with a short deadline: refused.
	ctx, cancel := context.WithTimeout(withCost(context.Background(), 5000), 50*time.Millisecond)
	defer cancel()
	resp := g.InterceptOperation(ctx, quick)(ctx)
	if len(resp.Errors) != 1 || resp.Errors[0].Extensions["code"] != "RESOURCE_EXHAUSTED" {
		t.Fatalf("waiting past the deadline: %+v", resp)
	}
	// Expensive without deadline: runs once the first answered.
	secondDone := make(chan struct{})
	go func() {
		g.InterceptOperation(withCost(context.Background(), 5000), quick)(context.Background())
		close(secondDone)
	}()
	select {
	case <-secondDone:
		t.Fatal("a second expensive operation ran while the only slot was held")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-firstDone
	<-secondDone

	// A request that ends before its response is made gives its slot back.
	gone, end := context.WithCancel(withCost(context.Background(), 5000))
	g.InterceptOperation(gone, quick) // the handler is never called
	end()
	ctx2, cancel2 := context.WithTimeout(withCost(context.Background(), 5000), time.Second)
	defer cancel2()
	if resp := g.InterceptOperation(ctx2, quick)(ctx2); len(resp.Errors) > 0 {
		t.Fatalf("the slot of an abandoned request was not given back: %+v", resp.Errors)
	}
}
