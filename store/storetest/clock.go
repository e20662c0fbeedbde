package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// clockTests prove that a caller who leaves Now zero, as the agent does, is
// answered by the database's clock, and that the duration forms of the
// batch calls count from the store's now. Unlike the rest of the suite these
// tests run on the real clock, so they poll (with a deadline) where a job
// must fall due.
var clockTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"ZeroNowLeasesByTheDatabasesClock", testZeroNowLeasesByDatabaseClock},
	{"JobDueAtHalfASecondIsLeasedBeforeTheNextWholeSecond", testSubSecondDue},
	{"ZeroNowRescuesOnlyLeasesExpiredByTheDatabasesClock", testZeroNowRescue},
	{"ExtendDurationCountsFromNow", testExtendDuration},
	{"ExtendDurationWithZeroNowCountsFromTheDatabasesClock", testExtendDurationZeroNow},
	{"FailRetryDelayCountsFromNow", testFailRetryDelay},
	{"ReleaseDelayCountsFromNow", testReleaseDelay},
	{"NextDueInIsTheDelayByTheDatabasesClock", testNextDueIn},
}

// dbNow is the database's current time as the store reads it.
func dbNow(t *testing.T, s store.Store) time.Time {
	t.Helper()
	now, err := s.DatabaseNow(t.Context())
	require.NoError(t, err, "read the database's time")
	require.Equal(t, time.UTC, now.Location(), "the database's time is in UTC")
	return now
}

// leaseWhenDue polls a zero-Now lease of queue until it returns a job, for
// at most limit.
func leaseWhenDue(t *testing.T, s store.Store, queue string, limit time.Duration) *job.Job {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if got := lease(t, s, store.LeaseParams{Queues: []string{queue}, Limit: 1}); len(got) == 1 {
			return got[0]
		}
		require.True(t, time.Now().Before(deadline), "no job of %q became leasable within %s", queue, limit)
		time.Sleep(5 * time.Millisecond)
	}
}

func scheduledJob(queue string, at time.Time) store.NewJob {
	j := newJob(queue)
	j.ScheduledAt = at
	return j
}

func testZeroNowLeasesByDatabaseClock(t *testing.T, s store.Store) {
	due := dbNow(t, s).Add(time.Second)
	j := enqueue(t, s, time.Time{}, scheduledJob("q", due))[0]
	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 1}), "a job due in a second by the database's clock is not leasable at once")

	got := leaseWhenDue(t, s, "q", 10*time.Second)
	require.Equal(t, j.ID, got.ID)
	require.NotNil(t, got.StartedAt)
	require.False(t, got.StartedAt.Before(due), "leased at %s, before its scheduled_at %s", got.StartedAt, due)
	requireTimePtr(t, got.StartedAt.Add(leaseFor), got.LeaseExpiresAt, "lease_expires_at = the database's now + Duration")
	require.False(t, dbNow(t, s).Before(due), "the database's clock has reached scheduled_at")
}

// testSubSecondDue: every time the store compares with its now keeps the
// fraction of a second, so a job never comes due up to a second late (as
// it would against a second-precision CURRENT_TIMESTAMP).
func testSubSecondDue(t *testing.T, s store.Store) {
	now := dbNow(t, s)
	due := now.Truncate(time.Second).Add(500 * time.Millisecond)
	if due.Before(now.Add(100 * time.Millisecond)) {
		due = due.Add(time.Second)
	}
	enqueue(t, s, time.Time{}, scheduledJob("q", due))
	got := leaseWhenDue(t, s, "q", 5*time.Second)
	requireTime(t, due, got.ScheduledAt, "scheduled_at keeps its fraction of a second")
	require.NotNil(t, got.StartedAt)
	require.False(t, got.StartedAt.Before(due), "leased at %s, before its scheduled_at %s", got.StartedAt, due)
	next := due.Truncate(time.Second).Add(time.Second)
	require.True(t, got.StartedAt.Before(next), "a job due at %s was leased at %s, not before the next whole second", due, got.StartedAt)
}

func testZeroNowRescue(t *testing.T, s store.Store) {
	now := dbNow(t, s)
	jobs := enqueue(t, s, time.Time{}, scheduledJob("expired", now.Add(-2*time.Minute)), scheduledJob("live", now))
	expired := lease(t, s, store.LeaseParams{Queues: []string{"expired"}, Limit: 1, Duration: time.Second, Now: now.Add(-time.Minute)})
	require.Len(t, expired, 1)
	live := lease(t, s, store.LeaseParams{Queues: []string{"live"}, Limit: 1, Duration: time.Hour})
	require.Len(t, live, 1)

	res := rescue(t, s, store.RescueParams{})
	require.Equal(t, []uuid.UUID{jobs[0].ID}, res.Requeued, "only the lease that expired by the database's clock is rescued")
	require.Empty(t, res.Failed)
	require.Equal(t, job.StatusRunning, get(t, s, jobs[1].ID).Status, "a live lease is left alone")
	require.False(t, get(t, s, jobs[0].ID).ScheduledAt.Before(now), "a rescued job is due at the database's now")
}

