package dispatch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
)

// The agent's client span replaces the traceparent derived from the job,
// and its baggage rides along, so the app's span is the agent's child.
func TestTargetHeaderCarriesTheAgentsTraceContext(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	t.Cleanup(srv.Close)

	const created = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const client = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01"
	j := &job.Job{ID: uuid.New(), Queue: "q", Attempts: 1, MaxAttempts: 3, SpanContext: created}
	h := http.Header{}
	h.Set("traceparent", client)
	h.Set("tracestate", "v=1")
	h.Set("baggage", "hammerwork.correlation_id=c-1")
	d := New(nil)
	t.Cleanup(d.CloseIdleConnections)
	res := d.Dispatch(context.Background(), j, Target{URL: srv.URL, Header: h})

	require.Equal(t, OutcomeCompleted, res.Outcome)
	require.Equal(t, client, res.TraceParent)
	sent := <-got
	require.Equal(t, client, sent.Get("traceparent"))
	require.Equal(t, []string{client}, sent.Values("traceparent"), "one traceparent, not two")
	require.Equal(t, "v=1", sent.Get("tracestate"))
	require.Equal(t, "hammerwork.correlation_id=c-1", sent.Get("baggage"))
}

// With tracing off nobody supplies Target.Header's trace context: the
// caller's tracestate stored with the job goes out beside the traceparent
// derived from the job's span_context, on every attempt.
func TestJobTracestateIsSentWithTheDerivedTraceparent(t *testing.T) {
	t.Parallel()
	a := setup(t, status(http.StatusServiceUnavailable))
	j := fullJob()
	j.TraceState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	for attempt := 1; attempt <= 2; attempt++ {
		j.Attempts = attempt
		res := a.d.Dispatch(context.Background(), j, a.target())
		require.Equal(t, OutcomeRetry, res.Outcome)
		r := a.last(t)
		require.Equal(t, []string{"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}, r.header.Values("tracestate"), "attempt %d", attempt)
		require.Equal(t, res.TraceParent, r.header.Get("traceparent"), "attempt %d", attempt)
	}
}

// A tracestate belongs to a trace: without a usable traceparent it is not
// sent, and a stored one that is not W3C tracestate is left out instead of
// being passed on broken.
func TestJobTracestateIsOmittedWithoutATraceOrWhenInvalid(t *testing.T) {
	t.Parallel()
	cases := map[string]struct{ spanContext, traceState string }{
		"no span context":      {"", "congo=t61rcWkgMzE"},
		"invalid span context": {"00-not-a-trace", "congo=t61rcWkgMzE"},
		"invalid tracestate":   {jobSpanContext, "Not A Key=1"},
		"control character":    {jobSpanContext, "congo=a\r\nX-Evil: 1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := setup(t, status(http.StatusOK))
			j := minimalJob()
			j.SpanContext, j.TraceState = tc.spanContext, tc.traceState
			res := a.d.Dispatch(context.Background(), j, a.target())
			require.Equal(t, OutcomeCompleted, res.Outcome, res.Error)
			r := a.last(t)
			require.Empty(t, r.header.Values("tracestate"))
			require.Empty(t, r.header.Values("X-Evil"))
		})
	}
}
