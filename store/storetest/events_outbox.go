package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/schedule"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// Outbox writing: every committed transition writes exactly one event,
// named by events.TypeOf, carrying the row's fields; nothing is written
// while no enabled subscriber exists, and nothing for a change that rolled
// back or did not happen.

// lifeOfJobs walks jobs through every transition of the job table:
// enqueue, lease, complete, fail with and without retry, rescue, release,
// cancel and retry.
func lifeOfJobs(t *testing.T, s store.Store) {
	t.Helper()
	jobs := running(t, s, base, newJob("q"), newJob("q"), newJob("q"), newJob("q"))
	at := base.Add(time.Second)
	require.Empty(t, complete(t, s, at, store.Completion{LeaseRef: ref(jobs[0]), Result: []byte(`{"ok":true}`)}))
	fail(t, s, at, store.Failure{LeaseRef: ref(jobs[1]), Error: "HTTP 500", Outcome: "http_500", Retry: true, RetryAt: at})
	fail(t, s, at, store.Failure{LeaseRef: ref(jobs[2]), Error: "HTTP 404", Outcome: "http_404"})
	_, err := s.Release(t.Context(), store.ReleaseParams{Leases: []store.LeaseRef{ref(jobs[3])}, ScheduledAt: at, Now: at})
	require.NoError(t, err)
	require.Len(t, lease(t, s, store.LeaseParams{Limit: 10, Now: at}), 2, "the retried and the released job")
	require.Len(t, rescue(t, s, store.RescueParams{Now: at.Add(leaseFor)}).Requeued, 2)
	_, err = s.Retry(t.Context(), store.RetryParams{ID: jobs[2].ID, Now: at})
	require.NoError(t, err)
	cancel(t, s, jobs[2].ID, at)
	pause(t, s, "q")
	resume(t, s, "q")
}

func testOutboxNoSubscriber(t *testing.T, s store.Store) {
	lifeOfJobs(t, s)
	requireNoEvents(t, s)
}

func testOutboxDisabledSubscriber(t *testing.T, s store.Store) {
	off := webhookDef("off")
	off.Enabled, off.IncludePayload, off.IncludeResult = false, true, true
	putSubscriber(t, s, off, base)
	lifeOfJobs(t, s)
	requireNoEvents(t, s)
}

func testOutboxEnqueue(t *testing.T, s store.Store) {
	o := observe(t, s)
	one := enqueue(t, s, base, newJob("q"))[0]
	requireJobEvent(t, o.requireOne(events.JobEnqueued), events.JobEnqueued, one.ID, "q", 0)

	batch := enqueue(t, s, base, newJob("q"), newJob("r"), newJob("s"))
	got := o.requireTypes(events.JobEnqueued, events.JobEnqueued, events.JobEnqueued)
	for _, j := range batch {
		mine := ofJob(got, j.ID)
		require.Len(t, mine, 1, "one event per enqueued job")
		requireJobEvent(t, mine[0], events.JobEnqueued, j.ID, j.Queue, 0)
		require.Empty(t, mine[0].FromStatus, "an insert has no from status")
		require.Equal(t, string(job.StatusPending), mine[0].Status)
	}
}

func testOutboxComplete(t *testing.T, s store.Store) {
	o := observe(t, s)
	j := enqueue(t, s, base, newJob("q"))[0]
	o.requireOne(events.JobEnqueued)

	leased := leaseOne(t, s, base)
	started := o.requireOne(events.JobStarted)
	requireJobEvent(t, started, events.JobStarted, j.ID, "q", 1)
	require.Equal(t, 0, started.PrevAttempt, "attempts before the lease")
	requireTimePtr(t, base, started.StartedAt, "started_at")
	require.Nil(t, events.FromRecord(started).DurationMS, "no attempt has finished")

	done := base.Add(1500 * time.Millisecond)
	require.Empty(t, complete(t, s, done, store.Completion{LeaseRef: ref(leased), Result: []byte(`{"ok":true}`)}))
	completed := o.requireOne(events.JobCompleted)
	requireJobEvent(t, completed, events.JobCompleted, j.ID, "q", 1)
	require.Equal(t, string(job.StatusRunning), completed.FromStatus)
	requireTimePtr(t, done, completed.FinishedAt, "finished_at is completed_at")
	ev := events.FromRecord(completed)
	require.NotNil(t, ev.DurationMS, "a finished attempt has a duration")
	require.Equal(t, int64(1500), *ev.DurationMS, "duration_ms is started to completed")
	require.Empty(t, ev.Error)
}

