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

// querier is what reads need from a *sql.DB or a *sql.Tx, so a transition
// can read its job back inside its own transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Get returns one job with DependsOn and Dependents read from the edge table.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (*job.Job, error) {
	j, err := getJob(ctx, s.read, id)
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, dbErr(err))
	}
	if err := s.hideExpiredResults(ctx, j); err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	return j, nil
}

func getJob(ctx context.Context, q querier, id uuid.UUID) (*job.Job, error) {
	j, err := store.ScanSQLJob(q.QueryRowContext(ctx,
		`SELECT `+jobColumns+` FROM hammerwork_jobs WHERE id = ?`, id.String()), false)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if j.DependsOn, err = store.QueryIDs(ctx, q,
		`SELECT depends_on_id FROM hammerwork_job_dependencies WHERE job_id = ? ORDER BY depends_on_id`, id); err != nil {
		return nil, fmt.Errorf("read parents: %w", err)
	}
	if j.Dependents, err = store.QueryIDs(ctx, q,
		`SELECT job_id FROM hammerwork_job_dependencies WHERE depends_on_id = ? ORDER BY job_id`, id); err != nil {
		return nil, fmt.Errorf("read children: %w", err)
	}
	return j, nil
}

// hideExpiredResults drops each result whose time to live has passed by the
// database's clock: the cleaner may not have cleared it yet, but it is gone
// as far as readers know.
func (s *Store) hideExpiredResults(ctx context.Context, jobs ...*job.Job) error {
	now, err := s.DatabaseNow(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.ResultExpiresAt != nil && !j.ResultExpiresAt.After(now) {
			j.Result = nil
		}
	}
	return nil
}

// List returns one page of jobs, newest first.
func (s *Store) List(ctx context.Context, p store.ListParams) (*store.ListPage, error) {
	pg, err := p.Paging()
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	where, args := store.WhereClause(p.Filters(pg), "", func(int) string { return "?" })
	query := `SELECT ` + jobColumns + ` FROM hammerwork_jobs` + where + ` ORDER BY id DESC LIMIT ?`
	args = append(args, pg.Fetch())
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", dbErr(err))
	}
	jobs, err := store.ScanSQLJobs(rows, false)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	page := pg.JobPage(jobs)
	if err := s.hideExpiredResults(ctx, page.Jobs...); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return page, nil
}

// QueueStats counts jobs per queue and status.
func (s *Store) QueueStats(ctx context.Context) ([]store.QueueCount, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT queue_name, status, count(*)
		FROM hammerwork_jobs GROUP BY queue_name, status ORDER BY queue_name, status`)
	if err != nil {
		return nil, fmt.Errorf("count jobs per queue: %w", dbErr(err))
	}
	defer rows.Close()
	out, err := store.CollectQueueCounts(rows)
	if err != nil {
		return nil, fmt.Errorf("count jobs per queue: %w", err)
	}
	return out, nil
}
