package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
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
// caller waits until this one commits and then sees these rows running.
func (s *Store) Lease(ctx context.Context, p store.LeaseParams) ([]*job.Job, error) {
	if p.Limit <= 0 {
		return []*job.Job{}, nil
	}
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, fmt.Errorf("lease jobs from %s: %w", queuesLabel(p.Queues), err)
	}
	var where strings.Builder
	args := []any{ts(now), nullString(p.AgentID), ts(now.Add(p.Duration)), ts(now)}
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
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		jobs, err = scanJobs(rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lease jobs from %s: %w", queuesLabel(p.Queues), err)
	}
	// RETURNING yields rows in no particular order.
	slices.SortFunc(jobs, func(a, b *job.Job) int {
		if a.Priority != b.Priority {
			return int(b.Priority) - int(a.Priority)
		}
		if c := a.ScheduledAt.Compare(b.ScheduledAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	if jobs == nil {
		jobs = []*job.Job{}
	}
	return jobs, nil
}

func queuesLabel(queues []string) string {
	if len(queues) == 0 {
		return "every queue"
	}
	return strings.Join(queues, ",")
}

// jsonList encodes names for json_each, which keeps the statement fixed
// whatever the number of names.
func jsonList(names []string) string {
	b, _ := json.Marshal(names)
	return string(b)
}

// perLease runs one prepared statement per lease ref in one transaction, with
// args(i) for refs[i], and returns the ids whose statement changed no row.
func (s *Store) perLease(ctx context.Context, refs []store.LeaseRef, query string, args func(i int) []any) ([]uuid.UUID, error) {
	stale := []uuid.UUID{}
	if len(refs) == 0 {
		return stale, nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, query)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, r := range refs {
			res, err := stmt.ExecContext(ctx, args(i)...)
			if err != nil {
				return fmt.Errorf("job %s: %w", r.ID, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n == 0 {
				stale = append(stale, r.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return stale, nil
}

// Extend sets lease_expires_at = p.Until (or the database's now +
// p.Duration) on every running job whose token matches and returns the ids
// that did not match.
func (s *Store) Extend(ctx context.Context, p store.ExtendParams) ([]uuid.UUID, error) {
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, fmt.Errorf("extend %d leases: %w", len(p.Leases), err)
	}
	until := ts(p.ExpiresAt(now))
	stale, err := s.perLease(ctx, p.Leases,
		`UPDATE hammerwork_jobs SET lease_expires_at = ?
		WHERE id = ? AND status = 'running' AND lease_token = ?`,
		func(i int) []any { return []any{until, p.Leases[i].ID.String(), p.Leases[i].Token} })
	if err != nil {
		return nil, fmt.Errorf("extend %d leases: %w", len(p.Leases), err)
	}
	return stale, nil
}

// Release puts running jobs back to pending without spending their attempt.
// A zero p.ScheduledAt means the database's now + p.Delay.
func (s *Store) Release(ctx context.Context, p store.ReleaseParams) ([]uuid.UUID, error) {
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, fmt.Errorf("release %d leases: %w", len(p.Leases), err)
	}
	at := ts(p.DueAt(now))
	stale, err := s.perLease(ctx, p.Leases,
		`UPDATE hammerwork_jobs
		SET status = 'pending', attempts = max(attempts - 1, 0), scheduled_at = ?,
			leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
		WHERE id = ? AND status = 'running' AND lease_token = ?`,
		func(i int) []any { return []any{at, p.Leases[i].ID.String(), p.Leases[i].Token} })
	if err != nil {
		return nil, fmt.Errorf("release %d leases: %w", len(p.Leases), err)
	}
	return stale, nil
}

// RescueExpired sends running jobs whose lease ran out back to pending, or
// to failed when their attempts are used up: it reads the expired jobs
// (the transaction's write lock holds them), lets store.PlanRescue decide
// and writes each decision.
func (s *Store) RescueExpired(ctx context.Context, p store.RescueParams) (store.RescueResult, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return store.RescueResult{}, fmt.Errorf("rescue expired leases: %w", err)
	}
	now := ts(at)
	var plan store.RescuePlan
	err = s.inTx(ctx, func(tx *sql.Tx) error {
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
			var id string
			var wf, bt sql.NullString
			var l store.Locked
			if err := rows.Scan(&id, &l.Attempts, &l.MaxAttempts, &wf, &bt, &l.Change.Dependents); err != nil {
				rows.Close()
				return err
			}
			if l.Change.ID, err = uuid.Parse(id); err != nil {
				rows.Close()
				return fmt.Errorf("job id %q: %w", id, err)
			}
			if err := setRefs(&l.Change, wf, bt); err != nil {
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
	sortIDs(plan.Result.Requeued)
	sortIDs(plan.Result.Failed)
	return plan.Result, nil
}

func sortIDs(ids []uuid.UUID) {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
}
