package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

func (r response) queue(t *testing.T) api.QueueView {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var v api.QueueView
	require.NoError(t, json.Unmarshal(r.body, &v), string(r.body))
	return v
}

func (e *env) queues(t *testing.T) []api.QueueView {
	t.Helper()
	r := e.get(t, "/v1/queues")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var body struct {
		Queues []api.QueueView `json:"queues"`
	}
	require.NoError(t, json.Unmarshal(r.body, &body), string(r.body))
	return body.Queues
}

func leaseQueue(t *testing.T, st store.Store, queue string) []*job.Job {
	t.Helper()
	jobs, err := st.Lease(context.Background(), store.LeaseParams{
		AgentID: "test-agent", Queues: []string{queue}, Limit: 10, Duration: 10 * time.Second, Now: now,
	})
	require.NoError(t, err)
	return jobs
}

func TestQueueListShowsDepthAgeAndThroughput(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		require.Empty(t, e.queues(t), "no jobs, no pauses: no queues")

		_, err := st.Enqueue(t.Context(), store.EnqueueParams{Now: now.Add(-time.Hour), Jobs: []store.NewJob{
			{Queue: "emails", Priority: job.PriorityNormal, ScheduledAt: now.Add(-90 * time.Second)},
			{Queue: "emails", Priority: job.PriorityNormal, ScheduledAt: now.Add(-10 * time.Second)},
			{Queue: "emails", Priority: job.PriorityNormal, ScheduledAt: now.Add(time.Hour)},
			{Queue: "reports", Priority: job.PriorityNormal, ScheduledAt: now.Add(-time.Hour)},
		}})
		require.NoError(t, err)
		leased, err := st.Lease(t.Context(), store.LeaseParams{AgentID: "a", Queues: []string{"reports"}, Limit: 1, Duration: time.Minute, Now: now.Add(-time.Hour)})
		require.NoError(t, err)
		require.Len(t, leased, 1)
		_, err = st.Complete(t.Context(), store.CompleteParams{Now: now.Add(-30 * time.Second),
			Completions: []store.Completion{{LeaseRef: store.LeaseRef{ID: leased[0].ID, Token: leased[0].LeaseToken}}}})
		require.NoError(t, err)

		qs := e.queues(t)
		require.Len(t, qs, 2)
		require.Equal(t, "emails", qs[0].Name)
		require.False(t, qs[0].Paused)
		require.Equal(t, map[job.Status]int64{"pending": 3, "running": 0, "completed": 0, "failed": 0, "cancelled": 0, "skipped": 0}, qs[0].Depth)
		require.InDelta(t, 90, qs[0].OldestPendingAgeSeconds, 0.001, "the longest-waiting due job, not the delayed one")
		require.Zero(t, qs[0].ThroughputPerMinute)
		require.Equal(t, "reports", qs[1].Name)
		require.EqualValues(t, 1, qs[1].Depth[job.StatusCompleted])
		require.Zero(t, qs[1].OldestPendingAgeSeconds, "nothing waits")
		require.EqualValues(t, 1, qs[1].ThroughputPerMinute, "completed 30s ago")

		one := e.get(t, "/v1/queues/reports").queue(t)
		require.Equal(t, qs[1], one)
		e.get(t, "/v1/queues/unknown").requireError(t, http.StatusNotFound, "not_found")
	})
}

func TestQueuePauseStopsLeasingAndResumeRestartsIt(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		e.enqueue(t, `{"queue": "emails", "payload": {}}`)

		v := e.post(t, "/v1/queues/emails/pause", "").queue(t)
		require.True(t, v.Paused)
		require.Equal(t, "api", v.PausedBy)
		require.NotNil(t, v.PausedAt)
		require.True(t, now.Equal(*v.PausedAt))
		require.EqualValues(t, 1, v.Depth[job.StatusPending])
		require.Empty(t, leaseQueue(t, st, "emails"), "a paused queue is not leased")

		again := e.post(t, "/v1/queues/emails/pause", "").queue(t)
		require.Equal(t, v, again, "pausing twice changes nothing")
		require.True(t, e.get(t, "/v1/queues/emails").queue(t).Paused)

		v = e.post(t, "/v1/queues/emails/resume", "").queue(t)
		require.False(t, v.Paused)
		require.Nil(t, v.PausedAt)
		require.Len(t, leaseQueue(t, st, "emails"), 1, "a resumed queue is leased again")
		require.False(t, e.post(t, "/v1/queues/emails/resume", "").queue(t).Paused, "resuming twice is harmless")
	})
}

func TestQueuePauseOfQueueWithoutJobsHoldsForLaterJobs(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		v := e.post(t, "/v1/queues/later/pause", "").queue(t)
		require.True(t, v.Paused)
		require.Len(t, v.Depth, len(job.Statuses), "every status, all zero")
		qs := e.queues(t)
		require.Len(t, qs, 1)
		require.Equal(t, "later", qs[0].Name)

		e.enqueue(t, `{"queue": "later", "payload": {}}`)
		require.Empty(t, leaseQueue(t, st, "later"))

		never := e.post(t, "/v1/queues/never/resume", "").queue(t)
		require.Equal(t, "never", never.Name)
		require.False(t, never.Paused)
	})
}

func TestQueueRoutesRejectInvalidNames(t *testing.T) {
	t.Parallel()
	e := setup(t, testkit.SQLite(t))
	e.post(t, "/v1/queues/bad%20name/pause", "").requireError(t, http.StatusUnprocessableEntity, "invalid")
	e.post(t, "/v1/queues/-dash/resume", "").requireError(t, http.StatusUnprocessableEntity, "invalid")
	e.get(t, "/v1/queues/bad%20name").requireError(t, http.StatusUnprocessableEntity, "invalid")
	e.get(t, "/v1/queues/q/pause").requireError(t, http.StatusMethodNotAllowed, "method_not_allowed")
	require.Empty(t, e.queues(t), "a rejected request writes nothing")
}

func TestQueueRoutesNeedTheToken(t *testing.T) {
	t.Parallel()
	e := setup(t, testkit.SQLite(t), func(p *api.Params) { p.Token = "secret" })
	e.get(t, "/v1/queues").requireError(t, http.StatusUnauthorized, "unauthorized")
	e.post(t, "/v1/queues/q/pause", "").requireError(t, http.StatusUnauthorized, "unauthorized")
	r := e.post(t, "/v1/queues/q/pause", "", "Authorization", "Bearer secret")
	require.True(t, r.queue(t).Paused)
}