func testExtendDuration(t *testing.T, s store.Store) {
	j := running(t, s, base, newJob("q"))[0]
	unknown := store.LeaseRef{ID: ascendingIDs(t, 1)[0], Token: "none"}
	at := base.Add(time.Minute)
	stale, err := s.Extend(t.Context(), store.ExtendParams{Leases: []store.LeaseRef{ref(j), unknown}, Duration: 10 * time.Minute, Now: at})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{unknown.ID}, stale)
	requireTimePtr(t, at.Add(10*time.Minute), get(t, s, j.ID).LeaseExpiresAt, "lease_expires_at = Now + Duration")

	stale, err = s.Extend(t.Context(), store.ExtendParams{Leases: []store.LeaseRef{ref(j)}, Until: base.Add(time.Hour), Duration: time.Minute, Now: at})
	require.NoError(t, err)
	require.Empty(t, stale)
	requireTimePtr(t, base.Add(time.Hour), get(t, s, j.ID).LeaseExpiresAt, "Until, when set, wins over Duration")
}

func testExtendDurationZeroNow(t *testing.T, s store.Store) {
	enqueue(t, s, time.Time{}, newJob("q"))
	j := leaseWhenDue(t, s, "q", 5*time.Second)
	before := dbNow(t, s)
	stale, err := s.Extend(t.Context(), store.ExtendParams{Leases: []store.LeaseRef{ref(j)}, Duration: time.Hour})
	require.NoError(t, err)
	require.Empty(t, stale)
	after := dbNow(t, s)
	got := get(t, s, j.ID).LeaseExpiresAt
	require.NotNil(t, got)
	require.False(t, got.Before(before.Add(time.Hour)), "lease_expires_at %s is before the database's now + 1h (%s)", got, before.Add(time.Hour))
	require.False(t, got.After(after.Add(time.Hour)), "lease_expires_at %s is after the database's now + 1h (%s)", got, after.Add(time.Hour))
}

func testFailRetryDelay(t *testing.T, s store.Store) {
	jobs := running(t, s, base, newJob("q"), newJob("q"))
	at := base.Add(time.Second)
	res := fail(t, s, at,
		store.Failure{LeaseRef: ref(jobs[0]), Error: "HTTP 503", Outcome: "http_503", Retry: true, RetryDelay: 90 * time.Second},
		store.Failure{LeaseRef: ref(jobs[1]), Error: "HTTP 503", Outcome: "http_503", Retry: true, RetryDelay: time.Second, RetryAt: at.Add(2 * time.Minute)})
	require.ElementsMatch(t, ids(jobs), res.Retried)
	requireTime(t, at.Add(90*time.Second), get(t, s, jobs[0].ID).ScheduledAt, "scheduled_at = Now + RetryDelay")
	requireTime(t, at.Add(2*time.Minute), get(t, s, jobs[1].ID).ScheduledAt, "RetryAt, when set, wins over RetryDelay")
	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 2, Now: at.Add(90*time.Second - time.Microsecond)}), "not before Now + RetryDelay")
	require.Equal(t, []uuid.UUID{jobs[0].ID}, ids(lease(t, s, store.LeaseParams{Limit: 2, Now: at.Add(90 * time.Second)})))
}

func testReleaseDelay(t *testing.T, s store.Store) {
	j := running(t, s, base, newJob("q"))[0]
	at := base.Add(time.Second)
	stale, err := s.Release(t.Context(), store.ReleaseParams{Leases: []store.LeaseRef{ref(j)}, Delay: 5 * time.Minute, Now: at})
	require.NoError(t, err)
	require.Empty(t, stale)
	got := get(t, s, j.ID)
	require.Equal(t, job.StatusPending, got.Status)
	require.Zero(t, got.Attempts, "a release does not spend the attempt")
	requireTime(t, at.Add(5*time.Minute), got.ScheduledAt, "scheduled_at = Now + Delay")
	requireNoLease(t, got)
}

func testNextDueIn(t *testing.T, s store.Store) {
	p := store.NextDueParams{Queues: []string{"q"}}
	_, ok, err := store.NextDueIn(t.Context(), s, p)
	require.NoError(t, err)
	require.False(t, ok, "no delayed job")

	enqueue(t, s, time.Time{}, scheduledJob("q", dbNow(t, s).Add(time.Hour)))
	d, ok, err := store.NextDueIn(t.Context(), s, p)
	require.NoError(t, err)
	require.True(t, ok)
	require.LessOrEqual(t, d, time.Hour)
	require.Greater(t, d, time.Hour-time.Minute, "the delay is counted on the database's clock")

	// A lease that began before a job fell due still finds it: zero delay.
	since := dbNow(t, s).Add(-time.Minute)
	enqueue(t, s, time.Time{}, scheduledJob("q", since.Add(time.Second)))
	d, ok, err = store.NextDueIn(t.Context(), s, store.NextDueParams{Queues: []string{"q"}, Now: since})
	require.NoError(t, err)
	require.True(t, ok)
	require.Zero(t, d, "a job that fell due since the lease began is due at once")
}
