package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

var _ store.Workflows = (*Store)(nil)

// fullJobColumns are the columns a job with dependencies or a workflow
// writes: everything but the lease and the outcome.
var fullJobColumns = []string{
	"id", "queue_name", "payload", "status", "priority", "max_attempts", "created_at", "scheduled_at",
	"timeout_seconds", "retry_policy", "result_ttl_seconds", "batch_id",
	"workflow_id", "workflow_name", "step_name", "depends_on", "dependency_status", "pending_dependencies",
	"condition", "trace_id", "correlation_id", "parent_span_id", "span_context", "trace_state", "unique_key",
}

// copyJobs writes whole job rows with COPY and their edges with a second
// COPY, then notifies each queue with a leasable job once.
func copyJobs(ctx context.Context, tx pgx.Tx, jobs []*job.Job, edges []store.Edge) error {
	rows := make([][]any, len(jobs))
	var queues []string
	seen := map[string]bool{}
	for i, j := range jobs {
		row, err := fullJobRow(j)
		if err != nil {
			return err
		}
		rows[i] = row
		if j.Status == job.StatusPending && !seen[j.Queue] &&
			(j.DependencyStatus == job.DependencyNone || j.DependencyStatus == job.DependencySatisfied) {
			seen[j.Queue] = true
			queues = append(queues, j.Queue)
		}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"hammerwork_jobs"}, fullJobColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy jobs: %w", err)
	}
	if len(edges) > 0 {
		edgeRows := make([][]any, len(edges))
		for i, e := range edges {
			edgeRows[i] = []any{e.JobID, e.DependsOnID}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"hammerwork_job_dependencies"},
			[]string{"job_id", "depends_on_id"}, pgx.CopyFromRows(edgeRows)); err != nil {
			return fmt.Errorf("copy dependencies: %w", err)
		}
	}
	if len(queues) > 0 {
		if _, err := tx.Exec(ctx, notifyQueues, queues); err != nil {
			return fmt.Errorf("notify queues: %w", err)
		}
	}
	return nil
}

// fullJobRow is a job's row in fullJobColumns order.
func fullJobRow(j *job.Job) ([]any, error) {
	var policy *string
	if j.RetryPolicy != nil {
		b, err := json.Marshal(j.RetryPolicy)
		if err != nil {
			return nil, fmt.Errorf("encode retry policy of job %s: %w", j.ID, err)
		}
		s := string(b)
		policy = &s
	}
	deps := []uuid.UUID{}
	if len(j.DependsOn) > 0 {
		deps = j.DependsOn
	}
	depsJSON, err := json.Marshal(deps)
	if err != nil {
		return nil, fmt.Errorf("encode depends_on of job %s: %w", j.ID, err)
	}
	return []any{j.ID, j.Queue, string(j.Payload), string(j.Status), int16(j.Priority), int32(j.MaxAttempts),
		j.CreatedAt, j.ScheduledAt, nullSeconds(j.Timeout.D()), policy, nullSeconds(j.ResultTTL.D()), j.BatchID,
		j.WorkflowID, nullStr(j.WorkflowName), nullStr(j.StepName), string(depsJSON), string(j.DependencyStatus),
		int32(j.PendingDependencies), nullStr(j.Condition), nullStr(j.TraceID), nullStr(j.CorrelationID),
		nullStr(j.ParentSpanID), nullStr(j.SpanContext), nullStr(j.TraceState), nullStr(j.UniqueKey)}, nil
}

// enqueueInTx writes jobs that name parents or claim unique keys in one
// transaction: the parents are read FOR SHARE, so none of them can finish
// (and miss the new edges) before this transaction commits.
func (s *Store) enqueueInTx(ctx context.Context, p store.EnqueueParams, at time.Time) ([]*job.Job, error) {
	var jobs []*job.Job
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		jobs, err = enqueueTx(ctx, tx, p.Jobs, at)
		return err
	})
	if err != nil {
		return nil, enqueueError(err, len(p.Jobs))
	}
	return jobs, nil
}

