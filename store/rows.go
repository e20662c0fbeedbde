package store

import (
	"database/sql"
	"encoding/json"
	"slices"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// Rows is what pgx.Rows and *sql.Rows both offer to read a result. The
// collectors below read the small result shapes every backend's SQL returns
// the same way, so the Go that turns rows into values is written once and a
// backend keeps only its statement. Ids scan straight into uuid.UUID on
// every driver (it is an sql.Scanner for text columns); closing the rows
// stays with the caller, since the two drivers close differently.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// CollectStatusCounts reads (status, count) rows.
func CollectStatusCounts(rows Rows) (map[job.Status]int, error) {
	out := map[job.Status]int{}
	for rows.Next() {
		var status string
		var n int
		if err := rows.Scan(&status, &n); err != nil {
			return nil, err
		}
		out[job.Status(status)] = n
	}
	return out, rows.Err()
}

// CollectGroupStatusCounts reads (group id, status, count) rows, such as
// the jobs of each batch of a workflow per status.
func CollectGroupStatusCounts(rows Rows) (map[uuid.UUID]map[job.Status]int, error) {
	out := map[uuid.UUID]map[job.Status]int{}
	for rows.Next() {
		var id uuid.UUID
		var status string
		var n int
		if err := rows.Scan(&id, &status, &n); err != nil {
			return nil, err
		}
		if out[id] == nil {
			out[id] = map[job.Status]int{}
		}
		out[id][job.Status(status)] = n
	}
	return out, rows.Err()
}

// CollectIDMap reads (id, id) rows into a map from the first to the second,
// such as each job's batch.
func CollectIDMap(rows Rows) (map[uuid.UUID]uuid.UUID, error) {
	out := map[uuid.UUID]uuid.UUID{}
	for rows.Next() {
		var k, v uuid.UUID
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}

// CollectBatchErrors reads (job id, error message) rows of a batch's failed
// jobs; no rows is nil, so a batch without errors omits them.
func CollectBatchErrors(rows Rows) ([]BatchError, error) {
	var out []BatchError
	for rows.Next() {
		var e BatchError
		if err := rows.Scan(&e.JobID, &e.Error); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// CollectParentResults reads (child id, parent key, result) rows into each
// child's parents' results, keyed by the parent's step name (or id).
func CollectParentResults(rows Rows) (map[uuid.UUID]map[string]json.RawMessage, error) {
	out := map[uuid.UUID]map[string]json.RawMessage{}
	for rows.Next() {
		var child uuid.UUID
		var key, result string
		if err := rows.Scan(&child, &key, &result); err != nil {
			return nil, err
		}
		if out[child] == nil {
			out[child] = map[string]json.RawMessage{}
		}
		out[child][key] = json.RawMessage(result)
	}
	return out, rows.Err()
}

// CollectChanges reads (id, workflow_id, batch_id, has children) rows of
// jobs that went from one status to another, as resolution needs them.
func CollectChanges(rows Rows, from, to job.Status) ([]JobChange, error) {
	var out []JobChange
	for rows.Next() {
		c := JobChange{From: from, To: to}
		if err := rows.Scan(&c.ID, &c.WorkflowID, &c.BatchID, &c.Dependents); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CollectStatusChanges reads (id, workflow_id, status) rows of jobs about to
// move to status to, the status read being where each comes from.
func CollectStatusChanges(rows Rows, to job.Status) ([]JobChange, error) {
	var out []JobChange
	for rows.Next() {
		c := JobChange{To: to}
		var from string
		if err := rows.Scan(&c.ID, &c.WorkflowID, &from); err != nil {
			return nil, err
		}
		c.From = job.Status(from)
		out = append(out, c)
	}
	return out, rows.Err()
}

// ChangeIDs returns the ids of changes in their order.
func ChangeIDs(changes []JobChange) []uuid.UUID {
	out := make([]uuid.UUID, len(changes))
	for i, c := range changes {
		out[i] = c.ID
	}
	return out
}

// CollectQueueInfos reads (queue, its job counts in job.Statuses order,
// oldest due scheduled_at, completed in the last minute) rows; MergeQueues
// completes them with the pauses.
func CollectQueueInfos(rows Rows) ([]QueueInfo, error) {
	var out []QueueInfo
	for rows.Next() {
		var q QueueInfo
		n := make([]int64, len(job.Statuses))
		var oldest SQLTime
		dest := []any{&q.Name}
		for i := range n {
			dest = append(dest, &n[i])
		}
		if err := rows.Scan(append(dest, &oldest, &q.CompletedLastMinute)...); err != nil {
			return nil, err
		}
		q.Depth = make(map[job.Status]int64, len(n))
		for i, st := range job.Statuses {
			q.Depth[st] = n[i]
		}
		q.OldestPendingAt = oldest.Ptr()
		out = append(out, q)
	}
	return out, rows.Err()
}

// CollectQueuePauses reads (queue, paused_at, paused_by) rows.
func CollectQueuePauses(rows Rows) ([]QueuePause, error) {
	var out []QueuePause
	for rows.Next() {
		var qp QueuePause
		var at SQLTime
		if err := rows.Scan(&qp.Queue, &at, &qp.PausedBy); err != nil {
			return nil, err
		}
		qp.PausedAt = at.Time
		out = append(out, qp)
	}
	return out, rows.Err()
}

// CollectPriorities reads one priority level a row and returns the levels
// highest first; none is an empty slice.
func CollectPriorities(rows Rows) ([]job.Priority, error) {
	out := []job.Priority{}
	for rows.Next() {
		var l int
		if err := rows.Scan(&l); err != nil {
			return nil, err
		}
		out = append(out, job.Priority(l))
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out, rows.Err()
}

// CollectJobStatuses reads (id, status) rows, such as the parents a new
// job names.
func CollectJobStatuses(rows Rows) (map[uuid.UUID]job.Status, error) {
	out := map[uuid.UUID]job.Status{}
	for rows.Next() {
		var id uuid.UUID
		var status string
		if err := rows.Scan(&id, &status); err != nil {
			return nil, err
		}
		out[id] = job.Status(status)
	}
	return out, rows.Err()
}

// CollectQueueCounts reads (queue, status, count) rows; none is an empty
// slice.
func CollectQueueCounts(rows Rows) ([]QueueCount, error) {
	out := []QueueCount{}
	for rows.Next() {
		var c QueueCount
		var status string
		if err := rows.Scan(&c.Queue, &status, &c.Count); err != nil {
			return nil, err
		}
		c.Status = job.Status(status)
		out = append(out, c)
	}
	return out, rows.Err()
}

// CollectIDs reads one id a row; none is an empty slice.
func CollectIDs(rows Rows) ([]uuid.UUID, error) {
	out := []uuid.UUID{}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// CollectEdges reads (parent, child) rows into each parent's children, in
// row order.
func CollectEdges(rows Rows) (map[uuid.UUID][]uuid.UUID, error) {
	out := map[uuid.UUID][]uuid.UUID{}
	for rows.Next() {
		var parent, child uuid.UUID
		if err := rows.Scan(&parent, &child); err != nil {
			return nil, err
		}
		out[parent] = append(out[parent], child)
	}
	return out, rows.Err()
}

// CollectParents reads (id, step name, status) rows of a job's parents.
func CollectParents(rows Rows) ([]Parent, error) {
	var out []Parent
	for rows.Next() {
		var p Parent
		var status string
		if err := rows.Scan(&p.ID, &p.StepName, &status); err != nil {
			return nil, err
		}
		p.Status = job.Status(status)
		out = append(out, p)
	}
	return out, rows.Err()
}

// ScanWorkflowState reads the workflow row resolution locks: id, status,
// failure_policy, timeout_seconds, the five counters (total, completed,
// failed, cancelled, skipped), error_message, completed_at, failed_at and
// deadline. A missing row is the driver's no-rows error, for the backend to
// name.
func ScanWorkflowState(row Scanner) (*WorkflowState, error) {
	var (
		w                           WorkflowState
		status, policy              string
		timeout                     sql.NullFloat64
		errMsg                      sql.NullString
		completed, failed, deadline SQLTime
	)
	err := row.Scan(&w.ID, &status, &policy, &timeout,
		&w.Total, &w.Completed, &w.Failed, &w.Cancelled, &w.Skipped,
		&errMsg, &completed, &failed, &deadline)
	if err != nil {
		return nil, err
	}
	w.Status = workflow.Status(status)
	w.FailurePolicy = workflow.FailurePolicy(policy)
	w.Timeout = Seconds(timeout)
	w.ErrorMessage = errMsg.String
	w.CompletedAt, w.FailedAt, w.Deadline = completed.Ptr(), failed.Ptr(), deadline.Ptr()
	return &w, nil
}

// ScanBatch reads a batch row as GetBatch reports it: id, name,
// failure_mode, status, total, pending, completed, failed and cancelled
// jobs, created_at, completed_at, and whether a job of a pending batch has
// started (the batch then reads as processing). Errors are read apart.
func ScanBatch(row Scanner) (*Batch, error) {
	var b Batch
	var name sql.NullString
	var mode, status string
	var created, completed SQLTime
	var started bool
	err := row.Scan(&b.ID, &name, &mode, &status, &b.TotalJobs, &b.PendingJobs,
		&b.CompletedJobs, &b.FailedJobs, &b.CancelledJobs, &created, &completed, &started)
	if err != nil {
		return nil, err
	}
	b.Name = name.String
	b.FailureMode = FailureMode(mode)
	b.Status = BatchStatus(status)
	if started {
		b.Status = BatchProcessing
	}
	b.CreatedAt, b.CompletedAt = created.Time, completed.Ptr()
	return &b, nil
}

// ScanBatchState reads the batch row resolution locks: failure_mode,
// status, total, completed, failed and cancelled jobs, completed_at.
func ScanBatchState(row Scanner, id uuid.UUID) (*BatchState, error) {
	b := BatchState{ID: id}
	var mode, status string
	var completed SQLTime
	if err := row.Scan(&mode, &status, &b.Total, &b.Completed, &b.Failed, &b.Cancelled, &completed); err != nil {
		return nil, err
	}
	b.FailureMode = FailureMode(mode)
	b.Status = BatchStatus(status)
	b.CompletedAt = completed.Ptr()
	return &b, nil
}

// CollectScanned reads every row with scan, such as a backend's row
// scanner for jobs or workflows.
func CollectScanned[T any](rows Rows, scan func(Scanner) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
