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
)

// copyThreshold is the batch size from which Enqueue uses COPY: below it
// one INSERT ... SELECT FROM unnest(...) is a single round trip and faster.
const copyThreshold = 100

// enqueueColumns are the columns Enqueue writes; the rest take their defaults.
var enqueueColumns = []string{
	"id", "queue_name", "payload", "priority", "max_attempts", "created_at", "scheduled_at",
	"timeout_seconds", "retry_policy", "result_ttl_seconds", "batch_id",
	"trace_id", "correlation_id", "parent_span_id", "span_context", "trace_state", "unique_key",
}

// insertUnnest inserts a small batch and notifies each queue once, in one
// statement (and so one implicit transaction).
const insertUnnest = `WITH ins AS (
    INSERT INTO hammerwork_jobs (id, queue_name, payload, priority, max_attempts, created_at, scheduled_at,
        timeout_seconds, retry_policy, result_ttl_seconds, batch_id,
        trace_id, correlation_id, parent_span_id, span_context, trace_state, unique_key)
    SELECT u.id, u.queue_name, u.payload, u.priority, u.max_attempts, $1, u.scheduled_at,
        u.timeout_seconds, u.retry_policy, u.result_ttl_seconds, u.batch_id,
        u.trace_id, u.correlation_id, u.parent_span_id, u.span_context, u.trace_state, u.unique_key
    FROM unnest($2::uuid[], $3::text[], $4::json[], $5::smallint[], $6::int[], $7::timestamptz[],
        $8::float8[], $9::jsonb[], $10::float8[], $11::uuid[],
        $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[])
        AS u(id, queue_name, payload, priority, max_attempts, scheduled_at,
        timeout_seconds, retry_policy, result_ttl_seconds, batch_id,
        trace_id, correlation_id, parent_span_id, span_context, trace_state, unique_key)
    RETURNING queue_name
)
SELECT count(*) FROM (SELECT pg_notify('` + NotifyChannel + `', q.queue_name) FROM (SELECT DISTINCT queue_name FROM ins) q) n`

const notifyQueues = `SELECT pg_notify('` + NotifyChannel + `', q) FROM unnest($1::text[]) AS q`

// Enqueue validates every job, then writes all of them in one transaction
// and notifies each queue once.
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
	jobs := make([]*job.Job, len(p.Jobs))
	var b batch
	for i, n := range p.Jobs {
		j, policy, err := newJob(n, at)
		if err != nil {
			return nil, fmt.Errorf("enqueue job %d: %w", i, err)
		}
		jobs[i] = j
		b.add(j, policy)
	}
	if store.HasDependsOn(p.Jobs) || store.HasUniqueKey(p.Jobs) {
		return s.enqueueInTx(ctx, p, at)
	}
	if len(jobs) >= copyThreshold {
		err = s.enqueueCopy(ctx, &b, at)
	} else {
		err = s.pool.QueryRow(ctx, insertUnnest, b.args(at)...).Scan(new(int64))
	}
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
			return nil, fmt.Errorf("enqueue %d jobs: %w: %s", len(jobs), store.ErrConflict, pgErr.Detail)
		}
		return nil, wrap(err, "enqueue %d jobs", len(jobs))
	}
	return jobs, nil
}

// validateJobs checks every new job before anything is written: Enqueue's
// rule, which a schedule's fire applies to its jobs too.
func validateJobs(news []store.NewJob) error {
	for i, n := range news {
		if err := n.Validate(); err != nil {
			return fmt.Errorf("enqueue job %d: %w", i, err)
		}
	}
	return nil
}

