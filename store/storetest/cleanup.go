package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
	{"DeleteFinishedNeverDeletesAJobOfAWorkflow", testDeleteFinishedSparesWorkflows},
	{"DeleteFinishedRemovesEdgesAndKeepsChildren", testDeleteFinishedEdges},
	{"DeleteFinishedRejectsUnfinishedStatus", testDeleteFinishedRejectsUnfinished},
	{"DeleteFinishedWorkflowsDeletesAWorkflowWholeOncePastItsLongestRetention", testDeleteFinishedWorkflowWhole},
	{"DeleteFinishedWorkflowsKeepsAWorkflowWithAStatusKeptForever", testDeleteFinishedWorkflowKeptForever},
	{"DeleteFinishedWorkflowsRespectsLimitAndSparesLiveWorkflows", testDeleteFinishedWorkflowsLimit},
	{"RetryOfAWorkflowPastItsCompletedRetentionStillCompletes", testRetryAfterPartialRetention},
	{"DeleteFinishedWorkflowsRacingRetriesLeavesEachWorkflowWholeOrGone", testDeleteFinishedWorkflowsRaceRetry},
	{"DeleteFinishedRemovesAFinishedBatchWithItsLastJob", testDeleteFinishedBatchRow},
	{"ConcurrentDeleteFinishedLeavesNoEmptyBatchOrWorkflow", testDeleteFinishedConcurrentOwners},
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

// testDeleteFinishedSparesWorkflows: per-status retention never takes a job
// of a workflow, live or finished, whatever its age; jobs outside workflows
// in the same statuses go.
func testDeleteFinishedSparesWorkflows(t *testing.T, s store.Store) {
	live := enqueueWorkflow(t, s, definition(workflow.ContinueOnFailure,
		step("a"), step("b", "a"), step("x"), step("y", "x")), base)
	leased := live.leaseSteps(base, "a", "x")
	live.fail(base.Add(time.Second), leased["a"])
	live.requireWorkflowStatus(workflow.StatusRunning)

	done := enqueueWorkflow(t, s, definition(workflow.ContinueOnFailure, step("m"), step("n"), step("o", "m")), base)
	dl := done.leaseSteps(base.Add(time.Second), "m", "n")
	done.complete(base.Add(2*time.Second), dl["n"])
	done.fail(base.Add(2*time.Second), dl["m"])
	done.requireWorkflowStatus(workflow.StatusFailed)
	alone := finished(t, s)

	end := base.Add(24 * time.Hour)
	for _, st := range []job.Status{job.StatusCompleted, job.StatusFailed, job.StatusCancelled} {
		f := store.FinishedFilter{Status: st, Before: end}
		require.Equal(t, 1, countFinished(t, s, f), "only the %s job outside workflows is counted", st)
		require.Equal(t, 1, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: f}), "only the %s job outside workflows is deleted", st)
	}
	for _, j := range alone {
		requireGone(t, s, j)
	}
	for _, name := range []string{"a", "b", "x", "y"} {
		live.job(name)
	}
	for _, name := range []string{"m", "n", "o"} {
		done.job(name)
	}
	live.requireCounters()
	done.requireWorkflowStatus(workflow.StatusFailed)
}

// cutoffs are DeleteWorkflowsParams cutoffs for completed, failed,
// cancelled and skipped jobs; a zero time keeps that status forever.
func cutoffs(completed, failed, cancelled, skipped time.Time) map[job.Status]time.Time {
	out := map[job.Status]time.Time{}
	for st, at := range map[job.Status]time.Time{job.StatusCompleted: completed, job.StatusFailed: failed,
		job.StatusCancelled: cancelled, job.StatusSkipped: skipped} {
		if !at.IsZero() {
			out[st] = at
		}
	}
	return out
}

func deleteWorkflows(t *testing.T, s store.Store, p store.DeleteWorkflowsParams) int {
	t.Helper()
	n, err := s.DeleteFinishedWorkflows(t.Context(), p)
	require.NoError(t, err, "delete finished workflows")
	return n
}

