package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// Batches: EnqueueBatch writes a batch row and its jobs in one transaction;
// the batch's counters and status follow its jobs in the transactions of
// their transitions, so after every step the suite checks them against the
// jobs themselves.

var batchTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"BatchEnqueueWritesRowAndStampsJobs", testBatchEnqueue},
	{"BatchRejectsTooManyNoneAndBadModeWritingNothing", testBatchRejects},
	{"BatchOfTheMaximumSizeIsWrittenWhole", testBatchMaxSize},
	{"BatchFailingOnItsLastJobWritesNothing", testBatchAtomic},
	{"BatchKeepsEveryOptionOfItsJobs", testBatchKeepsOptions},
	{"BatchCountersFollowCompleteFailCancelRetry", testBatchCounters},
	{"BatchStatusPendingProcessingCompleted", testBatchStatusCompleted},
	{"BatchAllFailedIsFailed", testBatchAllFailed},
	{"BatchFailFastCancelsPendingSiblingsOnly", testBatchFailFast},
	{"BatchFailFastOnRescuedLease", testBatchFailFastRescue},
	{"BatchCollectErrorsReportsFailedJobs", testBatchCollectErrors},
	{"BatchWithDuplicateReturnsTheLiveJobAndCountsTheRest", testBatchDuplicate},
}

func enqueueBatch(t *testing.T, s store.Store, p store.EnqueueBatchParams) *store.BatchEnqueued {
	t.Helper()
	if p.Now.IsZero() {
		p.Now = base
	}
	got, err := s.EnqueueBatch(t.Context(), p)
	require.NoError(t, err, "enqueue batch")
	require.Len(t, got.Jobs, len(p.Jobs))
	return got
}

func getBatch(t *testing.T, s store.Store, id uuid.UUID) *store.Batch {
	t.Helper()
	b, err := s.GetBatch(t.Context(), id)
	require.NoError(t, err, "get batch %s", id)
	return b
}

// requireBatch checks a batch's status and counters, and that the counters
// equal the counts of its jobs.
func requireBatch(t *testing.T, s store.Store, id uuid.UUID, status store.BatchStatus, completed, failed, cancelled int) *store.Batch {
	t.Helper()
	b := getBatch(t, s, id)
	require.Equal(t, status, b.Status, "batch status")
	require.Equal(t, completed, b.CompletedJobs, "completed_jobs")
	require.Equal(t, failed, b.FailedJobs, "failed_jobs")
	require.Equal(t, cancelled, b.CancelledJobs, "cancelled_jobs")
	require.Equal(t, b.TotalJobs-completed-failed-cancelled, b.PendingJobs, "pending_jobs")
	counts := map[job.Status]int{}
	total := 0
	for _, j := range listAll(t, s, store.ListParams{}) {
		if j.BatchID != nil && *j.BatchID == id {
			counts[j.Status]++
			total++
		}
	}
	require.Equal(t, total, b.TotalJobs, "total_jobs equals the batch's jobs")
	require.Equal(t, counts[job.StatusCompleted], b.CompletedJobs, "completed_jobs equals the jobs")
	require.Equal(t, counts[job.StatusFailed], b.FailedJobs, "failed_jobs equals the jobs")
	require.Equal(t, counts[job.StatusCancelled], b.CancelledJobs, "cancelled_jobs equals the jobs")
	if status == store.BatchCompleted || status == store.BatchFailed || status == store.BatchPartiallyFailed {
		require.NotNil(t, b.CompletedAt, "a finished batch has completed_at")
	} else {
		require.Nil(t, b.CompletedAt, "an unfinished batch has no completed_at")
	}
	return b
}

func batchJobs(n int) []store.NewJob {
	out := make([]store.NewJob, n)
	for i := range out {
		out[i] = newJob("batch")
	}
	return out
}

// leaseBatch leases n jobs of the batch queue at now.
func leaseBatch(t *testing.T, s store.Store, n int, now time.Time) []*job.Job {
	t.Helper()
	got := lease(t, s, store.LeaseParams{Limit: n, Queues: []string{"batch"}, Now: now})
	require.Len(t, got, n)
	return got
}

