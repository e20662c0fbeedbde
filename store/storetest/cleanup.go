package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// cleanupTests cover store.Cleaner (expired results, retention deletes) and
// store.RetryMatching (bulk retry of dead letters).
var cleanupTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"ExpireResultsClearsOnlyExpiredResultsInBatches", testExpireResults},
	{"DeleteFinishedSelectsByStatusAndAge", testDeleteFinishedByStatusAndAge},
	{"DeleteFinishedRespectsLimitAndQueue", testDeleteFinishedLimitAndQueue},
	{"DeleteFinishedNeverTouchesARunningOrPausedWorkflow", testDeleteFinishedSparesLiveWorkflows},
	{"DeleteFinishedRemovesEdgesAndKeepsChildren", testDeleteFinishedEdges},
	{"DeleteFinishedRejectsUnfinishedStatus", testDeleteFinishedRejectsUnfinished},
	{"RetryMatchingRetriesEveryDeadLetterOfTheQueue", testRetryMatching},
	{"RetryMatchingKeepsWorkflowCountersTrue", testRetryMatchingWorkflow},
}

func deleteFinished(t *testing.T, s store.Store, p store.DeleteFinishedParams) int {
	t.Helper()
	n, err := s.DeleteFinished(t.Context(), p)
	require.NoError(t, err, "delete finished %s", p.Status)
	return n
}

func countFinished(t *testing.T, s store.Store, f store.FinishedFilter) int {
	t.Helper()
	n, err := s.CountFinished(t.Context(), f)
	require.NoError(t, err, "count finished %s", f.Status)
	return n
}

func requireGone(t *testing.T, s store.Store, j *job.Job) {
	t.Helper()
	_, err := s.Get(t.Context(), j.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "job %s was deleted", j.ID)
}

func testExpireResults(t *testing.T, s store.Store) {
	short := newJob("q")
	short.ResultTTL = time.Minute
	long := newJob("q")
	long.ResultTTL = time.Hour
	jobs := running(t, s, base, short, short, short, long, newJob("q"))
	cs := make([]store.Completion, len(jobs))
	for i, j := range jobs {
		cs[i] = store.Completion{LeaseRef: ref(j), Result: []byte(`{"r":1}`)}
	}
	require.Empty(t, complete(t, s, base, cs...))

	now := base.Add(2 * time.Minute)
	n, err := s.ExpireResults(t.Context(), store.ExpireResultsParams{Now: now, Limit: 2})
	require.NoError(t, err)
	require.Equal(t, 2, n, "the limit bounds one pass")
	n, err = s.ExpireResults(t.Context(), store.ExpireResultsParams{Now: now, Limit: 2})
	require.NoError(t, err)
	require.Equal(t, 1, n, "the next pass takes the rest")
	n, err = s.ExpireResults(t.Context(), store.ExpireResultsParams{Now: now})
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to expire")

	for _, j := range jobs[:3] {
		got := get(t, s, j.ID)
		require.Empty(t, got.Result, "the expired result is gone from the row")
		requireTimePtr(t, base.Add(time.Minute), got.ResultExpiresAt, "result_expires_at is kept")
		require.Equal(t, job.StatusCompleted, got.Status)
	}
	require.JSONEq(t, `{"r":1}`, string(get(t, s, jobs[3].ID).Result), "an unexpired result stays")
	require.JSONEq(t, `{"r":1}`, string(get(t, s, jobs[4].ID).Result), "a result without TTL stays")

	n, err = s.ExpireResults(t.Context(), store.ExpireResultsParams{Now: base.Add(time.Hour)})
	require.NoError(t, err)
	require.Equal(t, 1, n, "expiry at exactly result_expires_at counts")
}

