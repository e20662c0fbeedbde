package agent

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/lease"
	"github.com/hammerwork-go/hw-agent/store"
)

// target is where and how j is delivered, with its parents' results when
// the envelope carries them. The results are read only for an envelope: a
// bare payload has nowhere to put them, and most jobs have no parents, so
// the common path costs no query.
func (a *Agent) target(ctx context.Context, j *job.Job) (dispatch.Target, error) {
	t := a.cfg.TargetFor(j)
	if !t.Envelope || len(j.DependsOn) == 0 {
		return t, nil
	}
	parents, err := a.store.ParentResults(ctx, j.ID)
	if err != nil {
		return t, err // names the job already
	}
	t.Parents = parents
	return t, nil
}

// workflowExpiryLimit bounds one pass; a full pass is followed by another.
const workflowExpiryLimit = 100

// workflowExpirer enforces workflow timeouts: every interval it asks the
// store to cancel what is left of each running or paused workflow past its
// deadline and fail it. Like the rescuer, every agent runs one and the
// store's guards make concurrent passes safe, so there is no leader; a
// workflow overruns its timeout by at most one interval.
type workflowExpirer struct {
	store    store.Workflows
	interval time.Duration
	// outage is the agent's tracker: a pass failing during an outage is
	// logged at DEBUG, since the outage is logged once.
	outage *dbOutage
	log    *slog.Logger
	lease.Loop
	// passes, when set by tests, receives the ids each pass expired.
	passes chan []uuid.UUID
}

func newWorkflowExpirer(s store.Workflows, interval time.Duration, outage *dbOutage, log *slog.Logger) *workflowExpirer {
	return &workflowExpirer{store: s, interval: interval, outage: outage, log: log}
}

// Start runs a pass every interval until Stop or ctx ends.
func (e *workflowExpirer) Start(ctx context.Context) error {
	return e.Run(ctx, func(ctx context.Context) {
		t := time.NewTicker(e.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				e.expire(ctx)
			}
		}
	})
}

// Stop ends the passes.
func (e *workflowExpirer) Stop() { e.Loop.Stop() }

// expire runs passes until one comes back short of the limit. Now stays
// zero: a deadline is past by the database's clock.
func (e *workflowExpirer) expire(ctx context.Context) {
	for ctx.Err() == nil {
		ids, err := e.store.ExpireWorkflows(ctx, store.ExpireWorkflowsParams{Limit: workflowExpiryLimit})
		if err != nil {
			if ctx.Err() == nil {
				level := slog.LevelError
				if e.outage.isDown() {
					level = slog.LevelDebug
				}
				e.log.Log(ctx, level, "expire timed-out workflows failed; retrying at the next interval", "error", err)
			}
			return
		}
		for _, id := range ids {
			e.log.Warn("workflow timed out: its remaining jobs were cancelled and it failed", "workflow_id", id)
		}
		if e.passes != nil {
			select {
			case e.passes <- ids:
			case <-ctx.Done():
			}
		}
		if len(ids) < workflowExpiryLimit {
			return
		}
	}
}
