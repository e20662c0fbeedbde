package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// Retry cases: what a retry answers and leaves behind, so that every retry
// ends in a workflow that can finish. The choices (a new deadline for a
// finished workflow, a 409 rather than a job that waits forever) are the
// ones stated on store.RetryJob and store.RetryWorkflow.
var workflowRetryTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"WorkflowRetryAfterTimeoutGivesANewDeadline", testWorkflowRetryAfterTimeout},
	{"JobRetryInATimedOutWorkflowGivesANewDeadline", testJobRetryAfterTimeout},
	{"WorkflowRetryOfAPausedWorkflowKeepsItsDeadline", testWorkflowRetryPausedKeepsDeadline},
	{"JobRetryWithAFailedOrCancelledParentIsConflictAndWritesNothing", testJobRetryUnresolvedParent},
	{"RetryMatchingRetriesACancelledChainParentsFirst", testRetryMatchingChain},
	{"JobRetryWithAFailedParentOutsideWorkflowsIsConflict", testJobRetryUnresolvedParentNoWorkflow},
	{"JobRetryInAFailFastWorkflowRependsWhatTheFailureCancelled", testJobRetryFailFast},
	{"JobRetryInAFailFastWorkflowWithTwoFailedJobsIsConflict", testJobRetryFailFastTwoFailed},
}

// timedOut enqueues a workflow a -> b with a one-minute timeout at base and
// expires it at base+2m, leaving it failed with both jobs cancelled.
func timedOut(t *testing.T, s store.Store) *wf {
	t.Helper()
	def := definition(workflow.FailFast, step("a"), step("b", "a"))
	def.Timeout = job.Duration(time.Minute)
	w := enqueueWorkflow(t, s, def, base)
	requireTimePtr(t, base.Add(time.Minute), w.record().Deadline, "deadline at enqueue")
	expired, err := s.ExpireWorkflows(t.Context(), store.ExpireWorkflowsParams{Now: base.Add(2 * time.Minute)})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{w.id}, expired)
	w.requireWorkflowStatus(workflow.StatusFailed)
	return w
}

// requireRunsToCompletion runs a -> b of a workflow from at and checks that
// no expirer pass before the deadline fails it on the way.
func (w *wf) requireRunsToCompletion(at time.Time) {
	w.t.Helper()
	expired, err := w.s.ExpireWorkflows(w.t.Context(), store.ExpireWorkflowsParams{Now: at.Add(30 * time.Second)})
	require.NoError(w.t, err)
	require.Empty(w.t, expired, "the retried workflow is inside its new deadline")
	w.requireWorkflowStatus(workflow.StatusRunning)
	a := w.leaseSteps(at.Add(30*time.Second), "a")["a"]
	w.complete(at.Add(31*time.Second), a)
	b := w.leaseSteps(at.Add(32*time.Second), "b")["b"]
	w.complete(at.Add(33*time.Second), b)
	w.requireWorkflowStatus(workflow.StatusCompleted)
}

func testWorkflowRetryAfterTimeout(t *testing.T, s store.Store) {
	w := timedOut(t, s)
	at := base.Add(time.Hour)
	r, err := s.RetryWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: at})
	require.NoError(t, err)
	require.Equal(t, workflow.StatusRunning, r.Status)
	requireTimePtr(t, at.Add(time.Minute), r.Deadline, "the retry's answer carries the new deadline")
	require.Empty(t, r.ErrorMessage, "the timeout's error is cleared")
	requireTimePtr(t, at.Add(time.Minute), w.record().Deadline, "the new deadline is stored")
	w.requireRunsToCompletion(at)

	def := definition(workflow.FailFast, step("a"), step("b", "a"))
	def.Timeout = job.Duration(time.Minute)
	again := enqueueWorkflow(t, s, def, at)
	_, err = s.ExpireWorkflows(t.Context(), store.ExpireWorkflowsParams{Now: at.Add(2 * time.Minute)})
	require.NoError(t, err)
	again.requireWorkflowStatus(workflow.StatusFailed)
	later := at.Add(3 * time.Minute)
	_, err = s.RetryWorkflow(t.Context(), store.WorkflowParams{ID: again.id, Now: later})
	require.NoError(t, err)
	expired, err := s.ExpireWorkflows(t.Context(), store.ExpireWorkflowsParams{Now: later.Add(time.Minute)})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{again.id}, expired, "the new deadline is enforced like the first")
	again.requireWorkflowStatus(workflow.StatusFailed)
}

