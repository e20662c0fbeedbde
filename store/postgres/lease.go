package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// leaseSQL is one statement: the inner SELECT walks a partial lease index in
// lease order and locks up to $5 rows, skipping rows other agents hold; the
// UPDATE moves exactly those rows to running. Its predicate spells
// dependency_status like the indexes so the planner matches them. Paused
// queues join the excluded ones, which keeps every agent off them: the
// ARRAY subquery runs once per lease (an InitPlan) and leaves the index walk
// alone, where a NOT EXISTS anti-join makes the planner guess that few rows
// survive it and sort the whole backlog instead. %s is the queue and
// priority filter, built from the fixed strings below.
const leaseSQL = `UPDATE hammerwork_jobs j SET
    status = 'running',
    attempts = j.attempts + 1,
    started_at = $1,
    leased_by = $2,
    lease_token = gen_random_uuid()::text,
    lease_expires_at = $3
FROM (
    SELECT id FROM hammerwork_jobs
    WHERE status = 'pending' AND dependency_status IN ('none', 'satisfied')
      AND scheduled_at <= $1
      AND queue_name <> ALL ($4::text[] || ARRAY(SELECT queue_name FROM hammerwork_queue_pauses))%s
    ORDER BY priority DESC, scheduled_at, id
    LIMIT $5
    FOR UPDATE OF hammerwork_jobs SKIP LOCKED
) s
WHERE j.id = s.id
RETURNING `

// Filters: one queue (or one priority) is an equality, which lets the
// planner walk hammerwork_jobs_lease_queue_idx in order and stop after $5
// rows (= ANY cannot, and would make it filter the all-queue index instead).
const (
	oneQueue       = "\n      AND queue_name = $%d::text"
	someQueues     = "\n      AND queue_name = ANY ($%d::text[])"
	onePriority    = "\n      AND priority = $%d::smallint"
	somePriorities = "\n      AND priority = ANY ($%d::smallint[])"
)

// leaseQuery returns the lease statement for p and its arguments beyond the
// first five.
func leaseQuery(p store.LeaseParams) (string, []any) {
	var filter strings.Builder
	var args []any
	add := func(format string, arg any) {
		args = append(args, arg)
		fmt.Fprintf(&filter, format, 5+len(args))
	}
	switch len(p.Queues) {
	case 0:
	case 1:
		add(oneQueue, p.Queues[0])
	default:
		add(someQueues, p.Queues)
	}
	switch len(p.Priorities) {
	case 0:
	case 1:
		add(onePriority, int16(p.Priorities[0]))
	default:
		levels := make([]int16, len(p.Priorities))
		for i, l := range p.Priorities {
			levels[i] = int16(l)
		}
		add(somePriorities, levels)
	}
	return fmt.Sprintf(leaseSQL, filter.String()) + jobCols, args
}

// Lease moves up to p.Limit leasable jobs to running and returns them in
// lease order.
func (s *Store) Lease(ctx context.Context, p store.LeaseParams) ([]*job.Job, error) {
	if p.Limit <= 0 {
		return []*job.Job{}, nil
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "lease jobs from %s", store.QueueList(p.Queues))
	}
	exclude := p.ExcludeQueues
	if exclude == nil {
		exclude = []string{}
	}
	sql, more := leaseQuery(p)
	args := append([]any{at, p.AgentID, store.UTC(at.Add(p.Duration)), exclude, p.Limit}, more...)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, wrap(err, "lease jobs from %s", store.QueueList(p.Queues))
	}
	jobs, err := collectJobs(rows, false)
	if err != nil {
		return nil, wrap(err, "lease jobs from %s", store.QueueList(p.Queues))
	}
	// RETURNING does not keep the subquery's order.
	return store.LeaseOrder(jobs), nil
}

const extendSQL = `UPDATE hammerwork_jobs j SET lease_expires_at = $1
FROM unnest($2::uuid[], $3::text[]) AS l(id, token)
WHERE j.id = l.id AND j.status = 'running' AND j.lease_token = l.token
RETURNING j.id`

// Extend moves lease_expires_at of running jobs whose token matches to
// p.Until (or the database's now + p.Duration) and returns the ids that did
// not match.
func (s *Store) Extend(ctx context.Context, p store.ExtendParams) ([]uuid.UUID, error) {
	if len(p.Leases) == 0 {
		return []uuid.UUID{}, nil
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "extend %d leases", len(p.Leases))
	}
	ids, tokens := splitLeases(p.Leases)
	done, err := s.updateIDs(ctx, extendSQL, p.ExpiresAt(at), ids, tokens)
	if err != nil {
		return nil, wrap(err, "extend %d leases", len(ids))
	}
	return store.Stale(p.Leases, done), nil
}

