package storetest

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// testLeaseOrder leases one job at a time, so the order proven is the order
// in which jobs are chosen, whatever order a batch is returned in.
func testLeaseOrder(t *testing.T, s store.Store) {
	id := ascendingIDs(t, 7)
	at := func(d time.Duration) time.Time { return base.Add(d) }
	type spec struct {
		name     string
		id       uuid.UUID
		priority job.Priority
		at       time.Time
	}
	// Enqueued in this scrambled order; leased in the order of want below.
	specs := []spec{
		{"normal-old-id0", id[0], job.PriorityNormal, at(-5 * time.Minute)},
		{"high-1m", id[5], job.PriorityHigh, at(-time.Minute)},
		{"low-oldest", id[2], job.PriorityLow, at(-10 * time.Minute)},
		{"critical-future", id[3], job.PriorityCritical, at(time.Minute)},
		{"high-2m", id[6], job.PriorityHigh, at(-2 * time.Minute)},
		{"normal-old-id1", id[1], job.PriorityNormal, at(-5 * time.Minute)},
		{"critical-now", id[4], job.PriorityCritical, at(0)},
	}
	byID := map[uuid.UUID]string{}
	var in []store.NewJob
	for _, sp := range specs {
		byID[sp.id] = sp.name
		in = append(in, store.NewJob{ID: sp.id, Queue: "q", Payload: []byte(`{}`), Priority: sp.priority, ScheduledAt: sp.at})
	}
	enqueue(t, s, base.Add(-time.Hour), in...)

	want := []string{"critical-now", "high-2m", "high-1m", "normal-old-id0", "normal-old-id1", "low-oldest"}
	var got []string
	for range want {
		got = append(got, byID[leaseOne(t, s, base).ID])
	}
	require.Equal(t, want, got, "priority DESC, scheduled_at ASC, id ASC; the future job waits")
	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 10, Now: base}))
}

func testLeaseLimit(t *testing.T, s store.Store) {
	in := []store.NewJob{newJob("q"), newJob("q"), newJob("q"), newJob("q"), newJob("q")}
	for i := range in {
		in[i].Priority = job.Priority(i)
	}
	jobs := enqueue(t, s, base, in...)

	first := lease(t, s, store.LeaseParams{Limit: 2, Now: base})
	require.ElementsMatch(t, []uuid.UUID{jobs[4].ID, jobs[3].ID}, ids(first), "a limited lease takes the first jobs in lease order")

	rest := lease(t, s, store.LeaseParams{Limit: 10, Now: base})
	require.ElementsMatch(t, []uuid.UUID{jobs[2].ID, jobs[1].ID, jobs[0].ID}, ids(rest), "a lease never takes more than is there")
	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 10, Now: base}))
}

func testLeaseFields(t *testing.T, s store.Store) {
	jobs := enqueue(t, s, base, newJob("q"), newJob("q"), newJob("q"))
	now := base.Add(time.Second)
	got := lease(t, s, store.LeaseParams{AgentID: "agent-7", Limit: 3, Duration: 90 * time.Second, Now: now})
	require.ElementsMatch(t, ids(jobs), ids(got))

	tokens := map[string]bool{}
	for _, j := range got {
		require.Equal(t, job.StatusRunning, j.Status)
		require.Equal(t, 1, j.Attempts, "a lease spends an attempt")
		require.Equal(t, "agent-7", j.LeasedBy)
		require.NotEmpty(t, j.LeaseToken)
		require.False(t, tokens[j.LeaseToken], "every leased job gets its own token")
		tokens[j.LeaseToken] = true
		requireTimePtr(t, now.Add(90*time.Second), j.LeaseExpiresAt, "lease_expires_at")
		requireTimePtr(t, now, j.StartedAt, "started_at")
		requireSameJob(t, j, get(t, s, j.ID))
	}
}

func testLeaseOnlyPending(t *testing.T, s store.Store) {
	jobs := running(t, s, base, newJob("q"), newJob("q"), newJob("q"), newJob("q"))
	now := base.Add(time.Second)
	stale, err := s.Complete(t.Context(), store.CompleteParams{Now: now, Completions: []store.Completion{{LeaseRef: ref(jobs[1])}}})
	require.NoError(t, err)
	require.Empty(t, stale)
	res, err := s.Fail(t.Context(), store.FailParams{Now: now, Failures: []store.Failure{{LeaseRef: ref(jobs[2]), Error: "boom", Outcome: "http_400"}}})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{jobs[2].ID}, res.Failed)
	_, err = s.Cancel(t.Context(), store.CancelParams{ID: jobs[3].ID, Now: now})
	require.NoError(t, err)
	pending := enqueue(t, s, now, newJob("q"))[0]

	got := lease(t, s, store.LeaseParams{Limit: 10, Now: now.Add(time.Hour)})
	require.Equal(t, []uuid.UUID{pending.ID}, ids(got), "running, completed, failed and cancelled jobs are not leased")
}

