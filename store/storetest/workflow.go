package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// Workflow cases read the rules of package store's Workflows: the store
// resolves dependencies, applies failure policies and keeps counters in the
// same transactions as the job changes, so after every step the suite
// checks that the workflow's counters equal the counts of its jobs.

var workflowTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"WorkflowEnqueueWritesJobsEdgesAndDefaults", testWorkflowEnqueue},
	{"WorkflowRejectedDefinitionWritesNothing", testWorkflowRejected},
	{"WorkflowChainRunsInOrderAsEachCompletes", testWorkflowChain},
	{"WorkflowBarrierWaitsForAllAndAggregatesOneBatch", testWorkflowBarrier},
	{"WorkflowFanOutFanIn", testWorkflowFanOutFanIn},
	{"WorkflowConcurrentCompletionsResolveTheBarrierOnce", testWorkflowConcurrentBarrier},
	{"WorkflowFailFastRacingACompletionStaysConsistent", testWorkflowFailFastRace},
	{"WorkflowConditionTrueSatisfies", testWorkflowConditionTrue},
	{"WorkflowConditionFalseSkipsAndSkippedResolvesChildren", testWorkflowConditionFalse},
	{"WorkflowConditionErrorFailsJobAndAppliesPolicy", testWorkflowConditionError},
	{"WorkflowFailFastCancelsEverythingAndStalesRunningSiblings", testWorkflowFailFast},
	{"WorkflowFailFastOnRescuedLease", testWorkflowFailFastRescue},
	{"WorkflowContinueOnFailureCancelsDescendantsOnly", testWorkflowContinueOnFailure},
	{"WorkflowManualPausesAndRetryOfTheJobResumes", testWorkflowManual},
	{"WorkflowRetryAfterManualPause", testWorkflowRetryAfterManual},
	{"WorkflowRetryAfterFailFast", testWorkflowRetryAfterFailFast},
	{"WorkflowRetryOfRunningWorkflowIsConflict", testWorkflowRetryConflict},
	{"WorkflowCancelStalesRunningJobs", testWorkflowCancel},
	{"WorkflowCancelOfOneJobCancelsItsDescendants", testWorkflowCancelJob},
	{"WorkflowTimeoutExpires", testWorkflowTimeout},
	{"WorkflowListFiltersAndPagesNewestFirst", testWorkflowList},
	{"WorkflowUnknownIsNotFound", testWorkflowNotFound},
	{"DependsOnCompletedParentIsResolvedAtEnqueue", testDependsOnCompleted},
	{"DependsOnPendingParentWaitsUntilItCompletes", testDependsOnPending},
	{"DependsOnFailedParentCancelsTheNewJob", testDependsOnFailed},
	{"DependsOnUnknownParentIsInvalidAndWritesNothing", testDependsOnUnknown},
	{"DependsOnParentFailureCancelsDescendants", testDependsOnParentFails},
	{"WorkflowRandomDAGsRunInOrderAndCancelExactlyTheFailedDescendants", testRandomDAGs},
	{"WorkflowLargeFanOutFanIn", testWorkflowLargeFanOutFanIn},
	{"WorkflowLargeChain", testWorkflowLargeChain},
}

const wfQueue = "wf"

func step(name string, parents ...string) workflow.Step {
	return workflow.Step{Name: name, Queue: wfQueue, Payload: json.RawMessage(`{"step":"` + name + `"}`), DependsOn: parents}
}

func definition(policy workflow.FailurePolicy, steps ...workflow.Step) workflow.Workflow {
	return workflow.Workflow{Name: "pipeline", FailurePolicy: policy, Steps: steps}
}

// wf is an enqueued workflow under test.
type wf struct {
	t    *testing.T
	s    store.Store
	id   uuid.UUID
	jobs map[string]uuid.UUID
}

func enqueueWorkflow(t *testing.T, s store.Store, w workflow.Workflow, now time.Time) *wf {
	t.Helper()
	got, err := s.EnqueueWorkflow(t.Context(), store.EnqueueWorkflowParams{Workflow: w, Now: now})
	require.NoError(t, err, "enqueue workflow")
	require.Len(t, got.Jobs, len(w.Steps))
	x := &wf{t: t, s: s, id: got.Workflow.ID, jobs: got.Jobs}
	x.requireCounters()
	return x
}

func (w *wf) job(name string) *job.Job {
	w.t.Helper()
	id, ok := w.jobs[name]
	require.Truef(w.t, ok, "step %q", name)
	return get(w.t, w.s, id)
}

func (w *wf) record() *workflow.Record {
	w.t.Helper()
	r, err := w.s.GetWorkflow(w.t.Context(), w.id)
	require.NoError(w.t, err, "get workflow")
	return r
}

// leaseSteps leases everything leasable at now and checks it is exactly the
// named steps; it returns the leased jobs by step name.
func (w *wf) leaseSteps(now time.Time, names ...string) map[string]*job.Job {
	w.t.Helper()
	got := lease(w.t, w.s, store.LeaseParams{Limit: 100, Now: now})
	out := map[string]*job.Job{}
	for _, j := range got {
		out[j.StepName] = j
	}
	var leased []string
	for n := range out {
		leased = append(leased, n)
	}
	require.ElementsMatch(w.t, names, leased, "leasable steps")
	w.requireCounters()
	return out
}