func testOutboxFail(t *testing.T, s store.Store) {
	o := observe(t, s)
	twice := newJob("q")
	twice.MaxAttempts = 2
	j := running(t, s, base, twice)[0]
	o.requireTypes(events.JobEnqueued, events.JobStarted)

	retryAt := base.Add(time.Minute)
	res := fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(j), Error: "HTTP 503", Outcome: "http_503", Retry: true, RetryAt: retryAt})
	require.Equal(t, []uuid.UUID{j.ID}, res.Retried)
	retry := o.requireOne(events.JobRetryScheduled)
	requireJobEvent(t, retry, events.JobRetryScheduled, j.ID, "q", 1)
	require.Equal(t, "HTTP 503", events.FromRecord(retry).Error, "a retry carries its error")
	require.Equal(t, "http_503", retry.Outcome)
	require.NotNil(t, events.FromRecord(retry).DurationMS, "the attempt ended")

	again := leaseOne(t, s, retryAt)
	requireJobEvent(t, o.requireOne(events.JobStarted), events.JobStarted, j.ID, "q", 2)
	res = fail(t, s, retryAt.Add(time.Second), store.Failure{LeaseRef: ref(again), Error: "HTTP 500", Outcome: "http_500", Retry: true})
	require.Equal(t, []uuid.UUID{j.ID}, res.Failed, "no attempt left")
	failed := o.requireOne(events.JobFailed)
	requireJobEvent(t, failed, events.JobFailed, j.ID, "q", 2)
	require.Equal(t, "HTTP 500", events.FromRecord(failed).Error)
	requireTimePtr(t, retryAt.Add(time.Second), failed.FinishedAt, "finished_at is failed_at")
	require.Equal(t, int64(1000), *events.FromRecord(failed).DurationMS, "duration_ms is started to failed")

	permanent := running(t, s, base, newJob("p"))[0]
	o.requireTypes(events.JobEnqueued, events.JobStarted)
	fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(permanent), Error: "HTTP 404", Outcome: "http_404"})
	requireJobEvent(t, o.requireOne(events.JobFailed), events.JobFailed, permanent.ID, "p", 1)
}

func testOutboxRescue(t *testing.T, s store.Store) {
	o := observe(t, s)
	twice := newJob("q")
	twice.MaxAttempts = 2
	j := running(t, s, base, twice)[0]
	o.requireTypes(events.JobEnqueued, events.JobStarted)

	first := base.Add(leaseFor)
	require.Equal(t, []uuid.UUID{j.ID}, rescue(t, s, store.RescueParams{Now: first}).Requeued)
	rescued := o.requireOne(events.JobRescued)
	requireJobEvent(t, rescued, events.JobRescued, j.ID, "q", 1)
	require.Equal(t, store.LeaseExpiredOutcome, rescued.Outcome)
	require.Equal(t, string(job.StatusPending), rescued.Status)

	leaseOne(t, s, first)
	o.requireOne(events.JobStarted)
	require.Equal(t, []uuid.UUID{j.ID}, rescue(t, s, store.RescueParams{Now: first.Add(leaseFor)}).Failed)
	failed := o.requireOne(events.JobFailed)
	requireJobEvent(t, failed, events.JobFailed, j.ID, "q", 2)
	require.Equal(t, store.LeaseExpiredOutcome, failed.Outcome, "a rescue with no attempt left fails the job")
}

func testOutboxRelease(t *testing.T, s store.Store) {
	o := observe(t, s)
	j := running(t, s, base, newJob("q"))[0]
	o.requireTypes(events.JobEnqueued, events.JobStarted)
	stale, err := s.Release(t.Context(), store.ReleaseParams{Leases: []store.LeaseRef{ref(j)}, ScheduledAt: base.Add(time.Minute), Now: base})
	require.NoError(t, err)
	require.Empty(t, stale)
	released := o.requireOne(events.JobReleased)
	requireJobEvent(t, released, events.JobReleased, j.ID, "q", 0)
	require.Equal(t, 1, released.PrevAttempt, "the attempt given back")
}

