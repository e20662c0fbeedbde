package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

func rescue(t *testing.T, s store.Store, p store.RescueParams) store.RescueResult {
	t.Helper()
	res, err := s.RescueExpired(t.Context(), p)
	require.NoError(t, err, "rescue expired leases")
	return res
}

func testRescueRequeues(t *testing.T, s store.Store) {
	jobs := running(t, s, base, newJob("q"), newJob("q"))
	now := base.Add(leaseFor)
	res := rescue(t, s, store.RescueParams{Now: now})
	require.ElementsMatch(t, ids(jobs), res.Requeued, "a lease expiring exactly at Now has expired")
	require.Empty(t, res.Failed)

	for _, j := range jobs {
		got := get(t, s, j.ID)
		require.Equal(t, job.StatusPending, got.Status)
		require.Equal(t, 1, got.Attempts, "the lost attempt stays spent")
		requireTime(t, now, got.ScheduledAt, "scheduled_at = Now")
		require.Nil(t, got.FailedAt)
		requireNoLease(t, got)
		require.Len(t, got.Errors, 1)
		require.Equal(t, "lease_expired", got.Errors[0].Outcome)
		require.Equal(t, 1, got.Errors[0].Attempt)
		requireTime(t, now, got.Errors[0].At, "errors[0].at")
	}
	require.Empty(t, rescue(t, s, store.RescueParams{Now: now}).Requeued, "a rescued job is not rescued twice")
	require.Len(t, lease(t, s, store.LeaseParams{Limit: 10, Now: now}), 2, "a rescued job is leasable at once")
}

func testRescueFails(t *testing.T, s store.Store) {
	once := newJob("q")
	once.MaxAttempts = 1
	jobs := running(t, s, base, once, newJob("q"))
	now := base.Add(leaseFor + time.Second)
	res := rescue(t, s, store.RescueParams{Now: now})
	require.Equal(t, []uuid.UUID{jobs[0].ID}, res.Failed, "attempts >= max_attempts: failed")
	require.Equal(t, []uuid.UUID{jobs[1].ID}, res.Requeued)

	got := get(t, s, jobs[0].ID)
	require.Equal(t, job.StatusFailed, got.Status)
	requireTimePtr(t, now, got.FailedAt, "failed_at")
	requireNoLease(t, got)
	require.Len(t, got.Errors, 1)
	require.Equal(t, "lease_expired", got.Errors[0].Outcome)
	require.Equal(t, 1, got.Errors[0].Attempt)
}

func testRescueLeavesLive(t *testing.T, s store.Store) {
	expiring := running(t, s, base, newJob("q"))[0]
	enqueue(t, s, base, newJob("q"))
	live := leaseOne(t, s, base.Add(time.Minute))
	enqueue(t, s, base, newJob("q"))
	done := leaseOne(t, s, base)
	require.Empty(t, complete(t, s, base.Add(time.Second), store.Completion{LeaseRef: ref(done)}))
	doneBefore := get(t, s, done.ID)
	pending := enqueue(t, s, base, newJob("q"))[0]

	res := rescue(t, s, store.RescueParams{Now: base.Add(leaseFor)})
	require.Equal(t, []uuid.UUID{expiring.ID}, res.Requeued)
	require.Empty(t, res.Failed)
	requireSameJob(t, live, get(t, s, live.ID))
	requireSameJob(t, doneBefore, get(t, s, done.ID))
	requireSameJob(t, pending, get(t, s, pending.ID))
}

func testRescueLimit(t *testing.T, s store.Store) {
	jobs := running(t, s, base, newJob("q"), newJob("q"), newJob("q"))
	now := base.Add(leaseFor)
	first := rescue(t, s, store.RescueParams{Now: now, Limit: 2})
	require.Len(t, first.Requeued, 2, "one pass handles at most Limit jobs")
	second := rescue(t, s, store.RescueParams{Now: now, Limit: 2})
	require.Len(t, second.Requeued, 1)
	require.ElementsMatch(t, ids(jobs), append(first.Requeued, second.Requeued...))
}

