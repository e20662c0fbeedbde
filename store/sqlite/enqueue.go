package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

var insertJob = `INSERT INTO hammerwork_jobs (
	id, queue_name, payload, status, priority, attempts, max_attempts,
	created_at, scheduled_at, timeout_seconds, retry_policy, result_ttl_seconds,
	batch_id, trace_id, correlation_id, parent_span_id, span_context, trace_state, unique_key
) VALUES (?, ?, ?, 'pending', ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
RETURNING ` + jobColumns

// Enqueue validates every job, then inserts them all in one transaction with
// one prepared statement (SQLite is in-process, so a row per execution costs
// no round trip). It returns the stored rows in input order.
func (s *Store) Enqueue(ctx context.Context, p store.EnqueueParams) ([]*job.Job, error) {
	if err := validateJobs(p.Jobs); err != nil {
		return nil, err
	}
	if len(p.Jobs) == 0 {
		return []*job.Job{}, nil
	}
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, fmt.Errorf("enqueue %d jobs: %w", len(p.Jobs), err)
	}
	if store.HasDependsOn(p.Jobs) || store.HasUniqueKey(p.Jobs) {
		return s.enqueueInTx(ctx, p, now)
	}
	args := make([][]any, len(p.Jobs))
	for i, n := range p.Jobs {
		a, err := insertArgs(n, now)
		if err != nil {
			return nil, fmt.Errorf("job %d: %w", i, err)
		}
		args[i] = a
	}
	jobs := make([]*job.Job, 0, len(p.Jobs))
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, insertJob)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range args {
			j, err := store.ScanSQLJob(stmt.QueryRowContext(ctx, args[i]...), false)
			if err != nil {
				return fmt.Errorf("job %d (queue %q): %w", i, p.Jobs[i].Queue, err)
			}
			jobs = append(jobs, j)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("enqueue %d jobs: %w", len(p.Jobs), err)
	}
	return jobs, nil
}

// validateJobs checks every job before anything is written, for Enqueue
// and for the jobs a schedule's runs enqueue.
func validateJobs(news []store.NewJob) error {
	for i, n := range news {
		if err := n.Validate(); err != nil {
			return fmt.Errorf("job %d: %w", i, err)
		}
	}
	return nil
}

// insertArgs applies the documented defaults and returns insertJob's arguments.
func insertArgs(n store.NewJob, now time.Time) ([]any, error) {
	id := n.ID
	if id == uuid.Nil {
		var err error
		if id, err = uuid.NewV7(); err != nil {
			return nil, fmt.Errorf("generate job id: %w", err)
		}
	}
	payload := "null"
	if len(n.Payload) > 0 {
		payload = string(n.Payload)
	}
	maxAttempts := n.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = job.DefaultMaxAttempts
	}
	var retry any
	if n.RetryPolicy != nil {
		b, err := json.Marshal(n.RetryPolicy)
		if err != nil {
			return nil, fmt.Errorf("encode retry policy: %w", err)
		}
		retry = string(b)
	}
	return []any{
		id.String(), n.Queue, payload, int(n.Priority), maxAttempts,
		ts(now), tsOrNow(n.ScheduledAt, now), nullSeconds(n.Timeout), retry, nullSeconds(n.ResultTTL),
		nullUUID(n.BatchID), nullString(n.TraceID), nullString(n.CorrelationID),
		nullString(n.ParentSpanID), nullString(n.SpanContext), nullString(n.TraceState), nullString(n.UniqueKey),
	}, nil
}
