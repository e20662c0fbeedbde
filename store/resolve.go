package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// The rules of dependency resolution, failure policies and workflow counters
// live here once. A backend supplies SQL primitives (ResolveTx) that run inside
// the transaction of the job change, and calls Resolve (or one of the
// workflow operations below) with the changes it made, so every dialect
// decides the same things the same way.

// JobChange is one job transition a backend made in the current transaction.
type JobChange struct {
	ID         uuid.UUID
	WorkflowID *uuid.UUID
	// BatchID is the job's batch. Backends set it on the changes they pass
	// to Resolve and RetryJob; resolution looks it up for the changes it
	// makes itself.
	BatchID *uuid.UUID
	// From is the status before; it matters only when terminal (a retried
	// job leaves a counter).
	From job.Status
	To   job.Status
	// Dependents is true when the job may have children. A backend that
	// cannot tell cheaply sets it true; false skips the children lookup.
	Dependents bool
}

// ReadyChild is a job whose last unresolved parent just resolved and whose
// condition is still to be evaluated.
type ReadyChild struct {
	ID         uuid.UUID
	WorkflowID *uuid.UUID
	Condition  string
}

// ConditionFailure is a job whose condition could not be evaluated.
type ConditionFailure struct {
	ID      uuid.UUID
	Message string
}

// WorkflowState is the part of a workflow row resolution reads and writes,
// locked for the rest of the transaction.
type WorkflowState struct {
	ID            uuid.UUID
	Status        workflow.Status
	FailurePolicy workflow.FailurePolicy
	Timeout       time.Duration
	Total         int
	Completed     int
	Failed        int
	Cancelled     int
	Skipped       int
	ErrorMessage  string
	CompletedAt   *time.Time
	FailedAt      *time.Time
	// Deadline is when the workflow times out (nil: never). A retry that
	// reopens a finished workflow moves it to now + Timeout, so the timeout
	// check does not fail the retried workflow again at once.
	Deadline *time.Time
}

// Parent is one parent of a job, as a retry that refuses it names it.
type Parent struct {
	ID       uuid.UUID
	StepName string
	Status   job.Status
}

// ResolveTx is what a backend does in SQL inside one transaction. Every
// method changes only the rows it names and returns what it changed; the
// rules of what to call when are in this package.
type ResolveTx interface {
	BatchTx
	// DecrementChildren lowers pending_dependencies of every pending child
	// with dependency_status 'waiting' of the given parents by the number of
	// those parents it has (one update per child, using the edge index).
	// A child reaching zero without a condition becomes 'satisfied' in the
	// same statement; one with a condition stays 'waiting' and is returned.
	DecrementChildren(ctx context.Context, parents []uuid.UUID) ([]ReadyChild, error)
	// ParentResults returns, for each child, its parents' result_data keyed
	// by step name (by job id when a parent has none); a parent without a
	// result maps to JSON null.
	ParentResults(ctx context.Context, children []uuid.UUID) (map[uuid.UUID]map[string]json.RawMessage, error)
	// SatisfyJobs sets dependency_status 'satisfied' on pending jobs.
	SatisfyJobs(ctx context.Context, ids []uuid.UUID) error
	// SkipJobs moves pending jobs to status 'skipped', dependency_status
	// 'satisfied'.
	SkipJobs(ctx context.Context, ids []uuid.UUID) error
	// FailJobs moves pending jobs to 'failed' (failed_at = now,
	// error_message and an AttemptError with outcome "condition_error").
	FailJobs(ctx context.Context, failures []ConditionFailure, now time.Time) error
	// CancelDescendants cancels every pending or running descendant of the
	// roots (recursively over hammerwork_job_dependencies) with
	// dependency_status 'failed' and the lease cleared.
	CancelDescendants(ctx context.Context, roots []uuid.UUID) ([]JobChange, error)
	// CancelWorkflowJobs cancels every pending or running job of the
	// workflow, clearing leases.
	CancelWorkflowJobs(ctx context.Context, workflowID uuid.UUID) ([]JobChange, error)
	// DeadParents returns the parents of a job that are failed or
	// cancelled, in id order.
	DeadParents(ctx context.Context, id uuid.UUID) ([]Parent, error)
	// RecomputeDependencies sets pending_dependencies of the given pending
	// jobs to the number of their parents not completed or skipped, and
	// dependency_status to 'none' (no parents), 'waiting' (some left) or
	// 'satisfied' (none left). A job with no parent left but a condition
	// stays 'waiting' and is returned.
	RecomputeDependencies(ctx context.Context, ids []uuid.UUID) ([]ReadyChild, error)
	// LockWorkflow reads a workflow row and locks it for the transaction, or
	// returns ErrNotFound.
	LockWorkflow(ctx context.Context, id uuid.UUID) (*WorkflowState, error)
	// SaveWorkflow writes status, counters, error_message, completed_at,
	// failed_at and deadline of a locked workflow.
	SaveWorkflow(ctx context.Context, w *WorkflowState) error
}

