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
)

// resolveTx is store.WorkflowTx in SQL on the write transaction. Id lists
// are bound as one JSON array and read with json_each, so every statement
// is fixed text whatever the number of ids.
type resolveTx struct{ tx *sql.Tx }

var _ store.WorkflowTx = resolveTx{}

// hasChildren is a RETURNING column that tells resolution whether a job
// has children, from the edge index.
const hasChildren = `EXISTS (SELECT 1 FROM hammerwork_job_dependencies d WHERE d.depends_on_id = hammerwork_jobs.id)`

// changeColumns are the RETURNING columns of a job transition that
// resolution needs: workflow, batch and whether the job has children.
const changeColumns = `workflow_id, batch_id, ` + hasChildren

func idList(ids []uuid.UUID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return jsonList(s)
}

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
const decrementSQL = `UPDATE hammerwork_jobs SET
	pending_dependencies = max(pending_dependencies - c.n, 0),
	dependency_status = CASE WHEN pending_dependencies - c.n <= 0 AND condition IS NULL
		THEN 'satisfied' ELSE dependency_status END
FROM (SELECT d.job_id, count(*) AS n FROM hammerwork_job_dependencies d
	WHERE d.depends_on_id IN (SELECT value FROM json_each(?)) GROUP BY d.job_id) AS c
WHERE hammerwork_jobs.id = c.job_id AND hammerwork_jobs.status = 'pending'
	AND hammerwork_jobs.dependency_status = 'waiting'
RETURNING id, workflow_id, pending_dependencies, dependency_status, condition`

func (r resolveTx) DecrementChildren(ctx context.Context, parents []uuid.UUID) ([]store.ReadyChild, error) {
	return r.ready(ctx, decrementSQL, idList(parents))
}

// ready runs a statement returning id, workflow_id, pending_dependencies,
// dependency_status and condition, and keeps the jobs left waiting on a
// condition alone.
func (r resolveTx) ready(ctx context.Context, query string, args ...any) ([]store.ReadyChild, error) {
	rows, err := r.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.ReadyChild
	for rows.Next() {
		var c store.ReadyChild
		var depStatus string
		var cond sql.NullString
		var pending int
		if err := rows.Scan(&c.ID, &c.WorkflowID, &pending, &depStatus, &cond); err != nil {
			return nil, err
		}
		if pending != 0 || depStatus != string(job.DependencyWaiting) || !cond.Valid {
			continue
		}
		c.Condition = cond.String
		out = append(out, c)
	}
	return out, rows.Err()
}

const parentResultsSQL = `SELECT d.job_id, coalesce(p.step_name, p.id), coalesce(p.result_data, 'null')
FROM hammerwork_job_dependencies d JOIN hammerwork_jobs p ON p.id = d.depends_on_id
WHERE d.job_id IN (SELECT value FROM json_each(?))`

func (r resolveTx) ParentResults(ctx context.Context, children []uuid.UUID) (map[uuid.UUID]map[string]json.RawMessage, error) {
	return parentResults(ctx, r.tx, children)
}

func parentResults(ctx context.Context, q querier, children []uuid.UUID) (map[uuid.UUID]map[string]json.RawMessage, error) {
	rows, err := q.QueryContext(ctx, parentResultsSQL, idList(children))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectParentResults(rows)
}

func (r resolveTx) SatisfyJobs(ctx context.Context, ids []uuid.UUID) error {
	_, err := r.tx.ExecContext(ctx, `UPDATE hammerwork_jobs SET dependency_status = 'satisfied'
		WHERE id IN (SELECT value FROM json_each(?)) AND status = 'pending'`, idList(ids))
	return err
}

func (r resolveTx) SkipJobs(ctx context.Context, ids []uuid.UUID) error {
	_, err := r.tx.ExecContext(ctx, `UPDATE hammerwork_jobs SET status = 'skipped', dependency_status = 'satisfied'
		WHERE id IN (SELECT value FROM json_each(?)) AND status = 'pending'`, idList(ids))
	return err
}

var failConditionSQL = `UPDATE hammerwork_jobs SET
	status = 'failed', dependency_status = 'satisfied', failed_at = ?1, error_message = ?2,
	errors = ` + appendError("?3", "'condition_error'", "?2") + `
	WHERE id = ?4 AND status = 'pending'`

func (r resolveTx) FailJobs(ctx context.Context, failures []store.ConditionFailure, now time.Time) error {
	stmt, err := r.tx.PrepareContext(ctx, failConditionSQL)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, f := range failures {
		if _, err := stmt.ExecContext(ctx, ts(now), f.Message, attemptAt(now), f.ID.String()); err != nil {
			return fmt.Errorf("job %s: %w", f.ID, err)
		}
	}
	return nil
}

// descendantsSQL walks the edges down from the roots and lists the
// unfinished descendants with their status.
const descendantsSQL = `WITH RECURSIVE descendants(id) AS (
	SELECT d.job_id FROM hammerwork_job_dependencies d WHERE d.depends_on_id IN (SELECT value FROM json_each(?))
	UNION
	SELECT d.job_id FROM hammerwork_job_dependencies d JOIN descendants s ON d.depends_on_id = s.id
)
SELECT id, workflow_id, status FROM hammerwork_jobs
WHERE id IN (SELECT id FROM descendants) AND status IN ('pending', 'running')`