func (w *wf) complete(now time.Time, jobs ...*job.Job) {
	w.t.Helper()
	cs := make([]store.Completion, len(jobs))
	for i, j := range jobs {
		cs[i] = store.Completion{LeaseRef: ref(j), Result: json.RawMessage(`{"from":"` + j.StepName + `"}`)}
	}
	require.Empty(w.t, complete(w.t, w.s, now, cs...), "no completion is stale")
	w.requireCounters()
}

func (w *wf) fail(now time.Time, j *job.Job) {
	w.t.Helper()
	res := fail(w.t, w.s, now, store.Failure{LeaseRef: ref(j), Error: "boom", Outcome: "http_500"})
	require.Equal(w.t, []uuid.UUID{j.ID}, res.Failed)
	w.requireCounters()
}

func (w *wf) requireStatus(name string, status job.Status, dep job.DependencyStatus) *job.Job {
	w.t.Helper()
	j := w.job(name)
	require.Equalf(w.t, status, j.Status, "status of %s", name)
	require.Equalf(w.t, dep, j.DependencyStatus, "dependency_status of %s", name)
	return j
}

// requireCounters checks the workflow's counters against its jobs.
func (w *wf) requireCounters() *workflow.Record {
	w.t.Helper()
	r := w.record()
	jobs, err := w.s.WorkflowJobs(w.t.Context(), w.id)
	require.NoError(w.t, err, "workflow jobs")
	counts := map[job.Status]int{}
	for _, j := range jobs {
		counts[j.Status]++
		require.Equal(w.t, w.id, *j.WorkflowID)
	}
	want := workflow.Stats{
		TotalJobs: len(jobs), CompletedJobs: counts[job.StatusCompleted], FailedJobs: counts[job.StatusFailed],
		CancelledJobs: counts[job.StatusCancelled], SkippedJobs: counts[job.StatusSkipped],
		PendingJobs: counts[job.StatusPending], RunningJobs: counts[job.StatusRunning],
	}
	if len(jobs) > 0 {
		want.CompletionPercentage = float64(want.CompletedJobs+want.SkippedJobs) / float64(len(jobs)) * 100
	}
	require.Equal(w.t, want, r.Stats, "counters of workflow %s match its jobs", w.id)
	return r
}

func (w *wf) requireWorkflowStatus(status workflow.Status) *workflow.Record {
	w.t.Helper()
	r := w.requireCounters()
	require.Equal(w.t, status, r.Status, "workflow status")
	return r
}

func testWorkflowEnqueue(t *testing.T, s store.Store) {
	high, low := job.PriorityHigh, job.PriorityLow
	def := workflow.Workflow{
		Name: "etl", Description: "extract and load", FailurePolicy: workflow.ContinueOnFailure,
		Priority: &high, Timeout: job.Duration(2 * time.Hour), TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		CorrelationID: "corr-1", Metadata: json.RawMessage(`{"team":"data"}`),
		Steps: []workflow.Step{
			step("extract"),
			{Name: "transform", Queue: "etl", Payload: json.RawMessage(`{}`), DependsOn: []string{"extract"},
				Condition: "rows > 0", MaxAttempts: 5, Timeout: job.Duration(30 * time.Second), Priority: &low,
				Delay: job.Duration(time.Minute), ResultTTL: job.Duration(time.Hour),
				Retry: &job.RetryPolicy{Strategy: job.StrategyFixed, Initial: job.Duration(time.Second)}},
			step("load", "extract", "transform"),
		},
	}
	span := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	got, err := s.EnqueueWorkflow(t.Context(), store.EnqueueWorkflowParams{Workflow: def, SpanContext: span, Now: base})
	require.NoError(t, err)
	rec := got.Workflow
	require.Equal(t, workflow.StatusRunning, rec.Status)
	require.Equal(t, 3, rec.Stats.TotalJobs)
	requireTimePtr(t, base.Add(2*time.Hour), rec.Deadline, "deadline")

	read, err := s.GetWorkflow(t.Context(), rec.ID)
	require.NoError(t, err)
	require.Equal(t, "etl", read.Name)
	require.Equal(t, "extract and load", read.Description)
	require.Equal(t, workflow.ContinueOnFailure, read.FailurePolicy)
	require.Equal(t, job.PriorityHigh, read.Priority)
	require.Equal(t, job.Duration(2*time.Hour), read.Timeout)
	requireTimePtr(t, base.Add(2*time.Hour), read.Deadline, "deadline")
	require.Equal(t, def.TraceID, read.TraceID)
	require.Equal(t, "corr-1", read.CorrelationID)
	require.JSONEq(t, `{"team":"data"}`, string(read.Metadata))
	requireTime(t, base, read.CreatedAt, "created_at")
	require.Equal(t, workflow.Stats{TotalJobs: 3, PendingJobs: 3}, read.Stats)

	w := &wf{t: t, s: s, id: rec.ID, jobs: got.Jobs}
	extract := w.requireStatus("extract", job.StatusPending, job.DependencyNone)
	require.Equal(t, job.PriorityHigh, extract.Priority, "the workflow's priority is the default")
	require.Equal(t, "etl", extract.WorkflowName)
	require.Equal(t, "extract", extract.StepName)
	require.Equal(t, def.TraceID, extract.TraceID)
	require.Equal(t, "corr-1", extract.CorrelationID)
	require.Equal(t, span, extract.SpanContext)
	require.Zero(t, extract.PendingDependencies)
	require.Empty(t, extract.DependsOn)
	require.ElementsMatch(t, []uuid.UUID{got.Jobs["transform"], got.Jobs["load"]}, extract.Dependents)
	requireTime(t, base, extract.ScheduledAt, "scheduled_at")

	transform := w.requireStatus("transform", job.StatusPending, job.DependencyWaiting)
	require.Equal(t, job.PriorityLow, transform.Priority, "a step's own priority wins")
	require.Equal(t, "etl", transform.Queue)
	require.Equal(t, "rows > 0", transform.Condition)
	require.Equal(t, 5, transform.MaxAttempts)
	require.Equal(t, job.Duration(30*time.Second), transform.Timeout)
	require.Equal(t, job.Duration(time.Hour), transform.ResultTTL)
	require.NotNil(t, transform.RetryPolicy)
	requireTime(t, base.Add(time.Minute), transform.ScheduledAt, "scheduled_at = now + delay")
	require.Equal(t, 1, transform.PendingDependencies)
	require.Equal(t, []uuid.UUID{got.Jobs["extract"]}, transform.DependsOn)

	load := w.requireStatus("load", job.StatusPending, job.DependencyWaiting)
	require.Equal(t, 2, load.PendingDependencies)
	require.ElementsMatch(t, []uuid.UUID{got.Jobs["extract"], got.Jobs["transform"]}, load.DependsOn)
	require.Equal(t, job.DefaultMaxAttempts, load.MaxAttempts)

	jobs, err := s.WorkflowJobs(t.Context(), rec.ID)
	require.NoError(t, err)
	require.Len(t, jobs, 3)
	listed := listAll(t, s, store.ListParams{WorkflowID: &rec.ID})
	require.Len(t, listed, 3)
	w.requireCounters()
}

