package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// Cancel moves a pending or running job to cancelled and clears its lease,
// so a late answer from the agent that held it is stale. In a workflow (or
// with children) its descendants are cancelled too and the counters follow.
func (s *Store) Cancel(ctx context.Context, p store.CancelParams) (*job.Job, error) {
	return s.transition(ctx, store.CancelTransition, p.ID, p.Now,
		func(tx *sql.Tx, c store.JobChange, now time.Time) error {
			if _, err := tx.ExecContext(ctx, `UPDATE hammerwork_jobs
				SET status = 'cancelled', leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
				WHERE id = ?`, p.ID.String()); err != nil {
				return err
			}
			if !needsResolution([]store.JobChange{c}) {
				return nil
			}
			return store.Resolve(ctx, resolveTx{tx}, now, []store.JobChange{c})
		})
}

// Retry moves a failed or cancelled job back to pending with its attempts
// reset and its dependencies recomputed from its parents; the error history
// stays.
func (s *Store) Retry(ctx context.Context, p store.RetryParams) (*job.Job, error) {
	return s.transition(ctx, store.RetryTransition, p.ID, p.Now,
		func(tx *sql.Tx, c store.JobChange, now time.Time) error {
			if _, err := tx.ExecContext(ctx, `UPDATE hammerwork_jobs
				SET status = 'pending', attempts = 0, scheduled_at = ?, failed_at = NULL,
					leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
				WHERE id = ?`, ts(now), p.ID.String()); err != nil {
				return err
			}
			return store.RetryJob(ctx, resolveTx{tx}, c, now)
		})
}

// transition reads job id's status in the write transaction and, when t
// allows it, runs change with the job's JobChange (From, To, WorkflowID and
// Dependents filled) at the time of injected (zero: the database's now, read
// once the write lock is held) and reads the job back. Otherwise it tells a
// missing job (ErrNotFound) from one in the wrong status (t's conflict).
func (s *Store) transition(ctx context.Context, t store.Transition, id uuid.UUID, injected time.Time,
	change func(tx *sql.Tx, c store.JobChange, now time.Time) error) (*job.Job, error) {
	var j *job.Job
	var stateErr error
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var status string
		c := store.JobChange{ID: id, To: t.To}
		err := tx.QueryRowContext(ctx, `SELECT status, `+changeColumns+`
			FROM hammerwork_jobs WHERE id = ?`, id.String()).Scan(&status, &c.WorkflowID, &c.BatchID, &c.Dependents)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		c.From = job.Status(status)
		if !t.Allows(c.From) {
			stateErr = t.Conflict(c.From)
			return nil
		}
		now, err := s.clock.At(ctx, injected)
		if err != nil {
			return err
		}
		if err := change(tx, c, now); err != nil {
			return err
		}
		j, err = getJob(ctx, tx, id)
		return err
	})
	if err == nil && j != nil {
		err = s.hideExpiredResults(ctx, j)
	}
	if err != nil {
		return nil, fmt.Errorf("%s job %s: %w", t.Op, id, err)
	}
	if stateErr != nil {
		return nil, stateErr
	}
	return j, nil
}