func testLeaseScheduledAt(t *testing.T, s store.Store) {
	later := base.Add(10 * time.Minute)
	scheduled := newJob("q")
	scheduled.ScheduledAt = later
	j := enqueue(t, s, base, scheduled)[0]

	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 1, Now: base}))
	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 1, Now: later.Add(-time.Microsecond)}))
	got := leaseOne(t, s, later)
	require.Equal(t, j.ID, got.ID, "a job is due when scheduled_at <= Now")
}

func testLeaseQueues(t *testing.T, s store.Store) {
	jobs := enqueue(t, s, base, newJob("alpha"), newJob("beta"), newJob("gamma"), newJob("alpha"))

	got := lease(t, s, store.LeaseParams{Queues: []string{"alpha", "gamma"}, Limit: 10, Now: base})
	require.ElementsMatch(t, []uuid.UUID{jobs[0].ID, jobs[2].ID, jobs[3].ID}, ids(got))
	require.Empty(t, lease(t, s, store.LeaseParams{Queues: []string{"alpha", "gamma", "delta"}, Limit: 10, Now: base}))

	got = lease(t, s, store.LeaseParams{Limit: 10, Now: base})
	require.Equal(t, []uuid.UUID{jobs[1].ID}, ids(got), "no Queues means every queue")
}

func testLeaseExcludeQueues(t *testing.T, s store.Store) {
	jobs := enqueue(t, s, base, newJob("alpha"), newJob("beta"), newJob("gamma"), newJob("delta"))

	got := lease(t, s, store.LeaseParams{Queues: []string{"alpha", "beta", "gamma"}, ExcludeQueues: []string{"beta"}, Limit: 10, Now: base})
	require.ElementsMatch(t, []uuid.UUID{jobs[0].ID, jobs[2].ID}, ids(got), "Queues and ExcludeQueues combine")

	got = lease(t, s, store.LeaseParams{ExcludeQueues: []string{"beta"}, Limit: 10, Now: base})
	require.Equal(t, []uuid.UUID{jobs[3].ID}, ids(got), "ExcludeQueues alone skips only its queues")

	got = lease(t, s, store.LeaseParams{Limit: 10, Now: base})
	require.Equal(t, []uuid.UUID{jobs[1].ID}, ids(got))
}

func testLeaseFreshToken(t *testing.T, s store.Store) {
	first := running(t, s, base, newJob("q"))[0]
	stale, err := s.Release(t.Context(), store.ReleaseParams{Leases: []store.LeaseRef{ref(first)}, ScheduledAt: base, Now: base})
	require.NoError(t, err)
	require.Empty(t, stale)

	second := leaseOne(t, s, base.Add(time.Second))
	require.Equal(t, first.ID, second.ID)
	require.NotEmpty(t, second.LeaseToken)
	require.NotEqual(t, first.LeaseToken, second.LeaseToken, "a new lease fences off the old one")
}

// testLeaseConcurrent races several leasers over one queue; every job must be
// handed out exactly once (SKIP LOCKED or a single writer, never a double
// lease), and no leaser may wait forever on another's lock.
func testLeaseConcurrent(t *testing.T, s store.Store) {
	const total, workers, batch = 500, 8, 7
	in := make([]store.NewJob, total)
	for i := range in {
		in[i] = newJob("q")
		in[i].Priority = job.Priority(i % 5)
	}
	enqueue(t, s, base, in...)

	var (
		mu       sync.Mutex
		seen     = map[uuid.UUID]string{}
		doubles  []string
		tokens   = map[string]bool{}
		failures []error
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(time.Minute)
	leased := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	for w := range workers {
		agent := fmt.Sprintf("agent-%d", w)
		wg.Go(func() {
			for leased() < total && time.Now().Before(deadline) {
				got, err := s.Lease(t.Context(), store.LeaseParams{AgentID: agent, Limit: batch, Duration: time.Hour, Now: base})
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Errorf("%s: %w", agent, err))
					mu.Unlock()
					return
				}
				for _, j := range got {
					if prev, ok := seen[j.ID]; ok {
						doubles = append(doubles, fmt.Sprintf("%s leased by %s and %s", j.ID, prev, agent))
					}
					seen[j.ID] = agent
					if tokens[j.LeaseToken] {
						doubles = append(doubles, fmt.Sprintf("token of %s reused", j.ID))
					}
					tokens[j.LeaseToken] = true
				}
				mu.Unlock()
				if len(got) == 0 {
					runtime.Gosched()
				}
			}
		})
	}
	wg.Wait()

	require.Empty(t, failures, "concurrent leases do not fail")
	require.Empty(t, doubles, "no job is leased twice")
	require.Len(t, seen, total, "every job is leased")
	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 10, Now: base}))
	require.ElementsMatch(t, []store.QueueCount{{Queue: "q", Status: job.StatusRunning, Count: total}}, queueStats(t, s))
}

