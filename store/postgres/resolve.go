package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// maxTxAttempts bounds the re-runs of a transaction that PostgreSQL aborted
// as a deadlock victim. Resolution locks a job, then its workflow, then
// (fail_fast) the workflow's other jobs, while a Complete of one of those
// jobs locks it before the workflow: the two can deadlock, PostgreSQL aborts
// one, and re-running it sees the other's outcome (a stale token, say).
const maxTxAttempts = 5

// inTx runs fn in a transaction, re-running it when PostgreSQL picks it as a
// deadlock or serialization victim.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	var err error
	for attempt := range maxTxAttempts {
		if attempt > 0 {
			s.retried.Add(1)
		}
		err = pgx.BeginFunc(ctx, s.pool, fn)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "40P01" && pgErr.Code != "40001") {
			return err
		}
	}
	return err
}

// resolveTx is store.WorkflowTx in SQL on one pgx transaction.
type resolveTx struct{ tx pgx.Tx }

var _ store.WorkflowTx = resolveTx{}

// hasChildren is a RETURNING column that tells resolution whether a job
// has children, from the edge index.
const hasChildren = `EXISTS (SELECT 1 FROM hammerwork_job_dependencies d WHERE d.depends_on_id = j.id)`

// changeColumns are the RETURNING columns of a job transition that
// resolution needs: workflow, batch and whether the job has children.
const changeColumns = `j.workflow_id, j.batch_id, ` + hasChildren

// needsResolution reports whether any change has consequences beyond its row.
func needsResolution(changes []store.JobChange) bool {
	for _, c := range changes {
		if c.WorkflowID != nil || c.BatchID != nil || c.Dependents {
			return true
		}
	}
	return false
}

// decrementSQL aggregates the resolved parents per child first, so a child
// with several parents in the batch is updated once by the right amount.
const decrementSQL = `UPDATE hammerwork_jobs j SET
    pending_dependencies = greatest(j.pending_dependencies - c.n, 0),
    dependency_status = CASE WHEN j.pending_dependencies - c.n <= 0 AND j.condition IS NULL
        THEN 'satisfied' ELSE j.dependency_status END
FROM (SELECT d.job_id, count(*)::int AS n FROM hammerwork_job_dependencies d
      WHERE d.depends_on_id = ANY ($1::uuid[]) GROUP BY d.job_id) c
WHERE j.id = c.job_id AND j.status = 'pending' AND j.dependency_status = 'waiting'
RETURNING j.id, j.workflow_id, j.pending_dependencies, j.dependency_status, j.condition, j.queue_name`

func (r resolveTx) DecrementChildren(ctx context.Context, parents []uuid.UUID) ([]store.ReadyChild, error) {
	return r.ready(ctx, decrementSQL, parents)
}

