package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/annals-dev/annals/store/storetest"
)

// TestTracingCoversRequestResolversAndSQL: with a tracer provider set, one
// query gives a trace from the HTTP request down to its SQL statements,
// continuing the caller's trace.
func TestTracingCoversRequestResolversAndSQL(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer otel.SetTracerProvider(prev)
	// The package-level tracers were made from the global provider, which
	// delegates to the one set last.

	s, _ := storetest.Open(t, "sqlite")
	h := fixture(t, s)
	req := httptest.NewRequest(http.MethodPost, "http://localhost/graphql", strings.NewReader(`{"query":"query Dash { records(parent: \"ci\", first: 2) { nodes { name result { name } } } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req.WithContext(context.Background()))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	tp.ForceFlush(context.Background())
	names := map[string]bool{}
	for _, span := range exp.GetSpans() {
		names[span.Name] = true
		if span.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("span %q is not in the caller's trace", span.Name)
		}
	}
	for _, want := range []string{"POST /graphql", "GraphQL query Dash", "resolve Query.records", "resolve Record.result", "SQL SELECT"} {
		if !names[want] {
			t.Errorf("no span %q among %v", want, names)
		}
	}
}
