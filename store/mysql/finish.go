package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// completeUpdate finishes the locked jobs of a batch in one statement,
// joining the batch's results as a table. A result_ttl sets the expiry; a
// note, when given, becomes error_message.
const completeUpdate = `UPDATE hammerwork_jobs j
JOIN JSON_TABLE(?, '$[*]' COLUMNS (
    id CHAR(36) PATH '$.id', result LONGTEXT PATH '$.result', note LONGTEXT PATH '$.note')) c
  ON j.id = c.id COLLATE utf8mb4_bin
SET j.status = 'completed',
    j.completed_at = ?,
    j.result_data = c.result,
    j.result_expires_at = CASE WHEN j.result_ttl_seconds > 0
        THEN DATE_ADD(CAST(? AS DATETIME(6)), INTERVAL CAST(ROUND(j.result_ttl_seconds * 1000000) AS SIGNED) MICROSECOND) END,
    j.error_message = COALESCE(c.note, j.error_message),
    j.leased_by = NULL, j.lease_token = NULL, j.lease_expires_at = NULL
WHERE j.id IN (%s) AND j.status = 'running'`

// completion is one row of completeUpdate's table. Result is the app's JSON
// carried as a JSON string, so the column receives its bytes unchanged.
type completion struct {
	ID     string  `json:"id"`
	Result *string `json:"result,omitempty"`
	Note   *string `json:"note,omitempty"`
}

// Complete moves running jobs with matching tokens to completed and returns
// the ids that did not match.
func (s *Store) Complete(ctx context.Context, p store.CompleteParams) ([]uuid.UUID, error) {
	if len(p.Completions) == 0 {
		return []uuid.UUID{}, nil
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "complete %d jobs", len(p.Completions))
	}
	refs := make([]store.LeaseRef, len(p.Completions))
	rows := make(map[uuid.UUID]completion, len(p.Completions))
	for i, c := range p.Completions {
		refs[i] = c.LeaseRef
		row := completion{ID: c.ID.String()}
		if c.Result != nil {
			if !json.Valid(c.Result) {
				return nil, fmt.Errorf("complete job %s: %w: result is not valid JSON", c.ID, store.ErrInvalid)
			}
			r := string(c.Result)
			row.Result = &r
		}
		if c.Note != "" {
			n := c.Note
			row.Note = &n
		}
		rows[c.ID] = row
	}
	var stale []uuid.UUID
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		locked, err := lockRunning(ctx, tx, refs)
		if err != nil {
			return err
		}
		ids := matched(locked)
		stale = store.Stale(refs, ids)
		if len(ids) == 0 {
			return nil
		}
		table := make([]completion, len(ids))
		for i, id := range ids {
			table[i] = rows[id]
		}
		doc, err := json.Marshal(table)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(completeUpdate, placeholders(len(ids))),
			append([]any{string(doc), at, at}, idArgs(ids)...)...); err != nil {
			return err
		}
		changes := make([]store.JobChange, len(ids))
		for i, id := range ids {
			changes[i] = locked[id].change(id, job.StatusRunning, job.StatusCompleted)
		}
		if !needsResolution(changes) {
			return nil
		}
		return store.Resolve(ctx, resolveTx{tx}, at, changes)
	})
	if err != nil {
		return nil, wrap(err, "complete %d jobs", len(p.Completions))
	}
	return stale, nil
}

// failUpdate records a batch of failed attempts in one statement. Whether a
// row goes back to pending or fails for good was decided from the locked
// row, so the statement only applies it (status column of the joined table).
const failUpdate = `UPDATE hammerwork_jobs j
JOIN JSON_TABLE(?, '$[*]' COLUMNS (
    id CHAR(36) PATH '$.id', status VARCHAR(16) PATH '$.status', retry_at DATETIME(6) PATH '$.retry_at',
    error LONGTEXT PATH '$.error', outcome VARCHAR(255) PATH '$.outcome')) f
  ON j.id = f.id COLLATE utf8mb4_bin
SET j.status = f.status,
    j.scheduled_at = IF(f.status = 'pending', f.retry_at, j.scheduled_at),
    j.failed_at = IF(f.status = 'pending', j.failed_at, ?),
    j.error_message = f.error,
    j.errors = JSON_ARRAY_APPEND(j.errors, '$', JSON_OBJECT(
        'attempt', j.attempts, 'at', ?, 'outcome', f.outcome, 'message', f.error)),
    j.leased_by = NULL, j.lease_token = NULL, j.lease_expires_at = NULL
WHERE j.id IN (%s) AND j.status = 'running'`

// failure is one row of failUpdate's table.
type failure struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	RetryAt string `json:"retry_at,omitempty"`
	Error   string `json:"error"`
	Outcome string `json:"outcome"`
}

// datetimeLayout is how a DATETIME(6) is written inside a JSON document.
const datetimeLayout = "2006-01-02 15:04:05.000000"

// Fail records failed attempts: it locks the running jobs, lets
// store.PlanFailures decide each one and writes the plan in one statement.
func (s *Store) Fail(ctx context.Context, p store.FailParams) (store.FailResult, error) {
	plan := store.PlanFailures(p, time.Time{}, nil)
	if len(p.Failures) == 0 {
		return plan.Result, nil
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return store.FailResult{}, wrap(err, "fail %d jobs", len(p.Failures))
	}
	refs := make([]store.LeaseRef, len(p.Failures))
	for i, f := range p.Failures {
		refs[i] = f.LeaseRef
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		locked, err := lockRunning(ctx, tx, refs)
		if err != nil {
			return err
		}
		ids := matched(locked)
		rows := make([]store.Locked, len(ids))
		for i, id := range ids {
			l := locked[id]
			rows[i] = store.Locked{Attempts: l.attempts, MaxAttempts: l.maxAttempts, Change: l.change(id, "", "")}
		}
		plan = store.PlanFailures(p, at, rows)
		if len(ids) == 0 {
			return nil
		}
		table := make([]failure, len(plan.Decisions))
		for i, d := range plan.Decisions {
			table[i] = failure{ID: d.ID.String(), Status: string(job.StatusFailed), Error: d.Error, Outcome: d.Outcome}
			if d.Retry {
				table[i].Status, table[i].RetryAt = string(job.StatusPending), d.RetryAt.Format(datetimeLayout)
			}
		}
		doc, err := json.Marshal(table)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, fmt.Sprintf(failUpdate, placeholders(len(ids))),
			append([]any{string(doc), at, at.Format(time.RFC3339Nano)}, idArgs(ids)...)...)
		if err != nil || !needsResolution(plan.Failed) {
			return err
		}
		return store.Resolve(ctx, resolveTx{tx}, at, plan.Failed)
	})
	if err != nil {
		return store.FailResult{}, wrap(err, "fail %d jobs", len(p.Failures))
	}
	return plan.Result, nil
}