func testWorkflowRejected(t *testing.T, s store.Store) {
	cases := map[string]struct {
		def  workflow.Workflow
		want error
	}{
		"cycle":     {definition("", step("a", "c"), step("b", "a"), step("c", "b")), workflow.ErrCycle},
		"self":      {definition("", step("a", "a")), workflow.ErrCycle},
		"unknown":   {definition("", step("a"), step("b", "nope")), workflow.ErrUnknownDependency},
		"duplicate": {definition("", step("a"), step("a")), workflow.ErrDuplicateStep},
		"empty":     {definition(""), workflow.ErrEmpty},
	}
	for name, tc := range cases {
		_, err := s.EnqueueWorkflow(t.Context(), store.EnqueueWorkflowParams{Workflow: tc.def, Now: base})
		require.ErrorIsf(t, err, store.ErrInvalid, "%s is invalid", name)
		require.ErrorIsf(t, err, tc.want, "%s names its problem", name)
	}
	bad := definition("", step("a"), step("b", "a"))
	bad.Steps[1].Queue = "no spaces allowed"
	_, err := s.EnqueueWorkflow(t.Context(), store.EnqueueWorkflowParams{Workflow: bad, Now: base})
	require.ErrorIs(t, err, store.ErrInvalid, "a step that is not a valid job")

	require.Empty(t, listAll(t, s, store.ListParams{}), "a rejected workflow writes no job")
	page, err := s.ListWorkflows(t.Context(), store.ListWorkflowsParams{})
	require.NoError(t, err)
	require.Empty(t, page.Workflows, "a rejected workflow writes no workflow")
}

func testWorkflowChain(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition("", step("a"), step("b", "a"), step("c", "b")), base)
	w.requireStatus("b", job.StatusPending, job.DependencyWaiting)
	w.requireStatus("c", job.StatusPending, job.DependencyWaiting)

	a := w.leaseSteps(base, "a")["a"]
	w.leaseSteps(base.Add(time.Second))
	w.complete(base.Add(2*time.Second), a)
	b := w.requireStatus("b", job.StatusPending, job.DependencySatisfied)
	require.Zero(t, b.PendingDependencies)
	w.requireStatus("c", job.StatusPending, job.DependencyWaiting)

	parents, err := s.ParentResults(t.Context(), w.jobs["b"])
	require.NoError(t, err)
	require.Len(t, parents, 1)
	require.JSONEq(t, `{"from":"a"}`, string(parents["a"]), "parent results are keyed by step name")

	b = w.leaseSteps(base.Add(3*time.Second), "b")["b"]
	w.complete(base.Add(4*time.Second), b)
	c := w.leaseSteps(base.Add(5*time.Second), "c")["c"]
	w.requireWorkflowStatus(workflow.StatusRunning)
	w.complete(base.Add(6*time.Second), c)
	r := w.requireWorkflowStatus(workflow.StatusCompleted)
	requireTimePtr(t, base.Add(6*time.Second), r.CompletedAt, "completed_at")
	require.InDelta(t, 100.0, r.Stats.CompletionPercentage, 1e-9)
}

