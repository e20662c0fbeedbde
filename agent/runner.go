package agent

import (
	"context"
	"errors"
	"sync"
)

// errStarted is returned by a second Start.
var errStarted = errors.New("already started")

// runner is the Start/Stop plumbing of this package's loops: one goroutine,
// cancelled and waited for by Stop. Stop is safe to call twice and before
// Start; a Start after Stop fails, so a stopped loop stays stopped.
type runner struct {
	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}
}

func (r *runner) start(ctx context.Context, loop func(ctx context.Context)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return errStarted
	}
	r.started = true
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		loop(ctx)
	}()
	return nil
}

func (r *runner) stop() {
	r.mu.Lock()
	r.stopped = true
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}