func testBatchEnqueue(t *testing.T, s store.Store) {
	got := enqueueBatch(t, s, store.EnqueueBatchParams{Name: "import", Jobs: batchJobs(3)})
	b := got.Batch
	require.NotEqual(t, uuid.Nil, b.ID)
	require.Equal(t, "import", b.Name)
	require.Equal(t, store.ContinueOnError, b.FailureMode, "the default failure mode")
	require.Equal(t, 3, b.TotalJobs)
	requireTime(t, base, b.CreatedAt, "created_at")
	for _, j := range got.Jobs {
		require.NotNil(t, j.BatchID)
		require.Equal(t, b.ID, *j.BatchID)
		require.Equal(t, b.ID, *get(t, s, j.ID).BatchID, "batch_id is stored")
	}
	requireBatch(t, s, b.ID, store.BatchPending, 0, 0, 0)

	_, err := s.GetBatch(t.Context(), uuid.New())
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testBatchRejects(t *testing.T, s store.Store) {
	for name, p := range map[string]store.EnqueueBatchParams{
		"too many": {Jobs: batchJobs(store.MaxBatchJobs + 1)},
		"none":     {},
		"bad mode": {FailureMode: "sometimes", Jobs: batchJobs(1)},
		"bad job":  {Jobs: []store.NewJob{newJob("batch"), {Queue: ""}}},
	} {
		_, err := s.EnqueueBatch(t.Context(), p)
		require.ErrorIs(t, err, store.ErrInvalid, name)
	}
	require.Empty(t, listAll(t, s, store.ListParams{}), "a rejected batch writes nothing")
}

func testBatchCounters(t *testing.T, s store.Store) {
	b := enqueueBatch(t, s, store.EnqueueBatchParams{Jobs: batchJobs(4)}).Batch
	js := leaseBatch(t, s, 3, base)
	require.Equal(t, store.BatchProcessing, getBatch(t, s, b.ID).Status, "a running job makes the batch processing")

	require.Empty(t, complete(t, s, base.Add(time.Second), store.Completion{LeaseRef: ref(js[0])}))
	requireBatch(t, s, b.ID, store.BatchProcessing, 1, 0, 0)
	res := fail(t, s, base.Add(2*time.Second), store.Failure{LeaseRef: ref(js[1]), Error: "boom"})
	require.Len(t, res.Failed, 1)
	requireBatch(t, s, b.ID, store.BatchProcessing, 1, 1, 0)
	retried := fail(t, s, base.Add(3*time.Second), store.Failure{LeaseRef: ref(js[2]), Error: "again", Retry: true})
	require.Len(t, retried.Retried, 1, "a retried attempt is not a finished job")
	requireBatch(t, s, b.ID, store.BatchProcessing, 1, 1, 0)

	pending := listAll(t, s, store.ListParams{Queue: "batch", Status: job.StatusPending})
	require.Len(t, pending, 2)
	cancel(t, s, pending[0].ID, base.Add(4*time.Second))
	cancel(t, s, pending[1].ID, base.Add(4*time.Second))
	requireBatch(t, s, b.ID, store.BatchPartiallyFailed, 1, 1, 2)

	_, err := s.Retry(t.Context(), store.RetryParams{ID: js[1].ID, Now: base.Add(5 * time.Second)})
	require.NoError(t, err)
	requireBatch(t, s, b.ID, store.BatchProcessing, 1, 0, 2)
	_, err = s.Retry(t.Context(), store.RetryParams{ID: pending[0].ID, Now: base.Add(5 * time.Second)})
	require.NoError(t, err)
	requireBatch(t, s, b.ID, store.BatchProcessing, 1, 0, 1)
}

func testBatchStatusCompleted(t *testing.T, s store.Store) {
	b := enqueueBatch(t, s, store.EnqueueBatchParams{Jobs: batchJobs(2)}).Batch
	requireBatch(t, s, b.ID, store.BatchPending, 0, 0, 0)
	js := leaseBatch(t, s, 2, base)
	require.Empty(t, complete(t, s, base.Add(time.Second), store.Completion{LeaseRef: ref(js[0])}, store.Completion{LeaseRef: ref(js[1])}))
	got := requireBatch(t, s, b.ID, store.BatchCompleted, 2, 0, 0)
	requireTimePtr(t, base.Add(time.Second), got.CompletedAt, "completed_at")
}

func testBatchAllFailed(t *testing.T, s store.Store) {
	b := enqueueBatch(t, s, store.EnqueueBatchParams{Jobs: batchJobs(2)}).Batch
	js := leaseBatch(t, s, 1, base)
	fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(js[0]), Error: "boom"})
	rest := listAll(t, s, store.ListParams{Queue: "batch", Status: job.StatusPending})
	require.Len(t, rest, 1)
	cancel(t, s, rest[0].ID, base.Add(2*time.Second))
	requireBatch(t, s, b.ID, store.BatchFailed, 0, 1, 1)
}

