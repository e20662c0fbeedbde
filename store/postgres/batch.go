package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

var (
	_ store.Batches = (*Store)(nil)
	_ store.BatchTx = resolveTx{}
)

// EnqueueBatch writes the batch row and its jobs (COPY) in one transaction.
// Duplicates of live unique keys are not part of the batch: total_jobs
// counts the jobs written.
func (s *Store) EnqueueBatch(ctx context.Context, p store.EnqueueBatchParams) (*store.BatchEnqueued, error) {
	id, news, err := p.Stamped()
	if err != nil {
		return nil, fmt.Errorf("enqueue batch: %w", err)
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "enqueue batch")
	}
	var out *store.BatchEnqueued
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		jobs, err := enqueueTx(ctx, tx, news, at)
		if err != nil {
			return err
		}
		b := store.NewBatchState(id, p.Mode(), jobs, at)
		if err := insertBatches(ctx, tx, []store.PlannedBatch{{Name: p.Name, State: b}}, at); err != nil {
			return err
		}
		batch, err := getBatch(ctx, tx, id)
		out = &store.BatchEnqueued{Batch: batch, Jobs: jobs}
		return err
	})
	if err != nil {
		return nil, enqueueError(err, len(p.Jobs))
	}
	return out, nil
}

// insertBatches writes batch rows with their counters.
func insertBatches(ctx context.Context, tx pgx.Tx, batches []store.PlannedBatch, at time.Time) error {
	for _, pb := range batches {
		b := pb.State
		if _, err := tx.Exec(ctx, `INSERT INTO hammerwork_batches (id, name, failure_mode, status,
    total_jobs, pending_jobs, completed_jobs, failed_jobs, cancelled_jobs, created_at, completed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			b.ID, nullStr(pb.Name), string(b.FailureMode), string(b.Status),
			b.Total, b.Pending(), b.Completed, b.Failed, b.Cancelled, at, b.CompletedAt); err != nil {
			return fmt.Errorf("insert batch %s: %w", b.ID, err)
		}
	}
	return nil
}

// GetBatch returns a batch with its counters, and its failed jobs when it
// collects errors.
func (s *Store) GetBatch(ctx context.Context, id uuid.UUID) (*store.Batch, error) {
	b, err := getBatch(ctx, s.pool, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("get batch %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "get batch %s", id)
	}
	return b, nil
}

type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func getBatch(ctx context.Context, q queryer, id uuid.UUID) (*store.Batch, error) {
	b, err := store.ScanBatch(q.QueryRow(ctx, `SELECT b.id, b.name, b.failure_mode, b.status, b.total_jobs, b.pending_jobs,
    b.completed_jobs, b.failed_jobs, b.cancelled_jobs, b.created_at, b.completed_at,
    b.status = 'pending' AND EXISTS (SELECT 1 FROM hammerwork_jobs j
        WHERE j.batch_id = b.id AND j.status IN ('pending', 'running') AND (j.status = 'running' OR j.attempts > 0))
FROM hammerwork_batches b WHERE b.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if b.FailureMode != store.CollectErrors || b.FailedJobs == 0 {
		return b, nil
	}
	rows, err := q.Query(ctx, `SELECT id, coalesce(error_message, '') FROM hammerwork_jobs
WHERE batch_id = $1 AND status = 'failed' ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if b.Errors, err = store.CollectBatchErrors(rows); err != nil {
		return nil, err
	}
	return b, nil
}

func (r resolveTx) JobBatches(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]uuid.UUID, error) {
	rows, err := r.tx.Query(ctx, `SELECT id, batch_id FROM hammerwork_jobs WHERE id = ANY ($1::uuid[]) AND batch_id IS NOT NULL`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectIDMap(rows)
}

func (r resolveTx) LockBatch(ctx context.Context, id uuid.UUID) (*store.BatchState, error) {
	b, err := store.ScanBatchState(r.tx.QueryRow(ctx, `SELECT failure_mode, status, total_jobs, completed_jobs, failed_jobs, cancelled_jobs, completed_at
FROM hammerwork_batches WHERE id = $1 FOR UPDATE`, id), id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return b, err
}

func (r resolveTx) SaveBatch(ctx context.Context, b *store.BatchState) error {
	_, err := r.tx.Exec(ctx, `UPDATE hammerwork_batches SET
    status = $2, pending_jobs = $3, completed_jobs = $4, failed_jobs = $5, cancelled_jobs = $6, completed_at = $7
WHERE id = $1`, b.ID, string(b.Status), b.Pending(), b.Completed, b.Failed, b.Cancelled, b.CompletedAt)
	return err
}

const cancelBatchJobsSQL = `UPDATE hammerwork_jobs j SET status = 'cancelled'
FROM (SELECT id FROM hammerwork_jobs WHERE batch_id = $1 AND status = 'pending' ORDER BY id FOR UPDATE) o
WHERE j.id = o.id
RETURNING j.id, ` + changeColumns

func (r resolveTx) CancelBatchJobs(ctx context.Context, batchID uuid.UUID) ([]store.JobChange, error) {
	rows, err := r.tx.Query(ctx, cancelBatchJobsSQL, batchID)
	if err != nil {
		return nil, err
	}
	return store.CollectChanges(rows, job.StatusPending, job.StatusCancelled)
}

func (r resolveTx) WorkflowBatchCounts(ctx context.Context, workflowID uuid.UUID) (map[uuid.UUID]map[job.Status]int, error) {
	rows, err := r.tx.Query(ctx, `SELECT batch_id, status, count(*) FROM hammerwork_jobs
WHERE workflow_id = $1 AND batch_id IS NOT NULL GROUP BY batch_id, status`, workflowID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectGroupStatusCounts(rows)
}
