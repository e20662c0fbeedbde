package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/metrics"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/tracing"
)

// startWith runs an agent built from p until the test ends.
func startWith(t *testing.T, p Params) *Agent {
	t.Helper()
	return startLogged(t, p).Agent
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// A fan-in workflow (left and right, then join) created through the API is
// one trace: the producer span "create workflow fan_in" is its root, every
// attempt is a consumer span "process wf" under it (a retry is a sibling,
// not a child), each attempt's HTTP request is a client span under its
// process span whose context the app receives in traceparent, and join
// links to the last attempts of both parents.
func TestWorkflowIsOneTraceWithProcessAndClientSpans(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithIDGenerator(tracing.NewIDGenerator()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracer := tracing.NewTracer(tp)
	mets := metrics.New()

	var mu sync.Mutex
	received := map[string][]http.Header{} // step -> request headers, by attempt
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		step := r.Header.Get("Hammerwork-Step")
		mu.Lock()
		received[step] = append(received[step], r.Header.Clone())
		mu.Unlock()
		if step == "left" && c.attempt == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		ok(w, r, c)
	})
	s := newSQLite(t)
	cfg := testConfig(t, a)
	cfg.Retry = job.RetryPolicy{Strategy: job.StrategyFixed, Initial: job.Duration(10 * time.Millisecond)}
	startWith(t, Params{Config: cfg, Store: s, Tracer: tracer, Metrics: mets})

	apiSrv := httptest.NewServer(api.New(api.Params{Store: s, Tracer: tracer, Metrics: mets}))
	t.Cleanup(apiSrv.Close)
	body := `{"name": "fan_in", "correlation_id": "order-42", "jobs": [
		{"name": "left", "queue": "wf", "payload": {}},
		{"name": "right", "queue": "wf", "payload": {}},
		{"name": "join", "queue": "wf", "payload": {}, "depends_on": ["left", "right"]}]}`
	resp, err := http.Post(apiSrv.URL+"/v1/workflows", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	wfJobs, err := s.List(t.Context(), store.ListParams{Limit: 100})
	require.NoError(t, err)
	require.Len(t, wfJobs.Jobs, 3)
	waitStatus(t, s, wfJobs.Jobs, job.StatusCompleted)

	spans := rec.Ended()
	var root sdktrace.ReadOnlySpan
	process := map[string][]sdktrace.ReadOnlySpan{}
	client := map[trace.SpanID]sdktrace.ReadOnlySpan{} // by parent
	for _, sp := range spans {
		switch sp.SpanKind() {
		case trace.SpanKindProducer:
			require.Nil(t, root, "one producer span")
			root = sp
		case trace.SpanKindConsumer:
			step := attrs(sp)[tracing.AttrStep].AsString()
			process[step] = append(process[step], sp)
		case trace.SpanKindClient:
			client[sp.Parent().SpanID()] = sp
		}
	}
	require.Len(t, spans, 1+4+4, "a producer, four attempts, four requests")
	ids := map[trace.SpanID]bool{}
	for _, sp := range spans {
		require.False(t, ids[sp.SpanContext().SpanID()], "span ids are unique: %s", sp.SpanContext().SpanID())
		ids[sp.SpanContext().SpanID()] = true
	}
	require.NotNil(t, root)
	require.Equal(t, "create workflow fan_in", root.Name())
	require.False(t, root.Parent().IsValid(), "the producer span is the trace's root")
	traceID := root.SpanContext().TraceID()
	for _, sp := range spans {
		require.Equal(t, traceID, sp.SpanContext().TraceID(), "span %q is in the workflow's trace", sp.Name())
	}
	for _, j := range wfJobs.Jobs {
		require.Equal(t, traceID.String(), j.TraceID, "every job carries the workflow's trace id")
		require.Equal(t, "order-42", j.CorrelationID)
	}

	require.Len(t, process["left"], 2, "left's two attempts")
	require.Len(t, process["right"], 1)
	require.Len(t, process["join"], 1)
	for step, sps := range process {
		for _, sp := range sps {
			require.Equal(t, "process wf", sp.Name())
			require.Equal(t, root.SpanContext().SpanID(), sp.Parent().SpanID(), "%s's attempts are children of the creation span: retries are siblings", step)
			at := attrs(sp)
			require.Equal(t, "hammerwork", at["messaging.system"].AsString())
			require.Equal(t, "process", at["messaging.operation.type"].AsString())
			require.Equal(t, "wf", at["messaging.destination.name"].AsString())
			require.Equal(t, "order-42", at["messaging.message.conversation_id"].AsString())
			require.NotEmpty(t, at["messaging.message.id"].AsString())
			require.NotEmpty(t, at[tracing.AttrWorkflowID].AsString())

			c, ok := client[sp.SpanContext().SpanID()]
			require.True(t, ok, "each attempt has a client span")
			require.Equal(t, "POST", c.Name())
			require.Equal(t, "POST", attrs(c)["http.request.method"].AsString())
		}
	}
	first, second := process["left"][0], process["left"][1]
	if attrs(first)[tracing.AttrAttempt].AsInt64() == 2 {
		first, second = second, first
	}
	require.Equal(t, codes.Error, first.Status().Code)
	require.Equal(t, "http_503", attrs(first)["error.type"].AsString())
	require.Equal(t, int64(503), attrs(client[first.SpanContext().SpanID()])["http.response.status_code"].AsInt64())
	require.Equal(t, codes.Ok, second.Status().Code)

	// The app's traceparent is the client span, its baggage the correlation id.
	mu.Lock()
	for step, hs := range received {
		for _, h := range hs {
			tp, err := tracing.ParseTraceparent(h.Get("traceparent"))
			require.NoError(t, err)
			require.Equal(t, traceID.String(), tp.TraceIDString())
			found := false
			for _, c := range client {
				found = found || c.SpanContext().SpanID().String() == tp.SpanIDString()
			}
			for _, sps := range process {
				for _, sp := range sps {
					require.NotEqual(t, sp.SpanContext().SpanID().String(), tp.SpanIDString(), "the app's parent is the client span, not the process span")
				}
			}
			require.True(t, found, "%s: traceparent %s names a client span", step, h.Get("traceparent"))
			require.Contains(t, h.Get("baggage"), "hammerwork.correlation_id=order-42")
			require.Equal(t, "order-42", h.Get("Hammerwork-Correlation-Id"))
		}
	}
	mu.Unlock()

	join := process["join"][0]
	var linked []trace.SpanID
	for _, l := range join.Links() {
		linked = append(linked, l.SpanContext.SpanID())
		require.Equal(t, traceID, l.SpanContext.TraceID())
	}
	require.ElementsMatch(t, []trace.SpanID{second.SpanContext().SpanID(), process["right"][0].SpanContext().SpanID()}, linked,
		"join links to the last attempt of each parent")

	// The counters saw the same run.
	require.Equal(t, 4.0, counterValue(t, mets, "hammerwork_jobs_leased_total", "wf"))
	eventually(t, "completions counted", func() bool {
		return counterValue(t, mets, "hammerwork_jobs_completed_total", "wf") == 3
	})
	require.Equal(t, 1.0, counterValue(t, mets, "hammerwork_jobs_retried_total", "wf"))
	require.Equal(t, 0.0, counterValue(t, mets, "hammerwork_jobs_failed_total", "wf"))
	eventually(t, "the workflow's end counted", func() bool {
		return labelledValue(t, mets, "hammerwork_workflows_finished_total", "status", "completed") == 1
	})
}

// counterValue reads one queue's counter from m's registry; 0 when the
// series does not exist yet.
func counterValue(t *testing.T, m *metrics.Metrics, name, queue string) float64 {
	t.Helper()
	return labelledValue(t, m, name, "queue", queue)
}

// labelledValue reads the counter of name whose label is value.
func labelledValue(t *testing.T, m *metrics.Metrics, name, label, value string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return mt.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// An app that answers 202 and finishes each job later through the API is
// counted and traced like one that answers at once: with the API's Finished
// wired to the agent's CountFinished (as hw-agent run does), the workflow's
// completions and its end are counted once each, and every answer is a
// "settle" span under the process span of the attempt it ends.
func TestJobsFinishedThroughTheAPIAreCountedAndTraced(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithIDGenerator(tracing.NewIDGenerator()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracer := tracing.NewTracer(tp)
	mets := metrics.New()

	type accepted struct{ id, token string }
	answers := make(chan accepted, 10)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		answers <- accepted{id: c.id.String(), token: r.Header.Get("Hammerwork-Lease-Token")}
		w.WriteHeader(http.StatusAccepted)
	})
	s := newSQLite(t)
	ag := startWith(t, Params{Config: testConfig(t, a), Store: s, Tracer: tracer, Metrics: mets})
	apiSrv := httptest.NewServer(api.New(api.Params{Store: s, Tracer: tracer, Metrics: mets, Finished: ag.CountFinished}))
	t.Cleanup(apiSrv.Close)

	body := `{"name": "async", "jobs": [
		{"name": "first", "queue": "wf", "payload": {}},
		{"name": "second", "queue": "wf", "payload": {}, "depends_on": ["first"]}]}`
	resp, err := http.Post(apiSrv.URL+"/v1/workflows", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	for range 2 {
		var ans accepted
		select {
		case ans = <-answers:
		case <-time.After(waitFor):
			t.Fatal("the app received no job")
		}
		resp, err := http.Post(apiSrv.URL+"/v1/jobs/"+ans.id+"/complete", "application/json",
			strings.NewReader(`{"lease_token": "`+ans.token+`", "result": {}}`))
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}

	require.Equal(t, 2.0, counterValue(t, mets, "hammerwork_jobs_completed_total", "wf"))
	require.Equal(t, 1.0, labelledValue(t, mets, "hammerwork_workflows_finished_total", "status", "completed"))
	process := map[trace.SpanID]bool{}
	eventually(t, "both attempts' process spans ended", func() bool {
		clear(process)
		for _, sp := range rec.Ended() {
			if sp.Name() == "process wf" {
				process[sp.SpanContext().SpanID()] = true
			}
		}
		return len(process) == 2
	})
	settles := 0
	for _, sp := range rec.Ended() {
		if sp.Name() != "settle wf" {
			continue
		}
		settles++
		require.True(t, process[sp.Parent().SpanID()], "a settle span is a child of a process span")
		require.Equal(t, "completed", attrs(sp)[tracing.AttrOutcome].AsString())
	}
	require.Equal(t, 2, settles)
}