func testWorkflowBarrier(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition("",
		step("r1"), step("r2"), step("r3"), step("r4"), step("summary", "r1", "r2", "r3", "r4")), base)
	require.Equal(t, 4, w.job("summary").PendingDependencies)
	rs := w.leaseSteps(base, "r1", "r2", "r3", "r4")

	w.complete(base.Add(time.Second), rs["r1"], rs["r2"])
	summary := w.requireStatus("summary", job.StatusPending, job.DependencyWaiting)
	require.Equal(t, 2, summary.PendingDependencies, "two parents completing in one batch count twice")
	w.leaseSteps(base.Add(2 * time.Second))

	w.complete(base.Add(3*time.Second), rs["r3"])
	require.Equal(t, 1, w.job("summary").PendingDependencies)
	w.leaseSteps(base.Add(4 * time.Second))

	w.complete(base.Add(5*time.Second), rs["r4"])
	w.requireStatus("summary", job.StatusPending, job.DependencySatisfied)
	summaryJob := w.leaseSteps(base.Add(6*time.Second), "summary")["summary"]

	parents, err := s.ParentResults(t.Context(), summaryJob.ID)
	require.NoError(t, err)
	require.Len(t, parents, 4)
	w.complete(base.Add(7*time.Second), summaryJob)
	w.requireWorkflowStatus(workflow.StatusCompleted)
}

func testWorkflowFanOutFanIn(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition("",
		step("root"), step("a", "root"), step("b", "root"), step("c", "root"), step("join", "a", "b", "c")), base)
	root := w.leaseSteps(base, "root")["root"]
	w.complete(base.Add(time.Second), root)
	fan := w.leaseSteps(base.Add(2*time.Second), "a", "b", "c")
	w.complete(base.Add(3*time.Second), fan["a"], fan["b"], fan["c"])
	join := w.leaseSteps(base.Add(4*time.Second), "join")["join"]
	w.complete(base.Add(5*time.Second), join)
	w.requireWorkflowStatus(workflow.StatusCompleted)
}

// completeWith completes one job with the given result.
func completeWith(t *testing.T, s store.Store, now time.Time, j *job.Job, result string) {
	t.Helper()
	require.Empty(t, complete(t, s, now, store.Completion{LeaseRef: ref(j), Result: []byte(result)}))
}

func testWorkflowConditionTrue(t *testing.T, s store.Store) {
	check := step("check", "extract")
	check.Condition = "rows > 0 && parents.extract.source == 'db'"
	w := enqueueWorkflow(t, s, definition("", step("extract"), check), base)
	extract := w.leaseSteps(base, "extract")["extract"]
	completeWith(t, s, base.Add(time.Second), extract, `{"rows":12,"source":"db"}`)
	w.requireStatus("check", job.StatusPending, job.DependencySatisfied)
	w.leaseSteps(base.Add(2*time.Second), "check")
	w.requireWorkflowStatus(workflow.StatusRunning)
}

func testWorkflowConditionFalse(t *testing.T, s store.Store) {
	transform := step("transform", "extract")
	transform.Condition = "rows > 0"
	w := enqueueWorkflow(t, s, definition("",
		step("extract"), transform, step("load", "transform"), step("report", "load")), base)
	extract := w.leaseSteps(base, "extract")["extract"]
	completeWith(t, s, base.Add(time.Second), extract, `{"rows":0}`)
	w.requireStatus("transform", job.StatusSkipped, job.DependencySatisfied)
	w.requireStatus("load", job.StatusPending, job.DependencySatisfied)
	w.requireStatus("report", job.StatusPending, job.DependencyWaiting)
	r := w.requireWorkflowStatus(workflow.StatusRunning)
	require.Equal(t, 1, r.Stats.SkippedJobs)

	load := w.leaseSteps(base.Add(2*time.Second), "load")["load"]
	w.complete(base.Add(3*time.Second), load)
	report := w.leaseSteps(base.Add(4*time.Second), "report")["report"]
	w.complete(base.Add(5*time.Second), report)
	r = w.requireWorkflowStatus(workflow.StatusCompleted)
	require.InDelta(t, 100.0, r.Stats.CompletionPercentage, 1e-9, "skipped jobs count as done")
}

func testWorkflowConditionError(t *testing.T, s store.Store) {
	transform := step("transform", "extract")
	transform.Condition = "missing_key > 0"
	w := enqueueWorkflow(t, s, definition(workflow.ContinueOnFailure,
		step("extract"), transform, step("load", "transform"), step("side")), base)
	leased := w.leaseSteps(base, "extract", "side")
	completeWith(t, s, base.Add(time.Second), leased["extract"], `{"rows":3}`)

	failed := w.requireStatus("transform", job.StatusFailed, job.DependencySatisfied)
	require.Contains(t, failed.ErrorMessage, "missing_key", "the job fails with the evaluation error")
	requireTimePtr(t, base.Add(time.Second), failed.FailedAt, "failed_at")
	w.requireStatus("load", job.StatusCancelled, job.DependencyFailed)
	w.requireWorkflowStatus(workflow.StatusRunning)

	w.complete(base.Add(2*time.Second), leased["side"])
	r := w.requireWorkflowStatus(workflow.StatusFailed)
	requireTimePtr(t, base.Add(2*time.Second), r.FailedAt, "failed_at")
}

