package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// claimKeysSQL stages the jobs that claim unique keys: COPY cannot skip
// conflicts, so they go through a temporary table and one INSERT ... ON
// CONFLICT DO NOTHING against the partial unique index. A concurrent
// transaction inserting the same key makes this one wait for its outcome,
// so the key is decided by the database, never by a read.
const stageKeysSQL = `CREATE TEMP TABLE IF NOT EXISTS hammerwork_new_jobs
    (LIKE hammerwork_jobs INCLUDING DEFAULTS) ON COMMIT DROP`

var claimKeysSQL = `INSERT INTO hammerwork_jobs (` + strings.Join(fullJobColumns, ", ") + `)
SELECT ` + strings.Join(fullJobColumns, ", ") + ` FROM hammerwork_new_jobs
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND status IN ('pending', 'running') DO NOTHING
RETURNING id`

var liveByKeySQL = `SELECT ` + jobCols + ` FROM hammerwork_jobs j
WHERE j.unique_key = ANY ($1::text[]) AND j.status IN ('pending', 'running')`

// enqueueTx builds, checks the parents of and writes new jobs in the
// caller's transaction. It returns them in input order, duplicates of
// live unique keys replaced by the live job.
func enqueueTx(ctx context.Context, tx pgx.Tx, news []store.NewJob, at time.Time) ([]*job.Job, error) {
	jobs, err := store.BuildJobs(news, at)
	if err != nil {
		return nil, err
	}
	var edges []store.Edge
	if store.HasDependsOn(news) {
		rows, err := tx.Query(ctx, `SELECT id, status FROM hammerwork_jobs WHERE id = ANY ($1::uuid[]) FOR SHARE`, store.ParentIDs(news))
		if err != nil {
			return nil, err
		}
		parents, err := store.CollectJobStatuses(rows)
		rows.Close()
		if err != nil {
			return nil, err
		}
		if edges, err = store.ApplyDependsOn(news, jobs, parents); err != nil {
			return nil, err
		}
	}
	return writeJobs(ctx, tx, jobs, edges)
}

// writeJobs writes built jobs and their edges. Jobs that claim a unique key
// are inserted first, conflicts skipped; the live holders of the keys that
// were taken are read in the same transaction and returned instead.
func writeJobs(ctx context.Context, tx pgx.Tx, jobs []*job.Job, edges []store.Edge) ([]*job.Job, error) {
	claims := store.FirstPerKey(jobs)
	if len(claims) == 0 {
		return jobs, copyJobs(ctx, tx, jobs, edges)
	}
	var inserted map[uuid.UUID]bool
	live, err := store.ClaimKeys(claims, func(claims []*job.Job) (err error) {
		inserted, err = claimKeys(ctx, tx, claims)
		return err
	}, func(claims []*job.Job) ([]*job.Job, error) {
		var held, lost []*job.Job
		for _, j := range claims {
			if inserted[j.ID] {
				held = append(held, j)
			} else {
				lost = append(lost, j)
			}
		}
		if len(lost) == 0 {
			return held, nil
		}
		rows, err := tx.Query(ctx, liveByKeySQL, store.UniqueKeys(lost))
		if err != nil {
			return nil, fmt.Errorf("read live jobs by unique key: %w", err)
		}
		holders, err := collectJobs(rows, false)
		if err != nil {
			return nil, fmt.Errorf("read live jobs by unique key: %w", err)
		}
		return append(held, holders...), nil
	})
	if err != nil {
		return nil, err
	}
	result, write, keep := store.Dedupe(jobs, edges, live)
	var rest []*job.Job
	var queues []string
	for _, j := range write {
		if j.UniqueKey == "" {
			rest = append(rest, j)
		} else if j.Status == job.StatusPending {
			queues = append(queues, j.Queue)
		}
	}
	if len(rest) > 0 || len(keep) > 0 {
		if err := copyJobs(ctx, tx, rest, keep); err != nil {
			return nil, err
		}
	}
	if len(queues) > 0 {
		if _, err := tx.Exec(ctx, notifyQueues, queues); err != nil {
			return nil, fmt.Errorf("notify queues: %w", err)
		}
	}
	return result, nil
}

// claimKeys inserts jobs that claim unique keys, skipping any whose key a
// live job holds, and returns the ids it inserted.
func claimKeys(ctx context.Context, tx pgx.Tx, claims []*job.Job) (map[uuid.UUID]bool, error) {
	if _, err := tx.Exec(ctx, stageKeysSQL); err != nil {
		return nil, fmt.Errorf("stage unique jobs: %w", err)
	}
	if _, err := tx.Exec(ctx, `TRUNCATE hammerwork_new_jobs`); err != nil {
		return nil, fmt.Errorf("stage unique jobs: %w", err)
	}
	rows := make([][]any, len(claims))
	for i, j := range claims {
		row, err := fullJobRow(j)
		if err != nil {
			return nil, err
		}
		rows[i] = row
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"hammerwork_new_jobs"}, fullJobColumns, pgx.CopyFromRows(rows)); err != nil {
		return nil, fmt.Errorf("stage unique jobs: %w", err)
	}
	res, err := tx.Query(ctx, claimKeysSQL)
	if err != nil {
		return nil, fmt.Errorf("insert unique jobs: %w", err)
	}
	ids, err := pgx.CollectRows(res, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("insert unique jobs: %w", err)
	}
	inserted := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		inserted[id] = true
	}
	return inserted, nil
}

// enqueueError maps a unique violation (an id that exists already) to
// ErrConflict and keeps ErrInvalid as it is.
func enqueueError(err error, n int) error {
	if errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("enqueue %d jobs: %w", n, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("enqueue %d jobs: %w: %s", n, store.ErrConflict, pgErr.Detail)
	}
	return wrap(err, "enqueue %d jobs", n)
}
