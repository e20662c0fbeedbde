package maintenance

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hammerwork-go/hw-agent/store"
)

// RescuerConfig configures a Rescuer.
type RescuerConfig struct {
	Store store.Leaser
	// Interval between passes, ±10%.
	Interval time.Duration
	// Limit bounds one pass; zero means store.DefaultRescueLimit. A full
	// pass is followed by another at once.
	Limit  int
	Logger *slog.Logger
	// Outage quiets the logs of passes failing in a database outage.
	Outage Outage
}

// Rescuer returns the jobs of dead agents to work: every Interval it moves
// running jobs whose lease ran out back to pending (or to failed when their
// attempts are used up). Every agent runs one, so a job of a dead agent
// waits up to lease_duration + 1.1×Interval before it runs again. Expiry is
// judged by the database's clock, so an agent whose clock runs ahead never
// rescues a live lease. Passed receives each pass's result.
type Rescuer struct {
	*Service[store.RescueResult]
	store store.Leaser
	limit int
	log   *slog.Logger
}

// NewRescuer returns a stopped Rescuer.
func NewRescuer(cfg RescuerConfig) *Rescuer {
	cfg.Limit = store.RescueParams{Limit: cfg.Limit}.RescueLimit()
	r := &Rescuer{store: cfg.Store, limit: cfg.Limit, log: orDiscard(cfg.Logger)}
	r.Service = New(Config{Name: "rescuer", Interval: cfg.Interval, Jitter: 0.1, Limit: cfg.Limit, Logger: cfg.Logger, Outage: cfg.Outage}, r.pass)
	return r
}

func (r *Rescuer) pass(ctx context.Context) (store.RescueResult, int, error) {
	res, err := r.store.RescueExpired(ctx, store.RescueParams{Limit: r.limit})
	if err != nil {
		return res, 0, fmt.Errorf("rescue expired leases: %w", err)
	}
	n := len(res.Requeued) + len(res.Failed)
	if n > 0 {
		r.log.Info("rescued jobs with expired leases", "requeued", len(res.Requeued), "failed", len(res.Failed))
	}
	return res, n, nil
}

// orDiscard is log, or a logger that discards when it is nil.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