func testExtend(t *testing.T, s store.Store) {
	jobs := running(t, s, base, newJob("q"), newJob("q"), newJob("q"))
	live, wrongToken, done := jobs[0], jobs[1], jobs[2]
	require.Empty(t, complete(t, s, base.Add(time.Second), store.Completion{LeaseRef: ref(done)}))
	pending := enqueue(t, s, base, newJob("q"))[0]

	until := base.Add(time.Hour)
	stale, err := s.Extend(t.Context(), store.ExtendParams{Until: until, Leases: []store.LeaseRef{
		ref(live),
		{ID: wrongToken.ID, Token: wrongToken.LeaseToken + "x"},
		ref(done),
		{ID: pending.ID},
	}})
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{wrongToken.ID, done.ID, pending.ID}, stale)

	got := get(t, s, live.ID)
	requireTimePtr(t, until, got.LeaseExpiresAt, "lease_expires_at = Until")
	require.Equal(t, live.LeaseToken, got.LeaseToken, "extending keeps the token")
	require.Equal(t, job.StatusRunning, got.Status)
	requireSameJob(t, wrongToken, get(t, s, wrongToken.ID))
	requireSameJob(t, pending, get(t, s, pending.ID))

	res, err := s.RescueExpired(t.Context(), store.RescueParams{Now: base.Add(leaseFor)})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{wrongToken.ID}, res.Requeued, "an extended lease outlives its first expiry")
}

func testRelease(t *testing.T, s store.Store) {
	first := running(t, s, base, newJob("q"))[0]
	fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(first), Error: "e", Outcome: "http_500", Retry: true, RetryAt: base.Add(time.Second)})
	j := leaseOne(t, s, base.Add(time.Second))
	require.Equal(t, 2, j.Attempts)

	now := base.Add(2 * time.Second)
	later := now.Add(15 * time.Second)
	stale, err := s.Release(t.Context(), store.ReleaseParams{Leases: []store.LeaseRef{ref(j)}, ScheduledAt: later, Now: now})
	require.NoError(t, err)
	require.Empty(t, stale)

	got := get(t, s, j.ID)
	require.Equal(t, job.StatusPending, got.Status)
	require.Equal(t, 1, got.Attempts, "a released attempt is not spent")
	requireTime(t, later, got.ScheduledAt, "scheduled_at = ScheduledAt")
	requireNoLease(t, got)
	require.Len(t, got.Errors, 1, "a release is not a failure")

	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 1, Now: later.Add(-time.Microsecond)}))
	again := leaseOne(t, s, later)
	require.Equal(t, 2, again.Attempts)
}

func testReleaseStale(t *testing.T, s store.Store) {
	jobs := running(t, s, base, newJob("q"), newJob("q"))
	good, wrongToken := jobs[0], jobs[1]
	pending := enqueue(t, s, base, newJob("q"))[0]
	unknown := ascendingIDs(t, 1)[0]

	stale, err := s.Release(t.Context(), store.ReleaseParams{ScheduledAt: base, Now: base, Leases: []store.LeaseRef{
		ref(good),
		{ID: wrongToken.ID, Token: "x" + wrongToken.LeaseToken},
		{ID: pending.ID},
		{ID: unknown, Token: good.LeaseToken},
	}})
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{wrongToken.ID, pending.ID, unknown}, stale)
	require.Equal(t, job.StatusPending, get(t, s, good.ID).Status)
	requireSameJob(t, wrongToken, get(t, s, wrongToken.ID))
	requireSameJob(t, pending, get(t, s, pending.ID))
}