func testWorkflowFailFast(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition("", step("a"), step("b"), step("c", "a"), step("d", "c")), base)
	leased := w.leaseSteps(base, "a", "b")
	w.fail(base.Add(time.Second), leased["a"])

	w.requireStatus("a", job.StatusFailed, job.DependencyNone)
	requireNoLease(t, w.requireStatus("b", job.StatusCancelled, job.DependencyNone))
	require.Equal(t, job.StatusCancelled, w.job("c").Status)
	require.Equal(t, job.StatusCancelled, w.job("d").Status)
	r := w.requireWorkflowStatus(workflow.StatusFailed)
	requireTimePtr(t, base.Add(time.Second), r.FailedAt, "failed_at")

	stale := complete(t, s, base.Add(2*time.Second), store.Completion{LeaseRef: ref(leased["b"]), Result: []byte(`1`)})
	require.Equal(t, []uuid.UUID{leased["b"].ID}, stale, "a cancelled sibling's late answer is stale")
	w.requireWorkflowStatus(workflow.StatusFailed)
	w.leaseSteps(base.Add(3 * time.Second))
}

func testWorkflowFailFastRescue(t *testing.T, s store.Store) {
	a := step("a")
	a.MaxAttempts = 1
	w := enqueueWorkflow(t, s, definition(workflow.FailFast, a, step("b", "a")), base)
	w.leaseSteps(base, "a")
	res, err := s.RescueExpired(t.Context(), store.RescueParams{Now: base.Add(leaseFor)})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{w.jobs["a"]}, res.Failed)
	require.Equal(t, job.StatusCancelled, w.job("b").Status)
	w.requireWorkflowStatus(workflow.StatusFailed)
}

func testWorkflowContinueOnFailure(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition(workflow.ContinueOnFailure,
		step("a"), step("b", "a"), step("c", "b"), step("x"), step("y", "x")), base)
	leased := w.leaseSteps(base, "a", "x")
	w.fail(base.Add(time.Second), leased["a"])
	w.requireStatus("b", job.StatusCancelled, job.DependencyFailed)
	w.requireStatus("c", job.StatusCancelled, job.DependencyFailed)
	w.requireStatus("x", job.StatusRunning, job.DependencyNone)
	w.requireWorkflowStatus(workflow.StatusRunning)

	w.complete(base.Add(2*time.Second), leased["x"])
	y := w.leaseSteps(base.Add(3*time.Second), "y")["y"]
	w.requireWorkflowStatus(workflow.StatusRunning)
	w.complete(base.Add(4*time.Second), y)
	r := w.requireWorkflowStatus(workflow.StatusFailed)
	require.Equal(t, 1, r.Stats.FailedJobs)
	require.Equal(t, 2, r.Stats.CancelledJobs)
}

func testWorkflowManual(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition(workflow.Manual, step("a"), step("b", "a"), step("x"), step("y", "x")), base)
	leased := w.leaseSteps(base, "a", "x")
	w.fail(base.Add(time.Second), leased["a"])
	w.requireStatus("b", job.StatusPending, job.DependencyWaiting)
	w.requireWorkflowStatus(workflow.StatusPaused)

	w.complete(base.Add(2*time.Second), leased["x"])
	y := w.leaseSteps(base.Add(3*time.Second), "y")["y"]
	w.complete(base.Add(4*time.Second), y)
	w.requireWorkflowStatus(workflow.StatusPaused)

	retried, err := s.Retry(t.Context(), store.RetryParams{ID: w.jobs["a"], Now: base.Add(5 * time.Second)})
	require.NoError(t, err)
	require.Equal(t, job.StatusPending, retried.Status)
	w.requireWorkflowStatus(workflow.StatusRunning)

	a := w.leaseSteps(base.Add(6*time.Second), "a")["a"]
	w.complete(base.Add(7*time.Second), a)
	b := w.leaseSteps(base.Add(8*time.Second), "b")["b"]
	w.complete(base.Add(9*time.Second), b)
	w.requireWorkflowStatus(workflow.StatusCompleted)
}

func testWorkflowRetryAfterManual(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition(workflow.Manual, step("a"), step("b", "a")), base)
	a := w.leaseSteps(base, "a")["a"]
	w.fail(base.Add(time.Second), a)
	w.requireWorkflowStatus(workflow.StatusPaused)

	r, err := s.RetryWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base.Add(2 * time.Second)})
	require.NoError(t, err)
	require.Equal(t, workflow.StatusRunning, r.Status)
	require.Nil(t, r.FailedAt)
	again := w.requireStatus("a", job.StatusPending, job.DependencyNone)
	require.Zero(t, again.Attempts)
	require.Equal(t, 1, w.requireStatus("b", job.StatusPending, job.DependencyWaiting).PendingDependencies)
	w.requireWorkflowStatus(workflow.StatusRunning)

	a = w.leaseSteps(base.Add(3*time.Second), "a")["a"]
	w.complete(base.Add(4*time.Second), a)
	b := w.leaseSteps(base.Add(5*time.Second), "b")["b"]
	w.complete(base.Add(6*time.Second), b)
	w.requireWorkflowStatus(workflow.StatusCompleted)
}

