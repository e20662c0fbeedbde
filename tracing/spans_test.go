package tracing

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

func newRecorded(t *testing.T) (*Tracer, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithIDGenerator(NewIDGenerator()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return NewTracer(tp), rec
}

func inbound(traceparent, tracestate string) http.Header {
	h := http.Header{}
	h.Set("traceparent", traceparent)
	if tracestate != "" {
		h.Set("tracestate", tracestate)
	}
	return h
}

const otherTraceID = "0af7651916cd43dd8448eb211c80319c"

func TestCreateSpanContinuesTheCallersTrace(t *testing.T) {
	t.Parallel()
	tr, rec := newRecorded(t)
	ctx := tr.Extract(context.Background(), inbound(specHeader, "vendor=x"))
	_, span, cr := tr.StartCreate(ctx, CreateParams{Queue: "emails", CorrelationID: "c-1"})
	span.End()

	sp := rec.Ended()[0]
	require.Equal(t, "create emails", sp.Name())
	require.Equal(t, trace.SpanKindProducer, sp.SpanKind())
	require.Equal(t, specTraceID, sp.SpanContext().TraceID().String())
	require.Equal(t, specSpanID, sp.Parent().SpanID().String())
	require.Equal(t, "vendor=x", sp.SpanContext().TraceState().String())
	require.Equal(t, specTraceID, cr.TraceID)
	require.Equal(t, specSpanID, cr.ParentSpanID)
	require.Equal(t, "00-"+specTraceID+"-"+sp.SpanContext().SpanID().String()+"-01", cr.SpanContext)
}

func TestExplicitTraceIDStartsARootInThatTrace(t *testing.T) {
	t.Parallel()
	tr, rec := newRecorded(t)
	ctx := tr.Extract(context.Background(), inbound(specHeader, ""))
	_, span, cr := tr.StartCreate(ctx, CreateParams{Queue: "q", TraceID: otherTraceID})
	span.End()

	sp := rec.Ended()[0]
	require.Equal(t, otherTraceID, sp.SpanContext().TraceID().String())
	require.False(t, sp.Parent().IsValid())
	require.Len(t, sp.Links(), 1, "the caller's span is linked, not the parent")
	require.Equal(t, specSpanID, sp.Links()[0].SpanContext.SpanID().String())
	require.Equal(t, otherTraceID, cr.TraceID)
	require.Empty(t, cr.ParentSpanID)
}

func TestInvalidTraceparentIsIgnoredWithItsTracestate(t *testing.T) {
	t.Parallel()
	tr, rec := newRecorded(t)
	bad := "00-" + specTraceID + "-0000000000000000-01" // all-zero parent id
	ctx := tr.Extract(context.Background(), inbound(bad, "vendor=x"))
	_, span, cr := tr.StartCreate(ctx, CreateParams{Queue: "q"})
	span.End()

	sp := rec.Ended()[0]
	require.False(t, sp.Parent().IsValid())
	require.NotEqual(t, specTraceID, cr.TraceID)
	require.Empty(t, sp.SpanContext().TraceState().String())
}

func TestInvalidExplicitTraceIDIsNotHonoured(t *testing.T) {
	t.Parallel()
	tr, _ := newRecorded(t)
	_, span, cr := tr.StartCreate(context.Background(), CreateParams{Queue: "q", TraceID: "ABC"})
	span.End()
	require.True(t, ValidTraceID(cr.TraceID))
}

// With tracing off, creation still yields a fresh context in the caller's
// (or the named) trace, so the app sees one trace per workflow anyway.
func TestCreateWithTracingOffStillGivesACreationContext(t *testing.T) {
	t.Parallel()
	tr := NewTracer(nil)
	require.False(t, tr.Enabled())

	ctx := tr.Extract(context.Background(), inbound(specHeader, ""))
	_, span, cr := tr.StartCreate(ctx, CreateParams{Queue: "q"})
	span.End()
	tp, err := ParseTraceparent(cr.SpanContext)
	require.NoError(t, err)
	require.Equal(t, specTraceID, tp.TraceIDString())
	require.NotEqual(t, specSpanID, tp.SpanIDString(), "a child, not the caller's span")

	_, span, cr = tr.StartCreate(context.Background(), CreateParams{Queue: "q", TraceID: otherTraceID})
	span.End()
	require.Equal(t, otherTraceID, cr.TraceID)
	_, err = ParseTraceparent(cr.SpanContext)
	require.NoError(t, err)
}

func TestHeadersCarryTheClientSpanAndCorrelationBaggage(t *testing.T) {
	t.Parallel()
	tr, rec := newRecorded(t)
	started := time.Now()
	j := &job.Job{ID: uuid.New(), Queue: "q", Attempts: 2, StartedAt: &started, CorrelationID: "order 7", SpanContext: specHeader}
	ctx, process := tr.StartProcess(context.Background(), j, nil)
	ctx, client := tr.StartClient(ctx, "http://127.0.0.1:8080/jobs/q")
	h := tr.Headers(ctx)
	EndClient(client, 200, "")
	EndProcess(process, "completed", "", "")

	require.Equal(t, ProcessSpanID(j.ID, 2, started), process.SpanContext().SpanID(), "the process span id is derivable from the row")
	require.Equal(t, specSpanID, rec.Ended()[1].Parent().SpanID().String())
	require.Equal(t, "00-"+specTraceID+"-"+client.SpanContext().SpanID().String()+"-01", h.Get("traceparent"))
	require.Equal(t, "hammerwork.correlation_id=order%207", h.Get("baggage"))

	off := NewTracer(nil)
	ctx, process = off.StartProcess(context.Background(), j, nil)
	h = off.Headers(ctx)
	process.End()
	require.Empty(t, h.Get("traceparent"), "with tracing off the dispatcher derives traceparent itself")
	require.NotEmpty(t, h.Get("baggage"))
}

func TestParentLinkPointsAtTheParentsLastAttempt(t *testing.T) {
	t.Parallel()
	started := time.Now()
	parent := &job.Job{ID: uuid.New(), Attempts: 3, StartedAt: &started, SpanContext: specHeader}
	l, ok := ParentLink(parent)
	require.True(t, ok)
	require.Equal(t, specTraceID, l.SpanContext.TraceID().String())
	require.Equal(t, ProcessSpanID(parent.ID, 3, started), l.SpanContext.SpanID())

	_, ok = ParentLink(&job.Job{ID: uuid.New(), SpanContext: specHeader})
	require.False(t, ok, "a parent that never ran has no span")
}

func TestSetupIsOffUnlessConfigured(t *testing.T) {
	t.Parallel()
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	p, err := Setup(context.Background(), Config{Getenv: env(nil)})
	require.NoError(t, err)
	require.False(t, p.Enabled)
	require.NoError(t, p.Shutdown(context.Background()))

	p, err = Setup(context.Background(), Config{Getenv: env(map[string]string{"OTEL_TRACES_EXPORTER": "none"})})
	require.NoError(t, err)
	require.False(t, p.Enabled)

	_, err = Setup(context.Background(), Config{Exporter: "zipkin", Getenv: env(nil)})
	require.ErrorContains(t, err, `"zipkin"`)
}

func TestSetupStdoutExportsOnShutdown(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p, err := Setup(context.Background(), Config{Exporter: "stdout", ServiceName: "svc-test", Stdout: &out, Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	require.True(t, p.Enabled)
	_, span, _ := NewTracer(p.TracerProvider).StartCreate(context.Background(), CreateParams{Queue: "q"})
	span.End()
	require.NoError(t, p.Shutdown(context.Background()))
	require.Contains(t, out.String(), `"create q"`)
	require.Contains(t, out.String(), "svc-test")
}

func TestSetupPicksTheOTLPProtocolFromTheEnvironment(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{"", "http/protobuf", "grpc"} {
		env := map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
		p, err := Setup(context.Background(), Config{Getenv: func(k string) string { return env[k] }})
		require.NoError(t, err, protocol)
		require.True(t, p.Enabled, protocol)
		require.NoError(t, p.Shutdown(context.Background()), protocol)
	}
	env := map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}
	_, err := Setup(context.Background(), Config{Getenv: func(k string) string { return env[k] }})
	require.ErrorContains(t, err, "http/json")
}

// Each fired run of a schedule is the root of a trace of its own, named
// after the schedule, and the job gets that root as its creation context.
func TestScheduleRunStartsANewTracePerRun(t *testing.T) {
	t.Parallel()
	tr, rec := newRecorded(t)
	nominal := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	first := tr.ScheduleRun("nightly", nominal)
	second := tr.ScheduleRun("nightly", nominal.Add(24*time.Hour))

	spans := rec.Ended()
	require.Len(t, spans, 2)
	sp := spans[0]
	require.Equal(t, "schedule nightly", sp.Name())
	require.Equal(t, trace.SpanKindProducer, sp.SpanKind())
	require.False(t, sp.Parent().IsValid(), "a run's span is a root")
	require.Contains(t, sp.Attributes(), AttrSchedule.String("nightly"))
	require.Contains(t, sp.Attributes(), AttrNominalTime.String("2026-12-04T03:00:00Z"))
	require.Equal(t, sp.SpanContext().TraceID().String(), first.TraceID)
	require.Equal(t, "00-"+first.TraceID+"-"+sp.SpanContext().SpanID().String()+"-01", first.SpanContext)
	require.NotEqual(t, first.TraceID, second.TraceID)
}

// With tracing off a run still gets a valid traceparent of a new trace.
func TestScheduleRunWithTracingOffStillGivesATrace(t *testing.T) {
	t.Parallel()
	tr := NewTracer(nil)
	a, b := tr.ScheduleRun("s", time.Now()), tr.ScheduleRun("s", time.Now())
	for _, rt := range []store.RunTrace{a, b} {
		tp, err := ParseTraceparent(rt.SpanContext)
		require.NoError(t, err)
		require.Equal(t, rt.TraceID, trace.TraceID(tp.TraceID).String())
	}
	require.NotEqual(t, a.TraceID, b.TraceID)
}