func testJobRetryAfterTimeout(t *testing.T, s store.Store) {
	w := timedOut(t, s)
	at := base.Add(time.Hour)
	_, err := s.Retry(t.Context(), store.RetryParams{ID: w.jobs["a"], Now: at})
	require.NoError(t, err)
	r := w.requireWorkflowStatus(workflow.StatusRunning)
	requireTimePtr(t, at.Add(time.Minute), r.Deadline, "a job retry reopening the workflow moves its deadline")
	a := w.leaseSteps(at.Add(10*time.Second), "a")["a"]
	w.complete(at.Add(11*time.Second), a)
	w.requireWorkflowStatus(workflow.StatusCancelled)
	_, err = s.Retry(t.Context(), store.RetryParams{ID: w.jobs["b"], Now: at.Add(12 * time.Second)})
	require.NoError(t, err)
	r = w.requireWorkflowStatus(workflow.StatusRunning)
	requireTimePtr(t, at.Add(12*time.Second+time.Minute), r.Deadline, "each reopening starts the timeout again")
	b := w.leaseSteps(at.Add(13*time.Second), "b")["b"]
	w.complete(at.Add(14*time.Second), b)
	w.requireWorkflowStatus(workflow.StatusCompleted)
}

func testWorkflowRetryPausedKeepsDeadline(t *testing.T, s store.Store) {
	def := definition(workflow.Manual, step("a"), step("b", "a"))
	def.Timeout = job.Duration(time.Hour)
	w := enqueueWorkflow(t, s, def, base)
	a := w.leaseSteps(base, "a")["a"]
	w.fail(base.Add(time.Second), a)
	w.requireWorkflowStatus(workflow.StatusPaused)
	r, err := s.RetryWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base.Add(time.Minute)})
	require.NoError(t, err)
	require.Equal(t, workflow.StatusRunning, r.Status)
	requireTimePtr(t, base.Add(time.Hour), r.Deadline, "a paused workflow's clock never stopped")
}

func testJobRetryUnresolvedParent(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition(workflow.ContinueOnFailure, step("a"), step("b", "a"), step("c", "b")), base)
	a := w.leaseSteps(base, "a")["a"]
	w.fail(base.Add(time.Second), a)
	w.requireStatus("b", job.StatusCancelled, job.DependencyFailed)
	before := w.requireWorkflowStatus(workflow.StatusFailed)

	_, err := s.Retry(t.Context(), store.RetryParams{ID: w.jobs["b"], Now: base.Add(2 * time.Second)})
	require.ErrorIs(t, err, store.ErrConflict)
	require.ErrorContains(t, err, "parent a ("+w.jobs["a"].String()+") is failed", "the message names the parent and its status")
	require.ErrorContains(t, err, "retry them, or the workflow, first")
	w.requireStatus("b", job.StatusCancelled, job.DependencyFailed)
	after := w.requireWorkflowStatus(workflow.StatusFailed)
	require.Equal(t, before.Stats, after.Stats, "a refused retry writes nothing")

	_, err = s.Retry(t.Context(), store.RetryParams{ID: w.jobs["c"], Now: base.Add(2 * time.Second)})
	require.ErrorIs(t, err, store.ErrConflict)
	require.ErrorContains(t, err, "parent b ("+w.jobs["b"].String()+") is cancelled")

	at := base.Add(3 * time.Second)
	for _, name := range []string{"a", "b", "c"} {
		_, err = s.Retry(t.Context(), store.RetryParams{ID: w.jobs[name], Now: at})
		require.NoError(t, err, "retry %s once its parent is pending again", name)
		w.requireWorkflowStatus(workflow.StatusRunning)
	}
	w.requireStatus("b", job.StatusPending, job.DependencyWaiting)
	w.requireStatus("c", job.StatusPending, job.DependencyWaiting)
	for i, name := range []string{"a", "b", "c"} {
		j := w.leaseSteps(at.Add(time.Duration(2*i+1)*time.Second), name)[name]
		w.complete(at.Add(time.Duration(2*i+2)*time.Second), j)
	}
	w.requireWorkflowStatus(workflow.StatusCompleted)
}

func testJobRetryUnresolvedParentNoWorkflow(t *testing.T, s store.Store) {
	parent := running(t, s, base, newJob("q"))[0]
	kid := enqueue(t, s, base, child(parent))[0]
	fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(parent), Error: "boom", Outcome: "http_500"})
	require.Equal(t, job.StatusCancelled, get(t, s, kid.ID).Status)

	_, err := s.Retry(t.Context(), store.RetryParams{ID: kid.ID, Now: base.Add(2 * time.Second)})
	require.ErrorIs(t, err, store.ErrConflict)
	require.ErrorContains(t, err, "parent "+parent.ID.String()+" is failed")
	require.Equal(t, job.StatusCancelled, get(t, s, kid.ID).Status, "nothing written")
}

