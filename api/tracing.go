package api

import (
	"context"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hammerwork-go/hw-agent/tracing"
)

// startCreate opens the producer span a job or workflow is created under,
// as a child of the caller's traceparent when it sent a valid one. What it
// returns is stored on the rows (trace_id, span_context, trace_state,
// parent_span_id), so every attempt of the job later joins this trace and
// hands the caller's tracestate on to the app.
func (s *Server) startCreate(c echo.Context, p tracing.CreateParams) (context.Context, trace.Span, tracing.Creation) {
	req := c.Request()
	return s.tracer.StartCreate(s.tracer.Extract(req.Context(), req.Header), p)
}

// endCreate ends a producer span with the id of what was written (a job's
// messaging.message.id, a workflow's hammerwork.workflow.id), or the error
// that wrote nothing.
func endCreate(span trace.Span, id attribute.KeyValue, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	} else {
		span.SetAttributes(id)
	}
	span.End()
}
