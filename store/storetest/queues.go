package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// queueTests are the rules of queue controls (store.QueueControls) and of
// the lease filters they come with.
var queueTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"PausedQueueIsLeasedByNoSelection", testPauseExcludesFromLease},
	{"PauseIsIdempotentAndResumeLeasesAgain", testPauseResume},
	{"RunningJobOfPausedQueueStillCompletes", testPauseLetsRunningFinish},
	{"PauseRejectsInvalidQueueNameWithErrInvalid", testPauseInvalidName},
	{"LeaseFiltersByPriorities", testLeasePriorities},
	{"ReadyPrioritiesListsLevelsWithDueJobs", testReadyPriorities},
	{"NextDueIsEarliestFutureLeasableJob", testNextDue},
	{"QueuesReportsDepthPauseAgeAndThroughput", testQueuesReport},
	{"QueuesListsPausedQueueWithoutJobs", testQueuesPausedEmpty},
}

func pause(t *testing.T, s store.Store, queue string) {
	t.Helper()
	require.NoError(t, s.PauseQueue(t.Context(), store.PauseQueueParams{Queue: queue, By: "storetest", Now: base}))
}

func resume(t *testing.T, s store.Store, queue string) {
	t.Helper()
	require.NoError(t, s.ResumeQueue(t.Context(), store.ResumeQueueParams{Queue: queue}))
}

func testPauseExcludesFromLease(t *testing.T, s store.Store) {
	jobs := enqueue(t, s, base, newJob("paused"), newJob("paused"), newJob("open"))
	pause(t, s, "paused")

	for _, p := range []store.LeaseParams{
		{Queues: []string{"paused"}},
		{Queues: []string{"paused", "other"}},
		{ExcludeQueues: []string{"open"}},
	} {
		p.Limit, p.Now = 10, base
		require.Emptyf(t, lease(t, s, p), "no job of a paused queue is leased (%+v)", p)
	}
	got := lease(t, s, store.LeaseParams{Limit: 10, Now: base})
	require.Equal(t, []uuid.UUID{jobs[2].ID}, ids(got), "every queue but the paused one")
}

func testPauseResume(t *testing.T, s store.Store) {
	jobs := enqueue(t, s, base, newJob("q"), newJob("q"))
	pause(t, s, "q")
	pause(t, s, "q")
	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 10, Now: base}))

	resume(t, s, "q")
	resume(t, s, "q")
	got := lease(t, s, store.LeaseParams{Queues: []string{"q"}, Limit: 10, Now: base})
	require.ElementsMatch(t, ids(jobs), ids(got), "a resumed queue is leased again")
}

func testPauseLetsRunningFinish(t *testing.T, s store.Store) {
	jobs := running(t, s, base, newJob("q"))
	pause(t, s, "q")
	stale, err := s.Complete(t.Context(), store.CompleteParams{Completions: []store.Completion{{LeaseRef: ref(jobs[0])}}, Now: base.Add(time.Second)})
	require.NoError(t, err)
	require.Empty(t, stale, "a pause stops leasing, not the jobs in flight")
	require.Equal(t, job.StatusCompleted, get(t, s, jobs[0].ID).Status)
}

func testPauseInvalidName(t *testing.T, s store.Store) {
	require.ErrorIs(t, s.PauseQueue(t.Context(), store.PauseQueueParams{Queue: "no spaces", Now: base}), store.ErrInvalid)
	require.ErrorIs(t, s.ResumeQueue(t.Context(), store.ResumeQueueParams{Queue: ""}), store.ErrInvalid)
}