func testWorkflowRetryAfterFailFast(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition(workflow.FailFast,
		step("a"), step("x"), step("b", "a", "x")), base)
	leased := w.leaseSteps(base, "a", "x")
	w.complete(base.Add(time.Second), leased["x"])
	a := w.leaseSteps(base.Add(2 * time.Second))
	require.Empty(t, a)
	w.fail(base.Add(3*time.Second), leased["a"])
	w.requireStatus("b", job.StatusCancelled, job.DependencyWaiting)
	w.requireWorkflowStatus(workflow.StatusFailed)

	_, err := s.RetryWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base.Add(4 * time.Second)})
	require.NoError(t, err)
	w.requireStatus("a", job.StatusPending, job.DependencyNone)
	w.requireStatus("x", job.StatusCompleted, job.DependencyNone)
	b := w.requireStatus("b", job.StatusPending, job.DependencyWaiting)
	require.Equal(t, 1, b.PendingDependencies, "only the retried parent is left")
	w.requireWorkflowStatus(workflow.StatusRunning)

	a2 := w.leaseSteps(base.Add(5*time.Second), "a")["a"]
	w.complete(base.Add(6*time.Second), a2)
	b2 := w.leaseSteps(base.Add(7*time.Second), "b")["b"]
	w.complete(base.Add(8*time.Second), b2)
	w.requireWorkflowStatus(workflow.StatusCompleted)
}

func testWorkflowRetryConflict(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition("", step("a")), base)
	_, err := s.RetryWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base})
	require.ErrorIs(t, err, store.ErrConflict, "a running workflow")
	a := w.leaseSteps(base, "a")["a"]
	w.complete(base.Add(time.Second), a)
	_, err = s.RetryWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base})
	require.ErrorIs(t, err, store.ErrConflict, "a completed workflow")
	_, err = s.CancelWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base})
	require.ErrorIs(t, err, store.ErrConflict, "a finished workflow cannot be cancelled")
}

func testWorkflowCancel(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition("", step("a"), step("b"), step("c", "a")), base)
	leased := w.leaseSteps(base, "a", "b")
	w.complete(base.Add(time.Second), leased["b"])

	r, err := s.CancelWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base.Add(2 * time.Second)})
	require.NoError(t, err)
	require.Equal(t, workflow.StatusCancelled, r.Status)
	requireNoLease(t, w.requireStatus("a", job.StatusCancelled, job.DependencyNone))
	w.requireStatus("b", job.StatusCompleted, job.DependencyNone)
	require.Equal(t, job.StatusCancelled, w.job("c").Status)
	w.requireWorkflowStatus(workflow.StatusCancelled)

	stale := complete(t, s, base.Add(3*time.Second), store.Completion{LeaseRef: ref(leased["a"])})
	require.Equal(t, []uuid.UUID{leased["a"].ID}, stale)
	_, err = s.CancelWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base.Add(4 * time.Second)})
	require.ErrorIs(t, err, store.ErrConflict)
	w.requireWorkflowStatus(workflow.StatusCancelled)
}

func testWorkflowCancelJob(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition("", step("a"), step("b", "a"), step("c", "b"), step("x")), base)
	_, err := s.Cancel(t.Context(), store.CancelParams{ID: w.jobs["a"], Now: base})
	require.NoError(t, err)
	w.requireStatus("b", job.StatusCancelled, job.DependencyFailed)
	w.requireStatus("c", job.StatusCancelled, job.DependencyFailed)
	w.requireWorkflowStatus(workflow.StatusRunning)

	x := w.leaseSteps(base.Add(time.Second), "x")["x"]
	w.complete(base.Add(2*time.Second), x)
	w.requireWorkflowStatus(workflow.StatusCancelled)
}

func testWorkflowTimeout(t *testing.T, s store.Store) {
	def := definition("", step("a"), step("b", "a"))
	def.Timeout = job.Duration(time.Minute)
	w := enqueueWorkflow(t, s, def, base)
	a := w.leaseSteps(base, "a")["a"]

	expired, err := s.ExpireWorkflows(t.Context(), store.ExpireWorkflowsParams{Now: base.Add(30 * time.Second)})
	require.NoError(t, err)
	require.Empty(t, expired, "the deadline has not passed")
	w.requireWorkflowStatus(workflow.StatusRunning)

	expired, err = s.ExpireWorkflows(t.Context(), store.ExpireWorkflowsParams{Now: base.Add(2 * time.Minute)})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{w.id}, expired)
	r := w.requireWorkflowStatus(workflow.StatusFailed)
	require.Equal(t, "workflow timed out after 1m0s", r.ErrorMessage)
	requireTimePtr(t, base.Add(2*time.Minute), r.FailedAt, "failed_at")
	require.Equal(t, job.StatusCancelled, w.job("a").Status)
	require.Equal(t, job.StatusCancelled, w.job("b").Status)
	require.Equal(t, []uuid.UUID{a.ID}, complete(t, s, base.Add(3*time.Minute), store.Completion{LeaseRef: ref(a)}))

	expired, err = s.ExpireWorkflows(t.Context(), store.ExpireWorkflowsParams{Now: base.Add(time.Hour)})
	require.NoError(t, err)
	require.Empty(t, expired, "a failed workflow does not expire twice")
}

