package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// claimSuffix makes a multi-row INSERT skip rows whose unique key a live job
// holds (the UNIQUE index over the generated unique_live_key column) instead
// of failing the statement. A concurrent transaction inserting the same key
// makes this one wait for its outcome, so the database decides the key.
const claimSuffix = " ON DUPLICATE KEY UPDATE id = id"

// enqueueTx builds, checks the parents of and writes new jobs in the
// caller's transaction. Jobs naming parents first read and share-lock those
// parents, so none of them can finish, and miss the new edges, before this
// transaction commits. It returns the jobs in input order, duplicates of
// live unique keys replaced by the live job.
func enqueueTx(ctx context.Context, tx *sql.Tx, news []store.NewJob, at time.Time) ([]*job.Job, error) {
	jobs, err := store.BuildJobs(news, at)
	if err != nil {
		return nil, err
	}
	var edges []store.Edge
	if store.HasDependsOn(news) {
		parents, err := lockParents(ctx, tx, store.ParentIDs(news))
		if err != nil {
			return nil, err
		}
		if edges, err = store.ApplyDependsOn(news, jobs, parents); err != nil {
			return nil, err
		}
	}
	claims := store.FirstPerKey(jobs)
	if len(claims) == 0 {
		return jobs, insertJobs(ctx, tx, jobs, edges)
	}
	live, err := store.ClaimKeys(claims, func(claims []*job.Job) error {
		if err := insertRows(ctx, tx, claims, claimSuffix); err != nil {
			return fmt.Errorf("insert unique jobs: %w", err)
		}
		return nil
	}, func(claims []*job.Job) ([]*job.Job, error) {
		keys := store.UniqueKeys(claims)
		args := make([]any, len(keys))
		for i, k := range keys {
			args[i] = k
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+jobCols+` FROM hammerwork_jobs j
WHERE j.unique_live_key IN (`+placeholders(len(keys))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read live jobs by unique key: %w", err)
		}
		holders, err := store.ScanSQLJobs(rows, false)
		if err != nil {
			return nil, fmt.Errorf("read live jobs by unique key: %w", err)
		}
		return holders, nil
	})
	if err != nil {
		return nil, err
	}
	result, write, keep := store.Dedupe(jobs, edges, live)
	var rest []*job.Job
	for _, j := range write {
		if j.UniqueKey == "" {
			rest = append(rest, j)
		}
	}
	if err := insertJobs(ctx, tx, rest, keep); err != nil {
		return nil, err
	}
	return result, nil
}
