package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
)

// Cleaner removes what retention no longer needs: expired results and old
// finished jobs. Every call changes at most Limit rows in one short
// transaction, so a cleaner working through a large backlog never holds
// locks for long; callers loop while a call comes back full.
//
// A finished job's age counts from completed_at (completed), failed_at
// (failed) or, for cancelled and skipped jobs, which record no finish time,
// from scheduled_at: the last time the job was due.
//
// A workflow goes whole or not at all: its resolution, its retry and its
// children's conditions read every job's row, result and edges, so deleting
// its completed jobs before its failed ones would leave a retried workflow
// that can never complete. DeleteFinished therefore never deletes a job of a
// workflow whose row exists; DeleteFinishedWorkflows deletes finished
// workflows with all their jobs once the whole workflow is past retention.
type Cleaner interface {
	// ExpireResults sets result_data to NULL on jobs whose result_expires_at
	// <= p.Now (result_expires_at is kept: it says when the result went) and
	// returns how many it cleared.
	ExpireResults(ctx context.Context, p ExpireResultsParams) (int, error)
	// DeleteFinished deletes up to p.Limit jobs matching p.FinishedFilter
	// that belong to no workflow (or to one whose row is gone), with their
	// dependency edges (both directions), and returns how many it deleted.
	// A job that is a parent of a surviving job leaves that job's
	// depends_on list as it was; only the edge goes. In the same
	// transaction it deletes the row of every finished batch (completed,
	// partially_failed, failed) whose last job the pass deleted, so no
	// counters outlive the jobs they count; concurrent passes that share a
	// batch serialise on its row, so the last one always deletes it.
	DeleteFinished(ctx context.Context, p DeleteFinishedParams) (int, error)
	// DeleteFinishedWorkflows deletes up to p.Limit finished workflows
	// (completed, failed, cancelled) whole, and returns how many: every job
	// (with its edges, both directions), the rows of the batch steps left
	// without jobs, and the workflow row, in one transaction. A workflow
	// qualifies once every one of its jobs is finished and finished before
	// the cutoff of each status its jobs are in: the whole workflow is kept
	// for the longest retention among its statuses, and one job in a status
	// without a cutoff keeps it forever. Each workflow row is locked first,
	// skipping rows another transaction holds, and the rule is checked again
	// under the lock, so a concurrent workflow or job retry either commits
	// first (the workflow is live again, or younger, and stays) or finds the
	// workflow gone.
	DeleteFinishedWorkflows(ctx context.Context, p DeleteWorkflowsParams) (int, error)
	// CountFinished counts the jobs DeleteFinished would delete, without a
	// limit: the dry run of `hw-agent job purge`.
	CountFinished(ctx context.Context, f FinishedFilter) (int, error)
}

// DefaultCleanLimit is the number of rows one Cleaner call changes when the
// caller sets no Limit: small enough that a call holds its locks briefly.
const DefaultCleanLimit = 500

// ExpireResultsParams drives one pass over expired results.
type ExpireResultsParams struct {
	Now time.Time
	// Limit: zero means DefaultCleanLimit.
	Limit int
}

// FinishedFilter selects finished jobs by status, queue and age.
type FinishedFilter struct {
	// Status must be terminal: completed, failed, cancelled or skipped.
	Status job.Status
	// Queue: empty means every queue.
	Queue string
	// Before selects jobs that finished strictly before it; zero means any age.
	Before time.Time
}

// DeleteFinishedParams drives one deletion pass.
type DeleteFinishedParams struct {
	FinishedFilter
	// Limit: zero means DefaultCleanLimit.
	Limit int
}

// Validate rejects a filter that could select unfinished jobs.
func (f FinishedFilter) Validate() error {
	if !f.Status.Terminal() {
		return fmt.Errorf("%w: status %q is not a finished status (want completed, failed, cancelled or skipped)", ErrInvalid, f.Status)
	}
	if f.Queue != "" && !ValidQueueName(f.Queue) {
		return fmt.Errorf("%w: queue %q is not a valid queue name", ErrInvalid, f.Queue)
	}
	return nil
}

// DeleteWorkflowsParams drives one pass over finished workflows.
type DeleteWorkflowsParams struct {
	// Cutoffs holds, per finished job status, the time before which a job
	// in that status must have finished. A status without a cutoff is kept
	// forever, and so is every workflow with a job in it.
	Cutoffs map[job.Status]time.Time
	// Limit bounds the workflows (not jobs) of one call: a workflow goes in
	// one transaction, whatever its size. Zero means DefaultCleanLimit.
	Limit int
}

