// Package store defines the persistence contract of hw-agent. Its semantics are
// written once, as the conformance suite in store/storetest, and every backend
// (store/postgres, store/mysql for MySQL and MariaDB, store/sqlite) is a
// dialect that passes it.
//
// Rules every backend keeps:
//   - Every change of state is one transaction, guarded by the state it
//     expects and, for a running job, by its lease_token. A guard that does
//     not match changes nothing and is reported (ErrStaleLease, ErrConflict,
//     or the id in a Stale list for batch calls).
//   - The database's clock decides every due, expired and retention
//     question, whatever the clocks of the agents' hosts say: a zero Now
//     field means the database's now (the store's Clock), and callers send
//     durations (a lease's length, a retry's delay) that the store adds to
//     it. A non-zero Now replaces the database's now; tests inject it.
//   - Times are stored in UTC with at least microsecond precision.
//   - Batch calls are one round trip per statement, never one per job.
package store

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
)

// Store is everything the agent, the API and the CLI need from a database.
type Store interface {
	Enqueuer
	Leaser
	Finisher
	Admin
	Reader
	Migrator
	Workflows
	Batches
	QueueControls
	Cleaner
	Schedules
	Events
	DatabaseClock
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases connections. Safe to call twice.
	Close() error
}

// Enqueuer writes new jobs.
type Enqueuer interface {
	// Enqueue validates every job, then inserts all of them in one
	// transaction: all rows or none. It returns the stored jobs in input
	// order. An invalid job returns an error wrapping ErrInvalid and writes
	// nothing. A job whose UniqueKey a pending or running job holds (or an
	// earlier job of the same call) is not inserted: its place in the result
	// is that job with Duplicate set. The database decides (a unique index
	// over the keys of live jobs), so concurrent enqueues of one key agree.
	Enqueue(ctx context.Context, p EnqueueParams) ([]*job.Job, error)
}

// Leaser hands jobs to agents and keeps their leases alive.
type Leaser interface {
	// Lease moves up to p.Limit leasable jobs to running in one transaction:
	// status pending, scheduled_at <= Now, dependency_status none or
	// satisfied, queue matching p.Queues and not in p.ExcludeQueues; ordered
	// by priority DESC, scheduled_at ASC, id ASC; rows locked by another
	// transaction are skipped, never waited for. Each leased job gets
	// attempts+1, started_at = Now, leased_by = AgentID, a fresh lease_token
	// and lease_expires_at = Now + Duration. It returns the jobs as updated,
	// in that order (store.LeaseOrder); none is an empty slice, never nil.
	Lease(ctx context.Context, p LeaseParams) ([]*job.Job, error)
	// Extend sets lease_expires_at = p.ExpiresAt(now) (the database's now +
	// p.Duration, unless p.Until names the time) for each running job whose
	// token matches and returns the ids that did not match (store.Stale:
	// input order, never nil).
	Extend(ctx context.Context, p ExtendParams) (stale []uuid.UUID, err error)
	// Release puts running jobs back to pending without spending the
	// attempt (attempts-1, lease cleared, scheduled_at = p.DueAt(now): the
	// database's now + p.Delay, unless p.ScheduledAt names the time): for a
	// drain or an app that is down. Returns ids that did not match
	// (store.Stale: input order, never nil).
	Release(ctx context.Context, p ReleaseParams) (stale []uuid.UUID, err error)
	// RescueExpired finds running jobs whose lease_expires_at <= now: each
	// goes back to pending (scheduled_at = Now) or, when attempts >=
	// max_attempts, to failed; either way an AttemptError with outcome
	// "lease_expired" is appended and the lease cleared. A pass takes the
	// oldest expiries first (lease_expires_at, then id), at most p.Limit,
	// and Requeued and Failed list their jobs in that order; neither is nil.
	RescueExpired(ctx context.Context, p RescueParams) (RescueResult, error)
}

