package lease

import (
	"context"
	"log/slog"
	"time"

	"github.com/hammerwork-go/hw-agent/store"
)

// RescuerConfig configures a Rescuer.
type RescuerConfig struct {
	Store store.Leaser
	// Interval between passes.
	Interval time.Duration
	// Limit bounds one pass; zero means 1000. A full pass is followed by
	// another at once.
	Limit  int
	Logger *slog.Logger
}

// Rescuer returns the jobs of dead agents to work: every Interval it moves
// running jobs whose lease ran out back to pending (or to failed when their
// attempts are used up). Every agent runs one; the store's row locking makes
// concurrent passes safe, so there is no leader to elect, at the cost of a
// few redundant queries. A job of a dead agent waits up to lease_duration +
// Interval before it runs again. Expiry is judged by the database's clock,
// so an agent whose clock runs ahead never rescues a live lease.
type Rescuer struct {
	cfg RescuerConfig
	log *slog.Logger
	Loop
	// passes, when set by tests, receives each pass's result.
	passes chan store.RescueResult
}

const defaultRescueLimit = 1000

// NewRescuer returns a stopped Rescuer.
func NewRescuer(cfg RescuerConfig) *Rescuer {
	if cfg.Limit <= 0 {
		cfg.Limit = defaultRescueLimit
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Rescuer{cfg: cfg, log: log}
}

// Start runs a pass every Interval until Stop or ctx ends.
func (r *Rescuer) Start(ctx context.Context) error {
	return r.Run(ctx, func(ctx context.Context) {
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.rescue(ctx)
			}
		}
	})
}

// Stop ends the passes.
func (r *Rescuer) Stop() { r.Loop.Stop() }

// rescue runs passes until one comes back short of the limit.
func (r *Rescuer) rescue(ctx context.Context) {
	for ctx.Err() == nil {
		res, err := r.cfg.Store.RescueExpired(ctx, store.RescueParams{Limit: r.cfg.Limit})
		if err != nil {
			if ctx.Err() == nil {
				r.log.Error("rescue expired leases failed; retrying at the next interval", "error", err)
			}
			return
		}
		if n := len(res.Requeued) + len(res.Failed); n > 0 {
			r.log.Info("rescued jobs with expired leases", "requeued", len(res.Requeued), "failed", len(res.Failed))
		}
		if r.passes != nil {
			select {
			case r.passes <- res:
			case <-ctx.Done():
			}
		}
		if len(res.Requeued)+len(res.Failed) < r.cfg.Limit {
			return
		}
	}
}