func testOutboxCancelRetry(t *testing.T, s store.Store) {
	o := observe(t, s)
	j := enqueue(t, s, base, newJob("q"))[0]
	o.requireOne(events.JobEnqueued)
	cancel(t, s, j.ID, base)
	cancelled := o.requireOne(events.JobCancelled)
	requireJobEvent(t, cancelled, events.JobCancelled, j.ID, "q", 0)
	require.Equal(t, string(job.StatusPending), cancelled.FromStatus)

	_, err := s.Retry(t.Context(), store.RetryParams{ID: j.ID, Now: base})
	require.NoError(t, err)
	requireJobEvent(t, o.requireOne(events.JobRetried), events.JobRetried, j.ID, "q", 0)

	leased := leaseOne(t, s, base)
	o.requireOne(events.JobStarted)
	cancel(t, s, leased.ID, base.Add(time.Second))
	cancelled = o.requireOne(events.JobCancelled)
	require.Equal(t, string(job.StatusRunning), cancelled.FromStatus, "a running job cancelled")

	failed := running(t, s, base, newJob("f"))[0]
	o.requireTypes(events.JobEnqueued, events.JobStarted)
	fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(failed), Error: "HTTP 404", Outcome: "http_404"})
	o.requireOne(events.JobFailed)
	_, err = s.Retry(t.Context(), store.RetryParams{ID: failed.ID, Now: base.Add(2 * time.Second)})
	require.NoError(t, err)
	retried := o.requireOne(events.JobRetried)
	requireJobEvent(t, retried, events.JobRetried, failed.ID, "f", 0)
	require.Equal(t, string(job.StatusFailed), retried.FromStatus)
}

func testOutboxExtend(t *testing.T, s store.Store) {
	o := observe(t, s)
	j := running(t, s, base, newJob("q"))[0]
	o.requireTypes(events.JobEnqueued, events.JobStarted)
	for i := range 3 {
		stale, err := s.Extend(t.Context(), store.ExtendParams{
			Leases: []store.LeaseRef{ref(j)}, Until: base.Add(time.Duration(i+2) * leaseFor), Now: base,
		})
		require.NoError(t, err)
		require.Empty(t, stale)
	}
	o.requireTypes()
	require.Equal(t, job.StatusRunning, get(t, s, j.ID).Status)
}

func testOutboxFields(t *testing.T, s store.Store) {
	o := observe(t, s)
	n := newJob("mail")
	n.Priority = job.PriorityHigh
	n.TraceID = tracedID
	n.CorrelationID = "order-42"
	j := enqueue(t, s, base, n)[0]
	rec := o.requireOne(events.JobEnqueued)
	require.Equal(t, int(job.PriorityHigh), rec.Priority)
	require.Equal(t, tracedID, rec.TraceID)
	require.Equal(t, "order-42", rec.CorrelationID)
	require.Nil(t, rec.WorkflowID, "not a workflow's job")
	require.Empty(t, rec.WorkflowName)
	require.Nil(t, rec.BatchID, "not a batch's job")
	require.Nil(t, rec.StartedAt)
	require.Nil(t, rec.FinishedAt)

	ev := events.FromRecord(rec)
	require.Equal(t, events.JobEnqueued, ev.Type)
	require.Equal(t, rec.Seq, ev.Seq)
	require.Equal(t, rec.ID, ev.ID)
	require.Equal(t, j.ID, *ev.JobID)
	require.Equal(t, "mail", ev.Queue)
	require.NotNil(t, ev.Priority)
	require.Equal(t, int(job.PriorityHigh), *ev.Priority)
	require.Equal(t, "order-42", ev.CorrelationID)

	leaseOne(t, s, base)
	started := o.requireOne(events.JobStarted)
	require.Equal(t, int(job.PriorityHigh), started.Priority)
	require.Equal(t, tracedID, started.TraceID)
	require.Equal(t, "order-42", started.CorrelationID)
}

