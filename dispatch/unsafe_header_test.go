package dispatch

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
)

// unsafeJob is a job stored before enqueue rejected control characters:
// every text field that becomes a header holds one.
func unsafeJob() *job.Job {
	j := fullJob()
	j.Queue = "emails\r\nX-Injected: queue"
	j.WorkflowName = "onboarding\n"
	j.StepName = "send\x00welcome"
	j.CorrelationID = "order-42\rX-Injected: corr"
	j.LeaseToken = "lease\x7ftoken"
	return j
}

// unsafeHeaders are the headers unsafeJob's values would fill.
var unsafeHeaders = []string{HeaderQueue, HeaderWorkflowName, HeaderStep, HeaderCorrelationID, HeaderLeaseToken}

// A job whose stored header-bound fields hold CR, LF or other control
// characters still reaches the app: those headers are left out, nothing is
// injected, and every other header and the payload arrive as usual.
func TestControlCharactersInStoredFieldsOmitTheirHeadersNotTheAttempt(t *testing.T) {
	t.Parallel()
	a := setup(t, status(http.StatusOK))
	j := unsafeJob()
	res := a.d.Dispatch(context.Background(), j, a.target())
	require.Equal(t, OutcomeCompleted, res.Outcome, res.Error)

	r := a.last(t)
	for _, k := range unsafeHeaders {
		require.Empty(t, r.header.Values(k), "header %s must be left out", k)
	}
	require.Empty(t, r.header.Values("X-Injected"))
	require.Equal(t, j.ID.String(), r.header.Get(HeaderJobID))
	require.Equal(t, j.WorkflowID.String(), r.header.Get(HeaderWorkflowID))
	require.Equal(t, j.BatchID.String(), r.header.Get(HeaderBatchID))
	require.Equal(t, "2", r.header.Get(HeaderAttempt))
	require.Equal(t, res.TraceParent, r.header.Get(HeaderTraceparent))
	require.JSONEq(t, string(j.Payload), string(r.body))
}

// A Target header value that cannot be sent (the agent's baggage built from
// a stored correlation id, say) is dropped the same way; its valid values
// and the other headers still go out.
func TestUnsendableTargetHeaderValuesAreDropped(t *testing.T) {
	t.Parallel()
	a := setup(t, status(http.StatusOK))
	tgt := a.target()
	tgt.Header = http.Header{}
	tgt.Header.Add("Baggage", "hammerwork.correlation_id=a\r\nX-Injected: 1")
	tgt.Header.Add("X-Extra", "ok")
	tgt.Header.Add("X-Extra", "bad\n")
	res := a.d.Dispatch(context.Background(), minimalJob(), tgt)
	require.Equal(t, OutcomeCompleted, res.Outcome, res.Error)
	r := a.last(t)
	require.Empty(t, r.header.Values("Baggage"))
	require.Empty(t, r.header.Values("X-Injected"))
	require.Equal(t, []string{"ok"}, r.header.Values("X-Extra"))
}

// warnings records the records logged at warn level.
type warnings struct {
	mu      sync.Mutex
	records []slog.Record
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.records = append(w.records, r.Clone())
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

// omittedHeaders lists, per job id, the headers the warnings name.
func (w *warnings) omittedHeaders() map[string][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]string{}
	for _, r := range w.records {
		var id, header string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "job_id":
				id = a.Value.String()
			case "header":
				header = a.Value.String()
			}
			return true
		})
		out[id] = append(out[id], header)
	}
	return out
}

// Each header left out is a warning naming the job and the header, on the
// logger the dispatcher was given, so an operator can find and fix the
// stored value in the agent's logs.
func TestOmittedHeadersAreLoggedWithJobAndHeader(t *testing.T) {
	t.Parallel()
	a := setup(t, status(http.StatusOK))
	w := &warnings{}
	d := New(nil, WithLogger(slog.New(w)))
	t.Cleanup(d.CloseIdleConnections)

	j := unsafeJob()
	j.TraceState = "congo=a\nb"
	res := d.Dispatch(context.Background(), j, a.target())
	require.Equal(t, OutcomeCompleted, res.Outcome, res.Error)

	want := append([]string{"tracestate"}, unsafeHeaders...)
	require.ElementsMatch(t, want, w.omittedHeaders()[j.ID.String()])
	require.Len(t, w.omittedHeaders(), 1, "only the job with bad values is named")
}
