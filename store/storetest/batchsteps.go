package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// Batch steps: a workflow step with Batch instead of Payload is one job per
// payload ("<name>[i]") sharing a batch; its dependents wait for all of
// them and see their results as a list under the step's name.

var batchStepTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"WorkflowBatchStepExpandsAndDependentsWaitForAll", testWorkflowBatchStep},
	{"WorkflowBatchStepFailFastAndRetryKeepBatchCountersTrue", testWorkflowBatchStepRetry},
}

func batchStep(name string, n int, parents ...string) workflow.Step {
	s := step(name, parents...)
	s.Payload = nil
	for i := range n {
		s.Batch = append(s.Batch, json.RawMessage(`{"n":`+string(rune('0'+i))+`}`))
	}
	return s
}

// enqueueBatchWorkflow enqueues a definition with batch steps; its job map
// has one entry per job.
func enqueueBatchWorkflow(t *testing.T, s store.Store, w workflow.Workflow, jobs int) *wf {
	t.Helper()
	got, err := s.EnqueueWorkflow(t.Context(), store.EnqueueWorkflowParams{Workflow: w, Now: base})
	require.NoError(t, err, "enqueue workflow")
	require.Len(t, got.Jobs, jobs)
	require.Equal(t, jobs, got.Workflow.Stats.TotalJobs)
	x := &wf{t: t, s: s, id: got.Workflow.ID, jobs: got.Jobs}
	x.requireCounters()
	return x
}

func (w *wf) batchOf(name string) uuid.UUID {
	w.t.Helper()
	j := w.job(name)
	require.NotNilf(w.t, j.BatchID, "%s is in a batch", name)
	return *j.BatchID
}

func testWorkflowBatchStep(t *testing.T, s store.Store) {
	summary := step("summary", "resize")
	summary.Condition = "size(parents.resize) == 3 && parents.resize[2].from == 'resize[2]'"
	w := enqueueBatchWorkflow(t, s, definition(workflow.ContinueOnFailure,
		step("extract"), batchStep("resize", 3, "extract"), summary), 5)

	batch := w.batchOf("resize[0]")
	for i, name := range []string{"resize[0]", "resize[1]", "resize[2]"} {
		j := w.requireStatus(name, job.StatusPending, job.DependencyWaiting)
		require.Equal(t, batch, *j.BatchID, "one batch for the step")
		require.JSONEq(t, `{"n":`+string(rune('0'+i))+`}`, string(j.Payload))
		require.Equal(t, []uuid.UUID{w.jobs["extract"]}, j.DependsOn)
	}
	require.Nil(t, w.job("extract").BatchID)
	require.Equal(t, 3, w.requireStatus("summary", job.StatusPending, job.DependencyWaiting).PendingDependencies,
		"the dependent waits for every job of the batch step")
	b := requireBatch(t, s, batch, store.BatchPending, 0, 0, 0)
	require.Equal(t, "resize", b.Name)

	w.complete(base.Add(time.Second), w.leaseSteps(base.Add(time.Second), "extract")["extract"])
	r := w.leaseSteps(base.Add(2*time.Second), "resize[0]", "resize[1]", "resize[2]")
	w.complete(base.Add(3*time.Second), r["resize[0]"], r["resize[1]"])
	require.Equal(t, 1, w.requireStatus("summary", job.StatusPending, job.DependencyWaiting).PendingDependencies)
	requireBatch(t, s, batch, store.BatchProcessing, 2, 0, 0)

	w.complete(base.Add(4*time.Second), r["resize[2]"])
	requireBatch(t, s, batch, store.BatchCompleted, 3, 0, 0)
	w.requireStatus("summary", job.StatusPending, job.DependencySatisfied)
	parents, err := s.ParentResults(t.Context(), w.jobs["summary"])
	require.NoError(t, err)
	require.JSONEq(t, `[{"from":"resize[0]"},{"from":"resize[1]"},{"from":"resize[2]"}]`, string(parents["resize"]),
		"the envelope sees the batch step as one list")
	w.complete(base.Add(5*time.Second), w.leaseSteps(base.Add(5*time.Second), "summary")["summary"])
	w.requireWorkflowStatus(workflow.StatusCompleted)
}

func testWorkflowBatchStepRetry(t *testing.T, s store.Store) {
	w := enqueueBatchWorkflow(t, s, definition(workflow.FailFast,
		batchStep("fan", 3), step("after", "fan")), 4)
	batch := w.batchOf("fan[0]")
	r := w.leaseSteps(base, "fan[0]", "fan[1]", "fan[2]")
	w.complete(base.Add(time.Second), r["fan[0]"])
	w.fail(base.Add(2*time.Second), r["fan[1]"])
	w.requireWorkflowStatus(workflow.StatusFailed)
	requireBatch(t, s, batch, store.BatchPartiallyFailed, 1, 1, 1)

	_, err := s.RetryWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base.Add(3 * time.Second)})
	require.NoError(t, err)
	w.requireWorkflowStatus(workflow.StatusRunning)
	requireBatch(t, s, batch, store.BatchProcessing, 1, 0, 0)
	again := w.leaseSteps(base.Add(4*time.Second), "fan[1]", "fan[2]")
	w.complete(base.Add(5*time.Second), again["fan[1]"], again["fan[2]"])
	requireBatch(t, s, batch, store.BatchCompleted, 3, 0, 0)
	w.requireStatus("after", job.StatusPending, job.DependencySatisfied)
}
