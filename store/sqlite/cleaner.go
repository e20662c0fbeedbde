package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/hammerwork-go/hw-agent/store"
)

// ExpireResults clears results whose result_expires_at has passed. Stored
// times are fixed-width UTC text, so comparing strings compares times.
func (s *Store) ExpireResults(ctx context.Context, p store.ExpireResultsParams) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE hammerwork_jobs SET result_data = NULL
			WHERE id IN (SELECT id FROM hammerwork_jobs
				WHERE result_data IS NOT NULL AND result_expires_at <= ? LIMIT ?)`,
			ts(nowOr(p.Now)), p.CleanLimit())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("expire results: %w", err)
	}
	return int(n), nil
}

// finishedWhere selects finished jobs of one status, optionally one queue
// and an age, outside running or paused workflows. The age expression is
// the one hammerwork_jobs_finished_idx indexes.
const finishedWhere = `j.status = ?1
	AND (?2 = '' OR j.queue_name = ?2)
	AND (?3 = '' OR COALESCE(j.completed_at, j.failed_at, j.scheduled_at) < ?3)
	AND NOT EXISTS (SELECT 1 FROM hammerwork_workflows w
		WHERE w.id = j.workflow_id AND w.status IN ('running', 'paused'))`

// DeleteFinished deletes up to p.Limit finished jobs matching the filter;
// their edges go by ON DELETE CASCADE.
func (s *Store) DeleteFinished(ctx context.Context, p store.DeleteFinishedParams) (int, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_jobs
			WHERE id IN (SELECT j.id FROM hammerwork_jobs j WHERE `+finishedWhere+` LIMIT ?4)`,
			string(p.Status), p.Queue, beforeTS(p.FinishedFilter), p.CleanLimit())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete %s jobs: %w", p.Status, err)
	}
	return int(n), nil
}

// CountFinished counts what DeleteFinished would delete.
func (s *Store) CountFinished(ctx context.Context, f store.FinishedFilter) (int, error) {
	if err := f.Validate(); err != nil {
		return 0, err
	}
	var n int
	err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM hammerwork_jobs j WHERE `+finishedWhere,
		string(f.Status), f.Queue, beforeTS(f)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count %s jobs: %w", f.Status, dbErr(err))
	}
	return n, nil
}

// beforeTS is the filter's age bound as stored text, "" for any age.
func beforeTS(f store.FinishedFilter) string {
	if f.Before.IsZero() {
		return ""
	}
	return ts(f.Before)
}