// RetentionCutoffs turns per-status retention into DeleteWorkflowsParams
// cutoffs at now: keep(status) <= 0 keeps that status forever.
func RetentionCutoffs(now time.Time, keep func(job.Status) time.Duration) map[job.Status]time.Time {
	out := map[job.Status]time.Time{}
	for _, s := range FinishedStatuses {
		if d := keep(s); d > 0 {
			out[s] = UTC(now.Add(-d))
		}
	}
	return out
}

// FinishedStatuses are the terminal job statuses retention applies to, in
// the order DeleteWorkflowsParams.CutoffList returns their cutoffs.
var FinishedStatuses = []job.Status{job.StatusCompleted, job.StatusFailed, job.StatusCancelled, job.StatusSkipped}

// CutoffList returns the cutoff of each of FinishedStatuses in order, nil
// for a status kept forever: the parameters a backend's statement binds.
func (p DeleteWorkflowsParams) CutoffList() []*time.Time {
	out := make([]*time.Time, len(FinishedStatuses))
	for i, s := range FinishedStatuses {
		if c, ok := p.Cutoffs[s]; ok && !c.IsZero() {
			u := UTC(c)
			out[i] = &u
		}
	}
	return out
}

// CleanLimit is p.Limit or DefaultCleanLimit.
func (p DeleteWorkflowsParams) CleanLimit() int { return cleanLimit(p.Limit) }

// CleanLimit is p.Limit or DefaultCleanLimit.
func (p ExpireResultsParams) CleanLimit() int { return cleanLimit(p.Limit) }

// CleanLimit is p.Limit or DefaultCleanLimit.
func (p DeleteFinishedParams) CleanLimit() int { return cleanLimit(p.Limit) }

func cleanLimit(n int) int {
	if n <= 0 {
		return DefaultCleanLimit
	}
	return n
}

// RetryMatchingParams selects the dead letters to re-run.
type RetryMatchingParams struct {
	// Status is failed or cancelled.
	Status job.Status
	// Queue: empty means every queue.
	Queue string
	Now   time.Time
	// BatchSize is the number of jobs read per page; zero means DefaultCleanLimit.
	BatchSize int
}

// RetryMatching re-runs every job in p.Status (on p.Queue) through s.Retry,
// one transaction per job, reading the candidates a page at a time. Going
// through Retry keeps every rule of a single retry: attempts reset, the
// error history kept, dependencies recomputed and the counters of the job's
// workflow moved back, so workflow jobs are retried as `job retry ID` would.
// A job that changed state between the read and its retry (retried or
// deleted by someone else) is skipped. A job refused because a parent is
// failed or cancelled is tried again after the listing, for as long as
// those retries make progress: the listing is newest first, so children
// come before the parents whose retry lets them go. It returns how many
// jobs it retried, also when it stops early on an error.
func RetryMatching(ctx context.Context, s interface {
	Reader
	Admin
}, p RetryMatchingParams) (int, error) {
	if p.Status != job.StatusFailed && p.Status != job.StatusCancelled {
		return 0, fmt.Errorf("%w: only failed or cancelled jobs can be retried, not %q", ErrInvalid, p.Status)
	}
	list := ListParams{Queue: p.Queue, Status: p.Status, Limit: min(cleanLimit(p.BatchSize), MaxListLimit)}
	retried := 0
	var refused []uuid.UUID
	retry := func(id uuid.UUID) (bool, error) {
		_, err := s.Retry(ctx, RetryParams{ID: id, Now: p.Now})
		switch {
		case err == nil:
			retried++
			return true, nil
		case errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound):
			return false, nil
		}
		return false, fmt.Errorf("retry job %s: %w", id, err)
	}
	for {
		page, err := s.List(ctx, list)
		if err != nil {
			return retried, fmt.Errorf("list %s jobs: %w", p.Status, err)
		}
		for _, j := range page.Jobs {
			ok, err := retry(j.ID)
			if err != nil {
				return retried, err
			}
			if !ok {
				refused = append(refused, j.ID)
			}
		}
		if page.NextCursor == "" {
			break
		}
		list.Cursor = page.NextCursor
	}
	for progress := true; progress && len(refused) > 0; {
		progress = false
		var left []uuid.UUID
		for i := len(refused) - 1; i >= 0; i-- {
			ok, err := retry(refused[i])
			if err != nil {
				return retried, err
			}
			if ok {
				progress = true
			} else {
				left = append(left, refused[i])
			}
		}
		slices.Reverse(left)
		refused = left
	}
	return retried, nil
}
