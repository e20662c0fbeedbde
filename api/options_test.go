package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

func TestRetryPolicyWithJitterModeRoundTripsAndIsValidated(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		j := e.enqueue(t, `{"queue": "q", "payload": {}, "max_attempts": 3,
			"retry": {"strategy": "fixed", "initial": "100ms", "jitter": 0.2, "jitter_mode": "additive"}}`)
		jitter := 0.2
		want := &job.RetryPolicy{Strategy: "fixed", Initial: job.Duration(100 * time.Millisecond), Jitter: &jitter, JitterMode: job.JitterAdditive}
		require.Equal(t, want, e.stored(t, j.ID).RetryPolicy, "the policy is persisted with the job")
		require.Equal(t, want, e.get(t, "/v1/jobs/"+j.ID.String()).job(t).RetryPolicy)

		r := e.post(t, "/v1/jobs", `{"queue": "q", "payload": {}, "retry": {"jitter_mode": "sideways"}}`)
		apiErr := r.requireError(t, http.StatusUnprocessableEntity, "invalid")
		require.Contains(t, apiErr.Message, "retry.jitter_mode")
		e.requireJobCount(t, 1)
	})
}

// The API server's clock (now) is in the past of the database's, so a result
// with a one-minute TTL completed at now has expired by the time it is read.
func TestDroppedResultNoteAndExpiredResultReadThroughTheAPI(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		dropped := e.enqueue(t, `{"queue": "a", "payload": {}}`)
		expiring := e.enqueue(t, `{"queue": "b", "payload": {}, "result_ttl": "1m"}`)
		kept := e.enqueue(t, `{"queue": "c", "payload": {}}`)
		var cs []store.Completion
		for _, j := range []*job.Job{dropped, expiring, kept} {
			cs = append(cs, store.Completion{LeaseRef: store.LeaseRef{ID: j.ID, Token: e.lease(t, j.ID, j.Queue)}, Result: []byte(`{"r":1}`)})
		}
		cs[0].Result = nil
		cs[0].Note = "result not stored: response body of 2000000 bytes exceeds max_result_bytes (1048576)"
		stale, err := st.Complete(context.Background(), store.CompleteParams{Now: now, Completions: cs})
		require.NoError(t, err)
		require.Empty(t, stale)

		got := e.get(t, "/v1/jobs/"+dropped.ID.String()).job(t)
		require.Equal(t, job.StatusCompleted, got.Status)
		require.Empty(t, got.Result)
		require.Contains(t, got.ErrorMessage, "exceeds max_result_bytes", "the reason a result is missing is on the job")

		got = e.get(t, "/v1/jobs/"+expiring.ID.String()).job(t)
		require.Empty(t, got.Result, "an expired result reads as absent")
		require.NotNil(t, got.ResultExpiresAt)
		require.True(t, now.Add(time.Minute).Equal(*got.ResultExpiresAt), "result_expires_at = completed_at + result_ttl")

		got = e.get(t, "/v1/jobs/"+kept.ID.String()).job(t)
		require.JSONEq(t, `{"r":1}`, string(got.Result), "a result without TTL is kept")
		require.Nil(t, got.ResultExpiresAt)
	})
}