// requireWorkflowWhollyGone checks that no job, edge or row of a workflow
// is left.
func (w *wf) requireWhollyGone() {
	w.t.Helper()
	requireWorkflowGone(w.t, w.s, w.id)
	for name, id := range w.jobs {
		_, err := w.s.Get(w.t.Context(), id)
		require.ErrorIs(w.t, err, store.ErrNotFound, "step %s went with its workflow", name)
	}
	require.Empty(w.t, listAll(w.t, w.s, store.ListParams{WorkflowID: &w.id}), "no job of the workflow is listed")
}

// testDeleteFinishedWorkflowWhole: a failed workflow with a completed and a
// failed job stays whole while its failed job is within the failed
// retention, even though the completed one is past its own, and then goes
// whole, with the edge to a child outside it; that child stays.
func testDeleteFinishedWorkflowWhole(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition(workflow.ContinueOnFailure, step("a"), step("b", "a")), base)
	a := w.leaseSteps(base, "a")["a"]
	w.complete(base.Add(time.Second), a)
	b := w.leaseSteps(base.Add(2*time.Second), "b")["b"]
	kid := enqueue(t, s, base.Add(2*time.Second), child(w.job("a")))[0]
	require.Equal(t, job.DependencySatisfied, kid.DependencyStatus)
	w.fail(base.Add(3*time.Second), b)
	w.requireWorkflowStatus(workflow.StatusFailed)

	end := base.Add(time.Hour)
	require.Zero(t, deleteWorkflows(t, s, store.DeleteWorkflowsParams{Cutoffs: cutoffs(end, base.Add(3*time.Second), end, end)}),
		"the failed job finished at the failed cutoff, not before it: the whole workflow stays")
	require.Zero(t, deleteWorkflows(t, s, store.DeleteWorkflowsParams{Cutoffs: cutoffs(base.Add(2*time.Second), end, end, end)}),
		"the failed job (at +3s) is not before the completed cutoff, the longest retention among the statuses")
	w.job("a")
	w.requireWorkflowStatus(workflow.StatusFailed)

	require.Equal(t, 1, deleteWorkflows(t, s, store.DeleteWorkflowsParams{Cutoffs: cutoffs(base.Add(4*time.Second), base.Add(4*time.Second), end, end)}))
	w.requireWhollyGone()
	got := get(t, s, kid.ID)
	require.Equal(t, job.StatusPending, got.Status, "a child outside the workflow stays")
	require.Empty(t, got.Dependents)
	require.Equal(t, kid.ID, leaseOne(t, s, base.Add(5*time.Second)).ID, "and still runs")
	require.Zero(t, deleteWorkflows(t, s, store.DeleteWorkflowsParams{Cutoffs: cutoffs(end, end, end, end)}), "nothing is left")
}

// testDeleteFinishedWorkflowKeptForever: a status without a cutoff keeps
// every workflow with a job in it.
func testDeleteFinishedWorkflowKeptForever(t *testing.T, s store.Store) {
	w := enqueueWorkflow(t, s, definition(workflow.FailFast, step("a"), step("b", "a")), base)
	a := w.leaseSteps(base, "a")["a"]
	w.fail(base.Add(time.Second), a)
	w.requireWorkflowStatus(workflow.StatusFailed)
	end := base.Add(time.Hour)
	require.Zero(t, deleteWorkflows(t, s, store.DeleteWorkflowsParams{Cutoffs: cutoffs(end, time.Time{}, end, end)}),
		"failed jobs are kept forever, and so is their workflow")
	require.Zero(t, deleteWorkflows(t, s, store.DeleteWorkflowsParams{}), "no cutoff at all keeps everything")
	w.requireWorkflowStatus(workflow.StatusFailed)
	require.Equal(t, 1, deleteWorkflows(t, s, store.DeleteWorkflowsParams{Cutoffs: cutoffs(time.Time{}, end, end, end)}),
		"a status none of its jobs is in does not keep it")
	w.requireWhollyGone()
}

