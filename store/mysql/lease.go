package mysql

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

// leaseSelect locks up to LIMIT leasable jobs in lease order, skipping rows
// other agents hold. With one queue the predicate is equalities on the
// leading columns of hammerwork_jobs_lease_queue_idx followed by its order,
// so InnoDB walks that index and stops after LIMIT matching entries; with
// every queue it walks hammerwork_jobs_lease_all_idx the same way. %s is the
// queue filter, built from fixed strings and placeholders only.
const leaseSelect = `SELECT %s FROM hammerwork_jobs j
WHERE j.status = 'pending' AND j.dependency_status IN ('none', 'satisfied')
  AND j.scheduled_at <= ?%s
ORDER BY j.priority DESC, j.scheduled_at, j.id
LIMIT ?
FOR UPDATE SKIP LOCKED`

// leaseUpdate moves the locked rows to running; each gets its own token from
// the JSON document joined as a table (JSON_TABLE: MySQL 8.0.4+, every GA
// release, and MariaDB 10.6+).
const leaseUpdate = `UPDATE hammerwork_jobs j
JOIN JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(36) PATH '$.id', token VARCHAR(64) PATH '$.token')) v
  ON j.id = v.id COLLATE utf8mb4_bin
SET j.status = 'running', j.attempts = j.attempts + 1, j.started_at = ?, j.leased_by = ?,
    j.lease_token = v.token, j.lease_expires_at = ?
WHERE j.id IN (%s) AND j.status = 'pending'`

type leaseToken struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

// Lease moves up to p.Limit leasable jobs to running and returns them in
// lease order. It locks and reads the jobs with one SELECT, updates them with
// one UPDATE and applies the same change to what it read, so no read back is
// needed.
func (s *Store) Lease(ctx context.Context, p store.LeaseParams) ([]*job.Job, error) {
	if p.Limit <= 0 {
		return []*job.Job{}, nil
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "lease jobs from %s", store.QueueList(p.Queues))
	}
	until := store.UTC(at.Add(p.Duration))
	var filter strings.Builder
	args := []any{at}
	switch len(p.Queues) {
	case 0:
	case 1:
		filter.WriteString("\n  AND j.queue_name = ?")
		args = append(args, p.Queues[0])
	default:
		fmt.Fprintf(&filter, "\n  AND j.queue_name IN (%s)", placeholders(len(p.Queues)))
		for _, q := range p.Queues {
			args = append(args, q)
		}
	}
	if len(p.ExcludeQueues) > 0 {
		fmt.Fprintf(&filter, "\n  AND j.queue_name NOT IN (%s)", placeholders(len(p.ExcludeQueues)))
		for _, q := range p.ExcludeQueues {
			args = append(args, q)
		}
	}
	switch len(p.Priorities) {
	case 0:
	case 1:
		filter.WriteString("\n  AND j.priority = ?")
		args = append(args, int(p.Priorities[0]))
	default:
		fmt.Fprintf(&filter, "\n  AND j.priority IN (%s)", placeholders(len(p.Priorities)))
		for _, l := range p.Priorities {
			args = append(args, int(l))
		}
	}
	// Every agent stays off a paused queue. The locking clause does not
	// reach into the subquery, so pause rows are read, never locked.
	filter.WriteString("\n  AND NOT EXISTS (SELECT 1 FROM hammerwork_queue_pauses qp WHERE qp.queue_name = j.queue_name)")
	args = append(args, p.Limit)
	query := fmt.Sprintf(leaseSelect, jobCols, filter.String())

	var jobs []*job.Job
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		if jobs, err = store.ScanSQLJobs(rows, false); err != nil || len(jobs) == 0 {
			return err
		}
		tokens := make([]leaseToken, len(jobs))
		ids := make([]uuid.UUID, len(jobs))
		for i, j := range jobs {
			ids[i] = j.ID
			tokens[i] = leaseToken{ID: j.ID.String(), Token: uuid.NewString()}
		}
		doc, err := json.Marshal(tokens)
		if err != nil {
			return err
		}
		sorted := sortedIDs(ids)
		upd := fmt.Sprintf(leaseUpdate, placeholders(len(sorted)))
		res, err := tx.ExecContext(ctx, upd, append([]any{string(doc), at, nullStr(p.AgentID), until}, idArgs(sorted)...)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if int(n) != len(jobs) {
			return fmt.Errorf("leased %d of %d locked jobs", n, len(jobs))
		}
		for i, j := range jobs {
			j.Status = job.StatusRunning
			j.Attempts++
			started := at
			j.StartedAt = &started
			j.LeasedBy = p.AgentID
			j.LeaseToken = tokens[i].Token
			expires := until
			j.LeaseExpiresAt = &expires
		}
		return nil
	})
	if err != nil {
		return nil, wrap(err, "lease jobs from %s", store.QueueList(p.Queues))
	}
	return store.LeaseOrder(jobs), nil
}

