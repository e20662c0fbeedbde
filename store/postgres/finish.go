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
		return nil, nil
	}
	n := len(p.Completions)
	ids := make([]uuid.UUID, n)
	tokens := make([]string, n)
	results := make([]*string, n)
	notes := make([]*string, n)
	for i, c := range p.Completions {
		ids[i], tokens[i] = c.ID, c.Token
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
	var done []uuid.UUID
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, completeSQL, at, ids, tokens, results, notes)
		if err != nil {
			return err
		}
		changes, err := collectChanges(rows, job.StatusRunning, job.StatusCompleted)
		if err != nil {
			return err
		}
		done = changeIDs(changes)
		if !needsResolution(changes) {
			return nil
		}
		return store.Resolve(ctx, resolveTx{tx}, at, changes)
	})
	if err != nil {
		return nil, wrap(err, "complete %d jobs", n)
	}
	return missing(ids, done), nil
}

// failSQL records a batch of failed attempts in one statement: each row
// goes back to pending (retry wanted and attempts left) or to failed, and
// RETURNING says which.
const failSQL = `UPDATE hammerwork_jobs j SET
    status = CASE WHEN f.retry AND j.attempts < j.max_attempts THEN 'pending' ELSE 'failed' END,
    scheduled_at = CASE WHEN f.retry AND j.attempts < j.max_attempts THEN f.retry_at ELSE j.scheduled_at END,
    failed_at = CASE WHEN f.retry AND j.attempts < j.max_attempts THEN j.failed_at ELSE $1::timestamptz END,
    error_message = f.error,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'attempt', j.attempts, 'at', $2::text,
        'outcome', coalesce(f.outcome,
            CASE WHEN f.retry AND j.attempts < j.max_attempts THEN 'retry' ELSE 'failed' END),
        'message', f.error)),
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::timestamptz[])
    AS f(id, token, error, outcome, retry, retry_at)
WHERE j.id = f.id AND j.status = 'running' AND j.lease_token = f.token
RETURNING j.id, j.status, ` + changeColumns

// Fail records failed attempts and says which jobs were retried, which
// failed for good and which were stale.
func (s *Store) Fail(ctx context.Context, p store.FailParams) (store.FailResult, error) {
	var res store.FailResult
	if len(p.Failures) == 0 {
		return res, nil
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return res, wrap(err, "fail %d jobs", len(p.Failures))
	}
	n := len(p.Failures)
	ids := make([]uuid.UUID, n)
	tokens := make([]string, n)
	messages := make([]string, n)
	outcomes := make([]*string, n)
	retry := make([]bool, n)
	retryAt := make([]time.Time, n)
	for i, f := range p.Failures {
		ids[i], tokens[i] = f.ID, f.Token
		messages[i] = f.Error
		outcomes[i] = nullStr(f.Outcome)
		retry[i] = f.Retry
		retryAt[i] = f.RetryDue(at)
	}
	outcome := make(map[uuid.UUID]string, n)
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		clear(outcome)
		rows, err := tx.Query(ctx, failSQL, at, at.Format(time.RFC3339Nano), ids, tokens, messages, outcomes, retry, retryAt)
		if err != nil {
			return err
		}
		defer rows.Close()
		var failed []store.JobChange
		for rows.Next() {
			var c store.JobChange
			var status string
			if err := rows.Scan(&c.ID, &status, &c.WorkflowID, &c.BatchID, &c.Dependents); err != nil {
				return err
			}
			outcome[c.ID] = status
			if status == string(job.StatusFailed) {
				c.From, c.To = job.StatusRunning, job.StatusFailed
				failed = append(failed, c)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if !needsResolution(failed) {
			return nil
		}
		return store.Resolve(ctx, resolveTx{tx}, at, failed)
	})
	if err != nil {
		return res, wrap(err, "fail %d jobs", n)
	}
	// Report in input order, each id once.
	for _, id := range ids {
		status, ok := outcome[id]
		switch {
		case !ok:
			res.Stale = append(res.Stale, id)
		case status == "pending":
			res.Retried = append(res.Retried, id)
		case status != "":
			res.Failed = append(res.Failed, id)
		}
		if ok {
			outcome[id] = ""
		}
	}
	return res, nil
}