func (r resolveTx) CancelDescendants(ctx context.Context, roots []uuid.UUID) ([]store.JobChange, error) {
	return r.cancel(ctx, `dependency_status = 'failed', `, descendantsSQL, idList(roots))
}

func (r resolveTx) CancelWorkflowJobs(ctx context.Context, workflowID uuid.UUID) ([]store.JobChange, error) {
	return r.cancel(ctx, ``, `SELECT id, workflow_id, status FROM hammerwork_jobs
		WHERE workflow_id = ? AND status IN ('pending', 'running')`, workflowID.String())
}

// cancel reads the jobs selectQuery lists (id, workflow_id, status), then
// cancels them, clearing leases; set adds assignments. SQLite's RETURNING
// sees only new values, so the old status is read first; the single writer
// keeps the two statements consistent.
func (r resolveTx) cancel(ctx context.Context, set, selectQuery string, args ...any) ([]store.JobChange, error) {
	rows, err := r.tx.QueryContext(ctx, selectQuery, args...)
	if err != nil {
		return nil, err
	}
	changes, err := store.CollectStatusChanges(rows, job.StatusCancelled)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil || len(changes) == 0 {
		return nil, err
	}
	ids := store.ChangeIDs(changes)
	_, err = r.tx.ExecContext(ctx, `UPDATE hammerwork_jobs SET status = 'cancelled', `+set+`
		leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
		WHERE id IN (SELECT value FROM json_each(?)) AND status IN ('pending', 'running')`, idList(ids))
	return changes, err
}

const recomputeSQL = `UPDATE hammerwork_jobs SET
	pending_dependencies = c.n,
	dependency_status = CASE WHEN c.total = 0 THEN 'none'
		WHEN c.n > 0 OR condition IS NOT NULL THEN 'waiting' ELSE 'satisfied' END
FROM (SELECT x.value AS id, count(d.depends_on_id) AS total,
		count(d.depends_on_id) FILTER (WHERE p.status NOT IN ('completed', 'skipped')) AS n
	FROM json_each(?) AS x
	LEFT JOIN hammerwork_job_dependencies d ON d.job_id = x.value
	LEFT JOIN hammerwork_jobs p ON p.id = d.depends_on_id
	GROUP BY x.value) AS c
WHERE hammerwork_jobs.id = c.id AND hammerwork_jobs.status = 'pending'
RETURNING id, workflow_id, pending_dependencies, dependency_status, condition`

func (r resolveTx) RecomputeDependencies(ctx context.Context, ids []uuid.UUID) ([]store.ReadyChild, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return r.ready(ctx, recomputeSQL, idList(ids))
}

func (r resolveTx) DeadParents(ctx context.Context, id uuid.UUID) ([]store.Parent, error) {
	rows, err := r.tx.QueryContext(ctx, `SELECT p.id, COALESCE(p.step_name, ''), p.status
		FROM hammerwork_job_dependencies d JOIN hammerwork_jobs p ON p.id = d.depends_on_id
		WHERE d.job_id = ? AND p.status IN ('failed', 'cancelled') ORDER BY p.id`, id.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectParents(rows)
}

// LockWorkflow reads a workflow row; the write transaction already holds
// the database's one write lock.
func (r resolveTx) LockWorkflow(ctx context.Context, id uuid.UUID) (*store.WorkflowState, error) {
	w, err := store.ScanWorkflowState(r.tx.QueryRowContext(ctx, `SELECT id, status, failure_policy, timeout_seconds,
		total_jobs, completed_jobs, failed_jobs, cancelled_jobs, skipped_jobs,
		error_message, completed_at, failed_at, deadline
		FROM hammerwork_workflows WHERE id = ?`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return w, err
}

func nullTS(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

func (r resolveTx) SaveWorkflow(ctx context.Context, w *store.WorkflowState) error {
	_, err := r.tx.ExecContext(ctx, `UPDATE hammerwork_workflows SET
		status = ?, completed_jobs = ?, failed_jobs = ?, cancelled_jobs = ?, skipped_jobs = ?,
		error_message = ?, completed_at = ?, failed_at = ?, deadline = ?
		WHERE id = ?`, string(w.Status), w.Completed, w.Failed, w.Cancelled, w.Skipped,
		nullString(w.ErrorMessage), nullTS(w.CompletedAt), nullTS(w.FailedAt), nullTS(w.Deadline), w.ID.String())
	return err
}

func (r resolveTx) RequeueWorkflowJobs(ctx context.Context, workflowID uuid.UUID, now time.Time) ([]uuid.UUID, error) {
	if _, err := r.tx.ExecContext(ctx, `UPDATE hammerwork_jobs SET
		status = 'pending', attempts = 0, scheduled_at = ?, completed_at = NULL, failed_at = NULL,
		leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
		WHERE workflow_id = ? AND status IN ('failed', 'cancelled')`, ts(now), workflowID.String()); err != nil {
		return nil, err
	}
	return store.QueryIDs(ctx, r.tx, `SELECT id FROM hammerwork_jobs WHERE workflow_id = ? AND status = 'pending'`, workflowID)
}

func (r resolveTx) CountWorkflowJobs(ctx context.Context, workflowID uuid.UUID) (map[job.Status]int, error) {
	rows, err := r.tx.QueryContext(ctx, `SELECT status, count(*) FROM hammerwork_jobs WHERE workflow_id = ? GROUP BY status`, workflowID.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectStatusCounts(rows)
}
