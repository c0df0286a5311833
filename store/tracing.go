package store

import (
	"context"

	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracer makes a span of every SQL statement. Without a configured
// OpenTelemetry provider (the default) spans cost next to nothing.
var tracer = otel.Tracer("github.com/annals-dev/annals/store")

// maxTracedSQL bounds the statement text put on a span.
const maxTracedSQL = 2000

type spanKey struct{}

// sqlTracer is the bun hook that traces statements built with bun; the
// store's raw statements are traced in queryRows.
type sqlTracer struct{ system string }

func (t sqlTracer) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	ctx, span := t.start(ctx, e.Operation(), e.Query)
	return context.WithValue(ctx, spanKey{}, span)
}

func (sqlTracer) AfterQuery(ctx context.Context, e *bun.QueryEvent) {
	if span, ok := ctx.Value(spanKey{}).(trace.Span); ok {
		endSpan(span, e.Err)
	}
}

func (t sqlTracer) start(ctx context.Context, operation, query string) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		// Not sampled (or tracing off): no child spans either.
		return ctx, trace.SpanFromContext(ctx)
	}
	if len(query) > maxTracedSQL {
		query = query[:maxTracedSQL]
	}
	return tracer.Start(ctx, "SQL "+operation, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", t.system), attribute.String("db.operation", operation), attribute.String("db.statement", query)))
}

func endSpan(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "statement failed")
	}
	span.End()
}