func testOutboxPayload(t *testing.T, s store.Store) {
	o := observe(t, s)
	off := webhookDef("off")
	off.Enabled, off.IncludePayload, off.IncludeResult = false, true, true
	putSubscriber(t, s, off, base)

	n := newJob("q")
	n.Payload = []byte(`{"to":"ada@example.test","n":7}`)
	enqueue(t, s, base, n)
	require.Nil(t, o.requireOne(events.JobEnqueued).Payload, "nobody enabled asks for the payload")

	asks := webhookDef("asks")
	asks.IncludePayload = true
	putSubscriber(t, s, asks, base)
	j := enqueue(t, s, base, n)[0]
	rec := o.requireOne(events.JobEnqueued)
	require.NotNil(t, rec.Payload, "an enabled subscriber asks for the payload")
	require.JSONEq(t, string(n.Payload), string(rec.Payload))
	require.Nil(t, rec.Result, "nobody asks for the result")

	leased := lease(t, s, store.LeaseParams{Limit: 10, Now: base})
	require.Len(t, leased, 2)
	for _, r := range o.requireTypes(events.JobStarted, events.JobStarted) {
		require.JSONEq(t, string(n.Payload), string(r.Payload), "every event of a job carries its payload")
	}

	asks.Enabled = false
	putSubscriber(t, s, asks, base)
	cancel(t, s, j.ID, base)
	require.Nil(t, o.requireOne(events.JobCancelled).Payload, "the asking subscriber is disabled")
}

func testOutboxResult(t *testing.T, s store.Store) {
	o := observe(t, s)
	jobs := running(t, s, base, newJob("q"), newJob("q"))
	o.requireTypes(events.JobEnqueued, events.JobEnqueued, events.JobStarted, events.JobStarted)
	result := `{"sent":true,"id":"m-1"}`
	require.Empty(t, complete(t, s, base.Add(time.Second), store.Completion{LeaseRef: ref(jobs[0]), Result: []byte(result)}))
	require.Nil(t, o.requireOne(events.JobCompleted).Result, "nobody asks for the result")

	asks := webhookDef("asks")
	asks.IncludeResult = true
	putSubscriber(t, s, asks, base)
	require.Empty(t, complete(t, s, base.Add(time.Second), store.Completion{LeaseRef: ref(jobs[1]), Result: []byte(result)}))
	rec := o.requireOne(events.JobCompleted)
	require.NotNil(t, rec.Result, "an enabled subscriber asks for the result")
	require.JSONEq(t, result, string(rec.Result))
	require.Nil(t, rec.Payload, "nobody asks for the payload")

	next := running(t, s, base, newJob("q"))[0]
	for _, r := range o.requireTypes(events.JobEnqueued, events.JobStarted) {
		require.Nil(t, r.Result, "a result only on completion")
	}
	fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(next), Error: "HTTP 404", Outcome: "http_404"})
	require.Nil(t, o.requireOne(events.JobFailed).Result, "a failure has no result")
}

func testOutboxRolledBack(t *testing.T, s store.Store) {
	o := observe(t, s)
	existing := enqueue(t, s, base, newJob("q"))[0]
	o.requireOne(events.JobEnqueued)

	_, err := s.Enqueue(t.Context(), store.EnqueueParams{Now: base, Jobs: []store.NewJob{
		newJob("q"), {ID: existing.ID, Queue: "q", Payload: []byte(`{}`)},
	}})
	require.Error(t, err, "a duplicate id fails the batch")
	_, err = s.Enqueue(t.Context(), store.EnqueueParams{Now: base, Jobs: []store.NewJob{
		newJob("q"), {Queue: "q", Payload: []byte(`not json`)},
	}})
	require.ErrorIs(t, err, store.ErrInvalid)
	_, err = s.EnqueueBatch(t.Context(), store.EnqueueBatchParams{Now: base, Jobs: []store.NewJob{
		newJob("batch"), {ID: existing.ID, Queue: "batch", Payload: []byte(`{}`)},
	}})
	require.Error(t, err, "a duplicate id fails the batch")
	require.Len(t, listAll(t, s, store.ListParams{}), 1, "nothing of the failed batches was written")
	o.requireTypes()
	require.Equal(t, o.seen, latestSeq(t, s), "no seq was spent")
}

