package tracing

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// InstrumentationName names hw-agent's tracer.
const InstrumentationName = "github.com/hammerwork-go/hw-agent"

// MessagingSystem is messaging.system on every span of a job.
const MessagingSystem = "hammerwork"

// Attributes hw-agent adds to the messaging conventions.
const (
	AttrAttempt      = attribute.Key("hammerwork.job.attempt")
	AttrWorkflowID   = attribute.Key("hammerwork.workflow.id")
	AttrWorkflowName = attribute.Key("hammerwork.workflow.name")
	AttrStep         = attribute.Key("hammerwork.step")
	AttrOutcome      = attribute.Key("hammerwork.outcome")
	AttrSchedule     = attribute.Key("hammerwork.schedule.name")
	AttrNominalTime  = attribute.Key("hammerwork.schedule.nominal_time")
)

// BaggageCorrelationID is the baggage member that carries a job's
// correlation id to the app and onward to everything the app calls.
const BaggageCorrelationID = "hammerwork.correlation_id"

// Tracer starts hw-agent's spans: the producer span a job or workflow is
// created under, the consumer span of each attempt and the client span of
// its HTTP request. With tracing off it still hands out valid creation
// contexts, so the app receives one trace per workflow either way.
type Tracer struct {
	tracer  trace.Tracer
	prop    propagation.TextMapPropagator
	enabled bool
}

// NewTracer uses tp; nil or a no-op provider means tracing is off.
func NewTracer(tp trace.TracerProvider) *Tracer {
	enabled := true
	switch tp.(type) {
	case nil:
		tp, enabled = noop.NewTracerProvider(), false
	case noop.TracerProvider, *noop.TracerProvider:
		enabled = false
	}
	return &Tracer{
		tracer:  tp.Tracer(InstrumentationName),
		prop:    propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		enabled: enabled,
	}
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracer) Enabled() bool { return t.enabled }

// Extract reads traceparent, tracestate and baggage from an inbound
// request. An invalid traceparent is ignored together with its tracestate,
// as the W3C specification requires.
func (t *Tracer) Extract(ctx context.Context, h http.Header) context.Context {
	return t.prop.Extract(ctx, propagation.HeaderCarrier(h))
}

// CreateParams describe what is being created.
type CreateParams struct {
	// Queue is the job's queue; empty for a workflow.
	Queue string
	// Workflow is the workflow's name; set, the span is the workflow's root.
	Workflow string
	// TraceID is an explicit W3C trace id from the request; honoured when
	// valid, so the job or workflow joins the trace the caller named.
	TraceID string
	// CorrelationID becomes messaging.message.conversation_id.
	CorrelationID string
}

// Creation is what a job or workflow stores about the context it was
// created under.
type Creation struct {
	// TraceID is 32 lowercase hex digits (hammerwork_jobs.trace_id).
	TraceID string
	// SpanContext is the producer span as a traceparent (span_context).
	SpanContext string
	// TraceState is the caller's W3C tracestate, which the producer span
	// inherits (trace_state); empty when the caller sent none or started
	// a new root with an explicit trace id. Vendors keep their own trace
	// data there, so the app must receive it with the traceparent.
	TraceState string
	// ParentSpanID is the caller's span the producer span is a child of
	// (parent_span_id); empty for a root.
	ParentSpanID string
}

// StartCreate starts the PRODUCER span "create <queue>" or "create
// workflow <name>" under ctx's remote parent (see Extract). An explicit
// trace id different from the parent's starts a new root in that trace,
// linked to the parent. The caller ends the span once the rows are written.
func (t *Tracer) StartCreate(ctx context.Context, p CreateParams) (context.Context, trace.Span, Creation) {
	parent := trace.SpanContextFromContext(ctx)
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String(MessagingSystem),
			semconv.MessagingOperationTypeCreate,
			semconv.MessagingOperationName("create"),
		),
	}
	name := "create " + p.Queue
	if p.Workflow != "" {
		name = "create workflow " + p.Workflow
		opts = append(opts, trace.WithAttributes(AttrWorkflowName.String(p.Workflow)))
	} else {
		opts = append(opts, trace.WithAttributes(semconv.MessagingDestinationName(p.Queue)))
	}
	if p.CorrelationID != "" {
		opts = append(opts, trace.WithAttributes(semconv.MessagingMessageConversationID(p.CorrelationID)))
	}
	var want trace.TraceID
	if ValidTraceID(p.TraceID) {
		want, _ = trace.TraceIDFromHex(p.TraceID)
	}
	if want.IsValid() && want != parent.TraceID() {
		ctx = withTraceID(ctx, want)
		opts = append(opts, trace.WithNewRoot())
		if parent.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: parent}))
		}
		parent = trace.SpanContext{}
	}
	ctx, span := t.tracer.Start(ctx, name, opts...)
	ctx = clearIDs(ctx)
	sc := span.SpanContext()
	if !sc.IsValid() || sc.SpanID() == parent.SpanID() {
		// Tracing is off: the no-op span carries the parent's context or
		// none. Make the child context the SDK would have made.
		sc = synthesize(parent, want)
	}
	cr := Creation{TraceID: sc.TraceID().String(), SpanContext: traceparent(sc), TraceState: sc.TraceState().String()}
	if parent.IsValid() {
		cr.ParentSpanID = parent.SpanID().String()
	}
	return ctx, span, cr
}

