package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

var _ store.Workflows = (*Store)(nil)

// EnqueueWorkflow validates the definition, then writes the workflow, its
// jobs and its edges in one transaction.
func (s *Store) EnqueueWorkflow(ctx context.Context, p store.EnqueueWorkflowParams) (*store.WorkflowEnqueued, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "enqueue workflow %q", p.Workflow.Name)
	}
	plan, err := store.PlanWorkflow(p, at)
	if err != nil {
		return nil, err
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error { return insertWorkflow(ctx, tx, plan) })
	if err != nil {
		return nil, wrap(err, "enqueue workflow %q", plan.Workflow.Name)
	}
	return &store.WorkflowEnqueued{Workflow: plan.Workflow, Jobs: plan.Steps}, nil
}

// insertWorkflow writes a planned workflow, its batch steps' rows, its jobs
// and its edges in the caller's transaction: EnqueueWorkflow's, or a
// schedule run's beside its run row.
func insertWorkflow(ctx context.Context, tx *sql.Tx, plan *store.WorkflowPlan) error {
	w := plan.Workflow
	var metadata sql.NullString
	if len(w.Metadata) > 0 {
		metadata = sql.NullString{String: string(w.Metadata), Valid: true}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO hammerwork_workflows (id, name, description, status, failure_policy,
    priority, timeout_seconds, deadline, trace_id, correlation_id, metadata, total_jobs, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.ID.String(), w.Name, nullStr(w.Description), string(w.Status), string(w.FailurePolicy),
		int(w.Priority), nullSeconds(w.Timeout.D()), nullTime(w.Deadline), nullStr(w.TraceID), nullStr(w.CorrelationID),
		metadata, w.Stats.TotalJobs, w.CreatedAt); err != nil {
		return fmt.Errorf("insert workflow: %w", err)
	}
	if err := insertBatches(ctx, tx, plan.Batches, w.CreatedAt); err != nil {
		return err
	}
	return insertJobs(ctx, tx, plan.Jobs, plan.Edges)
}

// workflowCols is what scanWorkflow reads, with pending and running counted
// from the jobs (the workflow_status index).
const workflowCols = `w.id, w.name, w.description, w.status, w.failure_policy, w.priority,
    w.timeout_seconds, w.deadline, w.trace_id, w.correlation_id, w.metadata, w.error_message,
    w.total_jobs, w.completed_jobs, w.failed_jobs, w.cancelled_jobs, w.skipped_jobs,
    w.created_at, w.completed_at, w.failed_at,
    (SELECT COUNT(*) FROM hammerwork_jobs j WHERE j.workflow_id = w.id AND j.status = 'pending'),
    (SELECT COUNT(*) FROM hammerwork_jobs j WHERE j.workflow_id = w.id AND j.status = 'running')`

const getWorkflowSQL = `SELECT ` + workflowCols + ` FROM hammerwork_workflows w WHERE w.id = ?`

// GetWorkflow returns the workflow with its counters, or ErrNotFound.
func (s *Store) GetWorkflow(ctx context.Context, id uuid.UUID) (*workflow.Record, error) {
	w, err := store.ScanSQLWorkflow(s.db.QueryRowContext(ctx, getWorkflowSQL, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get workflow %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "get workflow %s", id)
	}
	return w, nil
}

// ListWorkflows lists workflows newest first, one page at a time.
func (s *Store) ListWorkflows(ctx context.Context, p store.ListWorkflowsParams) (*store.WorkflowPage, error) {
	pg, err := p.Paging()
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	query := `SELECT ` + workflowCols + ` FROM hammerwork_workflows w WHERE 1 = 1`
	var args []any
	if p.Status != "" {
		query += ` AND w.status = ?`
		args = append(args, string(p.Status))
	}
	if pg.Before != nil {
		query += ` AND w.id < ?`
		args = append(args, pg.BeforeString())
	}
	query += ` ORDER BY w.id DESC LIMIT ?`
	args = append(args, pg.Fetch())
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap(err, "list workflows")
	}
	defer rows.Close()
	wfs, err := store.CollectScanned(rows, store.ScanSQLWorkflow)
	if err != nil {
		return nil, wrap(err, "list workflows")
	}
	return pg.WorkflowPage(wfs), nil
}

