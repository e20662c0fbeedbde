package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// cancelSQL clears the lease too, so a late answer from the agent that held
// it is stale. The inner SELECT locks the row when store.CancelTransition
// allows its status ($2) and keeps its old status.
const cancelSQL = `UPDATE hammerwork_jobs j SET
    status = 'cancelled',
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
FROM (SELECT id, status FROM hammerwork_jobs WHERE id = $1 AND status = ANY($2::text[]) FOR UPDATE) o
WHERE j.id = o.id
RETURNING o.status, ` + changeColumns

// Cancel moves a pending or running job to cancelled; in a workflow (or
// with children) its descendants are cancelled too and the counters follow.
func (s *Store) Cancel(ctx context.Context, p store.CancelParams) (*job.Job, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "cancel job %s", p.ID)
	}
	t := store.CancelTransition
	return s.transition(ctx, t, p.ID, func(tx pgx.Tx) (bool, error) {
		c, ok, err := change(tx.QueryRow(ctx, cancelSQL, p.ID, t.FromStrings()), p.ID, t.To)
		if !ok || err != nil || !needsResolution([]store.JobChange{c}) {
			return ok, err
		}
		return true, store.Resolve(ctx, resolveTx{tx}, at, []store.JobChange{c})
	})
}

// retrySQL keeps errors and error_message: the history of the attempts
// that led here is what an operator reads after a retry. The inner SELECT
// locks the row when store.RetryTransition allows its status ($3).
const retrySQL = `UPDATE hammerwork_jobs j SET
    status = 'pending',
    attempts = 0,
    scheduled_at = $2,
    completed_at = NULL,
    failed_at = NULL,
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
FROM (SELECT id, status FROM hammerwork_jobs WHERE id = $1 AND status = ANY($3::text[]) FOR UPDATE) o
WHERE j.id = o.id
RETURNING o.status, ` + changeColumns

// Retry moves a failed or cancelled job back to pending with its attempts
// reset and its dependencies recomputed from its parents.
func (s *Store) Retry(ctx context.Context, p store.RetryParams) (*job.Job, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "retry job %s", p.ID)
	}
	t := store.RetryTransition
	return s.transition(ctx, t, p.ID, func(tx pgx.Tx) (bool, error) {
		c, ok, err := change(tx.QueryRow(ctx, retrySQL, p.ID, at, t.FromStrings()), p.ID, t.To)
		if !ok || err != nil {
			return ok, err
		}
		return true, store.RetryJob(ctx, resolveTx{tx}, c, at)
	})
}

// change reads the RETURNING row of a one-job transition; ok is false when
// the guard matched nothing.
func change(row pgx.Row, id uuid.UUID, to job.Status) (store.JobChange, bool, error) {
	c := store.JobChange{ID: id, To: to}
	var from string
	err := row.Scan(&from, &c.WorkflowID, &c.BatchID, &c.Dependents)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, nil
	}
	c.From = job.Status(from)
	return c, err == nil, err
}

// transition runs a status-guarded change of one job in a transaction and
// reads the job back. When the guard does not match it reads the current
// status to tell a missing job (store.ErrNotFound) from one in the wrong
// state (t's conflict).
func (s *Store) transition(ctx context.Context, t store.Transition, id uuid.UUID, fn func(tx pgx.Tx) (bool, error)) (*job.Job, error) {
	var j *job.Job
	var current string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		j, current = nil, ""
		ok, err := fn(tx)
		if err != nil {
			return err
		}
		if ok {
			j, err = scanJob(tx.QueryRow(ctx, getSQL, id), true)
			return err
		}
		err = tx.QueryRow(ctx, `SELECT status FROM hammerwork_jobs WHERE id = $1`, id).Scan(&current)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s job %s: %w", t.Op, id, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "%s job %s", t.Op, id)
	}
	if j == nil {
		return nil, fmt.Errorf("%s job %s: %w", t.Op, id, t.Conflict(job.Status(current)))
	}
	return j, nil
}
