package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// appendError returns the SQL that appends one AttemptError to the errors
// column, given the SQL of its time (bound as attemptAt), outcome and
// message; the attempt number is the row's own attempts. "at" is RFC 3339,
// as encoding/json writes a time.Time, so job.AttemptError reads it back.
func appendError(at, outcome, message string) string {
	return `json_insert(errors, '$[#]', json_object('attempt', attempts, 'at', ` + at +
		`, 'outcome', ` + outcome + `, 'message', ` + message + `))`
}

// attemptAt formats the time of an AttemptError.
func attemptAt(t time.Time) string { return store.UTC(t).Format(time.RFC3339Nano) }

// Lease moves up to p.Limit leasable jobs to running with one UPDATE whose
// subquery picks them in lease order. SQLite has a single writer, so there is
// no other transaction's lock to skip: the BEGIN IMMEDIATE of the next
// caller waits until this one commits and then sees these rows running. The
// time is read once the write lock is held, so a lease that waited for it
// still runs its whole Duration.
func (s *Store) Lease(ctx context.Context, p store.LeaseParams) ([]*job.Job, error) {
	if p.Limit <= 0 {
		return []*job.Job{}, nil
	}
	var where strings.Builder
	var args []any
	switch len(p.Queues) {
	case 0:
	case 1:
		// Equality lets the per-queue partial index deliver rows already in
		// lease order, so a deep backlog is not sorted on every lease.
		where.WriteString(` AND queue_name = ?`)
		args = append(args, p.Queues[0])
	default:
		where.WriteString(` AND queue_name IN (SELECT value FROM json_each(?))`)
		args = append(args, jsonList(p.Queues))
	}
	if len(p.ExcludeQueues) > 0 {
		where.WriteString(` AND queue_name NOT IN (SELECT value FROM json_each(?))`)
		args = append(args, jsonList(p.ExcludeQueues))
	}
	switch len(p.Priorities) {
	case 0:
	case 1:
		where.WriteString(` AND priority = ?`)
		args = append(args, int(p.Priorities[0]))
	default:
		where.WriteString(` AND priority IN (SELECT value FROM json_each(?))`)
		levels := make([]int, len(p.Priorities))
		for i, l := range p.Priorities {
			levels[i] = int(l)
		}
		b, _ := json.Marshal(levels)
		args = append(args, string(b))
	}
	// Every process sharing the file stays off a paused queue.
	where.WriteString(` AND NOT EXISTS (SELECT 1 FROM hammerwork_queue_pauses qp WHERE qp.queue_name = hammerwork_jobs.queue_name)`)
	args = append(args, p.Limit)
	query := `UPDATE hammerwork_jobs
		SET status = 'running', attempts = attempts + 1, started_at = ?, leased_by = ?,
			lease_token = lower(hex(randomblob(16))), lease_expires_at = ?
		WHERE status = 'pending' AND id IN (
			SELECT id FROM hammerwork_jobs
			WHERE status = 'pending' AND dependency_status IN ('none', 'satisfied')
				AND scheduled_at <= ?` + where.String() + `
			ORDER BY priority DESC, scheduled_at, id
			LIMIT ?)
		RETURNING ` + jobColumns
	var jobs []*job.Job
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now, err := s.clock.At(ctx, p.Now)
		if err != nil {
			return err
		}
		times := []any{ts(now), nullString(p.AgentID), ts(now.Add(p.Duration)), ts(now)}
		rows, err := tx.QueryContext(ctx, query, append(times, args...)...)
		if err != nil {
			return err
		}
		jobs, err = store.ScanSQLJobs(rows, false)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lease jobs from %s: %w", store.QueueList(p.Queues), err)
	}
	// RETURNING yields rows in no particular order.
	return store.LeaseOrder(jobs), nil
}

// jsonList encodes names for json_each, which keeps the statement fixed
// whatever the number of names.
func jsonList(names []string) string {
	b, _ := json.Marshal(names)
	return string(b)
}