// testDeleteFinishedWorkflowsLimit: a call deletes at most Limit workflows;
// running and paused workflows and their finished jobs stay, whatever
// their age.
func testDeleteFinishedWorkflowsLimit(t *testing.T, s store.Store) {
	var done []*wf
	for range 3 {
		w := enqueueWorkflow(t, s, definition(workflow.FailFast, step("a")), base)
		_, err := s.CancelWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base})
		require.NoError(t, err)
		done = append(done, w)
	}
	paused := enqueueWorkflow(t, s, definition(workflow.Manual, step("m"), step("n")), base)
	pl := paused.leaseSteps(base.Add(time.Second), "m", "n")
	paused.complete(base.Add(2*time.Second), pl["n"])
	paused.fail(base.Add(2*time.Second), pl["m"])
	paused.requireWorkflowStatus(workflow.StatusPaused)
	live := enqueueWorkflow(t, s, definition(workflow.FailFast, step("p"), step("q", "p")), base)
	p := live.leaseSteps(base, "p")["p"]
	live.complete(base.Add(time.Second), p)

	end := base.Add(24 * time.Hour)
	all := store.DeleteWorkflowsParams{Cutoffs: cutoffs(end, end, end, end), Limit: 2}
	require.Equal(t, 2, deleteWorkflows(t, s, all))
	require.Equal(t, 1, deleteWorkflows(t, s, all))
	require.Zero(t, deleteWorkflows(t, s, all))
	for _, w := range done {
		w.requireWhollyGone()
	}
	live.requireStatus("p", job.StatusCompleted, job.DependencyNone)
	live.requireWorkflowStatus(workflow.StatusRunning)
	paused.requireStatus("n", job.StatusCompleted, job.DependencyNone)
	paused.requireWorkflowStatus(workflow.StatusPaused)
}

// testRetryAfterPartialRetention is the case retention used to break: with
// the default retention (completed 7 days, failed 30), a failed workflow
// eight days on is still whole, so retrying it runs the failed step with
// its parent's result and completes.
func testRetryAfterPartialRetention(t *testing.T, s store.Store) {
	b := step("b", "a")
	b.Condition = "parents.a.from == 'a'"
	w := enqueueWorkflow(t, s, definition(workflow.ContinueOnFailure, step("a"), b), base)
	a := w.leaseSteps(base, "a")["a"]
	w.complete(base.Add(time.Second), a)
	lb := w.leaseSteps(base.Add(2*time.Second), "b")["b"]
	w.fail(base.Add(3*time.Second), lb)
	w.requireWorkflowStatus(workflow.StatusFailed)

	now := base.Add(8 * 24 * time.Hour)
	keep := map[job.Status]time.Duration{job.StatusCompleted: 7 * 24 * time.Hour, job.StatusFailed: 30 * 24 * time.Hour,
		job.StatusCancelled: 30 * 24 * time.Hour, job.StatusSkipped: 7 * 24 * time.Hour}
	retention := func(st job.Status) time.Duration { return keep[st] }
	for _, st := range store.FinishedStatuses {
		f := store.FinishedFilter{Status: st, Before: now.Add(-keep[st])}
		require.Zero(t, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: f}), "no %s job of the workflow goes alone", st)
	}
	require.Zero(t, deleteWorkflows(t, s, store.DeleteWorkflowsParams{Cutoffs: store.RetentionCutoffs(now, retention)}))

	_, err := s.RetryWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: now})
	require.NoError(t, err)
	lb = w.leaseSteps(now, "b")["b"]
	parents, err := s.ParentResults(t.Context(), lb.ID)
	require.NoError(t, err)
	require.JSONEq(t, `{"from":"a"}`, string(parents["a"]), "the parent's result is still there")
	w.complete(now.Add(time.Second), lb)
	w.requireWorkflowStatus(workflow.StatusCompleted)

	later := now.Add(7*24*time.Hour + 2*time.Second)
	require.Equal(t, 1, deleteWorkflows(t, s, store.DeleteWorkflowsParams{Cutoffs: store.RetentionCutoffs(later, retention)}),
		"seven days after the retried run completed, the completed workflow goes")
	w.requireWhollyGone()
}

