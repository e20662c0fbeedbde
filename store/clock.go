package store

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultClockSync is how old a Clock's last reading of the database may be
// before it reads again. Between readings the estimate drifts only as far
// as the two hosts' oscillators disagree: microseconds per minute.
const DefaultClockSync = 30 * time.Second

// DatabaseClock is a store that can say what time its database thinks it
// is; every Store is one. Callers use it where they must compare a stored
// time with "now" themselves (when the next delayed job falls due) or count
// an age from now (an operator's purge of jobs older than a duration).
type DatabaseClock interface {
	// DatabaseNow is the database's current time, as the store's Clock
	// estimates it (UTC).
	DatabaseNow(ctx context.Context) (time.Time, error)
}

// Clock estimates the database's current time without a round trip per
// statement, so that every due, expired and retention question is answered
// by one clock, the database's, whatever the clocks of the agents' hosts
// say. It reads the database's time (the midpoint of the round trip is
// taken as the moment of the reading) and from then on answers that reading
// plus the monotonic time elapsed since: a step of the host's wall clock
// (NTP, an operator, a VM resumed) changes nothing. It reads again, lazily
// on the next Now, once the last reading is older than its interval; there
// is no background goroutine. A Clock is safe for concurrent use.
type Clock struct {
	read     func(ctx context.Context) (time.Time, error)
	interval time.Duration
	// mono is the monotonic time since an arbitrary origin; tests replace it.
	mono func() time.Duration

	// syncMu is held by the one caller reading the database; callers that
	// have an estimate meanwhile use it instead of waiting.
	syncMu sync.Mutex
	mu     sync.Mutex
	synced bool
	base   time.Time     // the database's time at the reading
	baseAt time.Duration // mono at the reading's midpoint
}

// origin anchors monotonic readings: time.Since of a time taken with a
// monotonic reading uses the monotonic clock only.
var origin = time.Now()

func monotonic() time.Duration { return time.Since(origin) }

// NewClock returns a Clock that reads the database with read and reads
// again when the last reading is older than interval. Zero interval reads
// on every Now: for a database whose clock is in-process (SQLite's is the
// host's own), where a reading costs nothing.
func NewClock(read func(ctx context.Context) (time.Time, error), interval time.Duration) *Clock {
	return &Clock{read: read, interval: interval, mono: monotonic}
}

// Now returns the estimate of the database's current time in UTC, reading
// the database first when the last reading is too old. When that reading
// fails, Now returns the previous estimate (carried forward on the
// monotonic clock) together with the error, and tries again on the next
// call; with no reading yet, it returns the zero time and the error.
func (c *Clock) Now(ctx context.Context) (time.Time, error) {
	est, ok, fresh := c.estimate()
	if fresh {
		return est, nil
	}
	if ok {
		if !c.syncMu.TryLock() {
			return est, nil // another caller is reading the database
		}
	} else {
		c.syncMu.Lock()
	}
	defer c.syncMu.Unlock()
	if est, ok, fresh = c.estimate(); fresh {
		return est, nil
	}
	if err := c.sync(ctx); err != nil {
		if ok {
			est, _, _ = c.estimate()
		}
		return est, err
	}
	est, _, _ = c.estimate()
	return est, nil
}

// estimate returns the current estimate, whether there is one, and whether
// its reading is recent enough to answer without reading again.
func (c *Clock) estimate() (est time.Time, ok, fresh bool) {
	now := c.mono()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.synced {
		return time.Time{}, false, false
	}
	elapsed := now - c.baseAt
	return UTC(c.base.Add(elapsed)), true, c.interval > 0 && elapsed < c.interval
}

// sync reads the database's time and makes it the new base.
func (c *Clock) sync(ctx context.Context) error {
	before := c.mono()
	t, err := c.read(ctx)
	after := c.mono()
	if err != nil {
		return fmt.Errorf("read the database's clock: %w", err)
	}
	c.mu.Lock()
	c.base = UTC(t)
	c.baseAt = before + (after-before)/2
	c.synced = true
	c.mu.Unlock()
	return nil
}

// At is the time a store call works at: injected (tests send one) in UTC,
// else the database's now as Now estimates it. An estimate carried past a
// failed reading is still an answer; only a clock that never read the
// database returns the error.
func (c *Clock) At(ctx context.Context, injected time.Time) (time.Time, error) {
	if !injected.IsZero() {
		return UTC(injected), nil
	}
	at, err := c.Now(ctx)
	if at.IsZero() {
		return time.Time{}, err
	}
	return at, nil
}