func testOutboxStale(t *testing.T, s store.Store) {
	o := observe(t, s)
	jobs := running(t, s, base, newJob("q"), newJob("q"))
	o.requireTypes(events.JobEnqueued, events.JobEnqueued, events.JobStarted, events.JobStarted)
	at := base.Add(time.Second)
	require.Empty(t, complete(t, s, at, store.Completion{LeaseRef: ref(jobs[0])}))
	o.requireOne(events.JobCompleted)

	wrong := store.LeaseRef{ID: jobs[1].ID, Token: "not-the-token"}
	require.Len(t, complete(t, s, at, store.Completion{LeaseRef: ref(jobs[0])}), 1, "a second completion is stale")
	require.Len(t, complete(t, s, at, store.Completion{LeaseRef: wrong}), 1)
	require.Len(t, fail(t, s, at, store.Failure{LeaseRef: wrong, Error: "x", Outcome: "x"}).Stale, 1)
	stale, err := s.Release(t.Context(), store.ReleaseParams{Leases: []store.LeaseRef{wrong}, ScheduledAt: at, Now: at})
	require.NoError(t, err)
	require.Len(t, stale, 1)
	_, err = s.Cancel(t.Context(), store.CancelParams{ID: jobs[0].ID, Now: at})
	require.ErrorIs(t, err, store.ErrConflict)
	require.Empty(t, rescue(t, s, store.RescueParams{Now: at}).Requeued, "a live lease is not rescued")
	o.requireTypes()
	require.Equal(t, job.StatusRunning, get(t, s, jobs[1].ID).Status)
}

// requireWorkflowEvent checks an event of workflow w.
func requireWorkflowEvent(t *testing.T, r store.EventRecord, typ string, id uuid.UUID, name string) {
	t.Helper()
	require.Equal(t, typ, events.TypeOf(r))
	require.Equal(t, store.EventKindWorkflow, r.Kind)
	require.NotNil(t, r.WorkflowID, "%s names its workflow", typ)
	require.Equal(t, id, *r.WorkflowID)
	require.Equal(t, name, r.WorkflowName)
	require.Nil(t, r.JobID, "a workflow event names no job")
	requireStamped(t, r)
}

func testOutboxWorkflow(t *testing.T, s store.Store) {
	o := observe(t, s)
	transform := step("transform", "extract")
	transform.Condition = "rows > 0"
	def := definition("", step("extract"), transform, step("load", "transform"))
	def.CorrelationID = "etl-7"
	w := enqueueWorkflow(t, s, def, base)
	got := o.requireTypeSet(events.WorkflowStarted, events.JobEnqueued, events.JobEnqueued, events.JobEnqueued)
	started := ofType(got, events.WorkflowStarted)[0]
	requireWorkflowEvent(t, started, events.WorkflowStarted, w.id, "pipeline")
	require.Equal(t, "etl-7", started.CorrelationID)
	for name, id := range w.jobs {
		mine := ofJob(got, id)
		require.Lenf(t, mine, 1, "one enqueued event for step %s", name)
		require.NotNil(t, mine[0].WorkflowID, "a step's event names its workflow")
		require.Equal(t, w.id, *mine[0].WorkflowID)
		require.Equal(t, "pipeline", mine[0].WorkflowName)
	}
	require.Equal(t, w.jobs["extract"], *ofType(got, events.JobEnqueued)[0].JobID, "the workflow's jobs in step order")
	require.Less(t, ofType(got, events.WorkflowStarted)[0].Seq, ofJob(got, w.jobs["extract"])[0].Seq,
		"the workflow starts before its jobs")

	extract := w.leaseSteps(base, "extract")["extract"]
	requireJobEvent(t, o.requireOne(events.JobStarted), events.JobStarted, extract.ID, wfQueue, 1)
	completeWith(t, s, base.Add(time.Second), extract, `{"rows":0}`)
	got = o.requireTypeSet(events.JobCompleted, events.JobSkipped)
	require.Equal(t, w.jobs["extract"], *ofType(got, events.JobCompleted)[0].JobID)
	skipped := ofType(got, events.JobSkipped)[0]
	require.Equal(t, w.jobs["transform"], *skipped.JobID, "the condition-false step is skipped")
	require.Equal(t, w.id, *skipped.WorkflowID)

	load := w.leaseSteps(base.Add(2*time.Second), "load")["load"]
	o.requireOne(events.JobStarted)
	w.complete(base.Add(3*time.Second), load)
	got = o.requireTypeSet(events.JobCompleted, events.WorkflowCompleted)
	require.Equal(t, load.ID, *ofType(got, events.JobCompleted)[0].JobID)
	requireWorkflowEvent(t, ofType(got, events.WorkflowCompleted)[0], events.WorkflowCompleted, w.id, "pipeline")
	w.requireWorkflowStatus(workflow.StatusCompleted)
}

