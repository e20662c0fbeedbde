package storetest

import (
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
	{"DeleteFinishedRemovesAFinishedWorkflowWithItsLastJob", testDeleteFinishedWorkflowRow},
	{"DeleteFinishedRemovesAFinishedBatchWithItsLastJob", testDeleteFinishedBatchRow},
	{"ConcurrentDeleteFinishedLeavesNoEmptyWorkflowOrBatch", testDeleteFinishedConcurrentOwners},
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

func requireWorkflowGone(t *testing.T, s store.Store, id uuid.UUID) {
	t.Helper()
	_, err := s.GetWorkflow(t.Context(), id)
	require.ErrorIs(t, err, store.ErrNotFound, "workflow %s was deleted", id)
}

func requireBatchGone(t *testing.T, s store.Store, id uuid.UUID) {
	t.Helper()
	_, err := s.GetBatch(t.Context(), id)
	require.ErrorIs(t, err, store.ErrNotFound, "batch %s was deleted", id)
}

// testDeleteFinishedWorkflowRow: a finished workflow's row goes in the pass
// that deletes its last job, not before (its counters would describe jobs
// still listed) and not never (they would describe deleted jobs); a live
// workflow's row stays.
func testDeleteFinishedWorkflowRow(t *testing.T, s store.Store) {
	done := enqueueWorkflow(t, s, definition(workflow.ContinueOnFailure, step("a"), step("b")), base)
	l := done.leaseSteps(base, "a", "b")
	done.complete(base.Add(time.Second), l["a"])
	done.fail(base.Add(time.Second), l["b"])
	done.requireWorkflowStatus(workflow.StatusFailed)

	live := enqueueWorkflow(t, s, definition(workflow.FailFast, step("p"), step("q", "p")), base)
	p := live.leaseSteps(base.Add(time.Second), "p")["p"]
	live.complete(base.Add(2*time.Second), p)
	live.requireWorkflowStatus(workflow.StatusRunning)

	end := base.Add(24 * time.Hour)
	require.Equal(t, 1, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: store.FinishedFilter{Status: job.StatusCompleted, Before: end}}),
		"the finished workflow's completed job goes, the running workflow's stays")
	done.record()
	require.Equal(t, job.StatusFailed, done.job("b").Status, "the failed job is kept longer")

	require.Equal(t, 1, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: store.FinishedFilter{Status: job.StatusFailed, Before: end}}))
	requireWorkflowGone(t, s, done.id)
	live.requireStatus("p", job.StatusCompleted, job.DependencyNone)
	live.requireWorkflowStatus(workflow.StatusRunning)
}

// testDeleteFinishedBatchRow: a finished batch's row goes with its last job;
// a batch with a pending job keeps its row.
func testDeleteFinishedBatchRow(t *testing.T, s store.Store) {
	done := enqueueBatch(t, s, store.EnqueueBatchParams{Jobs: batchJobs(2)}).Batch
	js := leaseBatch(t, s, 2, base)
	require.Empty(t, complete(t, s, base.Add(time.Second), store.Completion{LeaseRef: ref(js[0])}, store.Completion{LeaseRef: ref(js[1])}))
	requireBatch(t, s, done.ID, store.BatchCompleted, 2, 0, 0)
	open := enqueueBatch(t, s, store.EnqueueBatchParams{Jobs: batchJobs(2), Now: base.Add(2 * time.Second)}).Batch
	o := leaseBatch(t, s, 1, base.Add(2*time.Second))
	require.Empty(t, complete(t, s, base.Add(3*time.Second), store.Completion{LeaseRef: ref(o[0])}))

	f := store.FinishedFilter{Status: job.StatusCompleted, Before: base.Add(2 * time.Second)}
	require.Equal(t, 1, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: f, Limit: 1}))
	getBatch(t, s, done.ID)
	require.Equal(t, 1, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: f, Limit: 1}))
	requireBatchGone(t, s, done.ID)

	f.Before = time.Time{}
	require.Equal(t, 1, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: f}))
	require.Equal(t, store.BatchProcessing, getBatch(t, s, open.ID).Status, "a batch with a pending job keeps its row")
}

// testDeleteFinishedConcurrentOwners runs several cleaners at once over the
// jobs of one workflow and one batch: whichever deletes the last job, the
// rows must go, never be left empty because each cleaner saw the other's
// jobs still there.
func testDeleteFinishedConcurrentOwners(t *testing.T, s store.Store) {
	const n = 40
	steps := make([]workflow.Step, n)
	for i := range steps {
		steps[i] = step(fmt.Sprintf("s%02d", i))
	}
	w := enqueueWorkflow(t, s, definition(workflow.FailFast, steps...), base)
	var wfJobs []*job.Job
	for _, j := range w.leaseSteps(base, stepNames(steps)...) {
		wfJobs = append(wfJobs, j)
	}
	w.complete(base.Add(time.Second), wfJobs...)
	w.requireWorkflowStatus(workflow.StatusCompleted)

	b := enqueueBatch(t, s, store.EnqueueBatchParams{Jobs: batchJobs(n), Now: base.Add(time.Second)}).Batch
	bj := leaseBatch(t, s, n, base.Add(time.Second))
	cs := make([]store.Completion, n)
	for i, j := range bj {
		cs[i] = store.Completion{LeaseRef: ref(j)}
	}
	require.Empty(t, complete(t, s, base.Add(2*time.Second), cs...))
	requireBatch(t, s, b.ID, store.BatchCompleted, n, 0, 0)

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				got, err := s.DeleteFinished(t.Context(), store.DeleteFinishedParams{
					FinishedFilter: store.FinishedFilter{Status: job.StatusCompleted}, Limit: 3})
				if err != nil {
					errs <- err
					return
				}
				if got == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "a concurrent cleaner")
	}
	require.Zero(t, countFinished(t, s, store.FinishedFilter{Status: job.StatusCompleted}), "every job went")
	requireWorkflowGone(t, s, w.id)
	requireBatchGone(t, s, b.ID)
}

func stepNames(steps []workflow.Step) []string {
	out := make([]string, len(steps))
	for i, st := range steps {
		out[i] = st.Name
	}
	return out
}
