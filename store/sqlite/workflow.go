package sqlite

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

// insertFullJob writes a job with dependencies or a workflow: everything
// but the lease and the outcome.
const insertFullJob = `INSERT INTO hammerwork_jobs (
	id, queue_name, payload, status, priority, attempts, max_attempts,
	created_at, scheduled_at, timeout_seconds, retry_policy, result_ttl_seconds, batch_id,
	workflow_id, workflow_name, step_name, depends_on, dependency_status, pending_dependencies, condition,
	trace_id, correlation_id, parent_span_id, span_context, trace_state, unique_key
) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// insertJobs writes whole job rows and their edges with two prepared
// statements in the caller's transaction.
func insertJobs(ctx context.Context, tx *sql.Tx, jobs []*job.Job, edges []store.Edge) error {
	stmt, err := tx.PrepareContext(ctx, insertFullJob)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, j := range jobs {
		var policy any
		if j.RetryPolicy != nil {
			b, err := json.Marshal(j.RetryPolicy)
			if err != nil {
				return fmt.Errorf("encode retry policy of job %s: %w", j.ID, err)
			}
			policy = string(b)
		}
		deps := make([]string, len(j.DependsOn))
		for i, d := range j.DependsOn {
			deps[i] = d.String()
		}
		if _, err := stmt.ExecContext(ctx,
			j.ID.String(), j.Queue, string(j.Payload), string(j.Status), int(j.Priority), j.MaxAttempts,
			ts(j.CreatedAt), ts(j.ScheduledAt), nullSeconds(j.Timeout.D()), policy, nullSeconds(j.ResultTTL.D()),
			nullUUID(j.BatchID), nullUUID(j.WorkflowID), nullString(j.WorkflowName), nullString(j.StepName),
			jsonList(deps), string(j.DependencyStatus), j.PendingDependencies, nullString(j.Condition),
			nullString(j.TraceID), nullString(j.CorrelationID), nullString(j.ParentSpanID),
			nullString(j.SpanContext), nullString(j.TraceState), nullString(j.UniqueKey)); err != nil {
			return fmt.Errorf("job %s (queue %q): %w", j.ID, j.Queue, err)
		}
	}
	if len(edges) == 0 {
		return nil
	}
	edge, err := tx.PrepareContext(ctx, `INSERT INTO hammerwork_job_dependencies (job_id, depends_on_id) VALUES (?, ?)`)
	if err != nil {
		return err
	}
	defer edge.Close()
	for _, e := range edges {
		if _, err := edge.ExecContext(ctx, e.JobID.String(), e.DependsOnID.String()); err != nil {
			return fmt.Errorf("edge %s -> %s: %w", e.DependsOnID, e.JobID, err)
		}
	}
	return nil
}

// enqueueInTx writes jobs that name parents or claim unique keys, deciding
// their dependency state from the parents' status and their keys from the
// live jobs, read in the same (single writer) transaction.
func (s *Store) enqueueInTx(ctx context.Context, p store.EnqueueParams, now time.Time) ([]*job.Job, error) {
	var jobs []*job.Job
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		jobs, err = enqueueTx(ctx, tx, p.Jobs, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("enqueue %d jobs: %w", len(p.Jobs), err)
	}
	return jobs, nil
}

// EnqueueWorkflow validates the definition, then writes the workflow, its
// jobs and its edges in one transaction.
func (s *Store) EnqueueWorkflow(ctx context.Context, p store.EnqueueWorkflowParams) (*store.WorkflowEnqueued, error) {
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, fmt.Errorf("enqueue workflow %q: %w", p.Workflow.Name, err)
	}
	plan, err := store.PlanWorkflow(p, now)
	if err != nil {
		return nil, err
	}
	w := plan.Workflow
	err = s.inTx(ctx, func(tx *sql.Tx) error { return insertWorkflow(ctx, tx, plan) })
	if err != nil {
		return nil, fmt.Errorf("enqueue workflow %q: %w", w.Name, err)
	}
	return &store.WorkflowEnqueued{Workflow: w, Jobs: plan.Steps}, nil
}

// insertWorkflow writes a planned workflow, its batch steps' rows, its jobs
// and its edges in the caller's transaction: EnqueueWorkflow's own, or a
// schedule's firing, which writes its runs and state beside it.
func insertWorkflow(ctx context.Context, tx *sql.Tx, plan *store.WorkflowPlan) error {
	w := plan.Workflow
	var metadata any
	if len(w.Metadata) > 0 {
		metadata = string(w.Metadata)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO hammerwork_workflows (id, name, description, status,
		failure_policy, priority, timeout_seconds, deadline, trace_id, correlation_id, metadata, total_jobs, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		w.ID.String(), w.Name, nullString(w.Description), string(w.Status), string(w.FailurePolicy),
		int(w.Priority), nullSeconds(w.Timeout.D()), nullTS(w.Deadline), nullString(w.TraceID),
		nullString(w.CorrelationID), metadata, w.Stats.TotalJobs, ts(w.CreatedAt)); err != nil {
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
	(SELECT count(*) FROM hammerwork_jobs j WHERE j.workflow_id = w.id AND j.status = 'pending'),
	(SELECT count(*) FROM hammerwork_jobs j WHERE j.workflow_id = w.id AND j.status = 'running')`

