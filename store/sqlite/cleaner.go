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
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return 0, fmt.Errorf("expire results: %w", err)
	}
	var n int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE hammerwork_jobs SET result_data = NULL
			WHERE id IN (SELECT id FROM hammerwork_jobs
				WHERE result_data IS NOT NULL AND result_expires_at <= ? LIMIT ?)`,
			ts(now), p.CleanLimit())
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
// and an age, outside any workflow whose row exists (those go whole, by
// DeleteFinishedWorkflows). The age expression is the one
// hammerwork_jobs_finished_idx indexes.
const finishedWhere = `j.status = ?1
	AND (?2 = '' OR j.queue_name = ?2)
	AND (?3 = '' OR COALESCE(j.completed_at, j.failed_at, j.scheduled_at) < ?3)
	AND NOT EXISTS (SELECT 1 FROM hammerwork_workflows w WHERE w.id = j.workflow_id)`

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
			RETURNING batch_id`,
			string(p.Status), p.Queue, beforeTS(p.FinishedFilter), p.CleanLimit())
		if err != nil {
			return err
		}
		batches, deleted, err := ownerBatches(rows)
		if err != nil {
			return err
		}
		n = deleted
		// One writer at a time: no other cleaner can hold a batch's
		// remaining jobs, so the emptiness check needs no lock.
		if err := deleteEmptyBatches(ctx, tx, batches); err != nil {
			return fmt.Errorf("delete emptied batches: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete %s jobs: %w", p.Status, err)
	}
	return n, nil
}

// ownerBatches reads the batch ids a DELETE ... RETURNING batch_id gave
// back, each once, and counts the deleted rows.
func ownerBatches(rows *sql.Rows) (batches []string, n int, err error) {
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var batch sql.NullString
		if err := rows.Scan(&batch); err != nil {
			return nil, 0, err
		}
		n++
		if batch.Valid && !seen[batch.String] {
			seen[batch.String] = true
			batches = append(batches, batch.String)
		}
	}
	return batches, n, rows.Err()
}

// deleteEmptyBatches deletes each finished batch among ids left without
// jobs; there are at most as many as the jobs of one pass.
func deleteEmptyBatches(ctx context.Context, tx *sql.Tx, ids []string) error {
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_batches
			WHERE id = ? AND status IN ('completed', 'partially_failed', 'failed')
				AND NOT EXISTS (SELECT 1 FROM hammerwork_jobs j WHERE j.batch_id = hammerwork_batches.id)`, id); err != nil {
			return err
		}
	}
	return nil
}

// statusCutoff is the cutoff of a job's status as stored text (?1..?4 for
// completed, failed, cancelled, skipped), NULL for a status kept forever or
// an unfinished job. Stored times are fixed-width UTC text, so min and max
// over them compare times.
const statusCutoff = `CASE j.status WHEN 'completed' THEN ?1 WHEN 'failed' THEN ?2
		WHEN 'cancelled' THEN ?3 WHEN 'skipped' THEN ?4 END`

// pastRetentionSQL lists up to ?5 finished workflows whose jobs are all
// finished before the cutoff of every status among them, in id order. A job
// whose cutoff is NULL makes count(cutoff) fall short of count(*).
const pastRetentionSQL = `SELECT j.workflow_id FROM hammerwork_jobs j
	JOIN hammerwork_workflows w ON w.id = j.workflow_id
	WHERE w.status IN ('completed', 'failed', 'cancelled')
	GROUP BY j.workflow_id
	HAVING count(*) = count(` + statusCutoff + `)
		AND max(COALESCE(j.completed_at, j.failed_at, j.scheduled_at)) < min(` + statusCutoff + `)
	ORDER BY j.workflow_id LIMIT ?5`

// DeleteFinishedWorkflows deletes finished workflows past retention whole:
// their jobs (the edges go by ON DELETE CASCADE), emptied batch steps and
// rows. The write transaction holds the database's one write lock, so no
// retry can change a workflow between the check and the delete.
func (s *Store) DeleteFinishedWorkflows(ctx context.Context, p store.DeleteWorkflowsParams) (int, error) {
	args := []any{nil, nil, nil, nil, p.CleanLimit()}
	for i, c := range p.CutoffList() {
		args[i] = nullTS(c)
	}
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		n = 0
		rows, err := tx.QueryContext(ctx, pastRetentionSQL, args...)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return err
		}
		list := jsonList(ids)
		rows, err = tx.QueryContext(ctx, `DELETE FROM hammerwork_jobs
			WHERE workflow_id IN (SELECT value FROM json_each(?)) RETURNING batch_id`, list)
		if err != nil {
			return err
		}
		batches, _, err := ownerBatches(rows)
		if err != nil {
			return err
		}
		if err := deleteEmptyBatches(ctx, tx, batches); err != nil {
			return fmt.Errorf("delete emptied batches: %w", err)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_workflows WHERE id IN (SELECT value FROM json_each(?))`, list)
		if err != nil {
			return err
		}
		deleted, err := res.RowsAffected()
		n = int(deleted)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete finished workflows: %w", err)
	}
	return n, nil
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
