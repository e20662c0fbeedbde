package maintenance

import (
	"context"
	"errors"
	"sync"
)

// ErrStarted is returned by a second Run.
var ErrStarted = errors.New("already started")

// Loop is the Start/Stop plumbing of a background goroutine, under Service
// and the agent's other loops (its producers, completer, health checker and
// enqueue listener, and the lease heartbeat): one goroutine, cancelled and
// waited for by Stop. Stop is safe to call twice and before Run; a Run after
// Stop fails, so a stopped loop stays stopped.
type Loop struct {
	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// Run starts loop in its own goroutine with a context that Stop cancels.
func (r *Loop) Run(ctx context.Context, loop func(ctx context.Context)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return ErrStarted
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

// Stop cancels the loop's context and waits for the loop to return.
func (r *Loop) Stop() {
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