// lockedJob is what the batch calls need to know of a row they locked.
type lockedJob struct {
	attempts, maxAttempts int
	workflowID            uuid.NullUUID
	batchID               uuid.NullUUID
	children              bool
}

// change describes the transition of a locked job for resolution.
func (l lockedJob) change(id uuid.UUID, from, to job.Status) store.JobChange {
	c := store.JobChange{ID: id, From: from, To: to, Dependents: l.children}
	if l.workflowID.Valid {
		w := l.workflowID.UUID
		c.WorkflowID = &w
	}
	if l.batchID.Valid {
		b := l.batchID.UUID
		c.BatchID = &b
	}
	return c
}

// lockRunning locks the jobs of refs in id order and returns those that are
// running under the given token: the rows the batch call may change. The
// others are its stale list.
func lockRunning(ctx context.Context, tx *sql.Tx, refs []store.LeaseRef) (map[uuid.UUID]lockedJob, error) {
	want := make(map[uuid.UUID]string, len(refs))
	ids := make([]uuid.UUID, len(refs))
	for i, r := range refs {
		want[r.ID] = r.Token
		ids[i] = r.ID
	}
	sorted := sortedIDs(ids)
	rows, err := tx.QueryContext(ctx, `SELECT j.id, j.status, j.lease_token, j.attempts, j.max_attempts, `+changeColumns+`
FROM hammerwork_jobs j WHERE j.id IN (`+placeholders(len(sorted))+`) ORDER BY j.id FOR UPDATE`, idArgs(sorted)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[uuid.UUID]lockedJob, len(refs))
	for rows.Next() {
		var (
			id     uuid.UUID
			status string
			token  sql.NullString
			l      lockedJob
		)
		if err := rows.Scan(&id, &status, &token, &l.attempts, &l.maxAttempts, &l.workflowID, &l.batchID, &l.children); err != nil {
			return nil, err
		}
		if status == string(job.StatusRunning) && token.Valid && token.String == want[id] {
			out[id] = l
		}
	}
	return out, rows.Err()
}

// matched returns the ids of locked in id order.
func matched(locked map[uuid.UUID]lockedJob) []uuid.UUID {
	ids := make([]uuid.UUID, 0, len(locked))
	for id := range locked {
		ids = append(ids, id)
	}
	return sortedIDs(ids)
}

// updateLocked locks the running jobs of refs and, when any match, runs
// update (with %s standing for their id placeholders) with args followed by
// their ids. It returns the stale ids.
func (s *Store) updateLocked(ctx context.Context, refs []store.LeaseRef, update string, args ...any) ([]uuid.UUID, error) {
	var stale []uuid.UUID
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		locked, err := lockRunning(ctx, tx, refs)
		if err != nil {
			return err
		}
		ids := matched(locked)
		stale = store.Stale(refs, ids)
		if len(ids) == 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, fmt.Sprintf(update, placeholders(len(ids))), append(slices.Clone(args), idArgs(ids)...)...)
		return err
	})
	return stale, err
}