func testOutboxWorkflowFailFast(t *testing.T, s store.Store) {
	o := observe(t, s)
	w := enqueueWorkflow(t, s, definition(workflow.FailFast, step("a"), step("b"), step("c", "a"), step("d", "c")), base)
	o.requireTypeSet(events.WorkflowStarted, events.JobEnqueued, events.JobEnqueued, events.JobEnqueued, events.JobEnqueued)
	leased := w.leaseSteps(base, "a", "b")
	o.requireTypes(events.JobStarted, events.JobStarted)

	w.fail(base.Add(time.Second), leased["a"])
	got := o.requireTypeSet(events.JobFailed, events.JobCancelled, events.JobCancelled, events.JobCancelled, events.WorkflowFailed)
	require.Equal(t, w.jobs["a"], *ofType(got, events.JobFailed)[0].JobID)
	var cancelled []uuid.UUID
	for _, r := range ofType(got, events.JobCancelled) {
		cancelled = append(cancelled, *r.JobID)
	}
	require.ElementsMatch(t, []uuid.UUID{w.jobs["b"], w.jobs["c"], w.jobs["d"]}, cancelled, "fail_fast cancels the rest")
	requireWorkflowEvent(t, ofType(got, events.WorkflowFailed)[0], events.WorkflowFailed, w.id, "pipeline")

	require.Len(t, complete(t, s, base.Add(2*time.Second), store.Completion{LeaseRef: ref(leased["b"])}), 1)
	o.requireTypes()
}

func testOutboxWorkflowCancel(t *testing.T, s store.Store) {
	o := observe(t, s)
	w := enqueueWorkflow(t, s, definition("", step("a"), step("b"), step("c", "a")), base)
	o.next()
	leased := w.leaseSteps(base, "a", "b")
	w.complete(base.Add(time.Second), leased["b"])
	o.requireTypes(events.JobStarted, events.JobStarted, events.JobCompleted)

	_, err := s.CancelWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base.Add(2 * time.Second)})
	require.NoError(t, err)
	got := o.requireTypeSet(events.JobCancelled, events.JobCancelled, events.WorkflowCancelled)
	var cancelled []uuid.UUID
	for _, r := range ofType(got, events.JobCancelled) {
		cancelled = append(cancelled, *r.JobID)
	}
	require.ElementsMatch(t, []uuid.UUID{w.jobs["a"], w.jobs["c"]}, cancelled, "the unfinished jobs are cancelled")
	requireWorkflowEvent(t, ofType(got, events.WorkflowCancelled)[0], events.WorkflowCancelled, w.id, "pipeline")
}

func testOutboxWorkflowManual(t *testing.T, s store.Store) {
	o := observe(t, s)
	w := enqueueWorkflow(t, s, definition(workflow.Manual, step("a"), step("b", "a")), base)
	o.next()
	a := w.leaseSteps(base, "a")["a"]
	o.requireOne(events.JobStarted)
	w.fail(base.Add(time.Second), a)
	got := o.requireTypeSet(events.JobFailed, events.WorkflowPaused)
	requireWorkflowEvent(t, ofType(got, events.WorkflowPaused)[0], events.WorkflowPaused, w.id, "pipeline")

	_, err := s.Retry(t.Context(), store.RetryParams{ID: w.jobs["a"], Now: base.Add(2 * time.Second)})
	require.NoError(t, err)
	got = o.requireTypeSet(events.JobRetried, events.WorkflowResumed)
	require.Equal(t, w.jobs["a"], *ofType(got, events.JobRetried)[0].JobID)
	resumed := ofType(got, events.WorkflowResumed)[0]
	requireWorkflowEvent(t, resumed, events.WorkflowResumed, w.id, "pipeline")
	require.Equal(t, string(workflow.StatusPaused), resumed.FromStatus)
}