// Finisher records the outcome of attempts.
type Finisher interface {
	// Complete moves running jobs with matching tokens to completed in one
	// transaction: completed_at = Now, result stored, result_expires_at =
	// Now + result_ttl when the job has one, lease cleared. Ids whose token
	// did not match (or that are no longer running) come back in stale
	// (store.Stale: input order, never nil) and are left untouched.
	Complete(ctx context.Context, p CompleteParams) (stale []uuid.UUID, err error)
	// Fail records failed attempts in one transaction. A failure with Retry
	// set on a job with attempts < max_attempts goes back to pending with
	// scheduled_at = RetryDue(now) (the database's now + RetryDelay, unless
	// RetryAt names the time); any other becomes failed with failed_at = now.
	// Either way error_message is set, an AttemptError is appended and the
	// lease cleared.
	Fail(ctx context.Context, p FailParams) (FailResult, error)
}

// Admin holds the operator's transitions.
type Admin interface {
	// Cancel moves a pending or running job to cancelled (clearing any
	// lease, so a late answer is stale). Any other status: ErrConflict.
	Cancel(ctx context.Context, p CancelParams) (*job.Job, error)
	// Retry moves a failed or cancelled job back to pending with attempts
	// reset to 0 and scheduled_at = now; the error history is kept. Any other
	// status: ErrConflict. A job with a failed or cancelled parent is
	// ErrConflict naming that parent (retry it, or the workflow, first). The
	// one failed job of a failed fail_fast workflow also re-pends the jobs
	// its failure cancelled, and the workflow runs again; reopening a
	// finished workflow renews its deadline (now + its timeout).
	Retry(ctx context.Context, p RetryParams) (*job.Job, error)
}

// Reader inspects jobs.
type Reader interface {
	// Get returns one job with DependsOn and Dependents filled, or ErrNotFound.
	Get(ctx context.Context, id uuid.UUID) (*job.Job, error)
	// List returns jobs matching the filters, newest first (id DESC: ids are
	// UUIDv7, so that is creation order), p.Limit per page.
	List(ctx context.Context, p ListParams) (*ListPage, error)
	// QueueStats counts jobs per queue and status.
	QueueStats(ctx context.Context) ([]QueueCount, error)
}

// Migrator applies the embedded, versioned schema.
type Migrator interface {
	// Migrate applies every migration not yet applied, each in its own
	// transaction, and returns the versions it applied. Idempotent.
	Migrate(ctx context.Context) (applied []string, err error)
	// PendingMigrations returns the versions not yet applied; the agent
	// refuses to start while any are.
	PendingMigrations(ctx context.Context) ([]string, error)
}

// EnqueueParams carries new jobs.
type EnqueueParams struct {
	Jobs []NewJob
	Now  time.Time
}

// NewJob is a job to insert. Zero values take the documented defaults.
type NewJob struct {
	// ID: zero generates a UUIDv7.
	ID      uuid.UUID
	Queue   string
	Payload []byte // valid JSON; empty means null
	// Priority is stored as given; the API and CLI default it to normal.
	Priority job.Priority
	// ScheduledAt: zero means Now.
	ScheduledAt time.Time
	// MaxAttempts: zero means job.DefaultMaxAttempts.
	MaxAttempts   int
	Timeout       time.Duration
	RetryPolicy   *job.RetryPolicy
	ResultTTL     time.Duration
	BatchID       *uuid.UUID
	TraceID       string
	CorrelationID string
	ParentSpanID  string
	SpanContext   string
	// TraceState is the W3C tracestate sent with SpanContext's traceparent;
	// dispatch omits one that is not a valid header value.
	TraceState string
	UniqueKey  string
	// DependsOn are parent job ids (outside a workflow). Parents already
	// completed or skipped count as resolved; a parent already failed or
	// cancelled cancels the new job at once (dependency_status 'failed');
	// an unknown id is ErrInvalid.
	DependsOn []uuid.UUID
}