// EnqueueWorkflow validates the definition, then writes the workflow, its
// jobs (COPY) and its edges (COPY) in one transaction.
func (s *Store) EnqueueWorkflow(ctx context.Context, p store.EnqueueWorkflowParams) (*store.WorkflowEnqueued, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "enqueue workflow %q", p.Workflow.Name)
	}
	plan, err := store.PlanWorkflow(p, at)
	if err != nil {
		return nil, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error { return writeWorkflow(ctx, tx, plan) })
	if err != nil {
		return nil, workflowError(err, plan.Workflow.Name)
	}
	return &store.WorkflowEnqueued{Workflow: plan.Workflow, Jobs: plan.Steps}, nil
}

// writeWorkflow writes a planned workflow, its batches, its jobs and their
// edges in the caller's transaction: EnqueueWorkflow's and a schedule run's.
func writeWorkflow(ctx context.Context, tx pgx.Tx, plan *store.WorkflowPlan) error {
	w := plan.Workflow
	var metadata *string
	if len(w.Metadata) > 0 {
		m := string(w.Metadata)
		metadata = &m
	}
	if _, err := tx.Exec(ctx, `INSERT INTO hammerwork_workflows (id, name, description, status, failure_policy,
    priority, timeout_seconds, deadline, trace_id, correlation_id, metadata, total_jobs, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		w.ID, w.Name, nullStr(w.Description), string(w.Status), string(w.FailurePolicy),
		int16(w.Priority), nullSeconds(w.Timeout.D()), w.Deadline, nullStr(w.TraceID), nullStr(w.CorrelationID),
		metadata, w.Stats.TotalJobs, w.CreatedAt); err != nil {
		return fmt.Errorf("insert workflow: %w", err)
	}
	if err := insertBatches(ctx, tx, plan.Batches, w.CreatedAt); err != nil {
		return err
	}
	return copyJobs(ctx, tx, plan.Jobs, plan.Edges)
}

// workflowError maps a unique violation (an id that exists already) to
// ErrConflict.
func workflowError(err error, name string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("enqueue workflow %q: %w: %s", name, store.ErrConflict, pgErr.Detail)
	}
	return wrap(err, "enqueue workflow %q", name)
}

// workflowCols is what scanWorkflow reads, with pending and running counted
// from the jobs (the workflow_status index).
const workflowCols = `w.id, w.name, w.description, w.status, w.failure_policy, w.priority,
    w.timeout_seconds, w.deadline, w.trace_id, w.correlation_id, w.metadata, w.error_message,
    w.total_jobs, w.completed_jobs, w.failed_jobs, w.cancelled_jobs, w.skipped_jobs,
    w.created_at, w.completed_at, w.failed_at,
    (SELECT count(*) FROM hammerwork_jobs j WHERE j.workflow_id = w.id AND j.status = 'pending'),
    (SELECT count(*) FROM hammerwork_jobs j WHERE j.workflow_id = w.id AND j.status = 'running')`

func scanWorkflow(row store.Scanner) (*workflow.Record, error) {
	var (
		w                                   workflow.Record
		status, policy                      string
		priority                            int16
		desc, trace, corr, errMsg, metadata *string
		timeout                             *float64
		pending, running                    int64
	)
	err := row.Scan(&w.ID, &w.Name, &desc, &status, &policy, &priority,
		&timeout, &w.Deadline, &trace, &corr, &metadata, &errMsg,
		&w.Stats.TotalJobs, &w.Stats.CompletedJobs, &w.Stats.FailedJobs, &w.Stats.CancelledJobs, &w.Stats.SkippedJobs,
		&w.CreatedAt, &w.CompletedAt, &w.FailedAt, &pending, &running)
	if err != nil {
		return nil, err
	}
	w.Description = str(desc)
	w.Status = workflow.Status(status)
	w.FailurePolicy = workflow.FailurePolicy(policy)
	w.Priority = job.Priority(priority)
	w.Timeout = job.Duration(seconds(timeout))
	w.Deadline = utcPtr(w.Deadline)
	w.TraceID = str(trace)
	w.CorrelationID = str(corr)
	if metadata != nil {
		w.Metadata = json.RawMessage(*metadata)
	}
	w.ErrorMessage = str(errMsg)
	w.CreatedAt = store.UTC(w.CreatedAt)
	w.CompletedAt = utcPtr(w.CompletedAt)
	w.FailedAt = utcPtr(w.FailedAt)
	store.FinishStats(&w.Stats, int(pending), int(running))
	return &w, nil
}

// GetWorkflow returns the workflow with its counters, or ErrNotFound.
func (s *Store) GetWorkflow(ctx context.Context, id uuid.UUID) (*workflow.Record, error) {
	w, err := scanWorkflow(s.pool.QueryRow(ctx, `SELECT `+workflowCols+` FROM hammerwork_workflows w WHERE w.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	var status *string
	if p.Status != "" {
		st := string(p.Status)
		status = &st
	}
	rows, err := s.pool.Query(ctx, `SELECT `+workflowCols+` FROM hammerwork_workflows w
WHERE ($1::text IS NULL OR w.status = $1) AND ($2::uuid IS NULL OR w.id < $2)
ORDER BY w.id DESC LIMIT $3`, status, pg.Before, pg.Fetch())
	if err != nil {
		return nil, wrap(err, "list workflows")
	}
	defer rows.Close()
	wfs, err := store.CollectScanned(rows, scanWorkflow)
	if err != nil {
		return nil, wrap(err, "list workflows")
	}
	return pg.WorkflowPage(wfs), nil
}

// WorkflowJobs returns every job of the workflow in creation (step) order.
func (s *Store) WorkflowJobs(ctx context.Context, id uuid.UUID) ([]*job.Job, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+fullJobCols+` FROM hammerwork_jobs j WHERE j.workflow_id = $1 ORDER BY j.id`, id)
	if err != nil {
		return nil, wrap(err, "list jobs of workflow %s", id)
	}
	jobs, err := collectJobs(rows, true)
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
	fn func(ctx context.Context, tx resolveTx, at time.Time) error) (*workflow.Record, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "%s workflow %s", op, p.ID)
	}
	var w *workflow.Record
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := fn(ctx, resolveTx{tx}, at); err != nil {
			return err
		}
		var err error
		w, err = scanWorkflow(tx.QueryRow(ctx, `SELECT `+workflowCols+` FROM hammerwork_workflows w WHERE w.id = $1`, p.ID))
		return err
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return nil, fmt.Errorf("%s workflow %s: %w", op, p.ID, err)
	}
	if err != nil {
		return nil, wrap(err, "%s workflow %s", op, p.ID)
	}
	return w, nil
}