func getWorkflow(ctx context.Context, q querier, id uuid.UUID) (*workflow.Record, error) {
	w, err := store.ScanSQLWorkflow(q.QueryRowContext(ctx, `SELECT `+workflowCols+` FROM hammerwork_workflows w WHERE w.id = ?`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return w, err
}

// GetWorkflow returns the workflow with its counters, or ErrNotFound.
func (s *Store) GetWorkflow(ctx context.Context, id uuid.UUID) (*workflow.Record, error) {
	w, err := getWorkflow(ctx, s.read, id)
	if err != nil {
		return nil, fmt.Errorf("get workflow %s: %w", id, dbErr(err))
	}
	return w, nil
}

// ListWorkflows lists workflows newest first, one page at a time.
func (s *Store) ListWorkflows(ctx context.Context, p store.ListWorkflowsParams) (*store.WorkflowPage, error) {
	pg, err := p.Paging()
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+workflowCols+` FROM hammerwork_workflows w
		WHERE (?1 IS NULL OR w.status = ?1) AND (?2 IS NULL OR w.id < ?2)
		ORDER BY w.id DESC LIMIT ?3`, nullString(string(p.Status)), pg.BeforeString(), pg.Fetch())
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", dbErr(err))
	}
	defer rows.Close()
	wfs, err := store.CollectScanned(rows, store.ScanSQLWorkflow)
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	return pg.WorkflowPage(wfs), nil
}

// WorkflowJobs returns every job of the workflow in creation (step) order,
// with DependsOn and Dependents read from the edges.
func (s *Store) WorkflowJobs(ctx context.Context, id uuid.UUID) ([]*job.Job, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+jobColumns+` FROM hammerwork_jobs WHERE workflow_id = ? ORDER BY id`, id.String())
	if err != nil {
		return nil, fmt.Errorf("list jobs of workflow %s: %w", id, dbErr(err))
	}
	jobs, err := store.ScanSQLJobs(rows, false)
	if err != nil {
		return nil, fmt.Errorf("list jobs of workflow %s: %w", id, err)
	}
	if len(jobs) == 0 {
		if _, err := s.GetWorkflow(ctx, id); err != nil {
			return nil, err
		}
		return []*job.Job{}, nil
	}
	children, err := s.workflowEdges(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("list jobs of workflow %s: %w", id, err)
	}
	for _, j := range jobs {
		j.Dependents = children[j.ID]
		if j.Dependents == nil {
			j.Dependents = []uuid.UUID{}
		}
	}
	if err := s.hideExpiredResults(ctx, jobs...); err != nil {
		return nil, fmt.Errorf("list jobs of workflow %s: %w", id, err)
	}
	return jobs, nil
}

// workflowEdges maps each job of a workflow to its children.
func (s *Store) workflowEdges(ctx context.Context, id uuid.UUID) (map[uuid.UUID][]uuid.UUID, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT d.depends_on_id, d.job_id FROM hammerwork_job_dependencies d
		JOIN hammerwork_jobs j ON j.id = d.job_id WHERE j.workflow_id = ? ORDER BY d.depends_on_id, d.job_id`, id.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectEdges(rows)
}

// workflowOp runs one of the workflow-wide operations in a write
// transaction and reads the workflow back.
func (s *Store) workflowOp(ctx context.Context, op string, p store.WorkflowParams,
	fn func(tx resolveTx, now time.Time) error) (*workflow.Record, error) {
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, fmt.Errorf("%s workflow %s: %w", op, p.ID, err)
	}
	var w *workflow.Record
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := fn(resolveTx{tx}, now); err != nil {
			return err
		}
		var err error
		w, err = getWorkflow(ctx, tx, p.ID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s workflow %s: %w", op, p.ID, err)
	}
	return w, nil
}

// CancelWorkflow cancels every unfinished job and the workflow.
func (s *Store) CancelWorkflow(ctx context.Context, p store.WorkflowParams) (*workflow.Record, error) {
	return s.workflowOp(ctx, "cancel", p, func(tx resolveTx, now time.Time) error {
		return store.CancelWorkflow(ctx, tx, p.ID, now)
	})
}

// RetryWorkflow re-pends the failed and cancelled jobs and runs the
// workflow again.
func (s *Store) RetryWorkflow(ctx context.Context, p store.WorkflowParams) (*workflow.Record, error) {
	return s.workflowOp(ctx, "retry", p, func(tx resolveTx, now time.Time) error {
		return store.RetryWorkflow(ctx, tx, p.ID, now)
	})
}

// ExpireWorkflows fails the live workflows whose deadline passed, all in
// one write transaction.
func (s *Store) ExpireWorkflows(ctx context.Context, p store.ExpireWorkflowsParams) ([]uuid.UUID, error) {
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, fmt.Errorf("expire workflows: %w", err)
	}
	var expired []uuid.UUID
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		ids, err := store.QueryIDs(ctx, tx, `SELECT id FROM hammerwork_workflows
			WHERE status IN ('running', 'paused') AND deadline IS NOT NULL AND deadline <= ?
			ORDER BY deadline, id LIMIT ?`, ts(now), p.ExpireLimit())
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := store.ExpireWorkflow(ctx, resolveTx{tx}, id, now); err != nil {
				return fmt.Errorf("workflow %s: %w", id, err)
			}
		}
		expired = ids
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire workflows: %w", err)
	}
	return expired, nil
}

// ParentResults returns the results of a job's parents keyed by step name
// (a batch step's as one list).
func (s *Store) ParentResults(ctx context.Context, jobID uuid.UUID) (map[string]json.RawMessage, error) {
	all, err := parentResults(ctx, s.read, []uuid.UUID{jobID})
	if err != nil {
		return nil, fmt.Errorf("read parent results of job %s: %w", jobID, dbErr(err))
	}
	return store.ParentResultsOf(all, jobID)
}
