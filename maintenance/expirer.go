package maintenance

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/store"
)

// workflowExpiryLimit bounds one pass; a full pass is followed by another.
const workflowExpiryLimit = 100

// ExpirerConfig configures an Expirer.
type ExpirerConfig struct {
	Store store.Workflows
	// Interval between passes, ±10%.
	Interval time.Duration
	Logger   *slog.Logger
	// Outage quiets the logs of passes failing in a database outage.
	Outage Outage
}

// Expirer enforces workflow timeouts: every interval it asks the store to
// cancel what is left of each running or paused workflow past its deadline
// and fail it. Every agent runs one, so a workflow overruns its timeout by
// at most 1.1 intervals. Deadlines are judged by the database's clock.
// Passed receives the ids each pass expired.
type Expirer struct {
	*Service[[]uuid.UUID]
	store store.Workflows
	log   *slog.Logger
}

// NewExpirer returns a stopped Expirer.
func NewExpirer(cfg ExpirerConfig) *Expirer {
	e := &Expirer{store: cfg.Store, log: orDiscard(cfg.Logger)}
	e.Service = New(Config{Name: "workflow expirer", Interval: cfg.Interval, Jitter: 0.1, Limit: workflowExpiryLimit, Logger: cfg.Logger, Outage: cfg.Outage}, e.pass)
	return e
}

// pass leaves Now zero: a deadline is past by the database's clock.
func (e *Expirer) pass(ctx context.Context) ([]uuid.UUID, int, error) {
	ids, err := e.store.ExpireWorkflows(ctx, store.ExpireWorkflowsParams{Limit: workflowExpiryLimit})
	if err != nil {
		return nil, 0, fmt.Errorf("expire timed-out workflows: %w", err)
	}
	for _, id := range ids {
		e.log.Warn("workflow timed out: its remaining jobs were cancelled and it failed", "workflow_id", id)
	}
	return ids, len(ids), nil
}
