package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// resultExpiry computes completed_at + result_ttl_seconds in SQL, in the
// stored timestamp format, from ?6 (Now in Unix microseconds), so Complete
// stays one statement per job without reading the TTL first.
const resultExpiry = `strftime('%Y-%m-%d %H:%M:%S',
		(?6 + CAST(round(result_ttl_seconds * 1000000) AS INTEGER)) / 1000000, 'unixepoch')
	|| '.' || printf('%06d', (?6 + CAST(round(result_ttl_seconds * 1000000) AS INTEGER)) % 1000000)`

const completeJob = `UPDATE hammerwork_jobs
	SET status = 'completed', completed_at = ?1, result_data = ?2,
		result_expires_at = CASE WHEN result_ttl_seconds > 0 THEN ` + resultExpiry + ` ELSE NULL END,
		error_message = coalesce(?3, error_message),
		leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
	WHERE id = ?4 AND status = 'running' AND lease_token = ?5
	RETURNING ` + changeColumns

// Complete moves running jobs with matching tokens to completed, all in one
// transaction (its time read once the write lock is held), and returns the
// ids that did not match.
func (s *Store) Complete(ctx context.Context, p store.CompleteParams) ([]uuid.UUID, error) {
	refs := make([]store.LeaseRef, len(p.Completions))
	for i, c := range p.Completions {
		refs[i] = c.LeaseRef
	}
	if len(refs) == 0 {
		return []uuid.UUID{}, nil
	}
	var done []uuid.UUID
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		done = nil
		now, err := s.clock.At(ctx, p.Now)
		if err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, completeJob)
		if err != nil {
			return err
		}
		defer stmt.Close()
		var changes []store.JobChange
		for _, c := range p.Completions {
			var result any
			if c.Result != nil {
				result = string(c.Result)
			}
			ch := store.JobChange{ID: c.ID, From: job.StatusRunning, To: job.StatusCompleted}
			err := stmt.QueryRowContext(ctx, ts(now), result, nullString(c.Note), c.ID.String(), c.Token, now.UnixMicro()).
				Scan(&ch.WorkflowID, &ch.BatchID, &ch.Dependents)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("job %s: %w", c.ID, err)
			}
			done = append(done, c.ID)
			changes = append(changes, ch)
		}
		if !needsResolution(changes) {
			return nil
		}
		return store.Resolve(ctx, resolveTx{tx}, now, changes)
	})
	if err != nil {
		return nil, fmt.Errorf("complete %d jobs: %w", len(p.Completions), err)
	}
	return store.Stale(refs, done), nil
}

// lockFailing reads a failing job that is running under the given token,
// for store.PlanFailures to decide; the transaction's write lock holds it.
const lockFailing = `SELECT attempts, max_attempts, ` + changeColumns + `
	FROM hammerwork_jobs WHERE id = ? AND status = 'running' AND lease_token = ?`

// failJob writes one decided failure: back to pending (?1 retry) or failed.
var failJob = `UPDATE hammerwork_jobs
	SET status = CASE WHEN ?1 THEN 'pending' ELSE 'failed' END,
		scheduled_at = CASE WHEN ?1 THEN ?2 ELSE scheduled_at END,
		failed_at = CASE WHEN ?1 THEN failed_at ELSE ?3 END,
		error_message = ?4,
		errors = ` + appendError("?5", "?6", "coalesce(?4, '')") + `,
		leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
	WHERE id = ?7`

// Fail records failed attempts in one transaction: it reads the running
// jobs, lets store.PlanFailures decide each one at the time read once the
// write lock is held, and writes the plan.
func (s *Store) Fail(ctx context.Context, p store.FailParams) (store.FailResult, error) {
	plan := store.PlanFailures(p, time.Time{}, nil)
	if len(p.Failures) == 0 {
		return plan.Result, nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now, err := s.clock.At(ctx, p.Now)
		if err != nil {
			return err
		}
		var locked []store.Locked
		seen := make(map[uuid.UUID]bool, len(p.Failures))
		for _, f := range p.Failures {
			if seen[f.ID] {
				continue
			}
			seen[f.ID] = true
			l := store.Locked{Change: store.JobChange{ID: f.ID}}
			err := tx.QueryRowContext(ctx, lockFailing, f.ID.String(), f.Token).
				Scan(&l.Attempts, &l.MaxAttempts, &l.Change.WorkflowID, &l.Change.BatchID, &l.Change.Dependents)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return fmt.Errorf("job %s: %w", f.ID, err)
			}
			locked = append(locked, l)
		}
		plan = store.PlanFailures(p, now, locked)
		for _, d := range plan.Decisions {
			if _, err := tx.ExecContext(ctx, failJob, d.Retry, ts(d.RetryAt), ts(now), nullString(d.Error),
				attemptAt(now), d.Outcome, d.ID.String()); err != nil {
				return fmt.Errorf("job %s: %w", d.ID, err)
			}
		}
		if !needsResolution(plan.Failed) {
			return nil
		}
		return store.Resolve(ctx, resolveTx{tx}, now, plan.Failed)
	})
	if err != nil {
		return store.FailResult{}, fmt.Errorf("fail %d jobs: %w", len(p.Failures), err)
	}
	return plan.Result, nil
}