// newJob applies the defaults of store.NewJob and returns the job as stored
// and its retry policy as JSON (nil for none).
func newJob(n store.NewJob, at time.Time) (*job.Job, *string, error) {
	id := n.ID
	if id == uuid.Nil {
		var err error
		if id, err = uuid.NewV7(); err != nil {
			return nil, nil, fmt.Errorf("generate id: %w", err)
		}
	}
	payload := append(json.RawMessage(nil), n.Payload...)
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	maxAttempts := n.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = job.DefaultMaxAttempts
	}
	scheduled := at
	if !n.ScheduledAt.IsZero() {
		scheduled = store.UTC(n.ScheduledAt)
	}
	var policy *string
	var policyCopy *job.RetryPolicy
	if n.RetryPolicy != nil {
		b, err := json.Marshal(n.RetryPolicy)
		if err != nil {
			return nil, nil, fmt.Errorf("encode retry policy: %w", err)
		}
		s := string(b)
		policy = &s
		c := *n.RetryPolicy
		policyCopy = &c
	}
	var batchID *uuid.UUID
	if n.BatchID != nil {
		b := *n.BatchID
		batchID = &b
	}
	return &job.Job{
		ID:               id,
		Queue:            n.Queue,
		Payload:          payload,
		Status:           job.StatusPending,
		Priority:         n.Priority,
		MaxAttempts:      maxAttempts,
		CreatedAt:        at,
		ScheduledAt:      scheduled,
		Timeout:          job.Duration(n.Timeout),
		RetryPolicy:      policyCopy,
		ResultTTL:        job.Duration(n.ResultTTL),
		BatchID:          batchID,
		DependencyStatus: job.DependencyNone,
		TraceID:          n.TraceID,
		CorrelationID:    n.CorrelationID,
		ParentSpanID:     n.ParentSpanID,
		SpanContext:      n.SpanContext,
		TraceState:       n.TraceState,
		UniqueKey:        n.UniqueKey,
	}, policy, nil
}

// batch holds new jobs column by column, in enqueueColumns order (less
// created_at, which is the same for all): typed slices pgx encodes as arrays
// in binary without per-element reflection.
type batch struct {
	ids         []uuid.UUID
	queues      []string
	payloads    []string
	priorities  []int16
	maxAttempts []int32
	scheduled   []time.Time
	timeouts    []*float64
	policies    []*string
	ttls        []*float64
	batchIDs    []*uuid.UUID
	text        [6][]*string // trace_id, correlation_id, parent_span_id, span_context, trace_state, unique_key
}

func (b *batch) add(j *job.Job, policy *string) {
	b.ids = append(b.ids, j.ID)
	b.queues = append(b.queues, j.Queue)
	b.payloads = append(b.payloads, string(j.Payload))
	b.priorities = append(b.priorities, int16(j.Priority))
	b.maxAttempts = append(b.maxAttempts, int32(j.MaxAttempts))
	b.scheduled = append(b.scheduled, j.ScheduledAt)
	b.timeouts = append(b.timeouts, nullSeconds(j.Timeout.D()))
	b.policies = append(b.policies, policy)
	b.ttls = append(b.ttls, nullSeconds(j.ResultTTL.D()))
	b.batchIDs = append(b.batchIDs, j.BatchID)
	for i, v := range []string{j.TraceID, j.CorrelationID, j.ParentSpanID, j.SpanContext, j.TraceState, j.UniqueKey} {
		b.text[i] = append(b.text[i], nullStr(v))
	}
}

// args are the parameters of insertUnnest.
func (b *batch) args(at time.Time) []any {
	return []any{at, b.ids, b.queues, b.payloads, b.priorities, b.maxAttempts, b.scheduled,
		b.timeouts, b.policies, b.ttls, b.batchIDs,
		b.text[0], b.text[1], b.text[2], b.text[3], b.text[4], b.text[5]}
}

// copyRows are the rows of enqueueCopy, in enqueueColumns order.
func (b *batch) copyRows(at time.Time) [][]any {
	rows := make([][]any, len(b.ids))
	for i := range b.ids {
		rows[i] = []any{b.ids[i], b.queues[i], b.payloads[i], b.priorities[i], b.maxAttempts[i], at, b.scheduled[i],
			b.timeouts[i], b.policies[i], b.ttls[i], b.batchIDs[i],
			b.text[0][i], b.text[1][i], b.text[2][i], b.text[3][i], b.text[4][i], b.text[5][i]}
	}
	return rows
}

// distinctQueues lists each queue of the batch once, for NOTIFY.
func (b *batch) distinctQueues() []string {
	seen := map[string]bool{}
	var out []string
	for _, q := range b.queues {
		if !seen[q] {
			seen[q] = true
			out = append(out, q)
		}
	}
	return out
}

func (s *Store) enqueueCopy(ctx context.Context, b *batch, at time.Time) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"hammerwork_jobs"}, enqueueColumns, pgx.CopyFromRows(b.copyRows(at))); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, notifyQueues, b.distinctQueues())
		return err
	})
}