// ScheduleRun is a store.RunTracer: it records the PRODUCER span
// "schedule <name>" of one fired run, the root of a new trace, so every run
// of a schedule is a trace of its own instead of all runs piling into one,
// and returns it as the creation context the run's job or workflow
// carries. The span has no parent: a run is started by the clock, not by a
// request. It ends at once, as the store plans the run before writing it;
// a run whose transaction rolls back leaves a span with nothing under it.
// With tracing off it still returns a fresh valid context, as StartCreate
// does, so the app sees one trace per run either way.
func (t *Tracer) ScheduleRun(schedule string, nominal time.Time) store.RunTrace {
	_, span := t.tracer.Start(context.Background(), "schedule "+schedule,
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String(MessagingSystem),
			AttrSchedule.String(schedule),
			AttrNominalTime.String(nominal.UTC().Format(time.RFC3339Nano)),
		))
	span.End()
	sc := span.SpanContext()
	if !sc.IsValid() {
		sc = synthesize(trace.SpanContext{}, trace.TraceID{})
	}
	return store.RunTrace{TraceID: sc.TraceID().String(), SpanContext: traceparent(sc), TraceState: sc.TraceState().String()}
}

// synthesize is a new span context under parent (or a root in trace want,
// or in a fresh trace), sampled unless the parent said otherwise.
func synthesize(parent trace.SpanContext, want trace.TraceID) trace.SpanContext {
	cfg := trace.SpanContextConfig{SpanID: randomSpanID(), TraceFlags: trace.FlagsSampled}
	switch {
	case parent.IsValid():
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = parent.TraceID(), parent.TraceFlags(), parent.TraceState()
	case want.IsValid():
		cfg.TraceID = want
	default:
		cfg.TraceID = randomTraceID()
	}
	return trace.NewSpanContext(cfg)
}

func traceparent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// creationContext is a job's stored span_context and trace_state as a
// remote parent, so the spans of every attempt inherit the caller's
// tracestate and the app receives it. An unusable span_context gives an
// invalid context; an unusable trace_state is left out (JobTraceState).
func creationContext(j *job.Job) trace.SpanContext {
	tp, err := ParseTraceparent(j.SpanContext)
	if err != nil {
		return trace.SpanContext{}
	}
	ts, _ := JobTraceState(j)
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tp.TraceID, SpanID: tp.SpanID, TraceFlags: trace.TraceFlags(tp.Flags), TraceState: ts, Remote: true,
	})
}

// JobTraceState parses a job's stored trace_state as the W3C specification
// tells a receiver to. A job enqueued through the API holds a tracestate the
// propagator already parsed; one written by other means may not, and it is
// then left out of the job's context and headers rather than sent broken.
// The error says why; an empty trace_state is no error.
func JobTraceState(j *job.Job) (trace.TraceState, error) {
	if j.TraceState == "" {
		return trace.TraceState{}, nil
	}
	ts, err := trace.ParseTraceState(j.TraceState)
	if err != nil {
		return trace.TraceState{}, fmt.Errorf("trace_state of job %s: %w", j.ID, err)
	}
	return ts, nil
}

// StartProcess starts the CONSUMER span "process <queue>" of j's current
// attempt, a child of the job's creation context, so every attempt of
// every job of a workflow is a sibling in the workflow's trace. Its span id
// is ProcessSpanID, which later jobs link to. links point at the parents'
// last process spans (ParentLink).
func (t *Tracer) StartProcess(ctx context.Context, j *job.Job, links []trace.Link) (context.Context, trace.Span) {
	parent := creationContext(j)
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	} else if tid, err := trace.TraceIDFromHex(j.TraceID); err == nil {
		ctx = withTraceID(trace.ContextWithSpanContext(ctx, trace.SpanContext{}), tid)
	}
	if j.StartedAt != nil {
		ctx = withSpanID(ctx, ProcessSpanID(j.ID, j.Attempts, *j.StartedAt))
	}
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(MessagingSystem),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(j.Queue),
		semconv.MessagingMessageID(j.ID.String()),
		AttrAttempt.Int(j.Attempts),
	}
	if j.CorrelationID != "" {
		attrs = append(attrs, semconv.MessagingMessageConversationID(j.CorrelationID))
	}
	if j.WorkflowID != nil {
		attrs = append(attrs, AttrWorkflowID.String(j.WorkflowID.String()))
	}
	if j.WorkflowName != "" {
		attrs = append(attrs, AttrWorkflowName.String(j.WorkflowName))
	}
	if j.StepName != "" {
		attrs = append(attrs, AttrStep.String(j.StepName))
	}
	if j.CorrelationID != "" {
		if m, err := baggage.NewMemberRaw(BaggageCorrelationID, j.CorrelationID); err == nil {
			if b, err := baggage.FromContext(ctx).SetMember(m); err == nil {
				ctx = baggage.ContextWithBaggage(ctx, b)
			}
		}
	}
	ctx, span := t.tracer.Start(ctx, "process "+j.Queue,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...), trace.WithLinks(links...))
	return clearIDs(ctx), span
}