const releaseSQL = `UPDATE hammerwork_jobs j SET
    status = 'pending',
    attempts = greatest(j.attempts - 1, 0),
    scheduled_at = $1,
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
FROM unnest($2::uuid[], $3::text[]) AS l(id, token)
WHERE j.id = l.id AND j.status = 'running' AND j.lease_token = l.token
RETURNING j.id`

// Release puts running jobs back to pending without spending their attempt.
func (s *Store) Release(ctx context.Context, p store.ReleaseParams) ([]uuid.UUID, error) {
	if len(p.Leases) == 0 {
		return []uuid.UUID{}, nil
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "release %d leases", len(p.Leases))
	}
	ids, tokens := splitLeases(p.Leases)
	done, err := s.updateIDs(ctx, releaseSQL, p.DueAt(at), ids, tokens)
	if err != nil {
		return nil, wrap(err, "release %d leases", len(ids))
	}
	return store.Stale(p.Leases, done), nil
}

// updateIDs runs a statement that returns the ids it changed.
func (s *Store) updateIDs(ctx context.Context, sql string, args ...any) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

// lockExpiredSQL locks expired leases oldest first (ties by id: the order
// the rescue result keeps), skipping rows another rescuer or a late
// Complete holds, for store.PlanRescue to decide.
const lockExpiredSQL = `SELECT j.id, j.attempts, j.max_attempts, ` + changeColumns + `
FROM hammerwork_jobs j
WHERE j.status = 'running' AND j.lease_expires_at <= $1
ORDER BY j.lease_expires_at, j.id
LIMIT $2
FOR UPDATE SKIP LOCKED`

// rescueSQL writes a rescue plan to the locked rows: each goes to failed or
// back to pending, as decided, with the lease_expired attempt appended.
const rescueSQL = `UPDATE hammerwork_jobs j SET
    status = CASE WHEN r.fail THEN 'failed' ELSE 'pending' END,
    scheduled_at = CASE WHEN r.fail THEN j.scheduled_at ELSE $1 END,
    failed_at = CASE WHEN r.fail THEN $1 ELSE j.failed_at END,
    error_message = $3,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempts, 'at', $2::text, 'outcome', $4::text,
        'message', $3 || coalesce(' (held by ' || j.leased_by || ')', ''))),
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
FROM unnest($5::uuid[], $6::bool[]) AS r(id, fail)
WHERE j.id = r.id`

// RescueExpired requeues (or fails, when attempts are used up) running jobs
// whose lease expired: at most p.Limit of them in one pass.
func (s *Store) RescueExpired(ctx context.Context, p store.RescueParams) (store.RescueResult, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return store.RescueResult{}, wrap(err, "rescue expired leases")
	}
	var plan store.RescuePlan
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, lockExpiredSQL, at, p.RescueLimit())
		if err != nil {
			return err
		}
		expired, err := collectLocked(rows)
		if err != nil {
			return err
		}
		plan = store.PlanRescue(expired)
		if len(expired) == 0 {
			return nil
		}
		ids := make([]uuid.UUID, len(expired))
		for i, l := range expired {
			ids[i] = l.Change.ID
		}
		if _, err := tx.Exec(ctx, rescueSQL, at, at.Format(time.RFC3339Nano), store.LeaseExpiredMessage,
			store.LeaseExpiredOutcome, ids, plan.Fails); err != nil {
			return err
		}
		if !needsResolution(plan.Failed) {
			return nil
		}
		return store.Resolve(ctx, resolveTx{tx}, at, plan.Failed)
	})
	if err != nil {
		return store.RescueResult{}, wrap(err, "rescue expired leases")
	}
	return plan.Result, nil
}

// collectLocked reads rows of id, attempts, max_attempts and changeColumns.
func collectLocked(rows pgx.Rows) ([]store.Locked, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Locked, error) {
		var l store.Locked
		err := row.Scan(&l.Change.ID, &l.Attempts, &l.MaxAttempts, &l.Change.WorkflowID, &l.Change.BatchID, &l.Change.Dependents)
		return l, err
	})
}
