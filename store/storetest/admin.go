package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

func cancel(t *testing.T, s store.Store, id uuid.UUID, now time.Time) *job.Job {
	t.Helper()
	j, err := s.Cancel(t.Context(), store.CancelParams{ID: id, Now: now})
	require.NoError(t, err, "cancel %s", id)
	return j
}

// requireConflict checks the error of a transition refused by the job's
// status: ErrConflict, carrying that status.
func requireConflict(t *testing.T, err error, current job.Status) {
	t.Helper()
	require.ErrorIs(t, err, store.ErrConflict)
	var se *store.StateError
	require.ErrorAs(t, err, &se)
	require.Equal(t, current, se.Current)
}

// finished returns a completed, a failed and a cancelled job, in that order.
func finished(t *testing.T, s store.Store) []*job.Job {
	t.Helper()
	jobs := running(t, s, base, newJob("q"), newJob("q"))
	now := base.Add(time.Second)
	require.Empty(t, complete(t, s, now, store.Completion{LeaseRef: ref(jobs[0])}))
	fail(t, s, now, store.Failure{LeaseRef: ref(jobs[1]), Error: "HTTP 404 Not Found", Outcome: "http_404"})
	cancelled := cancel(t, s, enqueue(t, s, now, newJob("q"))[0].ID, now)
	return []*job.Job{get(t, s, jobs[0].ID), get(t, s, jobs[1].ID), cancelled}
}

func testCancelPending(t *testing.T, s store.Store) {
	j := enqueue(t, s, base, newJob("q"))[0]
	got := cancel(t, s, j.ID, base.Add(time.Second))
	require.Equal(t, job.StatusCancelled, got.Status)
	requireNoLease(t, got)
	requireSameJob(t, got, get(t, s, j.ID))
	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 1, Now: base.Add(time.Hour)}), "a cancelled job is never leased")
}

func testCancelRunning(t *testing.T, s store.Store) {
	j := running(t, s, base, newJob("q"))[0]
	now := base.Add(time.Second)
	got := cancel(t, s, j.ID, now)
	require.Equal(t, job.StatusCancelled, got.Status)
	requireNoLease(t, got)
	requireSameJob(t, got, get(t, s, j.ID))

	later := now.Add(time.Second)
	require.Equal(t, []uuid.UUID{j.ID}, complete(t, s, later, store.Completion{LeaseRef: ref(j), Result: []byte(`1`)}),
		"the app's late answer to a cancelled job is stale")
	require.Equal(t, []uuid.UUID{j.ID}, fail(t, s, later, store.Failure{LeaseRef: ref(j), Error: "e", Outcome: "http_500", Retry: true, RetryAt: later}).Stale)
	stale, err := s.Extend(t.Context(), store.ExtendParams{Leases: []store.LeaseRef{ref(j)}, Until: later.Add(time.Hour)})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{j.ID}, stale)
	requireSameJob(t, got, get(t, s, j.ID))
	require.Empty(t, rescue(t, s, store.RescueParams{Now: base.Add(time.Hour)}).Requeued)
}

func testCancelConflict(t *testing.T, s store.Store) {
	for _, j := range finished(t, s) {
		_, err := s.Cancel(t.Context(), store.CancelParams{ID: j.ID, Now: base.Add(time.Minute)})
		requireConflict(t, err, j.Status)
		requireSameJob(t, j, get(t, s, j.ID))
	}
}

func testCancelNotFound(t *testing.T, s store.Store) {
	_, err := s.Cancel(t.Context(), store.CancelParams{ID: ascendingIDs(t, 1)[0], Now: base})
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testRetryFailed(t *testing.T, s store.Store) {
	j := running(t, s, base, newJob("q"))[0]
	fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(j), Error: "HTTP 422", Outcome: "http_422"})
	failed := get(t, s, j.ID)
	require.Equal(t, job.StatusFailed, failed.Status)

	now := base.Add(time.Hour)
	got, err := s.Retry(t.Context(), store.RetryParams{ID: j.ID, Now: now})
	require.NoError(t, err)
	require.Equal(t, job.StatusPending, got.Status)
	require.Equal(t, 0, got.Attempts, "a retry gets every attempt back")
	requireTime(t, now, got.ScheduledAt, "scheduled_at = Now")
	requireNoLease(t, got)
	require.Equal(t, canonical(failed).Errors, canonical(got).Errors, "the error history is kept")
	requireSameJob(t, got, get(t, s, j.ID))

	again := leaseOne(t, s, now)
	require.Equal(t, j.ID, again.ID)
	require.Equal(t, 1, again.Attempts)
}

func testRetryCancelled(t *testing.T, s store.Store) {
	j := running(t, s, base, newJob("q"))[0]
	cancel(t, s, j.ID, base.Add(time.Second))

	now := base.Add(time.Minute)
	got, err := s.Retry(t.Context(), store.RetryParams{ID: j.ID, Now: now})
	require.NoError(t, err)
	require.Equal(t, job.StatusPending, got.Status)
	require.Equal(t, 0, got.Attempts)
	requireTime(t, now, got.ScheduledAt, "scheduled_at = Now")
	require.Equal(t, j.ID, leaseOne(t, s, now).ID)
}

func testRetryConflict(t *testing.T, s store.Store) {
	completed := finished(t, s)[0]
	enqueue(t, s, base, newJob("q"))
	active := leaseOne(t, s, base.Add(time.Second))
	pending := enqueue(t, s, base, newJob("q"))[0]

	for _, j := range []*job.Job{completed, active, pending} {
		want := get(t, s, j.ID)
		_, err := s.Retry(t.Context(), store.RetryParams{ID: j.ID, Now: base.Add(time.Minute)})
		requireConflict(t, err, want.Status)
		requireSameJob(t, want, get(t, s, j.ID))
	}
}

func testRetryNotFound(t *testing.T, s store.Store) {
	_, err := s.Retry(t.Context(), store.RetryParams{ID: ascendingIDs(t, 1)[0], Now: base})
	require.ErrorIs(t, err, store.ErrNotFound)
}