// WorkflowJobs returns every job of the workflow in creation (step) order.
func (s *Store) WorkflowJobs(ctx context.Context, id uuid.UUID) ([]*job.Job, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+fullJobCols+` FROM hammerwork_jobs j WHERE j.workflow_id = ? ORDER BY j.id`, id.String())
	if err != nil {
		return nil, wrap(err, "list jobs of workflow %s", id)
	}
	jobs, err := store.ScanSQLJobs(rows, true)
	if err != nil {
		return nil, wrap(err, "list jobs of workflow %s", id)
	}
	if len(jobs) == 0 {
		if _, err := s.GetWorkflow(ctx, id); err != nil {
			return nil, err
		}
	}
	return jobs, nil
}

// workflowOp runs one of the workflow-wide operations in a transaction and
// reads the workflow back.
func (s *Store) workflowOp(ctx context.Context, op string, p store.WorkflowParams,
	fn func(tx resolveTx, at time.Time) error) (*workflow.Record, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "%s workflow %s", op, p.ID)
	}
	var w *workflow.Record
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := fn(resolveTx{tx}, at); err != nil {
			return err
		}
		var err error
		w, err = store.ScanSQLWorkflow(tx.QueryRowContext(ctx, getWorkflowSQL, p.ID.String()))
		return err
	})
	if err != nil {
		return nil, wrap(err, "%s workflow %s", op, p.ID)
	}
	return w, nil
}

// CancelWorkflow cancels every unfinished job and the workflow.
func (s *Store) CancelWorkflow(ctx context.Context, p store.WorkflowParams) (*workflow.Record, error) {
	return s.workflowOp(ctx, "cancel", p, func(tx resolveTx, at time.Time) error {
		return store.CancelWorkflow(ctx, tx, p.ID, at)
	})
}

// RetryWorkflow re-pends the failed and cancelled jobs and runs the
// workflow again.
func (s *Store) RetryWorkflow(ctx context.Context, p store.WorkflowParams) (*workflow.Record, error) {
	return s.workflowOp(ctx, "retry", p, func(tx resolveTx, at time.Time) error {
		return store.RetryWorkflow(ctx, tx, p.ID, at)
	})
}

// ExpireWorkflows fails the live workflows whose deadline passed, each in
// its own transaction; rows another expirer holds are skipped.
func (s *Store) ExpireWorkflows(ctx context.Context, p store.ExpireWorkflowsParams) ([]uuid.UUID, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "find expired workflows")
	}
	ids, err := store.QueryIDs(ctx, s.db, `SELECT id FROM hammerwork_workflows
WHERE status IN ('running', 'paused') AND deadline IS NOT NULL AND deadline <= ?
ORDER BY deadline, id LIMIT ?`, at, p.ExpireLimit())
	if err != nil {
		return nil, wrap(err, "find expired workflows")
	}
	return store.ExpireEach(ids, func(id uuid.UUID) (did bool, err error) {
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			did = false
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM hammerwork_workflows
WHERE id = ? AND status IN ('running', 'paused') AND deadline <= ? FOR UPDATE SKIP LOCKED`, id.String(), at).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
			did = true
			return store.ExpireWorkflow(ctx, resolveTx{tx}, id, at)
		})
		if err != nil {
			return false, wrap(err, "expire workflow %s", id)
		}
		return did, nil
	})
}

// ParentResults returns the results of a job's parents keyed by step name
// (a batch step's as one list).
func (s *Store) ParentResults(ctx context.Context, jobID uuid.UUID) (map[string]json.RawMessage, error) {
	all, err := parentResults(ctx, s.db, []uuid.UUID{jobID})
	if err != nil {
		return nil, wrap(err, "read parent results of job %s", jobID)
	}
	return store.ParentResultsOf(all, jobID)
}
