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

// Descendant cases: a job enqueued alone with depends_on pointing into a
// workflow is a descendant like any other. Whatever cancels or fails its
// parent (fail_fast, a workflow cancel, a workflow timeout) cancels it and
// its own descendants through the edges, so none waits forever.
var workflowDescendantTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"FailFastCancelsDescendantsOutsideTheWorkflow", testFailFastCancelsOutside},
	{"WorkflowCancelCancelsDescendantsOutsideTheWorkflow", testWorkflowCancelCancelsOutside},
	{"WorkflowTimeoutCancelsDescendantsOutsideTheWorkflow", testWorkflowTimeoutCancelsOutside},
	{"ManualFailureLeavesDescendantsOutsideTheWorkflowWaiting", testManualLeavesOutsideWaiting},
}

// outside enqueues, for each named step, a job depending on it and a
// grandchild depending on that job; it returns both per step.
func (w *wf) outside(now time.Time, names ...string) map[string][2]*job.Job {
	w.t.Helper()
	out := map[string][2]*job.Job{}
	for _, name := range names {
		kid := enqueue(w.t, w.s, now, child(w.job(name)))[0]
		require.Equal(w.t, job.DependencyWaiting, kid.DependencyStatus, "the child of %s waits", name)
		grandchild := enqueue(w.t, w.s, now, child(kid))[0]
		out[name] = [2]*job.Job{kid, grandchild}
	}
	return out
}

func requireCancelledDescendants(t *testing.T, s store.Store, jobs map[string][2]*job.Job) {
	t.Helper()
	for name, pair := range jobs {
		for _, j := range pair {
			got := get(t, s, j.ID)
			require.Equalf(t, job.StatusCancelled, got.Status, "descendant %s of step %s", j.ID, name)
			require.Equalf(t, job.DependencyFailed, got.DependencyStatus, "descendant %s of step %s", j.ID, name)
		}
	}
}

func testFailFastCancelsOutside(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition(workflow.FailFast, step("a"), step("b"), step("c", "a")), base)
	kids := w.outside(base, "a", "b", "c")
	leased := w.leaseSteps(base, "a", "b")
	w.fail(base.Add(time.Second), leased["a"])
	w.requireWorkflowStatus(workflow.StatusFailed)
	requireCancelledDescendants(t, s, kids)
	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 10, Now: base.Add(time.Hour)}), "nothing is left to run or to wait")
}

func testWorkflowCancelCancelsOutside(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition(workflow.ContinueOnFailure, step("a"), step("b", "a")), base)
	kids := w.outside(base, "a", "b")
	_, err := s.CancelWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base.Add(time.Second)})
	require.NoError(t, err)
	w.requireWorkflowStatus(workflow.StatusCancelled)
	requireCancelledDescendants(t, s, kids)
}

func testWorkflowTimeoutCancelsOutside(t *testing.T, s store.Store) {
	def := definition(workflow.Manual, step("a"), step("b", "a"))
	def.Timeout = job.Duration(time.Minute)
	w := enqueueWorkflow(t, s, def, base)
	kids := w.outside(base, "a", "b")
	w.leaseSteps(base, "a")
	expired, err := s.ExpireWorkflows(t.Context(), store.ExpireWorkflowsParams{Now: base.Add(2 * time.Minute)})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{w.id}, expired)
	w.requireWorkflowStatus(workflow.StatusFailed)
	requireCancelledDescendants(t, s, kids)
}

func testManualLeavesOutsideWaiting(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition(workflow.Manual, step("a")), base)
	kids := w.outside(base, "a")
	a := w.leaseSteps(base, "a")["a"]
	w.fail(base.Add(time.Second), a)
	w.requireWorkflowStatus(workflow.StatusPaused)
	kid := get(t, s, kids["a"][0].ID)
	require.Equal(t, job.StatusPending, kid.Status, "manual keeps descendants for the operator's retry")
	require.Equal(t, job.DependencyWaiting, kid.DependencyStatus)

	_, err := s.Retry(t.Context(), store.RetryParams{ID: a.ID, Now: base.Add(2 * time.Second)})
	require.NoError(t, err)
	a = w.leaseSteps(base.Add(3*time.Second), "a")["a"]
	w.complete(base.Add(4*time.Second), a)
	require.Equal(t, kids["a"][0].ID, leaseOne(t, s, base.Add(5*time.Second)).ID, "the outside child runs after the retried parent")
}
