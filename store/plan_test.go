package store_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

func TestApplyDependsOnDecidesFromParentStatus(t *testing.T) {
	t.Parallel()
	done, skipped, pending, failed, cancelled := uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()
	parents := map[uuid.UUID]job.Status{
		done: job.StatusCompleted, skipped: job.StatusSkipped, pending: job.StatusPending,
		failed: job.StatusFailed, cancelled: job.StatusCancelled,
	}
	inBatch := uuid.New()
	news := []store.NewJob{
		{Queue: "q", DependsOn: []uuid.UUID{done, skipped}},
		{Queue: "q", DependsOn: []uuid.UUID{done, pending, pending}},
		{Queue: "q", DependsOn: []uuid.UUID{pending, failed}},
		{Queue: "q", DependsOn: []uuid.UUID{cancelled}},
		{Queue: "q", ID: inBatch},
		{Queue: "q", DependsOn: []uuid.UUID{inBatch}},
		{Queue: "q"},
	}
	jobs := make([]*job.Job, len(news))
	for i, n := range news {
		j, err := store.BuildJob(n, time.Unix(0, 0))
		require.NoError(t, err)
		jobs[i] = j
	}
	edges, err := store.ApplyDependsOn(news, jobs, parents)
	require.NoError(t, err)
	require.Len(t, edges, 8, "a parent named twice is one edge")

	require.Equal(t, job.DependencySatisfied, jobs[0].DependencyStatus, "completed and skipped parents are resolved")
	require.Zero(t, jobs[0].PendingDependencies)
	require.Equal(t, job.DependencyWaiting, jobs[1].DependencyStatus)
	require.Equal(t, 1, jobs[1].PendingDependencies)
	for _, j := range jobs[2:4] {
		require.Equal(t, job.StatusCancelled, j.Status, "a failed or cancelled parent cancels the job")
		require.Equal(t, job.DependencyFailed, j.DependencyStatus)
		require.Zero(t, j.PendingDependencies)
	}
	require.Equal(t, job.DependencyWaiting, jobs[5].DependencyStatus, "a parent earlier in the batch is pending")
	require.Equal(t, job.DependencyNone, jobs[6].DependencyStatus)

	_, err = store.ApplyDependsOn([]store.NewJob{{Queue: "q", DependsOn: []uuid.UUID{uuid.New()}}},
		[]*job.Job{{ID: uuid.New()}}, parents)
	require.ErrorIs(t, err, store.ErrInvalid)
}

func TestPlanWorkflowStampsDefaults(t *testing.T) {
	t.Parallel()
	high := job.PriorityHigh
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	plan, err := store.PlanWorkflow(store.EnqueueWorkflowParams{SpanContext: "00-aa-bb-01", Workflow: workflow.Workflow{
		Name: "w", Priority: &high, Timeout: job.Duration(time.Minute), TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		Steps: []workflow.Step{
			{Name: "a", Queue: "q", Payload: json.RawMessage(`{}`)},
			{Name: "b", Queue: "q", DependsOn: []string{"a"}, Delay: job.Duration(time.Second)},
		},
	}}, now)
	require.NoError(t, err)
	require.Equal(t, workflow.FailFast, plan.Workflow.FailurePolicy, "fail_fast is the default")
	require.Equal(t, now.Add(time.Minute), *plan.Workflow.Deadline)
	require.Equal(t, []store.Edge{{JobID: plan.Steps["b"], DependsOnID: plan.Steps["a"]}}, plan.Edges)
	a, b := plan.Jobs[0], plan.Jobs[1]
	require.Equal(t, job.PriorityHigh, a.Priority)
	require.Equal(t, "00-aa-bb-01", a.SpanContext)
	require.Equal(t, job.DependencyNone, a.DependencyStatus)
	require.Equal(t, job.DependencyWaiting, b.DependencyStatus)
	require.Equal(t, 1, b.PendingDependencies)
	require.Equal(t, now.Add(time.Second), b.ScheduledAt)
	require.Equal(t, json.RawMessage("null"), b.Payload)

	_, err = store.PlanWorkflow(store.EnqueueWorkflowParams{Workflow: workflow.Workflow{Name: "w",
		Steps: []workflow.Step{{Name: "a", Queue: "q", DependsOn: []string{"a"}}}}}, now)
	require.ErrorIs(t, err, store.ErrInvalid)
	require.ErrorIs(t, err, workflow.ErrCycle)
}

func TestPlanWorkflowRejectsMetadataNoBackendStores(t *testing.T) {
	t.Parallel()
	steps := []workflow.Step{{Name: "a", Queue: "q"}}
	for _, metadata := range []string{
		`{"a":"\ud800"}`, // a lone surrogate: PostgreSQL's JSONB and MariaDB refuse it
		`{"a":1e999999}`, // out of float64 range: PostgreSQL refuses it
		strings.Repeat("[", 40) + strings.Repeat("]", 40), // nested deeper than MariaDB keeps
		"{\"a\":\"\xff\"}", // not UTF-8
	} {
		_, err := store.PlanWorkflow(store.EnqueueWorkflowParams{Workflow: workflow.Workflow{
			Name: "w", Metadata: json.RawMessage(metadata), Steps: steps}}, time.Now())
		require.ErrorIs(t, err, store.ErrInvalid, "metadata %.40q", metadata)
		require.ErrorContains(t, err, "metadata", "metadata %.40q", metadata)
	}
	plan, err := store.PlanWorkflow(store.EnqueueWorkflowParams{Workflow: workflow.Workflow{
		Name: "w", Metadata: json.RawMessage(`{"team":"billing"}`), Steps: steps}}, time.Now())
	require.NoError(t, err)
	require.JSONEq(t, `{"team":"billing"}`, string(plan.Workflow.Metadata))
}
