package mysql

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

var (
	_ store.Batches = (*Store)(nil)
	_ store.BatchTx = resolveTx{}
)

// EnqueueBatch writes the batch's jobs (multi-row INSERTs) and its row in
// one transaction. Duplicates of live unique keys are not part of the
// batch: total_jobs counts the jobs written.
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
	err = s.inTx(ctx, func(tx *sql.Tx) error {
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
	if errors.Is(err, store.ErrInvalid) {
		return nil, fmt.Errorf("enqueue batch of %d jobs: %w", len(p.Jobs), err)
	}
	if err != nil {
		return nil, wrap(err, "enqueue batch of %d jobs", len(p.Jobs))
	}
	return out, nil
}

// insertBatches writes batch rows with their counters.
func insertBatches(ctx context.Context, tx *sql.Tx, batches []store.PlannedBatch, at time.Time) error {
	for _, pb := range batches {
		b := pb.State
		if _, err := tx.ExecContext(ctx, `INSERT INTO hammerwork_batches (id, name, failure_mode, status,
    total_jobs, pending_jobs, completed_jobs, failed_jobs, cancelled_jobs, created_at, completed_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			b.ID.String(), nullStr(pb.Name), string(b.FailureMode), string(b.Status),
			b.Total, b.Pending(), b.Completed, b.Failed, b.Cancelled, at, b.CompletedAt); err != nil {
			return fmt.Errorf("insert batch %s: %w", b.ID, err)
		}
	}
	return nil
}

// GetBatch returns a batch with its counters, and its failed jobs when it
// collects errors.
func (s *Store) GetBatch(ctx context.Context, id uuid.UUID) (*store.Batch, error) {
	b, err := getBatch(ctx, s.db, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("get batch %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "get batch %s", id)
	}
	return b, nil
}

type batchQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getBatch(ctx context.Context, q batchQuerier, id uuid.UUID) (*store.Batch, error) {
	b, err := store.ScanBatch(q.QueryRowContext(ctx, `SELECT b.id, b.name, b.failure_mode, b.status, b.total_jobs, b.pending_jobs,
    b.completed_jobs, b.failed_jobs, b.cancelled_jobs, b.created_at, b.completed_at,
    b.status = 'pending' AND EXISTS (SELECT 1 FROM hammerwork_jobs j
        WHERE j.batch_id = b.id AND j.status IN ('pending', 'running') AND (j.status = 'running' OR j.attempts > 0))
FROM hammerwork_batches b WHERE b.id = ?`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if b.FailureMode != store.CollectErrors || b.FailedJobs == 0 {
		return b, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT id, COALESCE(error_message, '') FROM hammerwork_jobs
WHERE batch_id = ? AND status = 'failed' ORDER BY id`, id.String())
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
	rows, err := r.tx.QueryContext(ctx, `SELECT id, batch_id FROM hammerwork_jobs
WHERE id IN (`+placeholders(len(ids))+`) AND batch_id IS NOT NULL`, idArgs(ids)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectIDMap(rows)
}

func (r resolveTx) LockBatch(ctx context.Context, id uuid.UUID) (*store.BatchState, error) {
	b, err := store.ScanBatchState(r.tx.QueryRowContext(ctx, `SELECT failure_mode, status, total_jobs, completed_jobs, failed_jobs, cancelled_jobs, completed_at
FROM hammerwork_batches WHERE id = ? FOR UPDATE`, id.String()), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return b, err
}

func (r resolveTx) SaveBatch(ctx context.Context, b *store.BatchState) error {
	_, err := r.tx.ExecContext(ctx, `UPDATE hammerwork_batches SET
    status = ?, pending_jobs = ?, completed_jobs = ?, failed_jobs = ?, cancelled_jobs = ?, completed_at = ?
WHERE id = ?`, string(b.Status), b.Pending(), b.Completed, b.Failed, b.Cancelled, b.CompletedAt, b.ID.String())
	return err
}

func (r resolveTx) CancelBatchJobs(ctx context.Context, batchID uuid.UUID) ([]store.JobChange, error) {
	changes, err := r.cancel(ctx, "", `SELECT j.id, j.workflow_id, j.status FROM hammerwork_jobs j
WHERE j.batch_id = ? AND j.status = 'pending' ORDER BY j.id FOR UPDATE`, batchID.String())
	for i := range changes {
		changes[i].BatchID = &batchID
		changes[i].From = job.StatusPending
	}
	return changes, err
}

func (r resolveTx) WorkflowBatchCounts(ctx context.Context, workflowID uuid.UUID) (map[uuid.UUID]map[job.Status]int, error) {
	rows, err := r.tx.QueryContext(ctx, `SELECT batch_id, status, COUNT(*) FROM hammerwork_jobs
WHERE workflow_id = ? AND batch_id IS NOT NULL GROUP BY batch_id, status`, workflowID.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectGroupStatusCounts(rows)
}