// Extend sets lease_expires_at = p.Until (or the database's now +
// p.Duration) on running jobs whose token matches and returns the ids that
// did not match.
func (s *Store) Extend(ctx context.Context, p store.ExtendParams) ([]uuid.UUID, error) {
	if len(p.Leases) == 0 {
		return []uuid.UUID{}, nil
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "extend %d leases", len(p.Leases))
	}
	stale, err := s.updateLocked(ctx, p.Leases,
		`UPDATE hammerwork_jobs SET lease_expires_at = ? WHERE id IN (%s) ORDER BY id`,
		p.ExpiresAt(at))
	if err != nil {
		return nil, wrap(err, "extend %d leases", len(p.Leases))
	}
	return stale, nil
}

// Release puts running jobs back to pending without spending their attempt.
func (s *Store) Release(ctx context.Context, p store.ReleaseParams) ([]uuid.UUID, error) {
	if len(p.Leases) == 0 {
		return []uuid.UUID{}, nil
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "release %d leases", len(p.Leases))
	}
	stale, err := s.updateLocked(ctx, p.Leases, `UPDATE hammerwork_jobs SET
    status = 'pending', attempts = GREATEST(attempts - 1, 0), scheduled_at = ?,
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE id IN (%s) ORDER BY id`, p.DueAt(at))
	if err != nil {
		return nil, wrap(err, "release %d leases", len(p.Leases))
	}
	return stale, nil
}

// rescueUpdate writes a rescue plan to the locked rows: the ids that fail
// (a comma-separated list, the first argument and again in failed_at and
// status) go to failed, the others back to pending. MySQL evaluates
// single-table assignments left to right on the updated row, so every
// assignment reads only columns not yet assigned, and the lease is cleared
// last, after the error has quoted leased_by.
const rescueUpdate = `UPDATE hammerwork_jobs SET
    failed_at = IF(FIND_IN_SET(id, ?), ?, failed_at),
    scheduled_at = IF(FIND_IN_SET(id, ?), scheduled_at, ?),
    error_message = ?,
    errors = JSON_ARRAY_APPEND(errors, '$', JSON_OBJECT(
        'attempt', attempts, 'at', ?, 'outcome', ?,
        'message', CONCAT(?, COALESCE(CONCAT(' (held by ', leased_by, ')'), '')))),
    status = IF(FIND_IN_SET(id, ?), 'failed', 'pending'),
    leased_by = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE id IN (%s) AND status = 'running'
ORDER BY id`

// RescueExpired requeues (or fails, when attempts are used up) running jobs
// whose lease expired: at most p.Limit of them in one pass, oldest expiry
// first, skipping rows another rescuer or a late Complete holds.
// store.PlanRescue decides; the update writes its decision per row.
func (s *Store) RescueExpired(ctx context.Context, p store.RescueParams) (store.RescueResult, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return store.RescueResult{}, wrap(err, "rescue expired leases")
	}
	var plan store.RescuePlan
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT j.id, j.attempts, j.max_attempts, `+changeColumns+`
FROM hammerwork_jobs j
WHERE j.status = 'running' AND j.lease_expires_at <= ?
ORDER BY j.lease_expires_at, j.id
LIMIT ?
FOR UPDATE SKIP LOCKED`, at, p.RescueLimit())
		if err != nil {
			return err
		}
		var expired []store.Locked
		var ids []uuid.UUID
		for rows.Next() {
			var id uuid.UUID
			var l lockedJob
			if err := rows.Scan(&id, &l.attempts, &l.maxAttempts, &l.workflowID, &l.batchID, &l.children); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
			expired = append(expired, store.Locked{Attempts: l.attempts, MaxAttempts: l.maxAttempts, Change: l.change(id, "", "")})
		}
		if err := rows.Close(); err != nil {
			return err
		}
		plan = store.PlanRescue(expired)
		if err := rows.Err(); err != nil || len(ids) == 0 {
			return err
		}
		failed := make([]string, len(plan.Result.Failed))
		for i, id := range plan.Result.Failed {
			failed[i] = id.String()
		}
		fails := strings.Join(failed, ",")
		args := append([]any{fails, at, fails, at, store.LeaseExpiredMessage, at.Format(time.RFC3339Nano),
			store.LeaseExpiredOutcome, store.LeaseExpiredMessage, fails}, idArgs(sortedIDs(ids))...)
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(rescueUpdate, placeholders(len(ids))), args...); err != nil {
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
