package maintenance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// CleanerConfig configures a Cleaner.
type CleanerConfig struct {
	Store store.Cleaner
	// Clock is the database's clock, which retention ages count by.
	Clock store.DatabaseClock
	// Interval between passes, ±10%; the first pass runs at Start.
	Interval time.Duration
	// BatchSize is the number of rows one statement changes.
	BatchSize int
	// Retention is how long each finished status is kept; 0 keeps it
	// forever.
	Retention func(job.Status) time.Duration
	Logger    *slog.Logger
	// Outage quiets the logs of passes failing in a database outage.
	Outage Outage
}

// CleanResult is what one cleaner pass did.
type CleanResult struct {
	Expired int
	// Deleted counts jobs outside workflows, per status.
	Deleted map[job.Status]int
	// Workflows counts finished workflows deleted whole.
	Workflows int
}

// Cleaner keeps the jobs table from growing without bound: at start and
// then every interval it clears expired results and deletes finished jobs
// past their status's retention; a finished workflow goes whole, with every
// job, once all of it is past the longest retention among its jobs'
// statuses, so no retry or condition ever finds half of it. Work goes in
// batches of BatchSize rows per statement, so a large backlog never holds
// locks (or SQLite's single writer) for long; the trade is more round trips
// while a backlog lasts. A pass has several steps, so it drains each step
// itself rather than being repeated whole. Ages count by the database's
// clock, read once per pass, so an agent whose host clock runs ahead
// deletes nothing early. Passed receives each pass's result.
type Cleaner struct {
	*Service[CleanResult]
	cfg CleanerConfig
	log *slog.Logger
}

// NewCleaner returns a stopped Cleaner.
func NewCleaner(cfg CleanerConfig) *Cleaner {
	c := &Cleaner{cfg: cfg, log: orDiscard(cfg.Logger)}
	c.Service = New(Config{Name: "cleaner", Interval: cfg.Interval, Jitter: 0.1, RunAtStart: true, Logger: cfg.Logger, Outage: cfg.Outage}, c.pass)
	return c
}

// pass runs each step until it comes back short of a full batch. A failed
// step does not stop the others; the pass reports every failure. The
// retention cutoffs count back from the database's now, read once, so
// every step of a pass agrees on them.
func (c *Cleaner) pass(ctx context.Context) (CleanResult, int, error) {
	res := CleanResult{Deleted: map[job.Status]int{}}
	now, err := c.cfg.Clock.DatabaseNow(ctx)
	if err != nil {
		return res, 0, fmt.Errorf("read the database's clock: %w", err)
	}
	var errs []error
	drain := func(what string, step func() (int, error)) int {
		n, err := c.drain(ctx, step)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
		return n
	}
	res.Expired = drain("expire results", func() (int, error) {
		return c.cfg.Store.ExpireResults(ctx, store.ExpireResultsParams{Limit: c.cfg.BatchSize})
	})
	for _, s := range store.FinishedStatuses {
		keep := c.cfg.Retention(s)
		if keep <= 0 {
			continue
		}
		p := store.DeleteFinishedParams{FinishedFilter: store.FinishedFilter{Status: s, Before: now.Add(-keep)}, Limit: c.cfg.BatchSize}
		res.Deleted[s] = drain("delete "+string(s)+" jobs", func() (int, error) {
			return c.cfg.Store.DeleteFinished(ctx, p)
		})
	}
	wp := store.DeleteWorkflowsParams{Cutoffs: store.RetentionCutoffs(now, c.cfg.Retention), Limit: c.cfg.BatchSize}
	if len(wp.Cutoffs) > 0 {
		res.Workflows = drain("delete finished workflows", func() (int, error) {
			return c.cfg.Store.DeleteFinishedWorkflows(ctx, wp)
		})
	}
	if ctx.Err() != nil {
		return res, 0, ctx.Err()
	}
	c.logRemoved(res)
	return res, 0, errors.Join(errs...)
}

// drain repeats step while it fills whole batches and returns the total.
func (c *Cleaner) drain(ctx context.Context, step func() (int, error)) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n, err := step()
		if err != nil {
			return total, err
		}
		total += n
		if n < c.cfg.BatchSize {
			break
		}
	}
	return total, nil
}

func (c *Cleaner) logRemoved(res CleanResult) {
	total := res.Workflows
	attrs := []any{"expired_results", res.Expired, "deleted_workflows", res.Workflows}
	for _, s := range store.FinishedStatuses {
		total += res.Deleted[s]
		attrs = append(attrs, "deleted_"+string(s), res.Deleted[s])
	}
	if total > 0 || res.Expired > 0 {
		c.log.Info("cleaner removed expired results and old finished jobs", attrs...)
	}
}