func testOutboxWorkflowRetry(t *testing.T, s store.Store) {
	o := observe(t, s)
	w := enqueueWorkflow(t, s, definition(workflow.FailFast, step("a"), step("b"), step("c", "a")), base)
	o.next()
	leased := w.leaseSteps(base, "a", "b")
	w.fail(base.Add(time.Second), leased["a"])
	o.requireTypeSet(events.JobStarted, events.JobStarted, events.JobFailed, events.JobCancelled, events.JobCancelled, events.WorkflowFailed)

	_, err := s.Retry(t.Context(), store.RetryParams{ID: w.jobs["a"], Now: base.Add(2 * time.Second)})
	require.NoError(t, err)
	got := o.requireTypeSet(events.JobRetried, events.JobRetried, events.JobRetried, events.WorkflowResumed)
	var retried []uuid.UUID
	for _, r := range ofType(got, events.JobRetried) {
		retried = append(retried, *r.JobID)
	}
	require.ElementsMatch(t, []uuid.UUID{w.jobs["a"], w.jobs["b"], w.jobs["c"]}, retried,
		"the failed job and the jobs its failure cancelled")
	resumed := ofType(got, events.WorkflowResumed)[0]
	requireWorkflowEvent(t, resumed, events.WorkflowResumed, w.id, "pipeline")
	require.Equal(t, string(workflow.StatusFailed), resumed.FromStatus)
}

// testOutboxLargeBatch changes many rows per statement, where a
// statement-level trigger writes all their events in one insert.
func testOutboxLargeBatch(t *testing.T, s store.Store) {
	const n = 500
	o := observe(t, s)
	in := make([]store.NewJob, n)
	for i := range in {
		in[i] = newJob("bulk")
	}
	jobs := running(t, s, base, in...)
	cs := make([]store.Completion, n)
	for i, j := range jobs {
		cs[i] = store.Completion{LeaseRef: ref(j), Result: []byte(`{"ok":true}`)}
	}
	require.Empty(t, complete(t, s, base.Add(time.Second), cs...))
	got := o.next()
	require.Len(t, got, 3*n, "one event per job and transition")
	for _, j := range jobs {
		require.Equal(t, []string{events.JobEnqueued, events.JobStarted, events.JobCompleted}, typesOf(ofJob(got, j.ID)),
			"events of job %s", j.ID)
	}
}

func testOutboxBatch(t *testing.T, s store.Store) {
	o := observe(t, s)
	b := enqueueBatch(t, s, store.EnqueueBatchParams{Name: "import", Jobs: batchJobs(2)})
	for _, r := range o.requireTypes(events.JobEnqueued, events.JobEnqueued) {
		require.NotNil(t, r.BatchID, "a batch's job names its batch")
		require.Equal(t, b.Batch.ID, *r.BatchID)
	}
	jobs := leaseBatch(t, s, 2, base)
	o.requireTypes(events.JobStarted, events.JobStarted)
	require.Empty(t, complete(t, s, base.Add(time.Second), store.Completion{LeaseRef: ref(jobs[0])}))
	o.requireOne(events.JobCompleted)
	fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(jobs[1]), Error: "HTTP 404", Outcome: "http_404"})
	got := o.requireTypeSet(events.JobFailed, events.BatchFinished)
	finished := ofType(got, events.BatchFinished)[0]
	require.Equal(t, store.EventKindBatch, finished.Kind)
	require.NotNil(t, finished.BatchID)
	require.Equal(t, b.Batch.ID, *finished.BatchID)
	require.Equal(t, string(store.BatchPartiallyFailed), finished.Status, "the status says how it finished")
	require.Equal(t, string(store.BatchProcessing), finished.FromStatus)
	require.Nil(t, finished.JobID)
	requireStamped(t, finished)
}

