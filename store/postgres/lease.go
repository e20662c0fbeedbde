package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
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
		return nil, nil
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "lease jobs from %s", queueList(p.Queues))
	}
	exclude := p.ExcludeQueues
	if exclude == nil {
		exclude = []string{}
	}
	sql, more := leaseQuery(p)
	args := append([]any{at, p.AgentID, store.UTC(at.Add(p.Duration)), exclude, p.Limit}, more...)
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, wrap(err, "lease jobs from %s", queueList(p.Queues))
	}
	jobs, err := collectJobs(rows, false)
	if err != nil {
		return nil, wrap(err, "lease jobs from %s", queueList(p.Queues))
	}
	// RETURNING does not keep the subquery's order.
	slices.SortFunc(jobs, func(a, b *job.Job) int {
		if a.Priority != b.Priority {
			return int(b.Priority) - int(a.Priority)
		}
		if c := a.ScheduledAt.Compare(b.ScheduledAt); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return jobs, nil
}

func queueList(queues []string) string {
	if len(queues) == 0 {
		return "every queue"
	}
	return fmt.Sprintf("%q", strings.Join(queues, ","))
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
		return nil, nil
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
	return missing(ids, done), nil
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
		return nil, nil
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
	return missing(ids, done), nil
}

// updateIDs runs a statement that returns the ids it changed.
func (s *Store) updateIDs(ctx context.Context, sql string, args ...any) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

// rescueSQL picks expired leases oldest first, skipping rows another rescuer
// or a late Complete holds, and appends the lease_expired attempt. %s is
// the outcome: the attempts guard and the new state.
const rescueSQL = `UPDATE hammerwork_jobs j SET
    %s,
    error_message = $3,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempts, 'at', $2::text, 'outcome', 'lease_expired',
        'message', $3 || coalesce(' (held by ' || j.leased_by || ')', ''))),
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
FROM (
    SELECT id FROM hammerwork_jobs
    WHERE status = 'running' AND lease_expires_at <= $1 AND %s
    ORDER BY lease_expires_at
    LIMIT $4
    FOR UPDATE SKIP LOCKED
) s
WHERE j.id = s.id
RETURNING j.id, ` + changeColumns

var (
	rescueRequeue = fmt.Sprintf(rescueSQL, "status = 'pending', scheduled_at = $1", "attempts < max_attempts")
	rescueFail    = fmt.Sprintf(rescueSQL, "status = 'failed', failed_at = $1", "attempts >= max_attempts")
)

// rescueMessage is the error recorded for an expired lease.
const rescueMessage = "lease expired before the attempt finished"

// DefaultRescueLimit bounds a rescue pass when RescueParams.Limit is zero.
const DefaultRescueLimit = 1000

// RescueExpired requeues (or fails, when attempts are used up) running jobs
// whose lease expired: at most p.Limit of them in one pass.
func (s *Store) RescueExpired(ctx context.Context, p store.RescueParams) (store.RescueResult, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultRescueLimit
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return store.RescueResult{}, wrap(err, "rescue expired leases")
	}
	atText := at.Format(time.RFC3339Nano)
	var res store.RescueResult
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		res = store.RescueResult{}
		rows, err := tx.Query(ctx, rescueRequeue, at, atText, rescueMessage, limit)
		if err != nil {
			return fmt.Errorf("requeue expired leases: %w", err)
		}
		requeued, err := collectChanges(rows, job.StatusRunning, job.StatusPending)
		if err != nil {
			return fmt.Errorf("requeue expired leases: %w", err)
		}
		res.Requeued = changeIDs(requeued)
		left := limit - len(requeued)
		if left <= 0 {
			return nil
		}
		if rows, err = tx.Query(ctx, rescueFail, at, atText, rescueMessage, left); err != nil {
			return fmt.Errorf("fail expired leases: %w", err)
		}
		failed, err := collectChanges(rows, job.StatusRunning, job.StatusFailed)
		if err != nil {
			return fmt.Errorf("fail expired leases: %w", err)
		}
		res.Failed = changeIDs(failed)
		if !needsResolution(failed) {
			return nil
		}
		return store.Resolve(ctx, resolveTx{tx}, at, failed)
	})
	if err != nil {
		return store.RescueResult{}, wrap(err, "rescue expired leases")
	}
	return res, nil
}