func testWorkflowList(t *testing.T, s store.Store) {
	var ids []uuid.UUID
	for range 5 {
		ids = append(ids, enqueueWorkflow(t, s, definition("", step("a")), base).id)
	}
	_, err := s.CancelWorkflow(t.Context(), store.WorkflowParams{ID: ids[1], Now: base})
	require.NoError(t, err)

	var seen []uuid.UUID
	cursor := ""
	for {
		page, err := s.ListWorkflows(t.Context(), store.ListWorkflowsParams{Limit: 2, Cursor: cursor})
		require.NoError(t, err)
		for _, w := range page.Workflows {
			seen = append(seen, w.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	want := make([]uuid.UUID, len(ids))
	for i, id := range ids {
		want[len(ids)-1-i] = id
	}
	require.Equal(t, want, seen, "newest first, every workflow once")

	page, err := s.ListWorkflows(t.Context(), store.ListWorkflowsParams{Status: workflow.StatusCancelled})
	require.NoError(t, err)
	require.Len(t, page.Workflows, 1)
	require.Equal(t, ids[1], page.Workflows[0].ID)
	require.Empty(t, page.NextCursor)

	_, err = s.ListWorkflows(t.Context(), store.ListWorkflowsParams{Cursor: "nope"})
	require.ErrorIs(t, err, store.ErrInvalid)
}

func testWorkflowNotFound(t *testing.T, s store.Store) {
	id := uuid.New()
	_, err := s.GetWorkflow(t.Context(), id)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.WorkflowJobs(t.Context(), id)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.CancelWorkflow(t.Context(), store.WorkflowParams{ID: id, Now: base})
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.RetryWorkflow(t.Context(), store.WorkflowParams{ID: id, Now: base})
	require.ErrorIs(t, err, store.ErrNotFound)
}

func child(parents ...*job.Job) store.NewJob {
	n := newJob("q")
	for _, p := range parents {
		n.DependsOn = append(n.DependsOn, p.ID)
	}
	return n
}

func testDependsOnCompleted(t *testing.T, s store.Store) {
	parent := running(t, s, base, newJob("q"))[0]
	completeWith(t, s, base.Add(time.Second), parent, `{"ok":true}`)
	kid := enqueue(t, s, base.Add(2*time.Second), child(parent))[0]
	require.Equal(t, job.DependencySatisfied, kid.DependencyStatus)
	got := get(t, s, kid.ID)
	require.Equal(t, job.StatusPending, got.Status)
	require.Equal(t, job.DependencySatisfied, got.DependencyStatus)
	require.Zero(t, got.PendingDependencies)
	require.Equal(t, []uuid.UUID{parent.ID}, got.DependsOn)
	require.Equal(t, []uuid.UUID{kid.ID}, get(t, s, parent.ID).Dependents)
	require.Equal(t, kid.ID, leaseOne(t, s, base.Add(3*time.Second)).ID)
	parents, err := s.ParentResults(t.Context(), kid.ID)
	require.NoError(t, err)
	require.JSONEq(t, `{"ok":true}`, string(parents[parent.ID.String()]), "keyed by id without a step name")
}

func testDependsOnPending(t *testing.T, s store.Store) {
	parents := enqueue(t, s, base, newJob("q"), newJob("q"))
	kid := enqueue(t, s, base, child(parents...))[0]
	got := get(t, s, kid.ID)
	require.Equal(t, job.DependencyWaiting, got.DependencyStatus)
	require.Equal(t, 2, got.PendingDependencies)

	leased := lease(t, s, store.LeaseParams{Limit: 10, Now: base.Add(time.Second)})
	require.ElementsMatch(t, ids(parents), ids(leased), "a waiting job is never leased")
	require.Empty(t, complete(t, s, base.Add(2*time.Second),
		store.Completion{LeaseRef: ref(leased[0])}, store.Completion{LeaseRef: ref(leased[1])}))
	got = get(t, s, kid.ID)
	require.Equal(t, job.DependencySatisfied, got.DependencyStatus)
	require.Zero(t, got.PendingDependencies)
	require.Equal(t, kid.ID, leaseOne(t, s, base.Add(3*time.Second)).ID)
}

func testDependsOnFailed(t *testing.T, s store.Store) {
	failed := running(t, s, base, newJob("q"))[0]
	fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(failed), Error: "boom"})
	cancelled := enqueue(t, s, base, newJob("q"))[0]
	_, err := s.Cancel(t.Context(), store.CancelParams{ID: cancelled.ID, Now: base})
	require.NoError(t, err)

	for _, p := range []*job.Job{failed, cancelled} {
		kid := enqueue(t, s, base.Add(2*time.Second), child(p))[0]
		got := get(t, s, kid.ID)
		require.Equal(t, job.StatusCancelled, got.Status, "a failed or cancelled parent cancels the new job")
		require.Equal(t, job.DependencyFailed, got.DependencyStatus)
	}
	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 10, Now: base.Add(time.Hour)}))
}

