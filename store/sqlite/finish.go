package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
// transaction, and returns the ids that did not match.
func (s *Store) Complete(ctx context.Context, p store.CompleteParams) ([]uuid.UUID, error) {
	stale := []uuid.UUID{}
	if len(p.Completions) == 0 {
		return stale, nil
	}
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, fmt.Errorf("complete %d jobs: %w", len(p.Completions), err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
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
			var wf, bt sql.NullString
			err := stmt.QueryRowContext(ctx, ts(now), result, nullString(c.Note), c.ID.String(), c.Token, now.UnixMicro()).
				Scan(&wf, &bt, &ch.Dependents)
			if errors.Is(err, sql.ErrNoRows) {
				stale = append(stale, c.ID)
				continue
			}
			if err != nil {
				return fmt.Errorf("job %s: %w", c.ID, err)
			}
			if err := setRefs(&ch, wf, bt); err != nil {
				return err
			}
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
	return stale, nil
}

// retrying is true when a failure goes back to pending: the caller asked for
// a retry (?1) and attempts remain.
const retrying = `(?1 AND attempts < max_attempts)`

var failJob = `UPDATE hammerwork_jobs
	SET status = CASE WHEN ` + retrying + ` THEN 'pending' ELSE 'failed' END,
		scheduled_at = CASE WHEN ` + retrying + ` THEN ?2 ELSE scheduled_at END,
		failed_at = CASE WHEN ` + retrying + ` THEN failed_at ELSE ?3 END,
		error_message = ?4,
		errors = ` + appendError("?5", `coalesce(?6, CASE WHEN `+retrying+` THEN 'retry' ELSE 'failed' END)`, "coalesce(?4, '')") + `,
		leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
	WHERE id = ?7 AND status = 'running' AND lease_token = ?8
	RETURNING status, ` + changeColumns

// Fail records failed attempts in one transaction: each goes back to pending
// (Retry set and attempts left) or to failed. An empty Outcome is recorded
// as "retry" or "failed", whichever happened.
func (s *Store) Fail(ctx context.Context, p store.FailParams) (store.FailResult, error) {
	res := store.FailResult{Retried: []uuid.UUID{}, Failed: []uuid.UUID{}, Stale: []uuid.UUID{}}
	if len(p.Failures) == 0 {
		return res, nil
	}
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return store.FailResult{}, fmt.Errorf("fail %d jobs: %w", len(p.Failures), err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, failJob)
		if err != nil {
			return err
		}
		defer stmt.Close()
		var failed []store.JobChange
		for _, f := range p.Failures {
			var status string
			var wf, bt sql.NullString
			ch := store.JobChange{ID: f.ID, From: job.StatusRunning, To: job.StatusFailed}
			err := stmt.QueryRowContext(ctx,
				f.Retry, ts(f.RetryDue(now)), ts(now), nullString(f.Error),
				attemptAt(now), nullString(f.Outcome), f.ID.String(), f.Token,
			).Scan(&status, &wf, &bt, &ch.Dependents)
			if err == nil && status == string(job.StatusFailed) {
				if err := setRefs(&ch, wf, bt); err != nil {
					return err
				}
				failed = append(failed, ch)
			}
			switch {
			case errors.Is(err, sql.ErrNoRows):
				res.Stale = append(res.Stale, f.ID)
			case err != nil:
				return fmt.Errorf("job %s: %w", f.ID, err)
			case status == "pending":
				res.Retried = append(res.Retried, f.ID)
			default:
				res.Failed = append(res.Failed, f.ID)
			}
		}
		if !needsResolution(failed) {
			return nil
		}
		return store.Resolve(ctx, resolveTx{tx}, now, failed)
	})
	if err != nil {
		return store.FailResult{}, fmt.Errorf("fail %d jobs: %w", len(p.Failures), err)
	}
	return res, nil
}
