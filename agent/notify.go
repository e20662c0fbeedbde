package agent

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/hammerwork-go/hw-agent/maintenance"
)

// jobWaiter is the optional store capability of announcing enqueues
// (PostgreSQL's LISTEN/NOTIFY): a channel of the queue names of each
// enqueue batch, closed when the listener ends.
type jobWaiter interface {
	WaitForJobs(ctx context.Context) (<-chan string, error)
}

// enqueueListener wakes the idle producers of a queue as soon as jobs are
// enqueued into it, so a new job does not wait for poll_interval. It is a
// hint: producers keep polling, so a lost notification or a dropped
// listener only costs latency. A dropped listener is re-opened after retry;
// a listen that fails is tried again later and later, as a failing lease
// is (newDBBackoff), so a database that is down gets one listen every few
// seconds, not one per poll. A failure while the database does not answer
// a ping is part of the agent's outage and logged once with it; one while
// it does (LISTEN refused, say) is logged once at WARN until listening
// works again.
type enqueueListener struct {
	src       jobWaiter
	ping      func(ctx context.Context) error
	producers []*producer
	retry     time.Duration
	outage    *dbOutage
	backoff   *backoff.ExponentialBackOff
	log       *slog.Logger
	// failing is set from a failure logged at WARN to the next success;
	// used by the loop's goroutine only.
	failing bool
	maintenance.Loop
}

func newEnqueueListener(src jobWaiter, ping func(context.Context) error, producers []*producer, retry time.Duration, outage *dbOutage, log *slog.Logger) *enqueueListener {
	return &enqueueListener{src: src, ping: ping, producers: producers, retry: retry, outage: outage, backoff: newDBBackoff(retry), log: log}
}

// Start listens until Stop. The first LISTEN is set up before Start
// returns, so jobs enqueued once the agent has started wake it.
func (l *enqueueListener) Start(ctx context.Context) error {
	listenCtx, cancel := context.WithCancel(ctx)
	names, err := l.src.WaitForJobs(listenCtx)
	startErr := l.Run(ctx, func(ctx context.Context) {
		defer context.AfterFunc(ctx, cancel)()
		for {
			wait := l.retry
			if err != nil {
				wait = l.failed(ctx, err)
			} else {
				l.listening()
				for q := range names {
					l.wake(q)
				}
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			names, err = l.src.WaitForJobs(listenCtx)
		}
	})
	if startErr != nil {
		cancel()
	}
	return startErr
}

// failed records a listen that failed and returns how long to wait before
// the next.
func (l *enqueueListener) failed(ctx context.Context, err error) time.Duration {
	if ctx.Err() != nil {
		return l.retry // stopping: the loop ends on ctx
	}
	wait := l.backoff.NextBackOff()
	pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
	down := l.ping(pingCtx) != nil
	cancel()
	const msg = "listening for enqueued jobs failed; polling only until it works again"
	switch {
	case down:
		l.outage.failed("listen for enqueued jobs", err)
		l.log.Debug(msg, "retry_in", wait, "error", err)
	case !l.failing:
		l.failing = true
		l.log.Warn(msg, "retry_in", wait, "error", err)
	default:
		l.log.Debug(msg, "retry_in", wait, "error", err)
	}
	return wait
}

// listening records a listen that works: the database answers, and the
// next failure starts its backoff from the beginning.
func (l *enqueueListener) listening() {
	l.backoff.Reset()
	l.outage.ok()
	if l.failing {
		l.failing = false
		l.log.Info("listening for enqueued jobs again")
	}
}

// Stop ends listening.
func (l *enqueueListener) Stop() { l.Loop.Stop() }

// wake nudges every producer whose selection takes jobs of queue.
func (l *enqueueListener) wake(queue string) { wakeProducers(l.producers, queue) }

// wakeProducers nudges the producers whose selection takes jobs of any of
// queues, or every producer when queues is empty. A nudge is a send on a
// channel of one: a producer already woken is not woken twice, and none is
// ever waited for.
func wakeProducers(producers []*producer, queues ...string) {
	for _, p := range producers {
		if len(queues) > 0 && !slices.ContainsFunc(queues, p.serves) {
			continue
		}
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// serves reports whether p's leases take jobs of queue.
func (p *producer) serves(queue string) bool {
	if len(p.sel.Queues) > 0 {
		return slices.Contains(p.sel.Queues, queue)
	}
	return !slices.Contains(p.sel.Exclude, queue)
}
