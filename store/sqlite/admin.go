package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// Cancel moves a pending or running job to cancelled and clears its lease,
// so a late answer from the agent that held it is stale.
func (s *Store) Cancel(ctx context.Context, p store.CancelParams) (*job.Job, error) {
	return s.transition(ctx, "cancel", p.ID, `UPDATE hammerwork_jobs
		SET status = 'cancelled', leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
		WHERE id = ? AND status IN ('pending', 'running')`,
		p.ID.String())
}

// Retry moves a failed or cancelled job back to pending with its attempts
// reset; the error history stays.
func (s *Store) Retry(ctx context.Context, p store.RetryParams) (*job.Job, error) {
	return s.transition(ctx, "retry", p.ID, `UPDATE hammerwork_jobs
		SET status = 'pending', attempts = 0, scheduled_at = ?, failed_at = NULL,
			leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
		WHERE id = ? AND status IN ('failed', 'cancelled')`,
		ts(nowOr(p.Now)), p.ID.String())
}

// transition runs one guarded UPDATE of job id and reads the job back, in one
// transaction. When the guard matches nothing it tells a missing job
// (ErrNotFound) from one in the wrong status (*store.StateError).
func (s *Store) transition(ctx context.Context, op string, id uuid.UUID, update string, args ...any) (*job.Job, error) {
	var j *job.Job
	var stateErr error
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, update, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			var status string
			err := tx.QueryRowContext(ctx, `SELECT status FROM hammerwork_jobs WHERE id = ?`, id.String()).Scan(&status)
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrNotFound
			}
			if err != nil {
				return err
			}
			stateErr = &store.StateError{Op: op, Current: job.Status(status)}
			return nil
		}
		j, err = getJob(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s job %s: %w", op, id, err)
	}
	if stateErr != nil {
		return nil, stateErr
	}
	return j, nil
}