// Resolve applies what the changes imply, inside the caller's transaction:
// resolved parents release their children (conditions evaluated; skipped
// children resolve theirs in turn), failed jobs apply their workflow's
// failure policy (a job outside a workflow: continue_on_failure), cancelled
// jobs cancel their descendants, and every touched workflow gets its
// counters and status.
func Resolve(ctx context.Context, tx ResolveTx, now time.Time, changes []JobChange) error {
	r := newResolver(tx, now)
	r.markEntry(changes)
	if err := r.lockFor(ctx, changes); err != nil {
		return err
	}
	if err := r.apply(ctx, changes); err != nil {
		return err
	}
	return r.save(ctx)
}

type resolver struct {
	tx        ResolveTx
	now       time.Time
	workflows map[uuid.UUID]*WorkflowState
	// failedNow marks workflows where a job failed in this transaction.
	failedNow map[uuid.UUID]bool
	// retried marks workflows where a job went back to pending.
	retried map[uuid.UUID]bool
	// changes are every job change counted so far, for the batch counters;
	// entry marks the ones the backend passed in (their BatchID is known).
	changes []JobChange
	entry   map[uuid.UUID]bool
	batches map[uuid.UUID]*BatchState
}

func newResolver(tx ResolveTx, now time.Time) *resolver {
	return &resolver{
		tx: tx, now: UTC(now),
		workflows: map[uuid.UUID]*WorkflowState{},
		failedNow: map[uuid.UUID]bool{},
		retried:   map[uuid.UUID]bool{},
		entry:     map[uuid.UUID]bool{},
		batches:   map[uuid.UUID]*BatchState{},
	}
}

