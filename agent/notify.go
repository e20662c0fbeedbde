package agent

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/hammerwork-go/hw-agent/lease"
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
// listener only costs latency. A dropped listener is re-opened after
// retry.
type enqueueListener struct {
	src       jobWaiter
	producers []*producer
	retry     time.Duration
	log       *slog.Logger
	lease.Loop
}

// Start listens until Stop. The first LISTEN is set up before Start
// returns, so jobs enqueued once the agent has started wake it.
func (l *enqueueListener) Start(ctx context.Context) error {
	listenCtx, cancel := context.WithCancel(ctx)
	names, err := l.src.WaitForJobs(listenCtx)
	startErr := l.Run(ctx, func(ctx context.Context) {
		defer context.AfterFunc(ctx, cancel)()
		for {
			if err != nil {
				l.log.Warn("listening for enqueued jobs failed; polling only until it works again", "error", err)
			} else {
				for q := range names {
					l.wake(q)
				}
			}
			t := time.NewTimer(l.retry)
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

// Stop ends listening.
func (l *enqueueListener) Stop() { l.Loop.Stop() }

// wake nudges every producer whose selection takes jobs of queue.
func (l *enqueueListener) wake(queue string) {
	for _, p := range l.producers {
		if !p.serves(queue) {
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