func testBatchFailFast(t *testing.T, s store.Store) {
	got := enqueueBatch(t, s, store.EnqueueBatchParams{FailureMode: store.FailFast, Jobs: batchJobs(4)})
	other := enqueueBatch(t, s, store.EnqueueBatchParams{FailureMode: store.FailFast, Jobs: []store.NewJob{newJob("other")}})
	js := leaseBatch(t, s, 2, base)
	res := fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(js[0]), Error: "boom"})
	require.Len(t, res.Failed, 1)
	requireBatch(t, s, got.Batch.ID, store.BatchProcessing, 0, 1, 2)
	require.Equal(t, job.StatusRunning, get(t, s, js[1].ID).Status, "a running sibling finishes")
	require.Empty(t, complete(t, s, base.Add(2*time.Second), store.Completion{LeaseRef: ref(js[1])}),
		"the running sibling's token is still valid")
	requireBatch(t, s, got.Batch.ID, store.BatchPartiallyFailed, 1, 1, 2)
	requireBatch(t, s, other.Batch.ID, store.BatchPending, 0, 0, 0)
}

func testBatchFailFastRescue(t *testing.T, s store.Store) {
	one := newJob("batch")
	one.MaxAttempts = 1
	got := enqueueBatch(t, s, store.EnqueueBatchParams{FailureMode: store.FailFast, Jobs: []store.NewJob{one, newJob("batch")}})
	leased := lease(t, s, store.LeaseParams{Limit: 1, Queues: []string{"batch"}, Now: base})
	require.Len(t, leased, 1)
	res := rescue(t, s, store.RescueParams{Now: base.Add(leaseFor)})
	require.Len(t, res.Failed, 1, "the expired lease with no attempt left fails")
	requireBatch(t, s, got.Batch.ID, store.BatchFailed, 0, 1, 1)
}

func testBatchCollectErrors(t *testing.T, s store.Store) {
	got := enqueueBatch(t, s, store.EnqueueBatchParams{FailureMode: store.CollectErrors, Jobs: batchJobs(3)})
	js := leaseBatch(t, s, 3, base)
	fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(js[0]), Error: "first broke"})
	fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(js[1]), Error: "second broke"})
	require.Equal(t, job.StatusRunning, get(t, s, js[2].ID).Status, "collect_errors leaves siblings alone")
	b := requireBatch(t, s, got.Batch.ID, store.BatchProcessing, 0, 2, 0)
	want := map[uuid.UUID]string{js[0].ID: "first broke", js[1].ID: "second broke"}
	gotErrs := map[uuid.UUID]string{}
	for _, e := range b.Errors {
		gotErrs[e.JobID] = e.Error
	}
	require.Equal(t, want, gotErrs)

	plain := enqueueBatch(t, s, store.EnqueueBatchParams{Jobs: []store.NewJob{newJob("plain")}})
	j := lease(t, s, store.LeaseParams{Limit: 1, Queues: []string{"plain"}, Now: base})[0]
	fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(j), Error: "x"})
	require.Empty(t, getBatch(t, s, plain.Batch.ID).Errors, "only collect_errors batches list errors")
}

