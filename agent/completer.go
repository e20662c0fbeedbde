package agent

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/maintenance"
	"github.com/hammerwork-go/hw-agent/store"
)

// completeBatch caps the outcomes of one write, and the outcomes that wait
// for the next while one is in flight.
const completeBatch = 100

// firstRetryWait is the wait after a write the database failed; it doubles
// with each further failure, up to maxRetryWait.
const (
	firstRetryWait = 20 * time.Millisecond
	maxRetryWait   = 5 * time.Second
)

// finalFlushTimeout bounds the last flush at shutdown.
const finalFlushTimeout = 10 * time.Second

// outcome is one attempt's result waiting to be written: a completion or a
// failure.
type outcome struct {
	job        *job.Job
	res        dispatch.Result
	completion *store.Completion
	failure    *store.Failure
	// written, when set, runs once the completer is done with the outcome
	// (written, refused or given up): the agent extends the job's lease
	// until then, so a slow write cannot let it run out.
	written func()
}

// settle runs the written callbacks of os.
func settle(os ...outcome) {
	for _, o := range os {
		if o.written != nil {
			o.written()
		}
	}
}

// completer writes outcomes by group commit: one store.Complete and one
// store.Fail per write. An outcome that finds no write in flight is written
// at once, alone; outcomes that arrive while a write is in flight wait for
// it and go together in the next (up to completeBatch). A quiet agent thus
// pays no batching delay, and a busy one still makes one database round
// trip per batch, not per job: the batch grows with the write's latency.
// Adding blocks while completeBatch outcomes wait or a write is retried,
// which holds the request's slot, so a slow database slows leasing instead
// of piling up answers in memory.
type completer struct {
	store finisher
	log   *slog.Logger
	in    chan outcome
	// wake, when set, nudges the producers of queues (every producer when
	// none is named) after a write that may have made jobs leasable.
	wake func(queues ...string)
	// count, when set, counts each outcome the store accepted.
	count func(j *job.Job, completed, retried bool)
	// dbError, when set, counts a failed write.
	dbError func()
	maintenance.Loop
}

// finisher is the part of the store the completer writes through; Ping
// tells a batch the database refused from a database that is gone.
type finisher interface {
	store.Finisher
	Ping(ctx context.Context) error
}

func newCompleter(s finisher, log *slog.Logger) *completer {
	return &completer{store: s, log: log, in: make(chan outcome, completeBatch)}
}

// add queues o for the next write. When ctx ends first (the drain gave up),
// o is dropped: its lease expires and the job is retried.
func (c *completer) add(ctx context.Context, o outcome) {
	select {
	case c.in <- o:
		return
	default:
	}
	select {
	case c.in <- o:
	case <-ctx.Done():
		settle(o)
		c.log.Warn("outcome not recorded: agent stopping; the job is retried when its lease expires", jobAttrs(o.job)...)
	}
}

// Start writes until Stop, which writes whatever is still queued.
func (c *completer) Start(ctx context.Context) error { return c.Run(ctx, c.loop) }

// Stop writes what was added before it and ends the loop. Callers stop
// adding first.
func (c *completer) Stop() { c.Loop.Stop() }

func (c *completer) loop(ctx context.Context) {
	var batch []outcome
	for {
		if len(batch) == 0 {
			select {
			case o := <-c.in:
				batch = append(batch, o)
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			for len(c.in) > 0 {
				batch = append(batch, <-c.in)
			}
			c.final(context.WithoutCancel(ctx), batch)
			return
		}
		batch = c.flush(ctx, c.gather(batch))
	}
}

// gather adds to batch the outcomes already waiting, without waiting for
// more: those that arrived while the last write was in flight.
func (c *completer) gather(batch []outcome) []outcome {
	for len(batch) < completeBatch {
		select {
		case o := <-c.in:
			batch = append(batch, o)
		default:
			return batch
		}
	}
	return batch
}

// flush writes batch, retrying with backoff while the store fails; it
// returns what is left unwritten when ctx ends.
func (c *completer) flush(ctx context.Context, batch []outcome) []outcome {
	wait := firstRetryWait
	for len(batch) > 0 {
		var err error
		if batch, err = c.write(ctx, batch); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return batch
		}
		if c.dbError != nil {
			c.dbError()
		}
		c.log.Error("recording outcomes failed; retrying", "outcomes", len(batch), "retry_in", wait, "error", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return batch
		}
		wait = min(2*wait, maxRetryWait)
	}
	return nil
}

// final makes one last attempt at shutdown.
func (c *completer) final(ctx context.Context, batch []outcome) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, finalFlushTimeout)
	defer cancel()
	if rest, err := c.write(ctx, batch); err != nil {
		settle(rest...)
		c.log.Error("outcomes not recorded at shutdown; their jobs are retried when the leases expire", "outcomes", len(rest), "error", err)
	}
}

// write records batch: completions first, then failures. It returns the
// part not yet written, so a retry never writes an outcome twice.
func (c *completer) write(ctx context.Context, batch []outcome) ([]outcome, error) {
	var done, failed []outcome
	for _, o := range batch {
		if o.completion != nil {
			done = append(done, o)
		} else {
			failed = append(failed, o)
		}
	}
	if len(done) > 0 {
		if rest, err := c.writeBatch(ctx, done, "complete", func(os []outcome) error { return c.complete(ctx, os) }); err != nil {
			return append(rest, failed...), err
		}
		c.wakeFor(done)
	}
	if len(failed) > 0 {
		if rest, err := c.writeBatch(ctx, failed, "record failed attempts of", func(os []outcome) error { return c.fail(ctx, os) }); err != nil {
			return rest, err
		}
		c.wakeFor(failed)
	}
	return nil, nil
}