// ready runs a statement returning id, workflow_id, pending_dependencies,
// dependency_status, condition and queue_name; it keeps the jobs left
// waiting on a condition alone, and notifies the queues of the jobs that
// became leasable so idle agents wake up.
func (r resolveTx) ready(ctx context.Context, sql string, args ...any) ([]store.ReadyChild, error) {
	rows, err := r.tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.ReadyChild
	var queues []string
	for rows.Next() {
		var c store.ReadyChild
		var pending int32
		var depStatus, queue string
		var cond *string
		if err := rows.Scan(&c.ID, &c.WorkflowID, &pending, &depStatus, &cond, &queue); err != nil {
			return nil, err
		}
		switch {
		case depStatus == string(job.DependencySatisfied) || depStatus == string(job.DependencyNone):
			queues = append(queues, queue)
		case pending == 0 && depStatus == string(job.DependencyWaiting) && cond != nil:
			c.Condition = *cond
			out = append(out, c)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, r.notify(ctx, queues)
}

// notify signals each queue once; it is delivered when the transaction commits.
func (r resolveTx) notify(ctx context.Context, queues []string) error {
	if len(queues) == 0 {
		return nil
	}
	slices.Sort(queues)
	_, err := r.tx.Exec(ctx, notifyQueues, slices.Compact(queues))
	return err
}

const parentResultsSQL = `SELECT d.job_id, coalesce(p.step_name, p.id::text), coalesce(p.result_data::text, 'null')
FROM hammerwork_job_dependencies d JOIN hammerwork_jobs p ON p.id = d.depends_on_id
WHERE d.job_id = ANY ($1::uuid[])`

func (r resolveTx) ParentResults(ctx context.Context, children []uuid.UUID) (map[uuid.UUID]map[string]json.RawMessage, error) {
	return parentResults(ctx, r.tx, children)
}

func parentResults(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, children []uuid.UUID) (map[uuid.UUID]map[string]json.RawMessage, error) {
	rows, err := q.Query(ctx, parentResultsSQL, children)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectParentResults(rows)
}

func (r resolveTx) SatisfyJobs(ctx context.Context, ids []uuid.UUID) error {
	rows, err := r.tx.Query(ctx, `UPDATE hammerwork_jobs SET dependency_status = 'satisfied'
WHERE id = ANY ($1::uuid[]) AND status = 'pending' RETURNING queue_name`, ids)
	if err != nil {
		return err
	}
	queues, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	return r.notify(ctx, queues)
}

func (r resolveTx) SkipJobs(ctx context.Context, ids []uuid.UUID) error {
	_, err := r.tx.Exec(ctx, `UPDATE hammerwork_jobs SET status = 'skipped', dependency_status = 'satisfied'
WHERE id = ANY ($1::uuid[]) AND status = 'pending'`, ids)
	return err
}

const failConditionSQL = `UPDATE hammerwork_jobs j SET
    status = 'failed', dependency_status = 'satisfied', failed_at = $1, error_message = f.message,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempts, 'at', $2::text, 'outcome', 'condition_error', 'message', f.message))
FROM unnest($3::uuid[], $4::text[]) AS f(id, message)
WHERE j.id = f.id AND j.status = 'pending'`

func (r resolveTx) FailJobs(ctx context.Context, failures []store.ConditionFailure, now time.Time) error {
	ids := make([]uuid.UUID, len(failures))
	messages := make([]string, len(failures))
	for i, f := range failures {
		ids[i], messages[i] = f.ID, f.Message
	}
	_, err := r.tx.Exec(ctx, failConditionSQL, now, now.Format(time.RFC3339Nano), ids, messages)
	return err
}

// cancelDescendantsSQL walks the edges down from the roots; the inner
// SELECT locks the unfinished descendants and remembers their old status.
const cancelDescendantsSQL = `WITH RECURSIVE descendants(id) AS (
    SELECT d.job_id FROM hammerwork_job_dependencies d WHERE d.depends_on_id = ANY ($1::uuid[])
    UNION
    SELECT d.job_id FROM hammerwork_job_dependencies d JOIN descendants s ON d.depends_on_id = s.id
)
UPDATE hammerwork_jobs j SET
    status = 'cancelled', dependency_status = 'failed',
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
FROM (SELECT id, status FROM hammerwork_jobs
      WHERE id IN (SELECT id FROM descendants) AND status IN ('pending', 'running')
      FOR UPDATE) o
WHERE j.id = o.id
RETURNING j.id, j.workflow_id, o.status`

func (r resolveTx) CancelDescendants(ctx context.Context, roots []uuid.UUID) ([]store.JobChange, error) {
	return r.cancelled(ctx, cancelDescendantsSQL, roots)
}

const cancelWorkflowJobsSQL = `UPDATE hammerwork_jobs j SET
    status = 'cancelled', leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
FROM (SELECT id, status FROM hammerwork_jobs
      WHERE workflow_id = $1 AND status IN ('pending', 'running') FOR UPDATE) o
WHERE j.id = o.id
RETURNING j.id, j.workflow_id, o.status`

func (r resolveTx) CancelWorkflowJobs(ctx context.Context, workflowID uuid.UUID) ([]store.JobChange, error) {
	return r.cancelled(ctx, cancelWorkflowJobsSQL, workflowID)
}

func (r resolveTx) cancelled(ctx context.Context, sql string, args ...any) ([]store.JobChange, error) {
	rows, err := r.tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.JobChange
	for rows.Next() {
		c := store.JobChange{To: job.StatusCancelled}
		var from string
		if err := rows.Scan(&c.ID, &c.WorkflowID, &from); err != nil {
			return nil, err
		}
		c.From = job.Status(from)
		out = append(out, c)
	}
	return out, rows.Err()
}

func (r resolveTx) DeadParents(ctx context.Context, id uuid.UUID) ([]store.Parent, error) {
	rows, err := r.tx.Query(ctx, `SELECT p.id, coalesce(p.step_name, ''), p.status
FROM hammerwork_job_dependencies d JOIN hammerwork_jobs p ON p.id = d.depends_on_id
WHERE d.job_id = $1 AND p.status IN ('failed', 'cancelled') ORDER BY p.id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectParents(rows)
}

const recomputeSQL = `UPDATE hammerwork_jobs j SET
    pending_dependencies = c.n,
    dependency_status = CASE WHEN c.total = 0 THEN 'none'
        WHEN c.n > 0 OR j.condition IS NOT NULL THEN 'waiting' ELSE 'satisfied' END
FROM (SELECT x.id, count(d.depends_on_id)::int AS total,
        (count(d.depends_on_id) FILTER (WHERE p.status NOT IN ('completed', 'skipped')))::int AS n
      FROM unnest($1::uuid[]) AS x(id)
      LEFT JOIN hammerwork_job_dependencies d ON d.job_id = x.id
      LEFT JOIN hammerwork_jobs p ON p.id = d.depends_on_id
      GROUP BY x.id) c
WHERE j.id = c.id AND j.status = 'pending'
RETURNING j.id, j.workflow_id, j.pending_dependencies, j.dependency_status, j.condition, j.queue_name`

func (r resolveTx) RecomputeDependencies(ctx context.Context, ids []uuid.UUID) ([]store.ReadyChild, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return r.ready(ctx, recomputeSQL, ids)
}

func (r resolveTx) LockWorkflow(ctx context.Context, id uuid.UUID) (*store.WorkflowState, error) {
	w, err := store.ScanWorkflowState(r.tx.QueryRow(ctx, `SELECT id, status, failure_policy, timeout_seconds,
    total_jobs, completed_jobs, failed_jobs, cancelled_jobs, skipped_jobs,
    error_message, completed_at, failed_at, deadline
FROM hammerwork_workflows WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return w, err
}

func (r resolveTx) SaveWorkflow(ctx context.Context, w *store.WorkflowState) error {
	_, err := r.tx.Exec(ctx, `UPDATE hammerwork_workflows SET
    status = $2, completed_jobs = $3, failed_jobs = $4, cancelled_jobs = $5, skipped_jobs = $6,
    error_message = $7, completed_at = $8, failed_at = $9, deadline = $10
WHERE id = $1`, w.ID, string(w.Status), w.Completed, w.Failed, w.Cancelled, w.Skipped,
		nullStr(w.ErrorMessage), w.CompletedAt, w.FailedAt, w.Deadline)
	return err
}

func (r resolveTx) RequeueWorkflowJobs(ctx context.Context, workflowID uuid.UUID, now time.Time) ([]uuid.UUID, error) {
	if _, err := r.tx.Exec(ctx, `UPDATE hammerwork_jobs SET
    status = 'pending', attempts = 0, scheduled_at = $2, completed_at = NULL, failed_at = NULL,
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE workflow_id = $1 AND status IN ('failed', 'cancelled')`, workflowID, now); err != nil {
		return nil, err
	}
	rows, err := r.tx.Query(ctx, `SELECT id FROM hammerwork_jobs WHERE workflow_id = $1 AND status = 'pending'`, workflowID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

func (r resolveTx) CountWorkflowJobs(ctx context.Context, workflowID uuid.UUID) (map[job.Status]int, error) {
	rows, err := r.tx.Query(ctx, `SELECT status, count(*) FROM hammerwork_jobs WHERE workflow_id = $1 GROUP BY status`, workflowID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectStatusCounts(rows)
}
