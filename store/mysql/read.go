package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

var getSQL = `SELECT ` + fullJobCols + ` FROM hammerwork_jobs j WHERE j.id = ?`

// Get returns one job with DependsOn and Dependents filled; an expired
// result reads as none.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (*job.Job, error) {
	j, err := store.ScanSQLJob(s.db.QueryRowContext(ctx, getSQL, id.String()), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "get job %s", id)
	}
	return j, nil
}

// List returns one page of jobs matching the filters, newest first.
func (s *Store) List(ctx context.Context, p store.ListParams) (*store.ListPage, error) {
	pg, err := p.Paging()
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	where, args := store.WhereClause(p.Filters(pg), "j", func(int) string { return "?" })
	query := `SELECT ` + jobCols + ` FROM hammerwork_jobs j` + where + ` ORDER BY j.id DESC LIMIT ?`
	args = append(args, pg.Fetch())
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap(err, "list jobs")
	}
	jobs, err := store.ScanSQLJobs(rows, false)
	if err != nil {
		return nil, wrap(err, "list jobs")
	}
	return pg.JobPage(jobs), nil
}

// QueueStats counts jobs per queue and status, ordered by queue then status.
func (s *Store) QueueStats(ctx context.Context) ([]store.QueueCount, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT queue_name, status, COUNT(*) FROM hammerwork_jobs GROUP BY queue_name, status ORDER BY queue_name, status`)
	if err != nil {
		return nil, wrap(err, "count jobs per queue")
	}
	defer rows.Close()
	out, err := store.CollectQueueCounts(rows)
	if err != nil {
		return nil, wrap(err, "count jobs per queue")
	}
	return out, nil
}