func testDeleteFinishedByStatusAndAge(t *testing.T, s store.Store) {
	old := finished(t, s) // completed, failed, cancelled at base+1s
	later := base.Add(time.Hour)
	newer := running(t, s, later, newJob("q"))[0]
	require.Empty(t, complete(t, s, later, store.Completion{LeaseRef: ref(newer)}))
	still := running(t, s, later, newJob("q"))[0]
	pending := enqueue(t, s, base, newJob("q"))[0]

	cutoff := base.Add(time.Minute)
	for _, j := range old {
		f := store.FinishedFilter{Status: j.Status, Before: base}
		require.Zero(t, countFinished(t, s, f), "%s at base+1s is not before base", j.Status)
		require.Zero(t, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: f}))
		get(t, s, j.ID)

		f.Before = cutoff
		require.Equal(t, 1, countFinished(t, s, f), "%s before the cutoff", j.Status)
		require.Equal(t, 1, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: f}))
		requireGone(t, s, j)
	}
	require.Equal(t, job.StatusCompleted, get(t, s, newer.ID).Status, "a job finished after the cutoff stays")
	require.Equal(t, job.StatusPending, get(t, s, pending.ID).Status)
	require.Equal(t, job.StatusRunning, get(t, s, still.ID).Status)

	require.Equal(t, 1, countFinished(t, s, store.FinishedFilter{Status: job.StatusCompleted}), "a zero Before means any age")
	require.Equal(t, 1, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: store.FinishedFilter{Status: job.StatusCompleted}}))
	requireGone(t, s, newer)
	require.Equal(t, job.StatusPending, get(t, s, pending.ID).Status)
}

func testDeleteFinishedLimitAndQueue(t *testing.T, s store.Store) {
	jobs := running(t, s, base, newJob("a"), newJob("a"), newJob("a"), newJob("a"), newJob("a"), newJob("b"), newJob("b"))
	cs := make([]store.Completion, len(jobs))
	for i, j := range jobs {
		cs[i] = store.Completion{LeaseRef: ref(j)}
	}
	require.Empty(t, complete(t, s, base, cs...))

	f := store.FinishedFilter{Status: job.StatusCompleted, Queue: "a", Before: base.Add(time.Second)}
	require.Equal(t, 5, countFinished(t, s, f))
	var got []int
	for {
		n := deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: f, Limit: 2})
		got = append(got, n)
		if n < 2 {
			break
		}
	}
	require.Equal(t, []int{2, 2, 1}, got, "each call deletes at most Limit jobs")
	require.Zero(t, countFinished(t, s, f))
	for _, j := range jobs[:5] {
		requireGone(t, s, j)
	}
	for _, j := range jobs[5:] {
		require.Equal(t, job.StatusCompleted, get(t, s, j.ID).Status, "another queue's jobs stay")
	}
	_, err := s.DeleteFinished(t.Context(), store.DeleteFinishedParams{
		FinishedFilter: store.FinishedFilter{Status: job.StatusCompleted, Queue: "no such queue!"}})
	require.ErrorIs(t, err, store.ErrInvalid)
}

func testDeleteFinishedSparesLiveWorkflows(t *testing.T, s store.Store) {
	running := enqueueWorkflow(t, s, definition(workflow.ContinueOnFailure,
		step("a"), step("b", "a"), step("x"), step("y", "x")), base)
	leased := running.leaseSteps(base, "a", "x")
	running.fail(base.Add(time.Second), leased["a"])
	running.requireWorkflowStatus(workflow.StatusRunning)

	paused := enqueueWorkflow(t, s, definition(workflow.Manual, step("m"), step("n"), step("o", "m")), base)
	pl := paused.leaseSteps(base.Add(time.Second), "m", "n")
	paused.complete(base.Add(2*time.Second), pl["n"])
	paused.fail(base.Add(2*time.Second), pl["m"])
	paused.requireWorkflowStatus(workflow.StatusPaused)

	end := base.Add(24 * time.Hour)
	for _, st := range []job.Status{job.StatusCompleted, job.StatusFailed, job.StatusCancelled} {
		f := store.FinishedFilter{Status: st, Before: end}
		require.Zero(t, countFinished(t, s, f), "no %s job of a live workflow is counted", st)
		require.Zero(t, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: f}), "no %s job of a live workflow is deleted", st)
	}
	running.requireCounters()
	paused.requireCounters()

	running.complete(base.Add(3*time.Second), leased["x"])
	y := running.leaseSteps(base.Add(4*time.Second), "y")["y"]
	running.complete(base.Add(5*time.Second), y)
	running.requireWorkflowStatus(workflow.StatusFailed)

	require.Equal(t, 1, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: store.FinishedFilter{Status: job.StatusFailed, Before: end}}),
		"the finished workflow's failed job goes; the paused workflow's stays")
	require.Equal(t, 1, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: store.FinishedFilter{Status: job.StatusCancelled, Before: end}}))
	require.Equal(t, 2, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: store.FinishedFilter{Status: job.StatusCompleted, Before: end}}))
	for _, name := range []string{"a", "b", "x", "y"} {
		_, err := s.Get(t.Context(), running.jobs[name])
		require.ErrorIs(t, err, store.ErrNotFound, "step %s", name)
	}
	paused.requireStatus("m", job.StatusFailed, job.DependencyNone)
	paused.requireStatus("o", job.StatusPending, job.DependencyWaiting)
	paused.requireCounters()
}

