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
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM hammerwork_jobs
			WHERE id IN (SELECT j.id FROM hammerwork_jobs j WHERE `+finishedWhere+` LIMIT ?4)
			RETURNING workflow_id, batch_id`,
			string(p.Status), p.Queue, beforeTS(p.FinishedFilter), p.CleanLimit())
		if err != nil {
			return err
		}
		workflows, batches, deleted, err := owners(rows)
		if err != nil {
			return err
		}
		n = deleted
		// One writer at a time: no other cleaner can hold a workflow's or
		// batch's remaining jobs, so the emptiness check needs no lock.
		if err := deleteEmpty(ctx, tx, `DELETE FROM hammerwork_workflows
			WHERE id = ? AND status IN ('completed', 'failed', 'cancelled')
				AND NOT EXISTS (SELECT 1 FROM hammerwork_jobs j WHERE j.workflow_id = hammerwork_workflows.id)`, workflows); err != nil {
			return fmt.Errorf("delete emptied workflows: %w", err)
		}
		if err := deleteEmpty(ctx, tx, `DELETE FROM hammerwork_batches
			WHERE id = ? AND status IN ('completed', 'partially_failed', 'failed')
				AND NOT EXISTS (SELECT 1 FROM hammerwork_jobs j WHERE j.batch_id = hammerwork_batches.id)`, batches); err != nil {
			return fmt.Errorf("delete emptied batches: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete %s jobs: %w", p.Status, err)
	}
	return n, nil
}

// owners reads the workflow and batch ids a DELETE ... RETURNING gave back,
// each once, and counts the deleted rows.
func owners(rows *sql.Rows) (workflows, batches []string, n int, err error) {
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var wf, batch sql.NullString
		if err := rows.Scan(&wf, &batch); err != nil {
			return nil, nil, 0, err
		}
		n++
		if wf.Valid && !seen["w"+wf.String] {
			seen["w"+wf.String] = true
			workflows = append(workflows, wf.String)
		}
		if batch.Valid && !seen["b"+batch.String] {
			seen["b"+batch.String] = true
			batches = append(batches, batch.String)
		}
	}
	return workflows, batches, n, rows.Err()
}

// deleteEmpty runs a one-id delete of a workflow or batch left without jobs
// for each id; there are at most as many as the jobs of one pass.
func deleteEmpty(ctx context.Context, tx *sql.Tx, query string, ids []string) error {
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, query, id); err != nil {
			return err
		}
	}
	return nil
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