func testRescueLateAnswer(t *testing.T, s store.Store) {
	old := running(t, s, base, newJob("q"))[0]
	rescue(t, s, store.RescueParams{Now: base.Add(leaseFor)})
	current := leaseOne(t, s, base.Add(leaseFor+time.Second))
	require.Equal(t, old.ID, current.ID)

	late := base.Add(leaseFor + 2*time.Second)
	require.Equal(t, []uuid.UUID{old.ID}, complete(t, s, late, store.Completion{LeaseRef: ref(old), Result: []byte(`"late"`)}),
		"an answer under the expired lease is stale")
	res := fail(t, s, late, store.Failure{LeaseRef: ref(old), Error: "late", Outcome: "http_500"})
	require.Equal(t, []uuid.UUID{old.ID}, res.Stale)
	requireSameJob(t, current, get(t, s, old.ID))

	require.Empty(t, complete(t, s, late, store.Completion{LeaseRef: ref(current), Result: []byte(`"current"`)}))
	got := get(t, s, old.ID)
	require.Equal(t, job.StatusCompleted, got.Status)
	require.JSONEq(t, `"current"`, string(got.Result))
}

func testRescueOrder(t *testing.T, s store.Store) {
	once := newJob("q")
	once.MaxAttempts = 1
	jobs := running(t, s, base, once, once, newJob("q"), newJob("q"))
	expiry := []time.Duration{3 * time.Second, time.Second, 2 * time.Second, 0}
	for i, j := range jobs {
		stale, err := s.Extend(t.Context(), store.ExtendParams{Leases: []store.LeaseRef{ref(j)}, Until: base.Add(leaseFor + expiry[i])})
		require.NoError(t, err)
		require.Empty(t, stale)
	}
	res := rescue(t, s, store.RescueParams{Now: base.Add(leaseFor + time.Hour)})
	require.Equal(t, []uuid.UUID{jobs[1].ID, jobs[0].ID}, res.Failed, "failed in lease-expiry order")
	require.Equal(t, []uuid.UUID{jobs[3].ID, jobs[2].ID}, res.Requeued, "requeued in lease-expiry order")
}

// testBatchResultsNeverNil holds every backend to one result shape: a batch
// call with nothing stale (or nothing to do) answers empty lists, not nil.
func testBatchResultsNeverNil(t *testing.T, s store.Store) {
	j := running(t, s, base, newJob("q"))[0]
	stale, err := s.Extend(t.Context(), store.ExtendParams{Leases: []store.LeaseRef{ref(j)}, Duration: leaseFor, Now: base})
	require.NoError(t, err)
	require.NotNil(t, stale, "Extend, nothing stale")
	stale, err = s.Release(t.Context(), store.ReleaseParams{Leases: []store.LeaseRef{ref(j)}, Now: base})
	require.NoError(t, err)
	require.NotNil(t, stale, "Release, nothing stale")
	j = leaseOne(t, s, base)
	require.NotNil(t, complete(t, s, base, store.Completion{LeaseRef: ref(j)}), "Complete, nothing stale")

	stale, err = s.Extend(t.Context(), store.ExtendParams{Duration: leaseFor, Now: base})
	require.NoError(t, err)
	require.NotNil(t, stale, "Extend of no leases")
	stale, err = s.Release(t.Context(), store.ReleaseParams{Now: base})
	require.NoError(t, err)
	require.NotNil(t, stale, "Release of no leases")
	require.NotNil(t, complete(t, s, base), "Complete of nothing")
	failed := fail(t, s, base)
	require.NotNil(t, failed.Retried, "Fail of nothing: Retried")
	require.NotNil(t, failed.Failed, "Fail of nothing: Failed")
	require.NotNil(t, failed.Stale, "Fail of nothing: Stale")
	rescued := rescue(t, s, store.RescueParams{Now: base.Add(time.Hour)})
	require.NotNil(t, rescued.Requeued, "Rescue of nothing: Requeued")
	require.NotNil(t, rescued.Failed, "Rescue of nothing: Failed")
}
