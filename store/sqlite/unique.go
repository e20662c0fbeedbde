package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// enqueueTx builds, checks the parents of and writes new jobs in the
// caller's transaction. It returns them in input order, duplicates of live
// unique keys replaced by the live job.
//
// The live holders of the keys are read before the insert. That is not a
// race here: every write runs in BEGIN IMMEDIATE on the one write
// connection, and other processes wait for the database's write lock, so
// nothing can take a key between the read and the insert; the partial
// unique index (migration 0004) holds the rule regardless.
func enqueueTx(ctx context.Context, tx *sql.Tx, news []store.NewJob, now time.Time) ([]*job.Job, error) {
	jobs, err := store.BuildJobs(news, now)
	if err != nil {
		return nil, err
	}
	var edges []store.Edge
	if store.HasDependsOn(news) {
		parents, err := parentStatuses(ctx, tx, store.ParentIDs(news))
		if err != nil {
			return nil, err
		}
		if edges, err = store.ApplyDependsOn(news, jobs, parents); err != nil {
			return nil, err
		}
	}
	live := map[string]*job.Job{}
	if keys := store.UniqueKeys(jobs); len(keys) > 0 {
		rows, err := tx.QueryContext(ctx, `SELECT `+jobColumns+` FROM hammerwork_jobs
			WHERE unique_key IN (SELECT value FROM json_each(?)) AND status IN ('pending', 'running')`, jsonList(keys))
		if err != nil {
			return nil, fmt.Errorf("read live jobs by unique key: %w", err)
		}
		holders, err := store.ScanSQLJobs(rows, false)
		if err != nil {
			return nil, fmt.Errorf("read live jobs by unique key: %w", err)
		}
		for _, h := range holders {
			live[h.UniqueKey] = h
		}
	}
	result, write, keep := store.Dedupe(jobs, edges, live)
	if err := insertJobs(ctx, tx, write, keep); err != nil {
		return nil, err
	}
	return result, nil
}

// parentStatuses reads the status of the named jobs.
func parentStatuses(ctx context.Context, tx *sql.Tx, ids []uuid.UUID) (map[uuid.UUID]job.Status, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, status FROM hammerwork_jobs
		WHERE id IN (SELECT value FROM json_each(?))`, idList(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return store.CollectJobStatuses(rows)
}
