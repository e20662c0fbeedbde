package mysql

import (
	"context"
	"database/sql"
	"errors"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// cancelUpdate clears the lease too, so a late answer from the agent that
// held it is stale.
const cancelUpdate = `UPDATE hammerwork_jobs SET
    status = 'cancelled',
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE id = ?`

// Cancel moves a pending or running job to cancelled; in a workflow (or with
// children) its descendants are cancelled too and the counters follow.
func (s *Store) Cancel(ctx context.Context, p store.CancelParams) (*job.Job, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "cancel job %s", p.ID)
	}
	return s.transition(ctx, store.CancelTransition, p.ID,
		func(tx *sql.Tx, c store.JobChange) error {
			if _, err := tx.ExecContext(ctx, cancelUpdate, p.ID.String()); err != nil {
				return err
			}
			if !needsResolution([]store.JobChange{c}) {
				return nil
			}
			return store.Resolve(ctx, resolveTx{tx}, at, []store.JobChange{c})
		})
}

// retryUpdate keeps errors and error_message: the history of the attempts
// that led here is what an operator reads after a retry.
const retryUpdate = `UPDATE hammerwork_jobs SET
    status = 'pending',
    attempts = 0,
    scheduled_at = ?,
    completed_at = NULL,
    failed_at = NULL,
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE id = ?`

// Retry moves a failed or cancelled job back to pending with its attempts
// reset and its dependencies recomputed from its parents.
func (s *Store) Retry(ctx context.Context, p store.RetryParams) (*job.Job, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "retry job %s", p.ID)
	}
	return s.transition(ctx, store.RetryTransition, p.ID,
		func(tx *sql.Tx, c store.JobChange) error {
			if _, err := tx.ExecContext(ctx, retryUpdate, at, p.ID.String()); err != nil {
				return err
			}
			return store.RetryJob(ctx, resolveTx{tx}, c, at)
		})
}

// transition locks one job and checks that t allows its status (a missing
// job is store.ErrNotFound, another status t's conflict), then runs apply
// with the job's change (From, To, workflow and children filled) and reads
// the job back, all in one transaction.
func (s *Store) transition(ctx context.Context, t store.Transition, id uuid.UUID,
	apply func(tx *sql.Tx, c store.JobChange) error) (*job.Job, error) {
	var out *job.Job
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var current string
		var l lockedJob
		err := tx.QueryRowContext(ctx, `SELECT j.status, `+changeColumns+`
FROM hammerwork_jobs j WHERE j.id = ? FOR UPDATE`, id.String()).Scan(&current, &l.workflowID, &l.batchID, &l.children)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if !t.Allows(job.Status(current)) {
			return t.Conflict(job.Status(current))
		}
		if err := apply(tx, l.change(id, job.Status(current), t.To)); err != nil {
			return err
		}
		out, err = store.ScanSQLJob(tx.QueryRowContext(ctx, getSQL, id.String()), true)
		return err
	})
	if err != nil {
		return nil, wrap(err, "%s job %s", t.Op, id)
	}
	return out, nil
}
