package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/lease"
	"github.com/hammerwork-go/hw-agent/store"
)

// cleanResult is what one pass did.
type cleanResult struct {
	expired int
	// deleted counts jobs outside workflows, per status.
	deleted map[job.Status]int
	// workflows counts finished workflows deleted whole.
	workflows int
}

// cleaner keeps the jobs table from growing without bound: at start and then
// every retention.interval it clears expired results and deletes finished
// jobs past their status's retention; a finished workflow goes whole, with
// every job, once all of it is past the longest retention among its jobs'
// statuses, so no retry or condition ever finds half of it. Every agent runs one, like the
// rescuer: the store's batches skip rows another cleaner holds, so
// concurrent passes are safe, at the cost of a few redundant queries. Work
// goes in batches of retention.batch_size rows per statement, so a large
// backlog never holds locks (or SQLite's single writer) for long; the trade
// is more round trips while a backlog lasts. Ages count by the database's
// clock, read once per pass, so an agent whose host clock runs ahead
// deletes nothing early.
type cleaner struct {
	store store.Cleaner
	clock store.DatabaseClock
	cfg   RetentionConfig
	// outage is the agent's tracker: a pass failing during an outage is
	// logged at DEBUG, since the outage is logged once.
	outage *dbOutage
	log    *slog.Logger
	lease.Loop
	// passes, when set by tests, receives each pass's result.
	passes chan cleanResult
}

func newCleaner(s store.Cleaner, clock store.DatabaseClock, cfg RetentionConfig, outage *dbOutage, log *slog.Logger) *cleaner {
	return &cleaner{store: s, clock: clock, cfg: cfg, outage: outage, log: log}
}

// Start runs a pass at once and then every interval until Stop.
func (c *cleaner) Start(ctx context.Context) error {
	return c.Run(ctx, func(ctx context.Context) {
		t := time.NewTicker(c.cfg.Interval.D())
		defer t.Stop()
		for {
			c.pass(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
}

// Stop ends the passes; a batch in progress is cancelled.
func (c *cleaner) Stop() { c.Loop.Stop() }

// pass runs each step until it comes back short of a full batch. A failed
// step is logged and the pass moves on: the next interval tries again. The
// retention cutoffs count back from the database's now, read once, so every
// step of a pass agrees on them.
func (c *cleaner) pass(ctx context.Context) {
	now, err := c.clock.DatabaseNow(ctx)
	if err != nil {
		c.failed(ctx, "read the database's clock", err)
		return
	}
	res := cleanResult{deleted: map[job.Status]int{}}
	res.expired = c.drain(ctx, "expire results", func() (int, error) {
		return c.store.ExpireResults(ctx, store.ExpireResultsParams{Limit: c.cfg.BatchSize})
	})
	for _, s := range store.FinishedStatuses {
		keep := c.cfg.For(s)
		if keep <= 0 {
			continue
		}
		p := store.DeleteFinishedParams{FinishedFilter: store.FinishedFilter{Status: s, Before: now.Add(-keep)}, Limit: c.cfg.BatchSize}
		res.deleted[s] = c.drain(ctx, "delete "+string(s)+" jobs", func() (int, error) {
			return c.store.DeleteFinished(ctx, p)
		})
	}
	wp := store.DeleteWorkflowsParams{Cutoffs: store.RetentionCutoffs(now, c.cfg.For), Limit: c.cfg.BatchSize}
	if len(wp.Cutoffs) > 0 {
		res.workflows = c.drain(ctx, "delete finished workflows", func() (int, error) {
			return c.store.DeleteFinishedWorkflows(ctx, wp)
		})
	}
	if ctx.Err() != nil {
		return
	}
	total := res.workflows
	attrs := []any{"expired_results", res.expired, "deleted_workflows", res.workflows}
	for _, s := range store.FinishedStatuses {
		total += res.deleted[s]
		attrs = append(attrs, "deleted_"+string(s), res.deleted[s])
	}
	if total > 0 || res.expired > 0 {
		c.log.Info("cleaner removed expired results and old finished jobs", attrs...)
	}
	if c.passes != nil {
		select {
		case c.passes <- res:
		case <-ctx.Done():
		}
	}
}

// drain repeats step while it fills whole batches and returns the total.
func (c *cleaner) drain(ctx context.Context, what string, step func() (int, error)) int {
	total := 0
	for ctx.Err() == nil {
		n, err := step()
		if err != nil {
			c.failed(ctx, what, err)
			return total
		}
		total += n
		if n < c.cfg.BatchSize {
			break
		}
	}
	return total
}

// failed logs a failed step: at ERROR, or at DEBUG during a database outage
// the agent has already logged; not at all when the agent is stopping.
func (c *cleaner) failed(ctx context.Context, what string, err error) {
	if ctx.Err() != nil {
		return
	}
	level := slog.LevelError
	if c.outage.isDown() {
		level = slog.LevelDebug
	}
	c.log.Log(ctx, level, "cleaner step failed; retrying at the next interval", "step", what, "error", err)
}
