package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// insertHead and insertRow build a multi-row INSERT of whole new job rows
// (everything but the lease and the outcome). The constant columns of a new
// job are literals, so a row binds only its own values.
const (
	insertHead = "INSERT INTO hammerwork_jobs (id, queue_name, payload, status, priority, attempts, max_attempts, " +
		"created_at, scheduled_at, errors, timeout_seconds, retry_policy, result_ttl_seconds, batch_id, " +
		"workflow_id, workflow_name, step_name, depends_on, dependency_status, pending_dependencies, `condition`, " +
		"trace_id, correlation_id, parent_span_id, span_context, trace_state, unique_key) VALUES "
	insertRow = "(?, ?, ?, ?, ?, 0, ?, ?, ?, '[]', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

// Chunk bounds for one INSERT: the row count keeps the placeholders far
// below the protocol's 65,535, the byte count keeps a statement well inside
// the servers' default max_allowed_packet (16 MiB on MariaDB, 64 MiB on
// MySQL).
const (
	insertChunkRows  = 1000
	insertChunkBytes = 4 << 20
)

// Enqueue validates every job, then writes all of them in one transaction
// with multi-row INSERTs. Jobs naming parents (DependsOn) first read and
// share-lock those parents, so none of them can finish, and miss the new
// edges, before this transaction commits.
func (s *Store) Enqueue(ctx context.Context, p store.EnqueueParams) ([]*job.Job, error) {
	if len(p.Jobs) == 0 {
		return nil, nil
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "enqueue %d jobs", len(p.Jobs))
	}
	if err := validateJobs(p.Jobs); err != nil {
		return nil, err
	}
	var jobs []*job.Job
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		jobs, err = enqueueTx(ctx, tx, p.Jobs, at)
		return err
	})
	if errors.Is(err, store.ErrInvalid) {
		return nil, fmt.Errorf("enqueue %d jobs: %w", len(p.Jobs), err)
	}
	if err != nil {
		return nil, wrap(err, "enqueue %d jobs", len(p.Jobs))
	}
	return jobs, nil
}

// validateJobs checks every new job before a transaction starts, naming
// the first invalid one by its index: Enqueue's check, and a schedule's for
// the jobs of its runs.
func validateJobs(news []store.NewJob) error {
	for i, n := range news {
		if err := n.Validate(); err != nil {
			return fmt.Errorf("enqueue job %d: %w", i, err)
		}
	}
	return nil
}

// lockParents reads the status of existing parents under a shared lock (LOCK
// IN SHARE MODE: MySQL 8 also spells it FOR SHARE, MariaDB only this way).
func lockParents(ctx context.Context, tx *sql.Tx, ids []uuid.UUID) (map[uuid.UUID]job.Status, error) {
	sorted := sortedIDs(ids)
	rows, err := tx.QueryContext(ctx, `SELECT id, status FROM hammerwork_jobs WHERE id IN (`+placeholders(len(sorted))+`)
ORDER BY id LOCK IN SHARE MODE`, idArgs(sorted)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectJobStatuses(rows)
}

// insertJobs writes whole job rows and their edges in chunked multi-row
// INSERTs.
func insertJobs(ctx context.Context, tx *sql.Tx, jobs []*job.Job, edges []store.Edge) error {
	if err := insertRows(ctx, tx, jobs, ""); err != nil {
		return err
	}
	for start := 0; start < len(edges); start += insertChunkRows {
		chunk := edges[start:min(start+insertChunkRows, len(edges))]
		args := make([]any, 0, 2*len(chunk))
		for _, e := range chunk {
			args = append(args, e.JobID.String(), e.DependsOnID.String())
		}
		q := "INSERT INTO hammerwork_job_dependencies (job_id, depends_on_id) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?, ?), ", len(chunk)), ", ")
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
	}
	return nil
}

// insertRows writes whole job rows in chunked multi-row INSERTs, each
// ending with suffix (an ON DUPLICATE KEY clause, say).
func insertRows(ctx context.Context, tx *sql.Tx, jobs []*job.Job, suffix string) error {
	rows := make([][]any, len(jobs))
	for i, j := range jobs {
		args, err := insertArgs(j)
		if err != nil {
			return err
		}
		rows[i] = args
	}
	for start := 0; start < len(rows); {
		end, size := start, 0
		for end < len(rows) && end-start < insertChunkRows && (end == start || size < insertChunkBytes) {
			size += len(jobs[end].Payload)
			end++
		}
		var q strings.Builder
		q.WriteString(insertHead)
		var args []any
		for i := start; i < end; i++ {
			if i > start {
				q.WriteString(", ")
			}
			q.WriteString(insertRow)
			args = append(args, rows[i]...)
		}
		q.WriteString(suffix)
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// insertArgs are the values of insertRow for j.
func insertArgs(j *job.Job) ([]any, error) {
	var policy sql.NullString
	if j.RetryPolicy != nil {
		b, err := json.Marshal(j.RetryPolicy)
		if err != nil {
			return nil, fmt.Errorf("encode retry policy of job %s: %w", j.ID, err)
		}
		policy = sql.NullString{String: string(b), Valid: true}
	}
	deps := j.DependsOn
	if deps == nil {
		deps = []uuid.UUID{}
	}
	depsJSON, err := json.Marshal(deps)
	if err != nil {
		return nil, fmt.Errorf("encode depends_on of job %s: %w", j.ID, err)
	}
	return []any{
		j.ID.String(), j.Queue, string(j.Payload), string(j.Status), int(j.Priority), j.MaxAttempts,
		j.CreatedAt, j.ScheduledAt, nullSeconds(j.Timeout.D()), policy, nullSeconds(j.ResultTTL.D()), nullID(j.BatchID),
		nullID(j.WorkflowID), nullStr(j.WorkflowName), nullStr(j.StepName), string(depsJSON),
		string(j.DependencyStatus), j.PendingDependencies, nullStr(j.Condition),
		nullStr(j.TraceID), nullStr(j.CorrelationID), nullStr(j.ParentSpanID), nullStr(j.SpanContext), nullStr(j.TraceState), nullStr(j.UniqueKey),
	}, nil
}

func nullID(id *uuid.UUID) sql.NullString {
	if id == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: id.String(), Valid: true}
}