func testDependsOnUnknown(t *testing.T, s store.Store) {
	parent := enqueue(t, s, base, newJob("q"))[0]
	unknown := uuid.New()
	bad := newJob("q")
	bad.DependsOn = []uuid.UUID{parent.ID, unknown}
	_, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: []store.NewJob{newJob("q"), bad}, Now: base})
	require.ErrorIs(t, err, store.ErrInvalid)
	require.ErrorContains(t, err, unknown.String(), "the error names the unknown id")
	require.Len(t, listAll(t, s, store.ListParams{}), 1, "nothing of the batch was written")
	require.Empty(t, get(t, s, parent.ID).Dependents)
}

func testDependsOnParentFails(t *testing.T, s store.Store) {
	parent := enqueue(t, s, base, newJob("q"))[0]
	kid := enqueue(t, s, base, child(parent))[0]
	grandchild := enqueue(t, s, base, child(kid))[0]
	other := enqueue(t, s, base, newJob("q"))[0]
	leased := lease(t, s, store.LeaseParams{Limit: 10, Now: base})
	require.ElementsMatch(t, []uuid.UUID{parent.ID, other.ID}, ids(leased))
	var p *job.Job
	for _, j := range leased {
		if j.ID == parent.ID {
			p = j
		}
	}
	res := fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(p), Error: "boom"})
	require.Equal(t, []uuid.UUID{parent.ID}, res.Failed)
	for _, id := range []uuid.UUID{kid.ID, grandchild.ID} {
		got := get(t, s, id)
		require.Equal(t, job.StatusCancelled, got.Status, "descendants of a failed job are cancelled")
		require.Equal(t, job.DependencyFailed, got.DependencyStatus)
	}
	require.Equal(t, job.StatusRunning, get(t, s, other.ID).Status, "unrelated jobs run on")
}

func testWorkflowConcurrentBarrier(t *testing.T, s store.Store) {
	const n = 8
	steps := make([]workflow.Step, 0, n+1)
	names := make([]string, 0, n)
	for i := range n {
		name := fmt.Sprintf("r%d", i)
		steps = append(steps, step(name))
		names = append(names, name)
	}
	steps = append(steps, step("summary", names...))
	w := enqueueWorkflow(t, s, definition("", steps...), base)
	leased := w.leaseSteps(base, names...)

	errs := make(chan error, n)
	var wg sync.WaitGroup
	for _, j := range leased {
		wg.Go(func() {
			stale, err := s.Complete(t.Context(), store.CompleteParams{
				Completions: []store.Completion{{LeaseRef: ref(j), Result: []byte(`{}`)}}, Now: base.Add(time.Second)})
			if err == nil && len(stale) > 0 {
				err = fmt.Errorf("completion of %s was stale", j.StepName)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "concurrent completions each commit")
	}
	summary := w.requireStatus("summary", job.StatusPending, job.DependencySatisfied)
	require.Zero(t, summary.PendingDependencies, "every parent counted exactly once")
	w.leaseSteps(base.Add(2*time.Second), "summary")
}

func testWorkflowFailFastRace(t *testing.T, s store.Store) {
	const runs = 4
	flows := make([]*wf, runs)
	for i := range flows {
		flows[i] = enqueueWorkflow(t, s, definition(workflow.FailFast, step("a"), step("b"), step("c", "a", "b")), base)
	}
	leased := lease(t, s, store.LeaseParams{Limit: 2 * runs, Now: base})
	require.Len(t, leased, 2*runs)
	byID := map[uuid.UUID]*job.Job{}
	for _, j := range leased {
		byID[j.ID] = j
	}

	errs := make(chan error, 2*runs)
	stales := make(chan uuid.UUID, runs)
	var wg sync.WaitGroup
	for _, w := range flows {
		a, b := byID[w.jobs["a"]], byID[w.jobs["b"]]
		wg.Go(func() {
			_, err := s.Fail(t.Context(), store.FailParams{Now: base.Add(time.Second),
				Failures: []store.Failure{{LeaseRef: ref(a), Error: "boom"}}})
			errs <- err
		})
		wg.Go(func() {
			stale, err := s.Complete(t.Context(), store.CompleteParams{Now: base.Add(time.Second),
				Completions: []store.Completion{{LeaseRef: ref(b), Result: []byte(`{}`)}}})
			for _, id := range stale {
				stales <- id
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	close(stales)
	for err := range errs {
		require.NoError(t, err, "racing transitions both commit (a deadlock victim is re-run)")
	}
	stale := map[uuid.UUID]bool{}
	for id := range stales {
		stale[id] = true
	}
	for _, w := range flows {
		w.requireWorkflowStatus(workflow.StatusFailed)
		require.Equal(t, job.StatusFailed, w.job("a").Status)
		require.Equal(t, job.StatusCancelled, w.job("c").Status)
		b := w.job("b")
		if stale[b.ID] {
			require.Equal(t, job.StatusCancelled, b.Status, "b's completion lost the race: it was cancelled")
		} else {
			require.Equal(t, job.StatusCompleted, b.Status, "b's completion won the race")
		}
	}
}
