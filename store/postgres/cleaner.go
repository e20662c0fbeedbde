package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
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
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return 0, wrap(err, "expire results")
	}
	tag, err := s.pool.Exec(ctx, expireResultsSQL, at, p.CleanLimit())
	if err != nil {
		return 0, wrap(err, "expire results")
	}
	return int(tag.RowsAffected()), nil
}

// finishedWhere selects finished jobs of one status, optionally one queue
// and an age, outside any workflow whose row exists (those go whole, by
// DeleteFinishedWorkflows). The age expression is the one
// hammerwork_jobs_finished_idx indexes.
const finishedWhere = `j.status = $1
    AND ($2 = '' OR j.queue_name = $2)
    AND ($3::timestamptz IS NULL OR COALESCE(j.completed_at, j.failed_at, j.scheduled_at) < $3)
    AND NOT EXISTS (SELECT 1 FROM hammerwork_workflows w WHERE w.id = j.workflow_id)`

// deleteFinishedSQL deletes a batch; the edges go with the rows (ON DELETE
// CASCADE on both columns of hammerwork_job_dependencies). It returns the
// batches the deleted jobs belonged to, whose rows may now be empty.
const deleteFinishedSQL = `DELETE FROM hammerwork_jobs
WHERE id IN (SELECT j.id FROM hammerwork_jobs j WHERE ` + finishedWhere + `
    LIMIT $4 FOR UPDATE OF j SKIP LOCKED)
RETURNING batch_id`

// Locking the finished batches first makes a cleaner that deleted other jobs
// of the same batch commit before the emptiness check runs; the check is a
// new statement, so under READ COMMITTED it sees that commit and the last of
// two concurrent cleaners deletes the row. Locks are taken in id order.
const (
	lockFinishedBatchesSQL = `SELECT id FROM hammerwork_batches
WHERE id = ANY ($1::uuid[]) AND status IN ('completed', 'partially_failed', 'failed')
ORDER BY id FOR UPDATE`
	deleteEmptyBatchesSQL = `DELETE FROM hammerwork_batches b
WHERE b.id = ANY ($1::uuid[]) AND b.status IN ('completed', 'partially_failed', 'failed')
    AND NOT EXISTS (SELECT 1 FROM hammerwork_jobs j WHERE j.batch_id = b.id)`
)

// DeleteFinished deletes up to p.Limit finished jobs matching the filter.
func (s *Store) DeleteFinished(ctx context.Context, p store.DeleteFinishedParams) (int, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	var n int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, deleteFinishedSQL, string(p.Status), p.Queue, before(p.Before), p.CleanLimit())
		if err != nil {
			return err
		}
		batches, deleted, err := collectBatches(rows)
		if err != nil {
			return err
		}
		n = deleted
		if err := deleteEmpty(ctx, tx, lockFinishedBatchesSQL, deleteEmptyBatchesSQL, batches); err != nil {
			return fmt.Errorf("delete emptied batches: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, wrap(err, "delete %s jobs", p.Status)
	}
	return n, nil
}

// collectBatches reads the RETURNING batch_id rows of a job deletion: the
// batches it touched and how many jobs it deleted.
func collectBatches(rows pgx.Rows) (map[uuid.UUID]bool, int, error) {
	batches := map[uuid.UUID]bool{}
	n := 0
	var batch *uuid.UUID
	_, err := pgx.ForEachRow(rows, []any{&batch}, func() error {
		n++
		if batch != nil {
			batches[*batch] = true
		}
		return nil
	})
	return batches, n, err
}

// pastRetentionSQL lists the workflows, among the finished ones in $5 (or
// all finished ones when $5 is NULL), whose jobs are all finished before the
// cutoff of every status among them; $1..$4 are the cutoffs of completed,
// failed, cancelled and skipped (NULL: kept forever). A job whose cutoff is
// NULL (unfinished, or a status kept forever) makes count(cutoff) fall short
// of count(*).
const pastRetentionSQL = `SELECT j.workflow_id FROM hammerwork_jobs j
JOIN hammerwork_workflows w ON w.id = j.workflow_id
WHERE w.status IN ('completed', 'failed', 'cancelled') AND ($5::uuid[] IS NULL OR w.id = ANY ($5::uuid[]))
GROUP BY j.workflow_id
HAVING count(*) = count(` + statusCutoff + `)
    AND max(COALESCE(j.completed_at, j.failed_at, j.scheduled_at)) < min(` + statusCutoff + `)`

const statusCutoff = `CASE j.status WHEN 'completed' THEN $1::timestamptz WHEN 'failed' THEN $2::timestamptz
    WHEN 'cancelled' THEN $3::timestamptz WHEN 'skipped' THEN $4::timestamptz END`

// lockPastRetentionSQL locks up to $6 workflows past retention, in id
// order, skipping rows a retry (or another cleaner) holds.
const lockPastRetentionSQL = `SELECT id FROM hammerwork_workflows
WHERE id IN (` + pastRetentionSQL + `)
ORDER BY id LIMIT $6 FOR UPDATE SKIP LOCKED`

// DeleteFinishedWorkflows deletes finished workflows past retention whole.
func (s *Store) DeleteFinishedWorkflows(ctx context.Context, p store.DeleteWorkflowsParams) (int, error) {
	cutoffs := p.CutoffList()
	var n int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		n = 0
		rows, err := tx.Query(ctx, lockPastRetentionSQL, cutoffs[0], cutoffs[1], cutoffs[2], cutoffs[3], nil, p.CleanLimit())
		if err != nil {
			return err
		}
		locked, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil || len(locked) == 0 {
			return err
		}
		// Checked again under the locks: a retry that committed between the
		// candidates' snapshot and the lock made the workflow live or younger.
		rows, err = tx.Query(ctx, pastRetentionSQL, cutoffs[0], cutoffs[1], cutoffs[2], cutoffs[3], locked)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil || len(ids) == 0 {
			return err
		}
		rows, err = tx.Query(ctx, `DELETE FROM hammerwork_jobs WHERE workflow_id = ANY ($1::uuid[]) RETURNING batch_id`, ids)
		if err != nil {
			return err
		}
		batches, _, err := collectBatches(rows)
		if err != nil {
			return err
		}
		if err := deleteEmpty(ctx, tx, lockFinishedBatchesSQL, deleteEmptyBatchesSQL, batches); err != nil {
			return fmt.Errorf("delete emptied batches: %w", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM hammerwork_workflows WHERE id = ANY ($1::uuid[])`, ids)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		return nil
	})
	if err != nil {
		return 0, wrap(err, "delete finished workflows")
	}
	return n, nil
}

// deleteEmpty locks the finished owners among ids, then deletes those left
// without jobs.
func deleteEmpty(ctx context.Context, tx pgx.Tx, lockSQL, deleteSQL string, ids map[uuid.UUID]bool) error {
	if len(ids) == 0 {
		return nil
	}
	list := slices.Collect(maps.Keys(ids))
	rows, err := tx.Query(ctx, lockSQL, list)
	if err != nil {
		return err
	}
	locked, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(locked) == 0 {
		return err
	}
	_, err = tx.Exec(ctx, deleteSQL, locked)
	return err
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