// CancelWorkflow cancels every unfinished job and the workflow.
func (s *Store) CancelWorkflow(ctx context.Context, p store.WorkflowParams) (*workflow.Record, error) {
	return s.workflowOp(ctx, "cancel", p, func(ctx context.Context, tx resolveTx, at time.Time) error {
		return store.CancelWorkflow(ctx, tx, p.ID, at)
	})
}

// RetryWorkflow re-pends the failed and cancelled jobs and runs the
// workflow again.
func (s *Store) RetryWorkflow(ctx context.Context, p store.WorkflowParams) (*workflow.Record, error) {
	return s.workflowOp(ctx, "retry", p, func(ctx context.Context, tx resolveTx, at time.Time) error {
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
	rows, err := s.pool.Query(ctx, `SELECT id FROM hammerwork_workflows
WHERE status IN ('running', 'paused') AND deadline IS NOT NULL AND deadline <= $1
ORDER BY deadline, id LIMIT $2`, at, p.ExpireLimit())
	if err != nil {
		return nil, wrap(err, "find expired workflows")
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, wrap(err, "find expired workflows")
	}
	return store.ExpireEach(ids, func(id uuid.UUID) (did bool, err error) {
		err = s.inTx(ctx, func(tx pgx.Tx) error {
			var ok bool
			err := tx.QueryRow(ctx, `SELECT true FROM hammerwork_workflows
WHERE id = $1 AND status IN ('running', 'paused') AND deadline <= $2 FOR UPDATE SKIP LOCKED`, id, at).Scan(&ok)
			if errors.Is(err, pgx.ErrNoRows) {
				did = false
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
	all, err := parentResults(ctx, s.pool, []uuid.UUID{jobID})
	if err != nil {
		return nil, wrap(err, "read parent results of job %s", jobID)
	}
	return store.ParentResultsOf(all, jobID)
}