// perLease runs one prepared statement per lease ref in one transaction, with
// args(now, i) for refs[i], and returns the ids whose statement changed no
// row. now is the time at injected (a zero one is the database's now), read
// once the transaction holds the write lock.
func (s *Store) perLease(ctx context.Context, refs []store.LeaseRef, injected time.Time, query string,
	args func(now time.Time, i int) []any) ([]uuid.UUID, error) {
	if len(refs) == 0 {
		return []uuid.UUID{}, nil
	}
	var done []uuid.UUID
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		done = nil
		now, err := s.clock.At(ctx, injected)
		if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, query)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, r := range refs {
			res, err := stmt.ExecContext(ctx, args(now, i)...)
			if err != nil {
				return fmt.Errorf("job %s: %w", r.ID, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n > 0 {
				done = append(done, r.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return store.Stale(refs, done), nil
}

// Extend sets lease_expires_at = p.Until (or the database's now +
// p.Duration) on every running job whose token matches and returns the ids
// that did not match.
func (s *Store) Extend(ctx context.Context, p store.ExtendParams) ([]uuid.UUID, error) {
	stale, err := s.perLease(ctx, p.Leases, p.Now,
		`UPDATE hammerwork_jobs SET lease_expires_at = ?
		WHERE id = ? AND status = 'running' AND lease_token = ?`,
		func(now time.Time, i int) []any {
			return []any{ts(p.ExpiresAt(now)), p.Leases[i].ID.String(), p.Leases[i].Token}
		})
	if err != nil {
		return nil, fmt.Errorf("extend %d leases: %w", len(p.Leases), err)
	}
	return stale, nil
}

// Release puts running jobs back to pending without spending their attempt.
// A zero p.ScheduledAt means the database's now + p.Delay.
func (s *Store) Release(ctx context.Context, p store.ReleaseParams) ([]uuid.UUID, error) {
	stale, err := s.perLease(ctx, p.Leases, p.Now,
		`UPDATE hammerwork_jobs
		SET status = 'pending', attempts = max(attempts - 1, 0), scheduled_at = ?,
			leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
		WHERE id = ? AND status = 'running' AND lease_token = ?`,
		func(now time.Time, i int) []any {
			return []any{ts(p.DueAt(now)), p.Leases[i].ID.String(), p.Leases[i].Token}
		})
	if err != nil {
		return nil, fmt.Errorf("release %d leases: %w", len(p.Leases), err)
	}
	return stale, nil
}

// RescueExpired sends running jobs whose lease ran out back to pending, or
// to failed when their attempts are used up: it reads the expired jobs
// (the transaction's write lock holds them), lets store.PlanRescue decide
// and writes each decision. The time is read once the write lock is held.
func (s *Store) RescueExpired(ctx context.Context, p store.RescueParams) (store.RescueResult, error) {
	var plan store.RescuePlan
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		at, err := s.clock.At(ctx, p.Now)
		if err != nil {
			return err
		}
		now := ts(at)
		rows, err := tx.QueryContext(ctx, `SELECT id, attempts, max_attempts, `+changeColumns+`
			FROM hammerwork_jobs
			WHERE status = 'running' AND lease_expires_at <= ?
			ORDER BY lease_expires_at, id
			LIMIT ?`, now, p.RescueLimit())
		if err != nil {
			return err
		}
		var expired []store.Locked
		for rows.Next() {
			var l store.Locked
			if err := rows.Scan(&l.Change.ID, &l.Attempts, &l.MaxAttempts, &l.Change.WorkflowID, &l.Change.BatchID, &l.Change.Dependents); err != nil {
				rows.Close()
				return err
			}
			expired = append(expired, l)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		plan = store.PlanRescue(expired)
		for i, l := range expired {
			if _, err := tx.ExecContext(ctx, `UPDATE hammerwork_jobs
				SET status = CASE WHEN ?1 THEN 'failed' ELSE 'pending' END,
					scheduled_at = CASE WHEN ?1 THEN scheduled_at ELSE ?2 END,
					failed_at = CASE WHEN ?1 THEN ?2 ELSE failed_at END,
					error_message = ?3,
					errors = `+appendError("?4", "?5", "?3")+`,
					leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
				WHERE id = ?6`,
				plan.Fails[i], now, store.LeaseExpiredMessage, attemptAt(at), store.LeaseExpiredOutcome,
				l.Change.ID.String()); err != nil {
				return fmt.Errorf("job %s: %w", l.Change.ID, err)
			}
		}
		if !needsResolution(plan.Failed) {
			return nil
		}
		return store.Resolve(ctx, resolveTx{tx}, at, plan.Failed)
	})
	if err != nil {
		return store.RescueResult{}, fmt.Errorf("rescue expired leases: %w", err)
	}
	return plan.Result, nil
}