// lockFor locks the workflows of changes in id order, so two transactions
// touching the same workflows never wait for each other in a cycle.
func (r *resolver) lockFor(ctx context.Context, changes []JobChange) error {
	var ids []uuid.UUID
	for _, c := range changes {
		if c.WorkflowID != nil {
			ids = append(ids, *c.WorkflowID)
		}
	}
	slices.SortFunc(ids, compareIDs)
	for _, id := range slices.Compact(ids) {
		if _, err := r.workflow(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// workflow returns the locked state of a workflow, or nil when its row is
// gone: its jobs then resolve like jobs outside a workflow, so a missing row
// never blocks the completion of a job.
func (r *resolver) workflow(ctx context.Context, id uuid.UUID) (*WorkflowState, error) {
	if w, ok := r.workflows[id]; ok {
		return w, nil
	}
	w, err := r.tx.LockWorkflow(ctx, id)
	if errors.Is(err, ErrNotFound) {
		r.workflows[id] = nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock workflow %s: %w", id, err)
	}
	r.workflows[id] = w
	return w, nil
}

// existing locks a workflow that an operation names, or says ErrNotFound.
func (r *resolver) existing(ctx context.Context, id uuid.UUID) (*WorkflowState, error) {
	w, err := r.workflow(ctx, id)
	if err == nil && w == nil {
		err = fmt.Errorf("workflow %s: %w", id, ErrNotFound)
	}
	return w, err
}

// count moves a workflow's counters by one change and records it for the
// batch counters.
func (r *resolver) count(ctx context.Context, c JobChange) error {
	r.changes = append(r.changes, c)
	if c.WorkflowID == nil {
		return nil
	}
	w, err := r.workflow(ctx, *c.WorkflowID)
	if err != nil || w == nil {
		return err
	}
	if p := w.counter(c.From); p != nil {
		*p--
	}
	if p := w.counter(c.To); p != nil {
		*p++
	}
	switch c.To {
	case job.StatusFailed:
		r.failedNow[w.ID] = true
	case job.StatusPending:
		r.retried[w.ID] = true
	}
	return nil
}

func (w *WorkflowState) counter(s job.Status) *int {
	switch s {
	case job.StatusCompleted:
		return &w.Completed
	case job.StatusFailed:
		return &w.Failed
	case job.StatusCancelled:
		return &w.Cancelled
	case job.StatusSkipped:
		return &w.Skipped
	}
	return nil
}

func (r *resolver) apply(ctx context.Context, changes []JobChange) error {
	var resolved []uuid.UUID
	var failed, cancelled []JobChange
	for _, c := range changes {
		if err := r.count(ctx, c); err != nil {
			return err
		}
		switch c.To {
		case job.StatusCompleted, job.StatusSkipped:
			if c.Dependents {
				resolved = append(resolved, c.ID)
			}
		case job.StatusFailed:
			failed = append(failed, c)
		case job.StatusCancelled:
			cancelled = append(cancelled, c)
		}
	}
	condFailed, err := r.release(ctx, resolved)
	if err != nil {
		return err
	}
	failed = append(failed, condFailed...)
	return r.applyFailures(ctx, failed, cancelled)
}

// release resolves the children of parents that completed or were skipped,
// transitively through children that are skipped. It returns the children
// whose condition failed to evaluate.
func (r *resolver) release(ctx context.Context, parents []uuid.UUID) ([]JobChange, error) {
	var failed []JobChange
	for len(parents) > 0 {
		ready, err := r.tx.DecrementChildren(ctx, parents)
		if err != nil {
			return nil, fmt.Errorf("resolve children: %w", err)
		}
		skipped, condFailed, err := r.evaluate(ctx, ready)
		if err != nil {
			return nil, err
		}
		failed = append(failed, condFailed...)
		parents = skipped
	}
	return failed, nil
}

// evaluate decides ready children by their conditions: true -> satisfied,
// false -> skipped (returned, so their children resolve), error -> failed.
func (r *resolver) evaluate(ctx context.Context, ready []ReadyChild) (skipped []uuid.UUID, failed []JobChange, err error) {
	if len(ready) == 0 {
		return nil, nil, nil
	}
	ids := make([]uuid.UUID, len(ready))
	for i, c := range ready {
		ids[i] = c.ID
	}
	results, err := r.tx.ParentResults(ctx, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("read parent results: %w", err)
	}
	var satisfied []uuid.UUID
	var failures []ConditionFailure
	for _, c := range ready {
		parents, err := GroupBatchResults(results[c.ID])
		if err != nil {
			return nil, nil, err
		}
		ok, evalErr := workflow.EvalCondition(c.Condition, parents)
		switch {
		case evalErr != nil:
			failures = append(failures, ConditionFailure{ID: c.ID, Message: evalErr.Error()})
			failed = append(failed, JobChange{ID: c.ID, WorkflowID: c.WorkflowID, From: job.StatusPending, To: job.StatusFailed, Dependents: true})
		case ok:
			satisfied = append(satisfied, c.ID)
		default:
			skipped = append(skipped, c.ID)
			if err := r.count(ctx, JobChange{ID: c.ID, WorkflowID: c.WorkflowID, From: job.StatusPending, To: job.StatusSkipped}); err != nil {
				return nil, nil, err
			}
		}
	}
	if len(satisfied) > 0 {
		if err := r.tx.SatisfyJobs(ctx, satisfied); err != nil {
			return nil, nil, fmt.Errorf("satisfy jobs: %w", err)
		}
	}
	if len(skipped) > 0 {
		if err := r.tx.SkipJobs(ctx, skipped); err != nil {
			return nil, nil, fmt.Errorf("skip jobs: %w", err)
		}
	}
	if len(failures) > 0 {
		if err := r.tx.FailJobs(ctx, failures, r.now); err != nil {
			return nil, nil, fmt.Errorf("fail jobs whose condition errs: %w", err)
		}
		for _, c := range failed {
			if err := r.count(ctx, c); err != nil {
				return nil, nil, err
			}
		}
	}
	return skipped, failed, nil
}

// applyFailures applies the failure policy of each failed job and cancels
// the descendants of failed (but not manual) and cancelled jobs. Descendants
// are found through the edges whatever workflow, or none, they belong to, so
// a job enqueued alone with depends_on into a workflow goes with its parent.
func (r *resolver) applyFailures(ctx context.Context, failed, cancelled []JobChange) error {
	var roots []uuid.UUID
	failFast := map[uuid.UUID]bool{}
	for _, c := range failed {
		if c.WorkflowID != nil {
			w, err := r.workflow(ctx, *c.WorkflowID)
			if err != nil {
				return err
			}
			if w != nil && w.FailurePolicy == workflow.Manual {
				continue
			}
			if w != nil && failsFast(w.FailurePolicy) {
				failFast[w.ID] = true
			}
		}
		roots = append(roots, c.ID)
	}
	for _, c := range cancelled {
		roots = append(roots, c.ID)
	}
	ids := make([]uuid.UUID, 0, len(failFast))
	for id := range failFast {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)
	// The workflow's own jobs are cancelled first, so those cancelled by
	// fail_fast keep their dependency_status; the walk below then reaches
	// only the descendants left pending or running elsewhere.
	for _, id := range ids {
		if err := r.cancelAll(ctx, id); err != nil {
			return err
		}
	}
	return r.cancelDescendants(ctx, roots)
}

// failsFast reports whether a policy is fail_fast, the default.
func failsFast(p workflow.FailurePolicy) bool {
	return p != workflow.Manual && p != workflow.ContinueOnFailure
}

// cancelAll cancels every unfinished job of a workflow and every unfinished
// descendant of those jobs outside it.
func (r *resolver) cancelAll(ctx context.Context, id uuid.UUID) error {
	changes, err := r.tx.CancelWorkflowJobs(ctx, id)
	if err != nil {
		return fmt.Errorf("cancel jobs of workflow %s: %w", id, err)
	}
	roots := make([]uuid.UUID, len(changes))
	for i, c := range changes {
		if err := r.count(ctx, c); err != nil {
			return err
		}
		roots[i] = c.ID
	}
	return r.cancelDescendants(ctx, roots)
}

// cancelDescendants cancels every unfinished descendant of the roots and
// counts each in its own workflow.
func (r *resolver) cancelDescendants(ctx context.Context, roots []uuid.UUID) error {
	if len(roots) == 0 {
		return nil
	}
	changes, err := r.tx.CancelDescendants(ctx, roots)
	if err != nil {
		return fmt.Errorf("cancel descendants: %w", err)
	}
	for _, c := range changes {
		if err := r.count(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// save settles and writes every batch and workflow the transaction touched.
// Batches go first: a fail_fast batch cancels jobs, which moves workflow
// counters and cancels descendants.
func (r *resolver) save(ctx context.Context) error {
	if err := r.settleBatches(ctx); err != nil {
		return err
	}
	for _, w := range r.workflows {
		if w == nil {
			continue
		}
		r.settle(w)
		if err := r.tx.SaveWorkflow(ctx, w); err != nil {
			return fmt.Errorf("save workflow %s: %w", w.ID, err)
		}
	}
	return nil
}

// settle derives a workflow's status from its counters and from what
// happened in this transaction.
func (r *resolver) settle(w *WorkflowState) {
	if r.retried[w.ID] && (w.Status == workflow.StatusFailed || w.Status == workflow.StatusCancelled ||
		(w.Status == workflow.StatusPaused && w.Failed == 0)) {
		r.reopen(w)
	}
	if w.Status != workflow.StatusRunning && w.Status != workflow.StatusPaused {
		return
	}
	switch {
	case w.Completed+w.Skipped == w.Total:
		w.Status = workflow.StatusCompleted
		w.CompletedAt = &r.now
	case r.failedNow[w.ID] && w.FailurePolicy == workflow.Manual:
		w.Status = workflow.StatusPaused
	case r.failedNow[w.ID] && w.FailurePolicy != workflow.ContinueOnFailure:
		w.Status = workflow.StatusFailed
		w.FailedAt = &r.now
	case w.Status == workflow.StatusRunning && w.Completed+w.Skipped+w.Failed+w.Cancelled == w.Total:
		if w.Failed > 0 {
			w.Status = workflow.StatusFailed
			w.FailedAt = &r.now
		} else {
			w.Status = workflow.StatusCancelled
		}
	}
}

// reopen sets a failed, cancelled or paused workflow running again. One that
// had finished gets a new deadline, now + its timeout, as a new run: without
// it the timeout check would fail the retried workflow again at once. A
// paused workflow keeps its deadline, since its clock never stopped.
func (r *resolver) reopen(w *WorkflowState) {
	if (w.Status == workflow.StatusFailed || w.Status == workflow.StatusCancelled) && w.Timeout > 0 {
		d := r.now.Add(w.Timeout)
		w.Deadline = &d
	}
	w.Status = workflow.StatusRunning
	w.FailedAt, w.CompletedAt, w.ErrorMessage = nil, nil, ""
}

// WorkflowTx is a ResolveTx that can also do the workflow-wide operations.
type WorkflowTx interface {
	ResolveTx
	// RequeueWorkflowJobs moves the workflow's failed and cancelled jobs to
	// pending (attempts 0, scheduled_at = now, failed_at and lease cleared)
	// and returns the ids of every pending job of the workflow afterwards.
	RequeueWorkflowJobs(ctx context.Context, workflowID uuid.UUID, now time.Time) ([]uuid.UUID, error)
	// CountWorkflowJobs counts the workflow's jobs per status.
	CountWorkflowJobs(ctx context.Context, workflowID uuid.UUID) (map[job.Status]int, error)
}

// CancelWorkflow cancels every unfinished job of a locked workflow and marks
// it cancelled. A finished workflow is ErrConflict.
func CancelWorkflow(ctx context.Context, tx ResolveTx, id uuid.UUID, now time.Time) error {
	r := newResolver(tx, now)
	w, err := r.existing(ctx, id)
	if err != nil {
		return err
	}
	if w.Status.Terminal() {
		return fmt.Errorf("%w: cannot cancel a %s workflow", ErrConflict, w.Status)
	}
	if err := r.cancelAll(ctx, id); err != nil {
		return err
	}
	w.Status = workflow.StatusCancelled
	return r.save(ctx)
}

// ExpireWorkflow cancels what is left of a locked workflow whose deadline
// passed and fails it with an error naming its timeout.
func ExpireWorkflow(ctx context.Context, tx ResolveTx, id uuid.UUID, now time.Time) error {
	r := newResolver(tx, now)
	w, err := r.existing(ctx, id)
	if err != nil {
		return err
	}
	if w.Status != workflow.StatusRunning && w.Status != workflow.StatusPaused {
		return nil
	}
	if err := r.cancelAll(ctx, id); err != nil {
		return err
	}
	w.Status = workflow.StatusFailed
	w.FailedAt = &r.now
	w.ErrorMessage = fmt.Sprintf("workflow timed out after %s", w.Timeout)
	return r.save(ctx)
}

// RetryWorkflow re-pends a failed, cancelled or paused workflow's failed and
// cancelled jobs, recomputes the dependencies of its pending jobs (evaluating
// the conditions of those with no parent left), recounts it and sets it
// running, with a new deadline when it had finished. A running or completed
// workflow is ErrConflict.
func RetryWorkflow(ctx context.Context, tx WorkflowTx, id uuid.UUID, now time.Time) error {
	r := newResolver(tx, now)
	w, err := r.existing(ctx, id)
	if err != nil {
		return err
	}
	if w.Status == workflow.StatusRunning || w.Status == workflow.StatusCompleted {
		return fmt.Errorf("%w: cannot retry a %s workflow", ErrConflict, w.Status)
	}
	return r.rerun(ctx, tx, w)
}

// rerun re-pends a locked workflow's failed and cancelled jobs, recomputes
// the dependencies of its pending jobs, recounts it and reopens it.
func (r *resolver) rerun(ctx context.Context, tx WorkflowTx, w *WorkflowState) error {
	pending, err := tx.RequeueWorkflowJobs(ctx, w.ID, r.now)
	if err != nil {
		return fmt.Errorf("requeue jobs of workflow %s: %w", w.ID, err)
	}
	ready, err := tx.RecomputeDependencies(ctx, pending)
	if err != nil {
		return fmt.Errorf("recompute dependencies of workflow %s: %w", w.ID, err)
	}
	counts, err := tx.CountWorkflowJobs(ctx, w.ID)
	if err != nil {
		return fmt.Errorf("count jobs of workflow %s: %w", w.ID, err)
	}
	w.Completed = counts[job.StatusCompleted]
	w.Failed = counts[job.StatusFailed]
	w.Cancelled = counts[job.StatusCancelled]
	w.Skipped = counts[job.StatusSkipped]
	r.reopen(w)
	if err := r.recountBatches(ctx, w.ID); err != nil {
		return err
	}
	if err := r.applyReady(ctx, ready); err != nil {
		return err
	}
	return r.save(ctx)
}

// RetryJob applies a single job's retry (From failed or cancelled, To
// pending): its dependencies are recomputed from its parents (a condition is
// evaluated when none is left) and its workflow's counters and status follow.
//
// Two retries are refused with ErrConflict, so the caller's transaction
// writes nothing. A job with a failed or cancelled parent: it would wait for
// that parent forever (the message names the parents to retry first; a
// parent that is pending or running again is waited for as usual). The failed job of a failed fail_fast workflow while another
// of its jobs is failed too: fail_fast would fail the workflow again at
// once, so the workflow is the thing to retry. The one failed job of a
// failed fail_fast workflow re-pends, with it, every job the failure
// cancelled, as RetryWorkflow does, and the workflow runs again whole.
func RetryJob(ctx context.Context, tx WorkflowTx, change JobChange, now time.Time) error {
	r := newResolver(tx, now)
	r.markEntry([]JobChange{change})
	if err := r.lockFor(ctx, []JobChange{change}); err != nil {
		return err
	}
	parents, err := tx.DeadParents(ctx, change.ID)
	if err != nil {
		return fmt.Errorf("read parents of job %s: %w", change.ID, err)
	}
	if len(parents) > 0 {
		return fmt.Errorf("%w: %s", ErrConflict, unresolvedParents(change.ID, parents))
	}
	var w *WorkflowState
	if change.WorkflowID != nil {
		w = r.workflows[*change.WorkflowID]
	}
	if w != nil && change.From == job.StatusFailed && w.Status == workflow.StatusFailed && failsFast(w.FailurePolicy) {
		if others := w.Failed - 1; others > 0 {
			return fmt.Errorf("%w: workflow %s (fail_fast) has %d other failed job(s); retry the workflow instead of job %s",
				ErrConflict, w.ID, others, change.ID)
		}
		return r.rerun(ctx, tx, w)
	}
	if err := r.count(ctx, change); err != nil {
		return err
	}
	ready, err := tx.RecomputeDependencies(ctx, []uuid.UUID{change.ID})
	if err != nil {
		return fmt.Errorf("recompute dependencies of job %s: %w", change.ID, err)
	}
	if err := r.applyReady(ctx, ready); err != nil {
		return err
	}
	return r.save(ctx)
}

// unresolvedParents says why a job cannot be retried yet.
func unresolvedParents(id uuid.UUID, parents []Parent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cannot retry job %s while a parent is failed or cancelled: ", id)
	for i, p := range parents {
		if i > 0 {
			b.WriteString(", ")
		}
		if p.StepName != "" {
			fmt.Fprintf(&b, "parent %s (%s) is %s", p.StepName, p.ID, p.Status)
		} else {
			fmt.Fprintf(&b, "parent %s is %s", p.ID, p.Status)
		}
	}
	b.WriteString("; retry them, or the workflow, first")
	return b.String()
}

// applyReady evaluates the conditions of jobs with no parent left and
// follows through what they decide.
func (r *resolver) applyReady(ctx context.Context, ready []ReadyChild) error {
	skipped, failed, err := r.evaluate(ctx, ready)
	if err != nil {
		return err
	}
	more, err := r.release(ctx, skipped)
	if err != nil {
		return err
	}
	return r.applyFailures(ctx, append(failed, more...), nil)
}