func testDeleteFinishedEdges(t *testing.T, s store.Store) {
	parent := running(t, s, base, newJob("q"))[0]
	require.Empty(t, complete(t, s, base, store.Completion{LeaseRef: ref(parent), Result: []byte(`1`)}))
	kid := enqueue(t, s, base, child(parent))[0]
	require.Equal(t, job.DependencySatisfied, kid.DependencyStatus)

	require.Equal(t, 1, deleteFinished(t, s, store.DeleteFinishedParams{
		FinishedFilter: store.FinishedFilter{Status: job.StatusCompleted, Before: base.Add(time.Second)}}))
	requireGone(t, s, parent)
	got := get(t, s, kid.ID)
	require.Equal(t, job.StatusPending, got.Status, "the child of a deleted parent stays")
	require.Equal(t, kid.ID, leaseOne(t, s, base.Add(time.Second)).ID, "and still runs")
}

func testDeleteFinishedRejectsUnfinished(t *testing.T, s store.Store) {
	j := enqueue(t, s, base, newJob("q"))[0]
	for _, st := range []job.Status{job.StatusPending, job.StatusRunning, ""} {
		_, err := s.DeleteFinished(t.Context(), store.DeleteFinishedParams{FinishedFilter: store.FinishedFilter{Status: st}})
		require.ErrorIs(t, err, store.ErrInvalid, "status %q", st)
		_, err = s.CountFinished(t.Context(), store.FinishedFilter{Status: st})
		require.ErrorIs(t, err, store.ErrInvalid, "status %q", st)
	}
	require.Equal(t, job.StatusPending, get(t, s, j.ID).Status)
}

func testRetryMatching(t *testing.T, s store.Store) {
	jobs := running(t, s, base, newJob("a"), newJob("a"), newJob("a"), newJob("b"))
	now := base.Add(time.Second)
	for _, j := range jobs {
		fail(t, s, now, store.Failure{LeaseRef: ref(j), Error: "HTTP 404", Outcome: "http_404"})
	}
	cancelled := cancel(t, s, enqueue(t, s, now, newJob("a"))[0].ID, now)

	later := base.Add(time.Minute)
	n, err := store.RetryMatching(t.Context(), s, store.RetryMatchingParams{Status: job.StatusFailed, Queue: "a", Now: later, BatchSize: 2})
	require.NoError(t, err)
	require.Equal(t, 3, n)
	for _, j := range jobs[:3] {
		got := get(t, s, j.ID)
		require.Equal(t, job.StatusPending, got.Status)
		require.Zero(t, got.Attempts)
		requireTime(t, later, got.ScheduledAt, "scheduled_at")
		require.Len(t, got.Errors, 1, "the error history is kept")
	}
	require.Equal(t, job.StatusFailed, get(t, s, jobs[3].ID).Status, "another queue's dead letters stay")
	require.Equal(t, job.StatusCancelled, get(t, s, cancelled.ID).Status, "another status stays")

	n, err = store.RetryMatching(t.Context(), s, store.RetryMatchingParams{Status: job.StatusFailed, Queue: "a", Now: later})
	require.NoError(t, err)
	require.Zero(t, n, "nothing left to retry")

	_, err = store.RetryMatching(t.Context(), s, store.RetryMatchingParams{Status: job.StatusCompleted, Now: later})
	require.ErrorIs(t, err, store.ErrInvalid)
}

func testRetryMatchingWorkflow(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition(workflow.Manual, step("a"), step("b", "a")), base)
	a := w.leaseSteps(base, "a")["a"]
	w.fail(base.Add(time.Second), a)
	w.requireWorkflowStatus(workflow.StatusPaused)

	n, err := store.RetryMatching(t.Context(), s, store.RetryMatchingParams{Status: job.StatusFailed, Queue: wfQueue, Now: base.Add(2 * time.Second)})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	w.requireStatus("a", job.StatusPending, job.DependencyNone)
	w.requireWorkflowStatus(workflow.StatusRunning)
	w.requireCounters()
}
