package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/store"
)

// MySQL cannot UPDATE or DELETE a table with a LIMITed subquery on itself,
// so each batch locks its ids first (SKIP LOCKED leaves rows another
// cleaner or a transition holds for the next pass) and then changes them by
// primary key, in id order.

// ExpireResults clears results whose result_expires_at has passed.
func (s *Store) ExpireResults(ctx context.Context, p store.ExpireResultsParams) (int, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return 0, wrap(err, "expire results")
	}
	var n int
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		ids, err := lockIDs(ctx, tx, `SELECT id FROM hammerwork_jobs
WHERE result_expires_at <= ? AND result_data IS NOT NULL
ORDER BY result_expires_at, id LIMIT ? FOR UPDATE SKIP LOCKED`, at, p.CleanLimit())
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
// and an age, outside any workflow whose row exists (those go whole, by
// DeleteFinishedWorkflows); finishedArgs fills it.
const finishedWhere = `j.status = ?
  AND (? = '' OR j.queue_name = ?)
  AND (? IS NULL OR COALESCE(j.completed_at, j.failed_at, j.scheduled_at) < ?)
  AND NOT EXISTS (SELECT 1 FROM hammerwork_workflows w WHERE w.id = j.workflow_id)`

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
		batches, err := lockIDs(ctx, tx, `SELECT DISTINCT batch_id FROM hammerwork_jobs
WHERE id IN (`+placeholders(len(ids))+`) AND batch_id IS NOT NULL`, idArgs(ids)...)
		if err != nil {
			return err
		}
		n, err = execCount(ctx, tx, `DELETE FROM hammerwork_jobs WHERE id IN (`+placeholders(len(ids))+`)`, idArgs(ids)...)
		if err != nil {
			return err
		}
		if err := deleteEmpty(ctx, tx, emptyBatches, batches); err != nil {
			return fmt.Errorf("delete emptied batches: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, wrap(err, "delete %s jobs", p.Status)
	}
	return n, nil
}

// statusCutoff is the cutoff of a job's status, NULL for a status kept
// forever (or an unfinished job); cutoffArgs fills it.
const statusCutoff = `CASE j.status WHEN 'completed' THEN CAST(? AS DATETIME(6)) WHEN 'failed' THEN CAST(? AS DATETIME(6))
    WHEN 'cancelled' THEN CAST(? AS DATETIME(6)) WHEN 'skipped' THEN CAST(? AS DATETIME(6)) END`

// pastRetentionSQL lists the finished workflows (among %s, when the caller
// restricts them) whose jobs are all finished before the cutoff of every
// status among them. A job whose cutoff is NULL makes count(cutoff) fall
// short of count(*).
const pastRetentionSQL = `SELECT j.workflow_id FROM hammerwork_jobs j
JOIN hammerwork_workflows w ON w.id = j.workflow_id
WHERE w.status IN ('completed', 'failed', 'cancelled')%s
GROUP BY j.workflow_id
HAVING COUNT(*) = COUNT(` + statusCutoff + `)
    AND MAX(COALESCE(j.completed_at, j.failed_at, j.scheduled_at)) < MIN(` + statusCutoff + `)`

func cutoffArgs(p store.DeleteWorkflowsParams) []any {
	one := make([]any, 0, 4)
	for _, c := range p.CutoffList() {
		one = append(one, nullTime(c))
	}
	return append(one, one...)
}

// DeleteFinishedWorkflows deletes finished workflows past retention whole:
// it locks up to p.Limit of them in id order (SKIP LOCKED leaves one a retry
// holds), checks the rule again under the locks (a retry that committed in
// between made the workflow live or younger), then deletes their jobs (the
// edges go by ON DELETE CASCADE), emptied batch steps and rows.
func (s *Store) DeleteFinishedWorkflows(ctx context.Context, p store.DeleteWorkflowsParams) (int, error) {
	cutoffs := cutoffArgs(p)
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		n = 0
		locked, err := lockIDs(ctx, tx, `SELECT id FROM hammerwork_workflows
WHERE id IN (`+fmt.Sprintf(pastRetentionSQL, "")+`)
ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED`, append(slices.Clone(cutoffs), p.CleanLimit())...)
		if err != nil || len(locked) == 0 {
			return err
		}
		in := placeholders(len(locked))
		ids, err := lockIDs(ctx, tx, fmt.Sprintf(pastRetentionSQL, " AND w.id IN ("+in+")"),
			append(idArgs(locked), cutoffs...)...)
		if err != nil || len(ids) == 0 {
			return err
		}
		in = placeholders(len(ids))
		batches, err := lockIDs(ctx, tx, `SELECT DISTINCT batch_id FROM hammerwork_jobs
WHERE workflow_id IN (`+in+`) AND batch_id IS NOT NULL`, idArgs(ids)...)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_jobs WHERE workflow_id IN (`+in+`) ORDER BY id`, idArgs(ids)...); err != nil {
			return err
		}
		if err := deleteEmpty(ctx, tx, emptyBatches, batches); err != nil {
			return fmt.Errorf("delete emptied batches: %w", err)
		}
		n, err = execCount(ctx, tx, `DELETE FROM hammerwork_workflows WHERE id IN (`+in+`)`, idArgs(ids)...)
		return err
	})
	if err != nil {
		return 0, wrap(err, "delete finished workflows")
	}
	return n, nil
}

// owner names the statements that find and delete the finished batches a
// cleaner pass may have emptied.
type owner struct {
	// lock locks the finished rows among the ids, in id order.
	lock string
	// used lists which of the ids still have jobs.
	used string
	// remove deletes finished rows by id.
	remove string
}

var (
	emptyBatches = owner{
		lock: `SELECT id FROM hammerwork_batches WHERE id IN (%s)
  AND status IN ('completed', 'partially_failed', 'failed') ORDER BY id FOR UPDATE`,
		used:   `SELECT DISTINCT batch_id FROM hammerwork_jobs WHERE batch_id IN (%s)`,
		remove: `DELETE FROM hammerwork_batches WHERE id IN (%s) AND status IN ('completed', 'partially_failed', 'failed')`,
	}
)

// deleteEmpty deletes the finished batches among ids that no job refers to
// any more. Locking them first makes a concurrent cleaner that
// deleted other jobs of the same row commit before the check; the check is
// a plain read, which under READ COMMITTED sees that commit without waiting
// on any job's lock, so the last of two cleaners deletes the row and
// neither can deadlock on the other's jobs.
func deleteEmpty(ctx context.Context, tx *sql.Tx, o owner, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	locked, err := lockIDs(ctx, tx, fmt.Sprintf(o.lock, placeholders(len(ids))), idArgs(ids)...)
	if err != nil || len(locked) == 0 {
		return err
	}
	used, err := lockIDs(ctx, tx, fmt.Sprintf(o.used, placeholders(len(locked))), idArgs(locked)...)
	if err != nil {
		return err
	}
	empty := slices.DeleteFunc(locked, func(id uuid.UUID) bool { return slices.Contains(used, id) })
	if len(empty) == 0 {
		return nil
	}
	_, err = tx.ExecContext(ctx, fmt.Sprintf(o.remove, placeholders(len(empty))), idArgs(empty)...)
	return err
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

// lockIDs runs a SELECT of ids (a locking one, where it locks) and returns
// them sorted.
func lockIDs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]uuid.UUID, error) {
	ids, err := store.QueryIDs(ctx, tx, query, args...)
	if err != nil {
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