func testLeasePriorities(t *testing.T, s store.Store) {
	var in []store.NewJob
	for l := job.PriorityBackground; l <= job.PriorityCritical; l++ {
		for range 2 {
			nj := newJob("q")
			nj.Priority = l
			in = append(in, nj)
		}
	}
	enqueue(t, s, base, in...)

	got := lease(t, s, store.LeaseParams{Queues: []string{"q"}, Priorities: []job.Priority{job.PriorityLow}, Limit: 10, Now: base})
	require.Len(t, got, 2)
	for _, j := range got {
		require.Equal(t, job.PriorityLow, j.Priority, "one level leases only that level")
	}
	got = lease(t, s, store.LeaseParams{Priorities: []job.Priority{job.PriorityBackground, job.PriorityHigh}, Limit: 3, Now: base})
	require.Len(t, got, 3)
	levels := map[job.Priority]int{}
	for _, j := range got {
		levels[j.Priority]++
	}
	require.Equal(t, map[job.Priority]int{job.PriorityHigh: 2, job.PriorityBackground: 1}, levels,
		"several levels lease in priority order among them")
	got = lease(t, s, store.LeaseParams{Limit: 10, Now: base})
	require.Len(t, got, 5, "no filter: every level")
}

func testReadyPriorities(t *testing.T, s store.Store) {
	high, low, future, other := newJob("q"), newJob("q"), newJob("q"), newJob("other")
	high.Priority, low.Priority = job.PriorityHigh, job.PriorityLow
	future.Priority, future.ScheduledAt = job.PriorityCritical, base.Add(time.Minute)
	other.Priority = job.PriorityBackground
	enqueue(t, s, base, high, low, future, other)

	got, err := s.ReadyPriorities(t.Context(), store.ReadyPrioritiesParams{Queues: []string{"q"}, Now: base})
	require.NoError(t, err)
	require.Equal(t, []job.Priority{job.PriorityHigh, job.PriorityLow}, got, "due levels only, highest first")

	got, err = s.ReadyPriorities(t.Context(), store.ReadyPrioritiesParams{ExcludeQueues: []string{"q"}, Now: base})
	require.NoError(t, err)
	require.Equal(t, []job.Priority{job.PriorityBackground}, got)

	pause(t, s, "q")
	got, err = s.ReadyPriorities(t.Context(), store.ReadyPrioritiesParams{Now: base})
	require.NoError(t, err)
	require.Equal(t, []job.Priority{job.PriorityBackground}, got, "a paused queue has no ready level")
}

func testNextDue(t *testing.T, s store.Store) {
	nextDue := func(p store.NextDueParams) (time.Time, bool) {
		t.Helper()
		p.Now = base
		at, ok, err := s.NextDue(t.Context(), p)
		require.NoError(t, err)
		return at, ok
	}
	_, ok := nextDue(store.NextDueParams{})
	require.False(t, ok, "no jobs: nothing due")

	due, soon, later, paused := newJob("q"), newJob("q"), newJob("q"), newJob("p")
	soon.ScheduledAt = base.Add(90 * time.Second)
	later.ScheduledAt = base.Add(time.Hour)
	paused.ScheduledAt = base.Add(time.Second)
	jobs := enqueue(t, s, base, due, soon, later, paused)
	waiting := newJob("q")
	waiting.ScheduledAt = base.Add(time.Second)
	waiting.DependsOn = []uuid.UUID{jobs[2].ID}
	enqueue(t, s, base, waiting)
	pause(t, s, "p")

	at, ok := nextDue(store.NextDueParams{Queues: []string{"q"}})
	require.True(t, ok)
	requireTime(t, soon.ScheduledAt, at, "next due of q (a due job and a job waiting for parents do not count)")
	at, ok = nextDue(store.NextDueParams{})
	require.True(t, ok)
	requireTime(t, soon.ScheduledAt, at, "next due of every queue skips the paused one")
	_, ok = nextDue(store.NextDueParams{ExcludeQueues: []string{"q"}})
	require.False(t, ok, "only the paused queue is left")
	_, ok = nextDue(store.NextDueParams{Queues: []string{"none"}})
	require.False(t, ok)

	resume(t, s, "p")
	at, ok = nextDue(store.NextDueParams{Queues: []string{"p", "q"}})
	require.True(t, ok)
	requireTime(t, paused.ScheduledAt, at, "a resumed queue counts again")
}

