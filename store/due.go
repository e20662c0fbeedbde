package store

import (
	"context"
	"fmt"
	"time"
)

// The agent sends durations and leaves the absolute times zero, so the
// database's clock decides when a job is due; tests and the API may still
// name the time. These resolve the two forms against the database's now, one
// rule for every backend.

// RetryDue is when f's retry is due: RetryAt when set, else now +
// RetryDelay.
func (f Failure) RetryDue(now time.Time) time.Time {
	if !f.RetryAt.IsZero() {
		return UTC(f.RetryAt)
	}
	return UTC(now.Add(f.RetryDelay))
}

// ExpiresAt is the extended leases' lease_expires_at: Until when set, else
// now + Duration.
func (p ExtendParams) ExpiresAt(now time.Time) time.Time {
	if !p.Until.IsZero() {
		return UTC(p.Until)
	}
	return UTC(now.Add(p.Duration))
}

// DueAt is when released jobs are due again: ScheduledAt when set, else now
// + Delay.
func (p ReleaseParams) DueAt(now time.Time) time.Time {
	if !p.ScheduledAt.IsZero() {
		return UTC(p.ScheduledAt)
	}
	return UTC(now.Add(p.Delay))
}

// DueSource is what NextDueIn needs of a store; every Store is one.
type DueSource interface {
	QueueControls
	DatabaseClock
}

// NextDueIn is how long until the next delayed job of p's selection falls
// due by the database's clock, so an idle agent sleeps that long whatever
// its own clock says; false when no job waits. p.Now, when set, is the
// database time after which a job counts: the start of a lease that came up
// short, so a job that fell due since then answers zero at once.
func NextDueIn(ctx context.Context, s DueSource, p NextDueParams) (time.Duration, bool, error) {
	at, ok, err := s.NextDue(ctx, p)
	if err != nil || !ok {
		return 0, false, err
	}
	now, err := s.DatabaseNow(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("find next due job: %w", err)
	}
	return max(at.Sub(now), 0), true, nil
}