func testOutboxScheduleFired(t *testing.T, s store.Store) {
	o := observe(t, s)
	putSchedule(t, s, cronJob("report"), base)
	o.requireTypes()
	run := fireOne(t, s, slot(0))
	got := o.requireTypeSet(events.JobEnqueued, events.ScheduleFired)
	fired := ofType(got, events.ScheduleFired)[0]
	require.Equal(t, store.EventKindSchedule, fired.Kind)
	require.Equal(t, "report", fired.Schedule)
	require.NotNil(t, fired.JobID, "a fired run names its job")
	require.Equal(t, *run.JobID, *fired.JobID)
	requireStamped(t, fired)
	require.Equal(t, *run.JobID, *ofType(got, events.JobEnqueued)[0].JobID)

	requireSkipped(t, fireOne(t, s, slot(1)), slot(1))
	skipped := o.requireOne(events.ScheduleSkipped)
	require.Equal(t, "report", skipped.Schedule)
	require.Nil(t, skipped.JobID, "a skipped run made no job")
}

func testOutboxScheduleMissed(t *testing.T, s store.Store) {
	o := observe(t, s)
	putSchedule(t, s, cronJob("latest"), base)
	narrow := cronJob("narrow")
	narrow.CatchupWindow = job.Duration(2 * time.Minute)
	putSchedule(t, s, narrow, base)
	none := cronJob("none")
	none.Catchup = schedule.CatchupNone
	putSchedule(t, s, none, base)

	res := fireAt(t, s, slot(5).Add(3*time.Minute))
	require.Equal(t, 5, res.Missed["latest"])
	require.Equal(t, 6, res.Missed["narrow"])
	require.Equal(t, 6, res.Missed["none"])
	got := o.requireTypeSet(events.JobEnqueued, events.ScheduleFired,
		events.ScheduleMissed, events.ScheduleMissed, events.ScheduleMissed)
	missed := map[string]int{}
	for _, r := range ofType(got, events.ScheduleMissed) {
		require.Equal(t, store.EventKindSchedule, r.Kind)
		missed[r.Schedule] = r.Missed
		require.Equal(t, r.Missed, events.FromRecord(r).Missed)
	}
	require.Equal(t, map[string]int{"latest": 5, "narrow": 6, "none": 6}, missed, "each schedule's count of slots let pass")
	require.Equal(t, "latest", ofType(got, events.ScheduleFired)[0].Schedule)

	fireAt(t, s, slot(6))
	got = o.next()
	require.Empty(t, ofType(got, events.ScheduleMissed), "a slot on time misses nothing")
}

func testOutboxQueue(t *testing.T, s store.Store) {
	o := observe(t, s)
	pause(t, s, "mail")
	paused := o.requireOne(events.QueuePaused)
	require.Equal(t, store.EventKindQueue, paused.Kind)
	require.Equal(t, "mail", paused.Queue)
	require.Nil(t, paused.JobID)
	requireStamped(t, paused)

	resume(t, s, "mail")
	resumed := o.requireOne(events.QueueResumed)
	require.Equal(t, "mail", resumed.Queue)
	resume(t, s, "mail")
	o.requireTypes()
}

// requireSameEvent checks that two reads of an event agree.
func requireSameEvent(t *testing.T, want, got store.EventRecord) {
	t.Helper()
	require.Equal(t, want.ID, got.ID)
	require.Equal(t, want.Seq, got.Seq)
	require.Equal(t, want.Kind, got.Kind)
	require.Equal(t, want.Status, got.Status)
	require.Equal(t, want.JobID, got.JobID)
	require.True(t, want.Time.Equal(got.Time), "time")
	wantJSON, err := json.Marshal(events.FromRecord(want))
	require.NoError(t, err)
	gotJSON, err := json.Marshal(events.FromRecord(got))
	require.NoError(t, err)
	require.JSONEq(t, string(wantJSON), string(gotJSON), "the event a sink sends")
}