func testBatchDuplicate(t *testing.T, s store.Store) {
	live := enqueue(t, s, base, uniqueJob("held"))[0]
	dup := newJob("batch")
	dup.UniqueKey = "held"
	got := enqueueBatch(t, s, store.EnqueueBatchParams{Jobs: []store.NewJob{newJob("batch"), dup, newJob("batch")}})
	require.True(t, got.Jobs[1].Duplicate)
	require.Equal(t, live.ID, got.Jobs[1].ID)
	require.Nil(t, get(t, s, live.ID).BatchID, "the live job keeps its own batch")
	require.False(t, got.Jobs[0].Duplicate)
	require.False(t, got.Jobs[2].Duplicate)
	require.Equal(t, 2, got.Batch.TotalJobs, "the duplicate is not part of the batch")
	requireBatch(t, s, got.Batch.ID, store.BatchPending, 0, 0, 0)
}

func testBatchMaxSize(t *testing.T, s store.Store) {
	got := enqueueBatch(t, s, store.EnqueueBatchParams{Jobs: batchJobs(store.MaxBatchJobs)})
	require.Equal(t, store.MaxBatchJobs, got.Batch.TotalJobs)
	require.Equal(t, store.MaxBatchJobs, got.Batch.PendingJobs)
	seen := make(map[uuid.UUID]bool, len(got.Jobs))
	for _, j := range got.Jobs {
		seen[j.ID] = true
	}
	require.Len(t, seen, store.MaxBatchJobs, "every job has its own id")
	stats := queueStats(t, s)
	require.Equal(t, []store.QueueCount{{Queue: "batch", Status: job.StatusPending, Count: store.MaxBatchJobs}}, stats)
}

// testBatchAtomic: the last of 2,500 jobs (more than one multi-row INSERT
// on MySQL) reuses an existing id, so the database rejects it only after the
// rest were written; one transaction means none of them, nor the batch row,
// stays. 2,500 rather than the maximum keeps SQLite under -race quick.
func testBatchAtomic(t *testing.T, s store.Store) {
	existing := enqueue(t, s, base, newJob("other"))[0]
	jobs := batchJobs(2500)
	jobs[len(jobs)-1].ID = existing.ID
	id := uuid.New()
	_, err := s.EnqueueBatch(t.Context(), store.EnqueueBatchParams{ID: id, Jobs: jobs, Now: base})
	require.Error(t, err, "an id that already exists cannot be enqueued again")
	_, err = s.GetBatch(t.Context(), id)
	require.ErrorIs(t, err, store.ErrNotFound, "no batch row")
	require.Equal(t, []store.QueueCount{{Queue: "other", Status: job.StatusPending, Count: 1}}, queueStats(t, s), "no job of the batch")
}

// testBatchKeepsOptions: a job's options (retry policy, timeout, result TTL,
// priority, schedule, max attempts, unique key, tracing) are stored the
// same whether it is enqueued alone or in a batch.
func testBatchKeepsOptions(t *testing.T, s store.Store) {
	jitter := 0.5
	opts := func(key string) store.NewJob {
		return store.NewJob{
			Queue: "batch", Payload: []byte(`{"n":1}`), Priority: job.PriorityCritical,
			ScheduledAt: base.Add(time.Hour), MaxAttempts: 9, Timeout: 12 * time.Second, ResultTTL: 3 * time.Hour,
			RetryPolicy: &job.RetryPolicy{Strategy: job.StrategyFibonacci, Initial: job.Duration(time.Second),
				Max: job.Duration(time.Minute), Jitter: &jitter, JitterMode: job.JitterMultiplicative},
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", CorrelationID: "c-1", UniqueKey: key,
		}
	}
	alone := enqueue(t, s, base, opts("alone"))[0]
	got := enqueueBatch(t, s, store.EnqueueBatchParams{Jobs: []store.NewJob{opts("in-batch")}, Now: base})
	inBatch := get(t, s, got.Jobs[0].ID)
	requireSameJob(t, got.Jobs[0], inBatch)

	want := canonical(alone)
	want.ID, want.BatchID, want.UniqueKey = inBatch.ID, &got.Batch.ID, "in-batch"
	require.Equal(t, want, canonical(inBatch), "the batch path stores what Enqueue stores")
}
