package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hammerwork-go/hw-agent/store"
)

// expireResultsSQL clears a batch of expired results. SKIP LOCKED leaves
// rows another agent's cleaner (or a retry) holds for the next pass.
const expireResultsSQL = `UPDATE hammerwork_jobs SET result_data = NULL
WHERE id IN (SELECT id FROM hammerwork_jobs
    WHERE result_data IS NOT NULL AND result_expires_at <= $1
    LIMIT $2 FOR UPDATE SKIP LOCKED)`

// ExpireResults clears results whose result_expires_at has passed.
func (s *Store) ExpireResults(ctx context.Context, p store.ExpireResultsParams) (int, error) {
	tag, err := s.pool.Exec(ctx, expireResultsSQL, now(p.Now), p.CleanLimit())
	if err != nil {
		return 0, wrap(err, "expire results")
	}
	return int(tag.RowsAffected()), nil
}

// finishedWhere selects finished jobs of one status, optionally one queue
// and an age, outside running or paused workflows. The age expression is
// the one hammerwork_jobs_finished_idx indexes.
const finishedWhere = `j.status = $1
    AND ($2 = '' OR j.queue_name = $2)
    AND ($3::timestamptz IS NULL OR COALESCE(j.completed_at, j.failed_at, j.scheduled_at) < $3)
    AND NOT EXISTS (SELECT 1 FROM hammerwork_workflows w
        WHERE w.id = j.workflow_id AND w.status IN ('running', 'paused'))`

// deleteFinishedSQL deletes a batch; the edges go with the rows (ON DELETE
// CASCADE on both columns of hammerwork_job_dependencies).
const deleteFinishedSQL = `DELETE FROM hammerwork_jobs
WHERE id IN (SELECT j.id FROM hammerwork_jobs j WHERE ` + finishedWhere + `
    LIMIT $4 FOR UPDATE OF j SKIP LOCKED)`

// DeleteFinished deletes up to p.Limit finished jobs matching the filter.
func (s *Store) DeleteFinished(ctx context.Context, p store.DeleteFinishedParams) (int, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	var n int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, deleteFinishedSQL, string(p.Status), p.Queue, before(p.Before), p.CleanLimit())
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, wrap(err, "delete %s jobs", p.Status)
	}
	return int(n), nil
}

// CountFinished counts what DeleteFinished would delete.
func (s *Store) CountFinished(ctx context.Context, f store.FinishedFilter) (int, error) {
	if err := f.Validate(); err != nil {
		return 0, err
	}
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM hammerwork_jobs j WHERE `+finishedWhere,
		string(f.Status), f.Queue, before(f.Before)).Scan(&n)
	if err != nil {
		return 0, wrap(err, "count %s jobs", f.Status)
	}
	return n, nil
}

// before is NULL for a zero time: no age filter.
func before(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := store.UTC(t)
	return &u
}