func testJobRetryFailFast(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition(workflow.FailFast,
		step("a"), step("x"), step("y"), step("b", "a", "x"), step("c", "b")), base)
	leased := w.leaseSteps(base, "a", "x", "y")
	w.complete(base.Add(time.Second), leased["y"])
	w.fail(base.Add(2*time.Second), leased["a"])
	w.requireStatus("x", job.StatusCancelled, job.DependencyNone)
	w.requireStatus("b", job.StatusCancelled, job.DependencyWaiting)
	w.requireWorkflowStatus(workflow.StatusFailed)

	at := base.Add(3 * time.Second)
	retried, err := s.Retry(t.Context(), store.RetryParams{ID: w.jobs["a"], Now: at})
	require.NoError(t, err)
	require.Equal(t, job.StatusPending, retried.Status)
	require.Zero(t, retried.Attempts)
	w.requireStatus("x", job.StatusPending, job.DependencyNone)
	w.requireStatus("y", job.StatusCompleted, job.DependencyNone)
	require.Equal(t, 2, w.requireStatus("b", job.StatusPending, job.DependencyWaiting).PendingDependencies)
	require.Equal(t, 1, w.requireStatus("c", job.StatusPending, job.DependencyWaiting).PendingDependencies)
	r := w.requireWorkflowStatus(workflow.StatusRunning)
	require.Nil(t, r.FailedAt)
	require.Empty(t, r.ErrorMessage)

	leased = w.leaseSteps(at, "a", "x")
	w.complete(at.Add(time.Second), leased["a"], leased["x"])
	b := w.leaseSteps(at.Add(2*time.Second), "b")["b"]
	w.complete(at.Add(3*time.Second), b)
	c := w.leaseSteps(at.Add(4*time.Second), "c")["c"]
	w.complete(at.Add(5*time.Second), c)
	w.requireWorkflowStatus(workflow.StatusCompleted)
}

func testJobRetryFailFastTwoFailed(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition(workflow.FailFast, step("a"), step("x"), step("b", "a", "x")), base)
	leased := w.leaseSteps(base, "a", "x")
	res := fail(t, s, base.Add(time.Second),
		store.Failure{LeaseRef: ref(leased["a"]), Error: "boom", Outcome: "http_500"},
		store.Failure{LeaseRef: ref(leased["x"]), Error: "boom", Outcome: "http_500"})
	require.Len(t, res.Failed, 2)
	before := w.requireWorkflowStatus(workflow.StatusFailed)
	require.Equal(t, 2, before.Stats.FailedJobs)

	_, err := s.Retry(t.Context(), store.RetryParams{ID: w.jobs["a"], Now: base.Add(2 * time.Second)})
	require.ErrorIs(t, err, store.ErrConflict)
	require.ErrorContains(t, err, "1 other failed job(s); retry the workflow")
	w.requireStatus("a", job.StatusFailed, job.DependencyNone)
	require.Equal(t, before.Stats, w.requireWorkflowStatus(workflow.StatusFailed).Stats, "a refused retry writes nothing")

	_, err = s.RetryWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base.Add(3 * time.Second)})
	require.NoError(t, err)
	w.requireStatus("a", job.StatusPending, job.DependencyNone)
	w.requireStatus("x", job.StatusPending, job.DependencyNone)
	w.requireWorkflowStatus(workflow.StatusRunning)
}

// testRetryMatchingChain: the dead-letter listing is newest first, so a bulk
// retry meets each child before the parent it waits for; the refused
// children are retried once their parents are, and the chain runs again.
func testRetryMatchingChain(t *testing.T, s store.Store) {
	parent := enqueue(t, s, base, newJob("q"))[0]
	kid := enqueue(t, s, base, child(parent))[0]
	grandchild := enqueue(t, s, base, child(kid))[0]
	cancel(t, s, parent.ID, base)
	require.Equal(t, job.StatusCancelled, get(t, s, grandchild.ID).Status)

	n, err := store.RetryMatching(t.Context(), s, store.RetryMatchingParams{Status: job.StatusCancelled, Now: base.Add(time.Second)})
	require.NoError(t, err)
	require.Equal(t, 3, n, "every job of the chain is retried")
	require.Equal(t, job.DependencyNone, get(t, s, parent.ID).DependencyStatus)
	for _, j := range []*job.Job{kid, grandchild} {
		got := get(t, s, j.ID)
		require.Equal(t, job.StatusPending, got.Status)
		require.Equal(t, job.DependencyWaiting, got.DependencyStatus, "waits for its retried parent")
	}
	require.Equal(t, parent.ID, leaseOne(t, s, base.Add(2*time.Second)).ID)
}
