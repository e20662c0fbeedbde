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
