package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hammerwork-go/hw-agent/maintenance"
	"github.com/hammerwork-go/hw-agent/metrics"
)

// healthTimeout bounds one probe of app.health_url.
const healthTimeout = 5 * time.Second

// healthChecker gates leasing on the app's health: it GETs app.health_url
// every app.health_interval (any 2xx is healthy) and producers lease nothing
// while the last answer was not healthy, so jobs stay in the database for
// agents whose apps are up instead of burning attempts here. It starts
// closed: nothing is leased before the app has answered once. The trade-off
// is up to one interval of idle time after the app recovers.
type healthChecker struct {
	url      string
	client   *http.Client
	interval time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	healthy bool
	known   bool
	open    chan struct{} // closed while healthy

	// probing serialises probes; lastStart is when the last finished probe began.
	probing   sync.Mutex
	lastStart time.Time

	// metrics mirrors the last answer in hammerwork_app_healthy.
	metrics *metrics.Metrics

	maintenance.Loop
}

func newHealthChecker(url string, client *http.Client, interval time.Duration, log *slog.Logger) *healthChecker {
	return &healthChecker{url: url, client: client, interval: interval, log: log, open: make(chan struct{})}
}

// Start probes at once and then every interval until Stop.
func (h *healthChecker) Start(ctx context.Context) error {
	return h.Run(ctx, func(ctx context.Context) {
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				h.check(ctx, time.Time{})
				t.Reset(h.interval)
			}
		}
	})
}

// Stop ends the probes.
func (h *healthChecker) Stop() { h.Loop.Stop() }

// ready is closed while the app is healthy.
func (h *healthChecker) ready() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.open
}

// Healthy reports the last probe's answer; false before the first.
func (h *healthChecker) Healthy() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.healthy
}

// check returns the app's health as seen by a probe begun after since,
// probing now unless one already has: many requests refused at once cost
// one probe, not one each.
func (h *healthChecker) check(ctx context.Context, since time.Time) bool {
	h.probing.Lock()
	defer h.probing.Unlock()
	if !since.IsZero() && h.lastStart.After(since) {
		return h.Healthy()
	}
	start := time.Now()
	ok, why := h.probe(ctx)
	if ctx.Err() != nil {
		// Shutting down: an interrupted probe says nothing about the app.
		return h.Healthy()
	}
	h.lastStart = start
	h.set(ok, why)
	return ok
}

func (h *healthChecker) probe(ctx context.Context) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	// Read a little so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, resp.Status
	}
	return true, ""
}

func (h *healthChecker) set(ok bool, why string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case ok && !h.healthy:
		close(h.open)
		h.log.Info("app healthy; leasing", "health_url", h.url)
	case !ok && (h.healthy || !h.known):
		if h.healthy {
			h.open = make(chan struct{})
		}
		h.log.Warn("app unhealthy; leasing paused", "health_url", h.url, "error", why)
	}
	h.healthy, h.known = ok, true
	h.metrics.AppHealthy(ok)
}

// dbOutage turns the failing database calls of an agent's loops (its
// producers' leases, the enqueue listener) into one outage: the first
// failure after a success is logged once at ERROR with its cause and
// counted in hammerwork_db_outages_total, the first success after it once
// at INFO with how long it lasted, and hammerwork_db_up is 0 in between.
// Failed calls in between are only counted and logged at DEBUG: one ERROR
// per poll would bury the outage's cause and its end. The agent has one,
// built by New and handed to each loop that reports to it.
type dbOutage struct {
	log     *slog.Logger
	metrics *metrics.Metrics

	// down lets every successful lease check for an outage without the
	// lock.
	down     atomic.Bool
	mu       sync.Mutex
	since    time.Time
	failures int
}

// failed records a failed call, what the loop was doing; the first of an
// outage is logged.
func (d *dbOutage) failed(what string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down.Load() {
		d.failures++
		return
	}
	d.since, d.failures = time.Now(), 1
	d.down.Store(true)
	d.metrics.DBDown()
	d.log.Error("database unavailable; leasing backs off until it answers", "failed", what, "error", err)
}

// Down reports whether an outage is under way, so the agent's periodic
// passes (maintenance.Outage) and other loops log their failures in it at
// DEBUG: the outage is logged once.
func (d *dbOutage) Down() bool { return d.down.Load() }

// ok records a successful call, ending the outage if there was one.
func (d *dbOutage) ok() {
	if !d.down.Load() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.down.Load() {
		return
	}
	d.down.Store(false)
	d.metrics.DBUp()
	d.log.Info("database available again; leasing resumes", "duration", time.Since(d.since), "failed_calls", d.failures)
}