func testQueuesReport(t *testing.T, s store.Store) {
	old, fresh, future := newJob("q"), newJob("q"), newJob("q")
	old.ScheduledAt = base.Add(-10 * time.Minute)
	fresh.ScheduledAt = base.Add(-time.Minute)
	future.ScheduledAt = base.Add(time.Hour)
	enqueue(t, s, base.Add(-time.Hour), old, fresh, future)
	// Three more jobs, leased and finished: one completed two minutes ago,
	// one completed just now, one failed.
	done := enqueue(t, s, base.Add(-time.Hour), newJob("q"), newJob("q"), newJob("q"), newJob("r"))
	for _, j := range done {
		_, err := s.Cancel(t.Context(), store.CancelParams{ID: j.ID, Now: base})
		require.NoError(t, err)
	}
	for i, j := range done[:3] {
		_, err := s.Retry(t.Context(), store.RetryParams{ID: j.ID, Now: base.Add(-3 * time.Hour)})
		require.NoError(t, err)
		leased := lease(t, s, store.LeaseParams{Queues: []string{"q"}, Priorities: []job.Priority{job.PriorityNormal}, Limit: 1, Now: base.Add(-3 * time.Hour)})
		require.Len(t, leased, 1)
		switch i {
		case 0:
			_, err = s.Complete(t.Context(), store.CompleteParams{Completions: []store.Completion{{LeaseRef: ref(leased[0])}}, Now: base.Add(-2 * time.Minute)})
		case 1:
			_, err = s.Complete(t.Context(), store.CompleteParams{Completions: []store.Completion{{LeaseRef: ref(leased[0])}}, Now: base.Add(-time.Second)})
		default:
			_, err = s.Fail(t.Context(), store.FailParams{Failures: []store.Failure{{LeaseRef: ref(leased[0]), Error: "boom", Outcome: "http_500"}}, Now: base})
		}
		require.NoError(t, err)
	}
	pause(t, s, "r")

	got, err := s.Queues(t.Context(), store.QueuesParams{Now: base})
	require.NoError(t, err)
	require.Len(t, got, 2)
	q, r := got[0], got[1]
	require.Equal(t, "q", q.Name)
	require.False(t, q.Paused)
	require.Equal(t, map[job.Status]int64{
		job.StatusPending: 3, job.StatusRunning: 0, job.StatusCompleted: 2,
		job.StatusFailed: 1, job.StatusCancelled: 0, job.StatusSkipped: 0,
	}, q.Depth)
	require.NotNil(t, q.OldestPendingAt)
	requireTime(t, old.ScheduledAt, *q.OldestPendingAt, "oldest pending: the longest-waiting due job")
	require.EqualValues(t, 1, q.CompletedLastMinute, "only the completion inside the last minute")

	require.Equal(t, "r", r.Name)
	require.True(t, r.Paused)
	require.NotNil(t, r.PausedAt)
	requireTime(t, base, *r.PausedAt, "paused_at")
	require.Equal(t, "storetest", r.PausedBy)
	require.EqualValues(t, 1, r.Depth[job.StatusCancelled])
	require.Nil(t, r.OldestPendingAt)

	one, err := s.Queues(t.Context(), store.QueuesParams{Queue: "r", Now: base})
	require.NoError(t, err)
	require.Equal(t, []store.QueueInfo{r}, one, "a one-queue report is that queue's row")
}

func testQueuesPausedEmpty(t *testing.T, s store.Store) {
	got, err := s.Queues(t.Context(), store.QueuesParams{Now: base})
	require.NoError(t, err)
	require.Empty(t, got)

	pause(t, s, "later")
	got, err = s.Queues(t.Context(), store.QueuesParams{Now: base})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "later", got[0].Name)
	require.True(t, got[0].Paused, "a queue can be paused before it has jobs")
	require.Len(t, got[0].Depth, len(job.Statuses))
	for st, n := range got[0].Depth {
		require.Zerof(t, n, "depth of %s", st)
	}

	none, err := s.Queues(t.Context(), store.QueuesParams{Queue: "unknown", Now: base})
	require.NoError(t, err)
	require.Empty(t, none)
}
