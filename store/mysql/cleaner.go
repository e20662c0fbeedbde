package mysql

import (
	"context"
	"database/sql"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/store"
)

// MySQL cannot UPDATE or DELETE a table with a LIMITed subquery on itself,
// so each batch locks its ids first (SKIP LOCKED leaves rows another
// cleaner or a transition holds for the next pass) and then changes them by
// primary key, in id order.

// ExpireResults clears results whose result_expires_at has passed.
func (s *Store) ExpireResults(ctx context.Context, p store.ExpireResultsParams) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ids, err := lockIDs(ctx, tx, `SELECT id FROM hammerwork_jobs
WHERE result_expires_at <= ? AND result_data IS NOT NULL
ORDER BY result_expires_at, id LIMIT ? FOR UPDATE SKIP LOCKED`, now(p.Now), p.CleanLimit())
		if err != nil || len(ids) == 0 {
			n = 0
			return err
		}
		n, err = execCount(ctx, tx, `UPDATE hammerwork_jobs SET result_data = NULL
WHERE id IN (`+placeholders(len(ids))+`)`, idArgs(ids)...)
		return err
	})
	if err != nil {
		return 0, wrap(err, "expire results")
	}
	return n, nil
}

// finishedWhere selects finished jobs of one status, optionally one queue
// and an age, outside running or paused workflows; finishedArgs fills it.
const finishedWhere = `j.status = ?
  AND (? = '' OR j.queue_name = ?)
  AND (? IS NULL OR COALESCE(j.completed_at, j.failed_at, j.scheduled_at) < ?)
  AND NOT EXISTS (SELECT 1 FROM hammerwork_workflows w
      WHERE w.id = j.workflow_id AND w.status IN ('running', 'paused'))`

func finishedArgs(f store.FinishedFilter) []any {
	var before sql.NullTime
	if !f.Before.IsZero() {
		before = sql.NullTime{Time: store.UTC(f.Before), Valid: true}
	}
	return []any{string(f.Status), f.Queue, f.Queue, before, before}
}

// DeleteFinished deletes up to p.Limit finished jobs matching the filter;
// their edges go by ON DELETE CASCADE.
func (s *Store) DeleteFinished(ctx context.Context, p store.DeleteFinishedParams) (int, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		args := append(finishedArgs(p.FinishedFilter), p.CleanLimit())
		ids, err := lockIDs(ctx, tx, `SELECT j.id FROM hammerwork_jobs j WHERE `+finishedWhere+`
ORDER BY j.id LIMIT ? FOR UPDATE SKIP LOCKED`, args...)
		if err != nil || len(ids) == 0 {
			n = 0
			return err
		}
		n, err = execCount(ctx, tx, `DELETE FROM hammerwork_jobs WHERE id IN (`+placeholders(len(ids))+`)`, idArgs(ids)...)
		return err
	})
	if err != nil {
		return 0, wrap(err, "delete %s jobs", p.Status)
	}
	return n, nil
}

// CountFinished counts what DeleteFinished would delete.
func (s *Store) CountFinished(ctx context.Context, f store.FinishedFilter) (int, error) {
	if err := f.Validate(); err != nil {
		return 0, err
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM hammerwork_jobs j WHERE `+finishedWhere, finishedArgs(f)...).Scan(&n); err != nil {
		return 0, wrap(err, "count %s jobs", f.Status)
	}
	return n, nil
}

// lockIDs runs a locking SELECT of job ids and returns them sorted.
func lockIDs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]uuid.UUID, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return sortedIDs(ids), nil
}

// execCount runs a statement and returns the rows it changed.
func execCount(ctx context.Context, tx *sql.Tx, query string, args ...any) (int, error) {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
