package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/tracing"
)

const callerState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"

// deliverLike sends j to an app the way the agent does (process and client
// spans, their headers as Target.Header) and returns the headers the app
// received.
func deliverLike(t *testing.T, tr *tracing.Tracer, j *job.Job) http.Header {
	t.Helper()
	got := make(chan http.Header, 1)
	app := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	t.Cleanup(app.Close)
	d := dispatch.New(nil)
	t.Cleanup(d.CloseIdleConnections)

	ctx, process := tr.StartProcess(context.Background(), j, nil)
	ctx, client := tr.StartClient(ctx, app.URL)
	res := d.Dispatch(ctx, j, dispatch.Target{URL: app.URL, Timeout: 10 * time.Second, Header: tr.Headers(ctx)})
	tracing.EndClient(client, res.StatusCode, res.Label)
	tracing.EndProcess(process, string(res.Outcome), res.Label, res.Error)
	require.Equal(t, dispatch.OutcomeCompleted, res.Outcome, res.Error)
	return <-got
}

// A caller's traceparent and tracestate reach the app with the job, for a
// job, a batch and a workflow's jobs, with tracing on or off: the job stores
// the tracestate beside its span_context and every attempt sends both.
func TestCallersTracestateReachesTheApp(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	for name, tr := range map[string]*tracing.Tracer{"tracing on": tracing.NewTracer(tp), "tracing off": tracing.NewTracer(nil)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, testkit.SQLite(t), func(p *api.Params) { p.Tracer = tr })
			trace := []string{"traceparent", callerParent, "tracestate", callerState}

			r := e.post(t, "/v1/jobs", `{"queue": "one", "payload": {}}`, trace...)
			require.Equal(t, http.StatusCreated, r.status, string(r.body))
			ids := []uuid.UUID{r.job(t).ID}
			require.Equal(t, callerState, e.get(t, "/v1/jobs/"+ids[0].String()).job(t).TraceState, "GET shows the stored tracestate")

			r = e.post(t, "/v1/jobs/batch", `{"jobs": [{"queue": "batch", "payload": {}}, {"queue": "batch", "payload": {}}]}`, trace...)
			require.Equal(t, http.StatusCreated, r.status, string(r.body))
			var batch struct {
				IDs []uuid.UUID `json:"ids"`
			}
			require.NoError(t, json.Unmarshal(r.body, &batch))
			ids = append(ids, batch.IDs...)

			r = e.post(t, "/v1/workflows", `{"name": "traced", "jobs": [
				{"name": "a", "queue": "wf", "payload": {}},
				{"name": "b", "queue": "wf", "payload": {}, "depends_on": ["a"]}]}`, trace...)
			require.Equal(t, http.StatusCreated, r.status, string(r.body))
			var wf created
			require.NoError(t, json.Unmarshal(r.body, &wf))
			ids = append(ids, wf.Jobs["a"], wf.Jobs["b"])

			for _, id := range ids {
				j := e.stored(t, id)
				require.Equal(t, callerState, j.TraceState, "job %s on %s", id, j.Queue)
				parent, err := tracing.ParseTraceparent(j.SpanContext)
				require.NoError(t, err)
				require.Equal(t, callerTraceID, parent.TraceIDString())
			}

			for _, queue := range []string{"one", "batch", "wf"} {
				leased, err := e.st.Lease(context.Background(), store.LeaseParams{
					AgentID: "test-agent", Queues: []string{queue}, Limit: 1, Duration: 10 * time.Second, Now: now})
				require.NoError(t, err)
				require.Len(t, leased, 1)
				h := deliverLike(t, tr, leased[0])
				sent, err := tracing.ParseTraceparent(h.Get("traceparent"))
				require.NoError(t, err, "queue %s", queue)
				require.Equal(t, callerTraceID, sent.TraceIDString(), "queue %s: the app continues the caller's trace", queue)
				require.Equal(t, []string{callerState}, h.Values("tracestate"), "queue %s", queue)
			}
		})
	}
}