// testDeleteFinishedWorkflowsRaceRetry runs cleaners and workflow retries
// at once over many failed workflows: each must end either gone entirely
// or running with every job and true counters, never half deleted.
func testDeleteFinishedWorkflowsRaceRetry(t *testing.T, s store.Store) {
	const n = 12
	ws := make([]*wf, n)
	for i := range ws {
		w := enqueueWorkflow(t, s, definition(workflow.FailFast, step("a"), step("b", "a"), step("c", "a")), base)
		_, err := s.CancelWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base})
		require.NoError(t, err)
		ws[i] = w
	}
	end := base.Add(time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, n+2)
	for range 2 {
		wg.Go(func() {
			for {
				got, err := s.DeleteFinishedWorkflows(t.Context(), store.DeleteWorkflowsParams{Cutoffs: cutoffs(end, end, end, end), Limit: 2})
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
	for _, w := range ws {
		wg.Go(func() {
			_, err := s.RetryWorkflow(t.Context(), store.WorkflowParams{ID: w.id, Now: base.Add(time.Minute)})
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, w := range ws {
		if _, err := s.GetWorkflow(t.Context(), w.id); errors.Is(err, store.ErrNotFound) {
			w.requireWhollyGone()
			continue
		}
		r := w.requireWorkflowStatus(workflow.StatusRunning)
		require.Equal(t, 3, r.Stats.TotalJobs)
		w.requireStatus("a", job.StatusPending, job.DependencyNone)
	}
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
// jobs of one batch and over many finished workflows: whichever deletes the
// batch's last job, its row must go, never be left empty because each
// cleaner saw the other's jobs still there; each workflow goes once, whole.
func testDeleteFinishedConcurrentOwners(t *testing.T, s store.Store) {
	const n = 40
	steps := make([]workflow.Step, 4)
	for i := range steps {
		steps[i] = step(fmt.Sprintf("s%02d", i))
	}
	var ws []*wf
	for range 10 {
		w := enqueueWorkflow(t, s, definition(workflow.FailFast, steps...), base)
		var wfJobs []*job.Job
		for _, j := range w.leaseSteps(base, stepNames(steps)...) {
			wfJobs = append(wfJobs, j)
		}
		w.complete(base.Add(time.Second), wfJobs...)
		w.requireWorkflowStatus(workflow.StatusCompleted)
		ws = append(ws, w)
	}

	b := enqueueBatch(t, s, store.EnqueueBatchParams{Jobs: batchJobs(n), Now: base.Add(time.Second)}).Batch
	bj := leaseBatch(t, s, n, base.Add(time.Second))
	cs := make([]store.Completion, n)
	for i, j := range bj {
		cs[i] = store.Completion{LeaseRef: ref(j)}
	}
	require.Empty(t, complete(t, s, base.Add(2*time.Second), cs...))
	requireBatch(t, s, b.ID, store.BatchCompleted, n, 0, 0)

	var wg sync.WaitGroup
	var deleted atomic.Int64
	errs := make(chan error, 4)
	end := base.Add(time.Hour)
	for range 4 {
		wg.Go(func() {
			for {
				got, err := s.DeleteFinished(t.Context(), store.DeleteFinishedParams{
					FinishedFilter: store.FinishedFilter{Status: job.StatusCompleted}, Limit: 3})
				if err != nil {
					errs <- err
					return
				}
				wfs, err := s.DeleteFinishedWorkflows(t.Context(), store.DeleteWorkflowsParams{Cutoffs: cutoffs(end, end, end, end), Limit: 2})
				if err != nil {
					errs <- err
					return
				}
				deleted.Add(int64(wfs))
				if got == 0 && wfs == 0 {
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
	require.Equal(t, int64(len(ws)), deleted.Load(), "each workflow is deleted once")
	for _, w := range ws {
		w.requireWhollyGone()
	}
	requireBatchGone(t, s, b.ID)
}

func stepNames(steps []workflow.Step) []string {
	out := make([]string, len(steps))
	for i, st := range steps {
		out[i] = st.Name
	}
	return out
}