// wakeFor nudges the producers that the written outcomes os may have given
// work. A job that ended and may have children (a workflow's job, or one
// with Dependents) can have made them leasable; their queues are not known
// here without asking the database, so every producer is woken, once per
// write: an idle producer pays one lease that may come back empty, and a
// child is dispatched without waiting for poll_interval. A retried job is
// due again after its delay, which the producers of its queue learn from
// the lease the nudge brings (nextDue), instead of at their next poll.
func (c *completer) wakeFor(os []outcome) {
	if c.wake == nil {
		return
	}
	var queues []string
	for _, o := range os {
		switch {
		case o.failure != nil && o.failure.Retry:
			if !slices.Contains(queues, o.job.Queue) {
				queues = append(queues, o.job.Queue)
			}
		case o.job.WorkflowID != nil || len(o.job.Dependents) > 0:
			c.wake()
			return
		}
	}
	if len(queues) > 0 {
		c.wake(queues...)
	}
}

// writeBatch writes os in one call of write. When the database answers but
// refuses the batch (one result MariaDB's JSON check rejects, one error
// text PostgreSQL cannot hold), retrying the same batch would fail forever
// and hold every other outcome hostage; so the outcomes are then written
// one by one, and an outcome refused on its own is logged and dropped: its
// job stays running until its lease expires and the rescuer retries it.
// It returns what is left to write when the database is unreachable.
func (c *completer) writeBatch(ctx context.Context, os []outcome, what string, write func([]outcome) error) ([]outcome, error) {
	err := write(os)
	switch {
	case err == nil:
		settle(os...)
		return nil, nil
	case c.unreachable(ctx, err):
		return os, fmt.Errorf("%s %d jobs: %w", what, len(os), err)
	case len(os) == 1:
		c.drop(os[0], err)
		return nil, nil
	}
	c.log.Warn("the database refused a batch of outcomes; writing them one by one", "outcomes", len(os), "error", err)
	for i, o := range os {
		err := write([]outcome{o})
		switch {
		case err == nil:
			settle(o)
		case c.unreachable(ctx, err):
			return os[i:], fmt.Errorf("%s %d jobs: %w", what, len(os)-i, err)
		default:
			c.drop(o, err)
		}
	}
	return nil, nil
}

// drop gives up on an outcome the database refuses on its own.
func (c *completer) drop(o outcome, err error) {
	settle(o)
	if c.dbError != nil {
		c.dbError()
	}
	c.log.Error("outcome not recorded: the database refused it; the job is retried when its lease expires",
		jobAttrs(o.job, "status", o.res.StatusCode, "error", err)...)
}

// pingTimeout bounds the check that tells a refused write from a lost
// database.
const pingTimeout = 5 * time.Second

// unreachable reports whether a failed write says nothing about the
// outcomes written: the agent is stopping, or the database cannot be
// reached (a connection error, or it does not answer a ping). Only then is
// the write retried as it is.
func (c *completer) unreachable(ctx context.Context, err error) bool {
	var netErr net.Error
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, driver.ErrBadConn) || errors.As(err, &netErr) {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	return c.store.Ping(ctx) != nil
}

// complete writes completions; Now stays zero, so finished_at is the
// database's time.
func (c *completer) complete(ctx context.Context, done []outcome) error {
	p := store.CompleteParams{Completions: make([]store.Completion, len(done))}
	for i, o := range done {
		p.Completions[i] = *o.completion
	}
	stale, err := c.store.Complete(ctx, p)
	if err != nil {
		return err
	}
	c.logCompleted(done, stale)
	return nil
}

// fail writes failures; Now stays zero, so each retry's RetryDelay is added
// to the database's time.
func (c *completer) fail(ctx context.Context, failed []outcome) error {
	p := store.FailParams{Failures: make([]store.Failure, len(failed))}
	for i, o := range failed {
		p.Failures[i] = *o.failure
	}
	res, err := c.store.Fail(ctx, p)
	if err != nil {
		return err
	}
	c.logFailed(failed, res)
	return nil
}

func (c *completer) logCompleted(done []outcome, stale []uuid.UUID) {
	isStale := set(stale)
	for _, o := range done {
		if isStale[o.job.ID] {
			c.log.Warn("late answer rejected: the lease was lost before the result was recorded", jobAttrs(o.job, "status", o.res.StatusCode)...)
			continue
		}
		if c.count != nil {
			c.count(o.job, true, false)
		}
		if c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("job completed", jobAttrs(o.job, "status", o.res.StatusCode, "duration", o.res.Duration)...)
		}
	}
}

func (c *completer) logFailed(failed []outcome, res store.FailResult) {
	retried, stale := set(res.Retried), set(res.Stale)
	for _, o := range failed {
		attrs := jobAttrs(o.job, "status", o.res.StatusCode, "outcome", o.failure.Outcome, "error", o.failure.Error, "duration", o.res.Duration)
		if c.count != nil && !stale[o.job.ID] {
			c.count(o.job, false, retried[o.job.ID])
		}
		switch {
		case stale[o.job.ID]:
			c.log.Warn("late answer rejected: the lease was lost before the failure was recorded", attrs...)
		case retried[o.job.ID]:
			c.log.Info("job attempt failed; retrying", append(attrs, "retry_in", o.failure.RetryDelay)...)
		default:
			c.log.Warn("job failed", attrs...)
		}
	}
}

func set(ids []uuid.UUID) map[uuid.UUID]bool {
	m := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
