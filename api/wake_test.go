package api_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/store"
)

// wakes records the queues of each call of Params.Wake.
type wakes struct {
	mu    sync.Mutex
	calls [][]string
}

func (w *wakes) wake(queues ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, queues)
}

// take returns the calls since the last take.
func (w *wakes) take() [][]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	calls := w.calls
	w.calls = nil
	return calls
}

// TestWritesThatMakeJobsLeasableWakeTheirQueues: every request that makes
// jobs leasable names their queues to the agent once it is written (a
// workflow only its roots' queues; a workflow retry every queue, which the
// record does not name), and requests that make none leasable wake nobody.
func TestWritesThatMakeJobsLeasableWakeTheirQueues(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		w := &wakes{}
		e := setup(t, st, func(p *api.Params) { p.Wake = w.wake })

		j := e.enqueue(t, `{"queue": "a", "unique_key": "k"}`)
		require.Equal(t, [][]string{{"a"}}, w.take())
		r := e.post(t, "/v1/jobs", `{"queue": "a", "unique_key": "k"}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		e.post(t, "/v1/jobs", `{"queue": ""}`).requireError(t, http.StatusUnprocessableEntity, "invalid")
		require.Empty(t, w.take(), "a duplicate or a rejected job makes nothing leasable")

		r = e.post(t, "/v1/jobs/batch", `{"jobs": [{"queue": "b"}, {"queue": "c"}, {"queue": "b"}, {"queue": "a", "unique_key": "k"}]}`)
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		require.Equal(t, [][]string{{"b", "c"}}, w.take(), "each queue once; the duplicate's not at all")

		c := e.createWorkflow(t, `{"name": "w", "jobs": [
			{"name": "root", "queue": "w_root"},
			{"name": "also_root", "queue": "w_root"},
			{"name": "child", "queue": "w_child", "depends_on": ["root", "also_root"]}]}`)
		require.Equal(t, [][]string{{"w_root"}}, w.take())

		base := "/v1/workflows/" + c.ID.String()
		r = e.post(t, base+"/cancel", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		r = e.post(t, "/v1/jobs/"+j.ID.String()+"/cancel", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		r = e.post(t, "/v1/queues/a/pause", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Empty(t, w.take(), "cancels and pauses make nothing leasable")

		r = e.post(t, base+"/retry", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		r = e.post(t, "/v1/jobs/"+j.ID.String()+"/retry", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		r = e.post(t, "/v1/queues/a/resume", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, [][]string{nil, {"a"}, {"a"}}, w.take())
	})
}

// TestAsyncOutcomesWakeTheAgent: a completion through the API may free
// children on any queue, so it wakes every producer; a failure that will
// be retried wakes its own queue; a stale answer wakes nobody.
func TestAsyncOutcomesWakeTheAgent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		w := &wakes{}
		e := setup(t, st, func(p *api.Params) { p.Wake = w.wake })
		e.enqueue(t, `{"queue": "async"}`)
		e.enqueue(t, `{"queue": "async"}`)
		leased, err := st.Lease(t.Context(), store.LeaseParams{AgentID: "a", Queues: []string{"async"}, Limit: 2, Duration: time.Minute})
		require.NoError(t, err)
		require.Len(t, leased, 2)
		w.take()

		done, failed := leased[0], leased[1]
		r := e.post(t, "/v1/jobs/"+done.ID.String()+"/complete", `{"lease_token": "`+done.LeaseToken+`"}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, [][]string{nil}, w.take(), "a completion wakes every producer")

		r = e.post(t, "/v1/jobs/"+failed.ID.String()+"/fail", `{"lease_token": "`+failed.LeaseToken+`", "error": "busy"}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, [][]string{{"async"}}, w.take(), "a retried failure wakes its queue")

		r = e.post(t, "/v1/jobs/"+done.ID.String()+"/complete", `{"lease_token": "`+done.LeaseToken+`"}`)
		require.Equal(t, http.StatusConflict, r.status, string(r.body))
		require.Empty(t, w.take(), "a stale answer changes nothing and wakes nobody")
	})
}
