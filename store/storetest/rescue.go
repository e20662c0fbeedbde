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