// LeaseParams selects and sizes a lease.
type LeaseParams struct {
	AgentID string
	// Queues: empty means every queue.
	Queues []string
	// ExcludeQueues are skipped (queues that have their own producer).
	ExcludeQueues []string
	// Limit is the number of free slots; never prefetch more than can be dispatched.
	Limit int
	// Priorities, when set, takes only jobs of these levels (the agent's
	// weighted selection leases each drawn level separately); empty means
	// every level. Jobs of a paused queue are never leased.
	Priorities []job.Priority
	Duration   time.Duration
	Now        time.Time
}

// LeaseRef names a running job by its fencing token.
type LeaseRef struct {
	ID    uuid.UUID
	Token string
}

// ExtendParams extends leases.
type ExtendParams struct {
	Leases []LeaseRef
	// Until, when set, is the new lease_expires_at. Zero means the
	// database's now + Duration, which is what agents send: their own clock
	// may disagree with the database's.
	Until time.Time
	// Duration is the lease's new length from the database's now.
	Duration time.Duration
	// Now replaces the database's now; injected for tests.
	Now time.Time
}

// ReleaseParams returns leased jobs without spending their attempt.
type ReleaseParams struct {
	Leases []LeaseRef
	// ScheduledAt, when set, is when the jobs are due again. Zero means the
	// database's now + Delay, which is what agents send.
	ScheduledAt time.Time
	// Delay is how long after the database's now the jobs are due again.
	Delay time.Duration
	// Now replaces the database's now; injected for tests.
	Now time.Time
}

// RescueParams drives one pass of the expired-lease rescuer.
type RescueParams struct {
	Now time.Time
	// Limit bounds one pass; zero means 1000.
	Limit int
}

// RescueResult says what a rescue pass did.
type RescueResult struct {
	Requeued []uuid.UUID
	Failed   []uuid.UUID
}

// Completion is one successful attempt.
type Completion struct {
	LeaseRef
	// Result is the app's JSON body; nil stores no result.
	Result []byte
	// Note, when set, is stored as error_message (e.g. why a result was dropped).
	Note string
}

// CompleteParams carries a batch of completions.
type CompleteParams struct {
	Completions []Completion
	Now         time.Time
}

// Failure is one failed attempt.
type Failure struct {
	LeaseRef
	// Error is what to record: the status line and the first 4 KiB of the body.
	Error string
	// Outcome labels the attempt in the error history ("http_500", "timeout", ...).
	Outcome string
	// Retry is false for a permanent failure.
	Retry bool
	// RetryAt, when set, is when the retry is due. Zero means the
	// database's now + RetryDelay: agents send the delay, so the database's
	// clock, not theirs, says when the job is due.
	RetryAt    time.Time
	RetryDelay time.Duration
}

// FailParams carries a batch of failures.
type FailParams struct {
	Failures []Failure
	Now      time.Time
}

// FailResult says where each failure went.
type FailResult struct {
	Retried []uuid.UUID
	Failed  []uuid.UUID
	Stale   []uuid.UUID
}

// CancelParams cancels one job.
type CancelParams struct {
	ID  uuid.UUID
	Now time.Time
}

// RetryParams re-pends one job.
type RetryParams struct {
	ID  uuid.UUID
	Now time.Time
}

// ListParams filters a job listing. Empty fields do not filter.
type ListParams struct {
	Queue            string
	Status           job.Status
	DependencyStatus job.DependencyStatus
	WorkflowID       *uuid.UUID
	// Limit: zero means 50; at most 1000.
	Limit int
	// Cursor is the NextCursor of the previous page: the id of its last job;
	// the next page holds ids below it.
	Cursor string
}

// ListPage is one page of a listing.
type ListPage struct {
	Jobs []*job.Job
	// NextCursor is empty on the last page.
	NextCursor string
}

// QueueCount is the number of jobs of one queue in one status.
type QueueCount struct {
	Queue  string     `json:"queue"`
	Status job.Status `json:"status"`
	Count  int64      `json:"count"`
}
