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
)

// resolveTx is store.WorkflowTx in SQL on one transaction. Without UPDATE ...
// RETURNING each primitive locks the rows it will change (in id order), works
// out their new values in Go where MySQL's assignment order would make SQL
// ambiguous, and writes them with one statement.
type resolveTx struct{ tx *sql.Tx }

var _ store.WorkflowTx = resolveTx{}

// hasChildren is a select column that tells resolution whether a job has
// children, from the edge index.
const hasChildren = `EXISTS (SELECT 1 FROM hammerwork_job_dependencies d WHERE d.depends_on_id = j.id)`

// changeColumns are the select columns of a job about to change that
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

// lockedChild is a waiting or pending job locked for a dependency update.
type lockedChild struct {
	id         uuid.UUID
	workflowID uuid.NullUUID
	pending    int
	condition  sql.NullString
}

// lockPending locks the pending jobs among ids (with extra, a further fixed
// predicate) in id order.
func (r resolveTx) lockPending(ctx context.Context, ids []uuid.UUID, extra string) ([]lockedChild, error) {
	sorted := sortedIDs(ids)
	rows, err := r.tx.QueryContext(ctx, `SELECT id, workflow_id, pending_dependencies, `+"`condition`"+`
FROM hammerwork_jobs WHERE id IN (`+placeholders(len(sorted))+`) AND status = 'pending'`+extra+`
ORDER BY id FOR UPDATE`, idArgs(sorted)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []lockedChild
	for rows.Next() {
		var c lockedChild
		if err := rows.Scan(&c.id, &c.workflowID, &c.pending, &c.condition); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// dependencyRow is one row of setDependencies' table.
type dependencyRow struct {
	ID      string `json:"id"`
	Pending int    `json:"pending"`
	Status  string `json:"status"`
}

// setDependencies writes pending_dependencies and dependency_status of
// locked jobs in one statement.
func (r resolveTx) setDependencies(ctx context.Context, table []dependencyRow) error {
	if len(table) == 0 {
		return nil
	}
	doc, err := json.Marshal(table)
	if err != nil {
		return err
	}
	ids := make([]any, len(table))
	for i, row := range table {
		ids[i] = row.ID
	}
	_, err = r.tx.ExecContext(ctx, `UPDATE hammerwork_jobs j
JOIN JSON_TABLE(?, '$[*]' COLUMNS (
    id CHAR(36) PATH '$.id', pending INT PATH '$.pending', status VARCHAR(16) PATH '$.status')) v
  ON j.id = v.id COLLATE utf8mb4_bin
SET j.pending_dependencies = v.pending, j.dependency_status = v.status
WHERE j.id IN (`+placeholders(len(ids))+`)`, append([]any{string(doc)}, ids...)...)
	return err
}

// DecrementChildren counts the resolved parents per child (several parents
// of one child may resolve in one batch), locks the waiting children, and
// lowers each once by its count.
func (r resolveTx) DecrementChildren(ctx context.Context, parents []uuid.UUID) ([]store.ReadyChild, error) {
	if len(parents) == 0 {
		return nil, nil
	}
	sorted := sortedIDs(parents)
	rows, err := r.tx.QueryContext(ctx, `SELECT job_id, COUNT(*) FROM hammerwork_job_dependencies
WHERE depends_on_id IN (`+placeholders(len(sorted))+`) GROUP BY job_id`, idArgs(sorted)...)
	if err != nil {
		return nil, err
	}
	counts := map[uuid.UUID]int{}
	var children []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, err
		}
		counts[id] = n
		children = append(children, id)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil || len(children) == 0 {
		return nil, err
	}
	locked, err := r.lockPending(ctx, children, " AND dependency_status = 'waiting'")
	if err != nil {
		return nil, err
	}
	var ready []store.ReadyChild
	table := make([]dependencyRow, len(locked))
	for i, c := range locked {
		left := max(c.pending-counts[c.id], 0)
		row := dependencyRow{ID: c.id.String(), Pending: left, Status: string(job.DependencyWaiting)}
		switch {
		case left > 0:
		case c.condition.Valid:
			ready = append(ready, readyChild(c))
		default:
			row.Status = string(job.DependencySatisfied)
		}
		table[i] = row
	}
	return ready, r.setDependencies(ctx, table)
}

func readyChild(c lockedChild) store.ReadyChild {
	rc := store.ReadyChild{ID: c.id, Condition: c.condition.String}
	if c.workflowID.Valid {
		w := c.workflowID.UUID
		rc.WorkflowID = &w
	}
	return rc
}

const parentResultsSQL = `SELECT d.job_id, COALESCE(p.step_name, p.id), COALESCE(p.result_data, 'null')
FROM hammerwork_job_dependencies d JOIN hammerwork_jobs p ON p.id = d.depends_on_id
WHERE d.job_id IN (%s)`

func (r resolveTx) ParentResults(ctx context.Context, children []uuid.UUID) (map[uuid.UUID]map[string]json.RawMessage, error) {
	return parentResults(ctx, r.tx, children)
}

func parentResults(ctx context.Context, q store.SQLQueryer, children []uuid.UUID) (map[uuid.UUID]map[string]json.RawMessage, error) {
	out := map[uuid.UUID]map[string]json.RawMessage{}
	if len(children) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, fmt.Sprintf(parentResultsSQL, placeholders(len(children))), idArgs(children)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectParentResults(rows)
}

// updatePending runs a fixed change on the pending jobs among ids, in id
// order.
func (r resolveTx) updatePending(ctx context.Context, set string, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	sorted := sortedIDs(ids)
	_, err := r.tx.ExecContext(ctx, `UPDATE hammerwork_jobs SET `+set+`
WHERE id IN (`+placeholders(len(sorted))+`) AND status = 'pending' ORDER BY id`, idArgs(sorted)...)
	return err
}

func (r resolveTx) SatisfyJobs(ctx context.Context, ids []uuid.UUID) error {
	return r.updatePending(ctx, `dependency_status = 'satisfied'`, ids)
}

func (r resolveTx) SkipJobs(ctx context.Context, ids []uuid.UUID) error {
	return r.updatePending(ctx, `status = 'skipped', dependency_status = 'satisfied'`, ids)
}

const failConditionSQL = `UPDATE hammerwork_jobs j
JOIN JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(36) PATH '$.id', message LONGTEXT PATH '$.message')) f
  ON j.id = f.id COLLATE utf8mb4_bin
SET j.status = 'failed', j.dependency_status = 'satisfied', j.failed_at = ?, j.error_message = f.message,
    j.errors = JSON_ARRAY_APPEND(j.errors, '$', JSON_OBJECT(
        'attempt', j.attempts, 'at', ?, 'outcome', 'condition_error', 'message', f.message))
WHERE j.id IN (%s) AND j.status = 'pending'`

type conditionFailure struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

func (r resolveTx) FailJobs(ctx context.Context, failures []store.ConditionFailure, now time.Time) error {
	if len(failures) == 0 {
		return nil
	}
	table := make([]conditionFailure, len(failures))
	ids := make([]uuid.UUID, len(failures))
	for i, f := range failures {
		table[i] = conditionFailure{ID: f.ID.String(), Message: f.Message}
		ids[i] = f.ID
	}
	doc, err := json.Marshal(table)
	if err != nil {
		return err
	}
	sorted := sortedIDs(ids)
	at := store.UTC(now)
	_, err = r.tx.ExecContext(ctx, fmt.Sprintf(failConditionSQL, placeholders(len(sorted))),
		append([]any{string(doc), at, at.Format(time.RFC3339Nano)}, idArgs(sorted)...)...)
	return err
}

// cancelDescendantsSQL walks the edges down from the roots (WITH RECURSIVE:
// MySQL 8.0 and MariaDB 10.2+) and locks the unfinished descendants.
const cancelDescendantsSQL = `WITH RECURSIVE descendants(id) AS (
    SELECT d.job_id FROM hammerwork_job_dependencies d WHERE d.depends_on_id IN (%s)
    UNION
    SELECT d.job_id FROM hammerwork_job_dependencies d JOIN descendants s ON d.depends_on_id = s.id
)
SELECT j.id, j.workflow_id, j.status FROM hammerwork_jobs j
WHERE j.id IN (SELECT id FROM descendants) AND j.status IN ('pending', 'running')
ORDER BY j.id FOR UPDATE`

func (r resolveTx) CancelDescendants(ctx context.Context, roots []uuid.UUID) ([]store.JobChange, error) {
	if len(roots) == 0 {
		return nil, nil
	}
	sorted := sortedIDs(roots)
	return r.cancel(ctx, `dependency_status = 'failed', `,
		fmt.Sprintf(cancelDescendantsSQL, placeholders(len(sorted))), idArgs(sorted)...)
}

func (r resolveTx) CancelWorkflowJobs(ctx context.Context, workflowID uuid.UUID) ([]store.JobChange, error) {
	return r.cancel(ctx, "", `SELECT j.id, j.workflow_id, j.status FROM hammerwork_jobs j
WHERE j.workflow_id = ? AND j.status IN ('pending', 'running') ORDER BY j.id FOR UPDATE`, workflowID.String())
}

// cancel locks the jobs a query selects (id, workflow_id, status), cancels
// them with the lease cleared (and set, a further fixed assignment), and
// returns the changes.
func (r resolveTx) cancel(ctx context.Context, set, query string, args ...any) ([]store.JobChange, error) {
	rows, err := r.tx.QueryContext(ctx, query, args...)
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
WHERE id IN (`+placeholders(len(ids))+`) ORDER BY id`, idArgs(ids)...)
	return changes, err
}

// RecomputeDependencies locks the pending jobs, counts each one's parents
// (all, and those not completed or skipped) and writes the result.
func (r resolveTx) RecomputeDependencies(ctx context.Context, ids []uuid.UUID) ([]store.ReadyChild, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	locked, err := r.lockPending(ctx, ids, "")
	if err != nil || len(locked) == 0 {
		return nil, err
	}
	lockedIDs := make([]uuid.UUID, len(locked))
	for i, c := range locked {
		lockedIDs[i] = c.id
	}
	rows, err := r.tx.QueryContext(ctx, `SELECT d.job_id, COUNT(*),
    COALESCE(SUM(p.status NOT IN ('completed', 'skipped')), 0)
FROM hammerwork_job_dependencies d JOIN hammerwork_jobs p ON p.id = d.depends_on_id
WHERE d.job_id IN (`+placeholders(len(lockedIDs))+`) GROUP BY d.job_id`, idArgs(lockedIDs)...)
	if err != nil {
		return nil, err
	}
	type count struct{ total, left int }
	counts := map[uuid.UUID]count{}
	for rows.Next() {
		var id uuid.UUID
		var c count
		if err := rows.Scan(&id, &c.total, &c.left); err != nil {
			rows.Close()
			return nil, err
		}
		counts[id] = c
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var ready []store.ReadyChild
	table := make([]dependencyRow, len(locked))
	for i, c := range locked {
		n := counts[c.id]
		row := dependencyRow{ID: c.id.String(), Pending: n.left}
		switch {
		case n.total == 0:
			row.Status = string(job.DependencyNone)
		case n.left > 0:
			row.Status = string(job.DependencyWaiting)
		case c.condition.Valid:
			row.Status = string(job.DependencyWaiting)
			ready = append(ready, readyChild(c))
		default:
			row.Status = string(job.DependencySatisfied)
		}
		table[i] = row
	}
	return ready, r.setDependencies(ctx, table)
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

func (r resolveTx) LockWorkflow(ctx context.Context, id uuid.UUID) (*store.WorkflowState, error) {
	w, err := store.ScanWorkflowState(r.tx.QueryRowContext(ctx, `SELECT id, status, failure_policy, timeout_seconds,
    total_jobs, completed_jobs, failed_jobs, cancelled_jobs, skipped_jobs,
    error_message, completed_at, failed_at, deadline
FROM hammerwork_workflows WHERE id = ? FOR UPDATE`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return w, err
}

func (r resolveTx) SaveWorkflow(ctx context.Context, w *store.WorkflowState) error {
	_, err := r.tx.ExecContext(ctx, `UPDATE hammerwork_workflows SET
    status = ?, completed_jobs = ?, failed_jobs = ?, cancelled_jobs = ?, skipped_jobs = ?,
    error_message = ?, completed_at = ?, failed_at = ?, deadline = ?
WHERE id = ?`, string(w.Status), w.Completed, w.Failed, w.Cancelled, w.Skipped,
		nullStr(w.ErrorMessage), nullTime(w.CompletedAt), nullTime(w.FailedAt), nullTime(w.Deadline), w.ID.String())
	return err
}

func (r resolveTx) RequeueWorkflowJobs(ctx context.Context, workflowID uuid.UUID, now time.Time) ([]uuid.UUID, error) {
	if _, err := r.tx.ExecContext(ctx, `UPDATE hammerwork_jobs SET
    status = 'pending', attempts = 0, scheduled_at = ?, completed_at = NULL, failed_at = NULL,
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE workflow_id = ? AND status IN ('failed', 'cancelled') ORDER BY id`, store.UTC(now), workflowID.String()); err != nil {
		return nil, err
	}
	rows, err := r.tx.QueryContext(ctx, `SELECT id FROM hammerwork_jobs WHERE workflow_id = ? AND status = 'pending'`, workflowID.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func (r resolveTx) CountWorkflowJobs(ctx context.Context, workflowID uuid.UUID) (map[job.Status]int, error) {
	rows, err := r.tx.QueryContext(ctx, `SELECT status, COUNT(*) FROM hammerwork_jobs WHERE workflow_id = ? GROUP BY status`, workflowID.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectStatusCounts(rows)
}

func nullTime(t *time.Time) sql.NullTime {
	if t == nil {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: store.UTC(*t), Valid: true}
}
