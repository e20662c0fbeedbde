package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// completeSQL finishes a batch in one statement. A result_ttl sets the
// expiry; a note, when given, becomes error_message.
const completeSQL = `UPDATE hammerwork_jobs j SET
    status = 'completed',
    completed_at = $1::timestamptz,
    result_data = c.result::json,
    result_expires_at = CASE WHEN j.result_ttl_seconds > 0
        THEN $1::timestamptz + make_interval(secs => j.result_ttl_seconds) END,
    error_message = coalesce(c.note, j.error_message),
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) AS c(id, token, result, note)
WHERE j.id = c.id AND j.status = 'running' AND j.lease_token = c.token
RETURNING j.id, ` + changeColumns

// Complete moves running jobs with matching tokens to completed and returns
// the ids that did not match.
func (s *Store) Complete(ctx context.Context, p store.CompleteParams) ([]uuid.UUID, error) {
	if len(p.Completions) == 0 {
		return []uuid.UUID{}, nil
	}
	n := len(p.Completions)
	refs := make([]store.LeaseRef, n)
	results := make([]*string, n)
	notes := make([]*string, n)
	for i, c := range p.Completions {
		refs[i] = c.LeaseRef
		if c.Result != nil {
			if !json.Valid(c.Result) {
				return nil, fmt.Errorf("complete job %s: %w: result is not valid JSON", c.ID, store.ErrInvalid)
			}
			r := string(c.Result)
			results[i] = &r
		}
		notes[i] = nullStr(c.Note)
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "complete %d jobs", n)
	}
	ids, tokens := splitLeases(refs)
	var done []uuid.UUID
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, completeSQL, at, ids, tokens, results, notes)
		if err != nil {
			return err
		}
		changes, err := store.CollectChanges(rows, job.StatusRunning, job.StatusCompleted)
		if err != nil {
			return err
		}
		done = store.ChangeIDs(changes)
		if !needsResolution(changes) {
			return nil
		}
		return store.Resolve(ctx, resolveTx{tx}, at, changes)
	})
	if err != nil {
		return nil, wrap(err, "complete %d jobs", n)
	}
	return store.Stale(refs, done), nil
}

// lockFailingSQL locks the running jobs of a Fail call whose token matches,
// in id order, for store.PlanFailures to decide.
const lockFailingSQL = `SELECT j.id, j.attempts, j.max_attempts, ` + changeColumns + `
FROM hammerwork_jobs j JOIN unnest($1::uuid[], $2::text[]) AS l(id, token)
  ON j.id = l.id AND j.lease_token = l.token
WHERE j.status = 'running'
ORDER BY j.id
FOR UPDATE OF j`

// failSQL writes a failure plan to the locked rows in one statement: each
// goes back to pending (retry) or to failed, as decided.
const failSQL = `UPDATE hammerwork_jobs j SET
    status = CASE WHEN f.retry THEN 'pending' ELSE 'failed' END,
    scheduled_at = CASE WHEN f.retry THEN f.retry_at ELSE j.scheduled_at END,
    failed_at = CASE WHEN f.retry THEN j.failed_at ELSE $1::timestamptz END,
    error_message = f.error,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempts, 'at', $2::text, 'outcome', f.outcome, 'message', f.error)),
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
FROM unnest($3::uuid[], $4::text[], $5::text[], $6::bool[], $7::timestamptz[])
    AS f(id, error, outcome, retry, retry_at)
WHERE j.id = f.id`

// Fail records failed attempts: it locks the running jobs, lets
// store.PlanFailures decide each one and writes the plan in one statement.
func (s *Store) Fail(ctx context.Context, p store.FailParams) (store.FailResult, error) {
	plan := store.PlanFailures(p, time.Time{}, nil)
	if len(p.Failures) == 0 {
		return plan.Result, nil
	}
	n := len(p.Failures)
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return store.FailResult{}, wrap(err, "fail %d jobs", n)
	}
	refs := make([]store.LeaseRef, n)
	for i, f := range p.Failures {
		refs[i] = f.LeaseRef
	}
	ids, tokens := splitLeases(refs)
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, lockFailingSQL, ids, tokens)
		if err != nil {
			return err
		}
		locked, err := collectLocked(rows)
		if err != nil {
			return err
		}
		plan = store.PlanFailures(p, at, locked)
		if len(locked) == 0 {
			return nil
		}
		d := len(plan.Decisions)
		fids, messages, outcomes, retry, retryAt := make([]uuid.UUID, d), make([]string, d), make([]string, d), make([]bool, d), make([]time.Time, d)
		for i, dec := range plan.Decisions {
			fids[i], messages[i], outcomes[i], retry[i], retryAt[i] = dec.ID, dec.Error, dec.Outcome, dec.Retry, at
			if dec.Retry {
				retryAt[i] = dec.RetryAt
			}
		}
		if _, err := tx.Exec(ctx, failSQL, at, at.Format(time.RFC3339Nano), fids, messages, outcomes, retry, retryAt); err != nil {
			return err
		}
		if !needsResolution(plan.Failed) {
			return nil
		}
		return store.Resolve(ctx, resolveTx{tx}, at, plan.Failed)
	})
	if err != nil {
		return store.FailResult{}, wrap(err, "fail %d jobs", n)
	}
	return plan.Result, nil
}