// clearIDs drops the ids chosen for one span, so its children get their own.
func clearIDs(ctx context.Context) context.Context {
	return withSpanID(withTraceID(ctx, trace.TraceID{}), trace.SpanID{})
}

// EndProcess ends an attempt's span with its outcome ("completed",
// "accepted", "retry", "failed", "released"). A non-empty errorType (the
// attempt's label: "http_503", "timeout", ...) marks the span as an error
// with message as its description.
func EndProcess(span trace.Span, outcome, errorType, message string) {
	span.SetAttributes(AttrOutcome.String(outcome))
	if errorType != "" {
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType))
		span.SetStatus(codes.Error, message)
	} else {
		span.SetStatus(codes.Ok, "")
	}
	span.End()
}

// RecordSettle records, in j's trace, the outcome the app reported through
// the API for an attempt it answered with 202: a CONSUMER span "settle
// <queue>" that is a child of the attempt's process span (ProcessSpanID of
// j's current attempt), so the late answer shows under the attempt it ends
// instead of being missing from the trace. j is the job as leased or as
// stored after the answer: either has the attempt's number and start.
// outcome, errorType and message are as for EndProcess.
func (t *Tracer) RecordSettle(ctx context.Context, j *job.Job, outcome, errorType, message string) {
	parent := creationContext(j)
	if !parent.IsValid() || j.StartedAt == nil {
		return
	}
	parent = trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    parent.TraceID(),
		SpanID:     ProcessSpanID(j.ID, j.Attempts, *j.StartedAt),
		TraceFlags: parent.TraceFlags(),
		Remote:     true,
	})
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(MessagingSystem),
		semconv.MessagingOperationTypeSettle,
		semconv.MessagingOperationName("settle"),
		semconv.MessagingDestinationName(j.Queue),
		semconv.MessagingMessageID(j.ID.String()),
		AttrAttempt.Int(j.Attempts),
	}
	if j.CorrelationID != "" {
		attrs = append(attrs, semconv.MessagingMessageConversationID(j.CorrelationID))
	}
	if j.WorkflowID != nil {
		attrs = append(attrs, AttrWorkflowID.String(j.WorkflowID.String()))
	}
	if j.StepName != "" {
		attrs = append(attrs, AttrStep.String(j.StepName))
	}
	_, span := t.tracer.Start(trace.ContextWithRemoteSpanContext(ctx, parent), "settle "+j.Queue,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	EndProcess(span, outcome, errorType, message)
}

// ParentLink links to the last process span of a parent job, computed from
// its row (see ProcessSpanID); false when the parent never ran or has no
// trace context.
func ParentLink(parent *job.Job) (trace.Link, bool) {
	sc := creationContext(parent)
	if !sc.IsValid() || parent.StartedAt == nil || parent.Attempts == 0 {
		return trace.Link{}, false
	}
	return trace.Link{
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    sc.TraceID(),
			SpanID:     ProcessSpanID(parent.ID, parent.Attempts, *parent.StartedAt),
			TraceFlags: sc.TraceFlags(),
		}),
		Attributes: []attribute.KeyValue{semconv.MessagingMessageID(parent.ID.String())},
	}, true
}

// StartClient starts the CLIENT span of the HTTP POST to the app at rawURL.
func (t *Tracer) StartClient(ctx context.Context, rawURL string) (context.Context, trace.Span) {
	attrs := []attribute.KeyValue{semconv.HTTPRequestMethodPost, semconv.URLFull(rawURL)}
	if u, err := url.Parse(rawURL); err == nil {
		attrs = append(attrs, semconv.ServerAddress(u.Hostname()))
		if port, err := strconv.Atoi(u.Port()); err == nil {
			attrs = append(attrs, semconv.ServerPort(port))
		}
	}
	return t.tracer.Start(ctx, "POST", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// EndClient ends the client span with the response status (0: none) and
// the error type when the request failed.
func EndClient(span trace.Span, statusCode int, errorType string) {
	if statusCode > 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(statusCode))
	}
	if errorType != "" {
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType))
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// Headers are the request headers that carry ctx to the app: traceparent
// and tracestate of the client span, so the app's server span is its
// child, and baggage with the correlation id. With tracing off only the
// baggage is set, and the dispatcher derives traceparent from the job and
// sends the job's tracestate with it.
func (t *Tracer) Headers(ctx context.Context) http.Header {
	h := http.Header{}
	if t.enabled {
		t.prop.Inject(ctx, propagation.HeaderCarrier(h))
		return h
	}
	propagation.Baggage{}.Inject(ctx, propagation.HeaderCarrier(h))
	return h
}
