package tracing

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
)

const vendorState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"

// The caller's tracestate is part of what a job stores about its creation,
// with tracing on or off, so it can reach the app later.
func TestCreationKeepsTheCallersTracestate(t *testing.T) {
	t.Parallel()
	on, _ := newRecorded(t)
	for name, tr := range map[string]*Tracer{"tracing on": on, "tracing off": NewTracer(nil)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := tr.Extract(context.Background(), inbound(specHeader, vendorState))
			_, span, cr := tr.StartCreate(ctx, CreateParams{Queue: "q"})
			span.End()
			require.Equal(t, vendorState, cr.TraceState)

			_, span, cr = tr.StartCreate(tr.Extract(context.Background(), inbound(specHeader, "")), CreateParams{Queue: "q"})
			span.End()
			require.Empty(t, cr.TraceState, "no tracestate sent, none stored")

			bad := "00-" + specTraceID + "-0000000000000000-01"
			_, span, cr = tr.StartCreate(tr.Extract(context.Background(), inbound(bad, vendorState)), CreateParams{Queue: "q"})
			span.End()
			require.Empty(t, cr.TraceState, "a tracestate is dropped with its invalid traceparent")
		})
	}
}

// Every attempt's client span inherits the job's stored tracestate, so the
// traceparent and tracestate the app receives belong together.
func TestAttemptHeadersCarryTheJobsTracestate(t *testing.T) {
	t.Parallel()
	tr, _ := newRecorded(t)
	started := time.Now()
	headers := func(state string) (traceparent, tracestate string) {
		j := &job.Job{ID: uuid.New(), Queue: "q", Attempts: 1, StartedAt: &started, SpanContext: specHeader, TraceState: state}
		ctx, process := tr.StartProcess(context.Background(), j, nil)
		ctx, client := tr.StartClient(ctx, "http://127.0.0.1:8080/jobs/q")
		h := tr.Headers(ctx)
		EndClient(client, 200, "")
		EndProcess(process, "completed", "", "")
		return h.Get("traceparent"), h.Get("tracestate")
	}
	tp, ts := headers(vendorState)
	require.NotEmpty(t, tp)
	require.Equal(t, vendorState, ts)

	tp, ts = headers("congo=a\r\nX-Evil: 1")
	require.NotEmpty(t, tp, "a broken tracestate costs the tracestate, not the trace")
	require.Empty(t, ts)
}

func TestJobTraceStateParsesWhatWasStored(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		stored, want string
		ok           bool
	}{
		{"", "", true},
		{vendorState, vendorState, true},
		{"tenant@vendor=a:b", "tenant@vendor=a:b", true},
		{"Upper=1", "", false},
		{"congo=a\nb", "", false},
		{"novalue", "", false},
	} {
		ts, err := JobTraceState(&job.Job{ID: uuid.New(), TraceState: tc.stored})
		require.Equal(t, tc.ok, err == nil, "%q: %v", tc.stored, err)
		require.Equal(t, tc.want, ts.String(), "%q", tc.stored)
		if err != nil {
			require.Contains(t, err.Error(), "trace_state of job")
		}
	}
}
