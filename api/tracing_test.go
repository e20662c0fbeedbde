package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/metrics"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/tracing"
)

const (
	callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID  = "00f067aa0ba902b7"
	callerParent  = "00-" + callerTraceID + "-" + callerSpanID + "-01"
	namedTraceID  = "0af7651916cd43dd8448eb211c80319c"
)

func withTracing(t *testing.T) (option, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithIDGenerator(tracing.NewIDGenerator()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tr := tracing.NewTracer(tp)
	return func(p *api.Params) { p.Tracer = tr }, rec
}

// POST /v1/jobs creates the job under a producer span "create <queue>",
// a child of the caller's traceparent; the job stores that span.
func TestEnqueueStoresTheProducerSpanUnderTheCallersTrace(t *testing.T) {
	t.Parallel()
	opt, rec := withTracing(t)
	e := setup(t, testkit.SQLite(t), opt)
	r := e.post(t, "/v1/jobs", `{"queue": "emails", "payload": {}, "correlation_id": "c-9"}`, "traceparent", callerParent, "tracestate", "v=1")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	j := e.stored(t, r.job(t).ID)

	spans := rec.Ended()
	require.Len(t, spans, 1)
	sp := spans[0]
	require.Equal(t, "create emails", sp.Name())
	require.Equal(t, trace.SpanKindProducer, sp.SpanKind())
	require.Equal(t, callerSpanID, sp.Parent().SpanID().String())
	require.Equal(t, callerTraceID, j.TraceID)
	require.Equal(t, callerSpanID, j.ParentSpanID)
	require.Equal(t, "00-"+callerTraceID+"-"+sp.SpanContext().SpanID().String()+"-01", j.SpanContext)
	attrs := map[string]string{}
	for _, kv := range sp.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	require.Equal(t, j.ID.String(), attrs["messaging.message.id"])
	require.Equal(t, "c-9", attrs["messaging.message.conversation_id"])
	require.Equal(t, "emails", attrs["messaging.destination.name"])
}

func TestEnqueueHonoursAValidExplicitTraceID(t *testing.T) {
	t.Parallel()
	opt, _ := withTracing(t)
	e := setup(t, testkit.SQLite(t), opt)
	j := e.stored(t, e.enqueue(t, `{"queue": "q", "payload": {}, "trace_id": "`+namedTraceID+`"}`).ID)
	require.Equal(t, namedTraceID, j.TraceID)
	tp, err := tracing.ParseTraceparent(j.SpanContext)
	require.NoError(t, err)
	require.Equal(t, namedTraceID, tp.TraceIDString())
}

// An invalid traceparent is ignored with its tracestate: the job starts a
// trace of its own instead of failing.
func TestEnqueueIgnoresAnInvalidTraceparent(t *testing.T) {
	t.Parallel()
	opt, rec := withTracing(t)
	e := setup(t, testkit.SQLite(t), opt)
	r := e.post(t, "/v1/jobs", `{"queue": "q", "payload": {}}`, "traceparent", "00-"+callerTraceID+"-zz-01", "tracestate", "v=1")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	j := e.stored(t, r.job(t).ID)
	require.True(t, tracing.ValidTraceID(j.TraceID))
	require.NotEqual(t, callerTraceID, j.TraceID)
	require.Empty(t, j.ParentSpanID)
	require.False(t, rec.Ended()[0].Parent().IsValid())
	require.Empty(t, rec.Ended()[0].SpanContext().TraceState().String())
}

// Every job of a workflow carries the trace of the workflow's root span
// and, without a correlation id of its own, the workflow's id.
func TestWorkflowJobsCarryTheWorkflowsTraceAndCorrelation(t *testing.T) {
	t.Parallel()
	opt, rec := withTracing(t)
	st := testkit.SQLite(t)
	e := setup(t, st, opt)
	r := e.post(t, "/v1/workflows", `{"name": "wf", "jobs": [
		{"name": "a", "queue": "q", "payload": {}},
		{"name": "b", "queue": "q", "payload": {}, "depends_on": ["a"]}]}`, "traceparent", callerParent)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var created struct {
		ID   string            `json:"id"`
		Jobs map[string]string `json:"jobs"`
	}
	require.NoError(t, json.Unmarshal(r.body, &created))

	sp := rec.Ended()[0]
	require.Equal(t, "create workflow wf", sp.Name())
	require.Equal(t, callerSpanID, sp.Parent().SpanID().String())
	page, err := st.List(t.Context(), store.ListParams{Limit: 10})
	require.NoError(t, err)
	require.Len(t, page.Jobs, 2)
	for _, j := range page.Jobs {
		require.Equal(t, callerTraceID, j.TraceID)
		require.Equal(t, created.ID, j.CorrelationID)
		require.Equal(t, "00-"+callerTraceID+"-"+sp.SpanContext().SpanID().String()+"-01", j.SpanContext)
	}
}

// GET /metrics serves the agent's registry without the API token.
func TestMetricsAreServedWithoutTheToken(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	e := setup(t, testkit.SQLite(t), func(p *api.Params) { p.Metrics = m; p.Token = "secret" })
	r := e.post(t, "/v1/jobs", `{"queue": "q", "payload": {}}`, "Authorization", "Bearer secret")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	id := r.job(t).ID
	r = e.post(t, "/v1/jobs/"+id.String()+"/cancel", ``, "Authorization", "Bearer secret")
	require.Equal(t, http.StatusOK, r.status, string(r.body))

	r = e.get(t, "/metrics")
	require.Equal(t, http.StatusOK, r.status)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	require.NoError(t, err)
	require.Equal(t, 1.0, mfs["hammerwork_jobs_cancelled_total"].GetMetric()[0].GetCounter().GetValue())
}

// An app that answers 202 and ends the job later through /complete or
// /fail is counted as the agent counts the answers it receives itself, and
// its answer is a "settle <queue>" span under the attempt's process span.
func TestAPIAnswersAreCountedAndTraced(t *testing.T) {
	t.Parallel()
	opt, rec := withTracing(t)
	m := metrics.New()
	e := setup(t, testkit.SQLite(t), opt, func(p *api.Params) { p.Metrics = m })

	done := e.enqueue(t, `{"queue": "async", "payload": {}, "correlation_id": "c-1"}`)
	token := e.lease(t, done.ID, "async")
	leased := e.stored(t, done.ID)
	r := e.post(t, "/v1/jobs/"+done.ID.String()+"/complete", fmt.Sprintf(`{"lease_token": %q}`, token))
	require.Equal(t, http.StatusOK, r.status, string(r.body))

	retried := e.enqueue(t, `{"queue": "async", "payload": {}}`)
	token = e.lease(t, retried.ID, "async")
	r = e.post(t, "/v1/jobs/"+retried.ID.String()+"/fail", fmt.Sprintf(`{"lease_token": %q, "error": "later"}`, token))
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Equal(t, job.StatusPending, r.job(t).Status)

	failed := e.enqueue(t, `{"queue": "other", "payload": {}}`)
	token = e.lease(t, failed.ID, "other")
	r = e.post(t, "/v1/jobs/"+failed.ID.String()+"/fail", fmt.Sprintf(`{"lease_token": %q, "error": "bad input", "retry": false}`, token))
	require.Equal(t, http.StatusOK, r.status, string(r.body))

	settles := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range rec.Ended() {
		if sp.SpanKind() == trace.SpanKindConsumer {
			settles[spanAttrs(sp)["messaging.message.id"]] = sp
		}
	}
	require.Len(t, settles, 3)
	sp := settles[done.ID.String()]
	require.Equal(t, "settle async", sp.Name())
	require.Equal(t, leased.TraceID, sp.SpanContext().TraceID().String())
	require.Equal(t, tracing.ProcessSpanID(leased.ID, leased.Attempts, *leased.StartedAt), sp.Parent().SpanID(),
		"the answer is a child of the attempt's process span")
	attrs := spanAttrs(sp)
	require.Equal(t, "settle", attrs["messaging.operation.type"])
	require.Equal(t, "completed", attrs["hammerwork.outcome"])
	require.Equal(t, "c-1", attrs["messaging.message.conversation_id"])
	require.Equal(t, codes.Ok, sp.Status().Code)
	require.Equal(t, "retry", spanAttrs(settles[retried.ID.String()])["hammerwork.outcome"])
	sp = settles[failed.ID.String()]
	require.Equal(t, "failed", spanAttrs(sp)["hammerwork.outcome"])
	require.Equal(t, "app_failed", spanAttrs(sp)["error.type"])
	require.Equal(t, codes.Error, sp.Status().Code)
	require.Equal(t, "bad input", sp.Status().Description)

	r = e.get(t, "/metrics")
	require.Equal(t, http.StatusOK, r.status)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(r.body))
	require.NoError(t, err)
	byQueue := func(name string) map[string]float64 {
		got := map[string]float64{}
		for _, mt := range mfs[name].GetMetric() {
			got[mt.GetLabel()[0].GetValue()] = mt.GetCounter().GetValue()
		}
		return got
	}
	require.Equal(t, map[string]float64{"async": 1}, byQueue("hammerwork_jobs_completed_total"))
	require.Equal(t, map[string]float64{"async": 1}, byQueue("hammerwork_jobs_retried_total"))
	require.Equal(t, map[string]float64{"other": 1}, byQueue("hammerwork_jobs_failed_total"))
}

func spanAttrs(sp sdktrace.ReadOnlySpan) map[string]string {
	attrs := map[string]string{}
	for _, kv := range sp.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	return attrs
}
