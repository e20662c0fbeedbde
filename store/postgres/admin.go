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
// it is stale.
var cancelSQL = `UPDATE hammerwork_jobs j SET
    status = 'cancelled',
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE j.id = $1 AND j.status IN ('pending', 'running')
RETURNING ` + fullJobCols

// Cancel moves a pending or running job to cancelled.
func (s *Store) Cancel(ctx context.Context, p store.CancelParams) (*job.Job, error) {
	return s.transition(ctx, "cancel", p.ID, cancelSQL, p.ID)
}

// retrySQL keeps errors and error_message: the history of the attempts
// that led here is what an operator reads after a retry.
var retrySQL = `UPDATE hammerwork_jobs j SET
    status = 'pending',
    attempts = 0,
    scheduled_at = $2,
    completed_at = NULL,
    failed_at = NULL,
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE j.id = $1 AND j.status IN ('failed', 'cancelled')
RETURNING ` + fullJobCols

// Retry moves a failed or cancelled job back to pending with its attempts
// reset.
func (s *Store) Retry(ctx context.Context, p store.RetryParams) (*job.Job, error) {
	return s.transition(ctx, "retry", p.ID, retrySQL, p.ID, now(p.Now))
}

// transition runs a status-guarded update of one job. When the guard does
// not match it reads the current status to tell a missing job
// (store.ErrNotFound) from one in the wrong state (*store.StateError).
func (s *Store) transition(ctx context.Context, op string, id uuid.UUID, sql string, args ...any) (*job.Job, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, sql, args...), true)
	if err == nil {
		return j, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap(err, "%s job %s", op, id)
	}
	var current string
	err = s.pool.QueryRow(ctx, `SELECT status FROM hammerwork_jobs WHERE id = $1`, id).Scan(&current)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s job %s: %w", op, id, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "%s job %s", op, id)
	}
	return nil, fmt.Errorf("%s job %s: %w", op, id, &store.StateError{Op: op, Current: job.Status(current)})
}
