package lease

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/maintenance"
	"github.com/hammerwork-go/hw-agent/store"
)

// HeartbeatConfig configures a Heartbeat.
type HeartbeatConfig struct {
	Store store.Leaser
	// Duration is the lease length: each beat extends every tracked lease to
	// the database's now + Duration (never the agent's clock, which may be
	// skewed).
	Duration time.Duration
	// Interval between beats. Zero means Duration/3, so two beats may fail
	// before a lease runs out.
	Interval time.Duration
	Logger   *slog.Logger
}

// Heartbeat extends the leases of requests still in flight, so a lease can be
// short (a dead agent's jobs come back soon) while a slow request keeps its
// job. All tracked leases are extended in one store call per beat, so the
// cost does not grow with the number of round trips per job; the trade-off
// is that a lease lost between beats is noticed only at the next beat.
//
// A lease that comes back stale (the job was rescued after a missed beat, or
// cancelled by an operator) is dropped and its lost callback runs, so the
// agent can abandon the request: its answer could no longer be recorded.
type Heartbeat struct {
	cfg HeartbeatConfig
	log *slog.Logger

	mu     sync.Mutex
	leases map[uuid.UUID]tracked

	maintenance.Loop
	// beats, once a test calls Init on it, receives the number of leases
	// each beat sent.
	beats maintenance.Signal[int]
}

type tracked struct {
	token string
	lost  func()
}

// NewHeartbeat returns a stopped Heartbeat.
func NewHeartbeat(cfg HeartbeatConfig) *Heartbeat {
	if cfg.Interval <= 0 {
		cfg.Interval = cfg.Duration / 3
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Heartbeat{cfg: cfg, log: log, leases: map[uuid.UUID]tracked{}}
}

// Track extends ref's lease from the next beat on until Forget. lost runs
// (once, on the heartbeat's goroutine) if the store no longer holds the lease.
func (h *Heartbeat) Track(ref store.LeaseRef, lost func()) {
	h.mu.Lock()
	h.leases[ref.ID] = tracked{token: ref.Token, lost: lost}
	h.mu.Unlock()
}

// Forget stops extending id's lease: its request has ended.
func (h *Heartbeat) Forget(id uuid.UUID) {
	h.mu.Lock()
	delete(h.leases, id)
	h.mu.Unlock()
}

// Len is the number of leases being extended.
func (h *Heartbeat) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.leases)
}

// Start begins beating every Interval until Stop or ctx ends.
func (h *Heartbeat) Start(ctx context.Context) error {
	return h.Run(ctx, func(ctx context.Context) {
		t := time.NewTicker(h.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				h.beats.Raise(ctx, h.beat(ctx))
			}
		}
	})
}

// Stop ends the beats; leases still tracked then run out on their own.
func (h *Heartbeat) Stop() { h.Loop.Stop() }

// beat extends every tracked lease and returns how many it sent.
func (h *Heartbeat) beat(ctx context.Context) int {
	h.mu.Lock()
	refs := make([]store.LeaseRef, 0, len(h.leases))
	for id, l := range h.leases {
		refs = append(refs, store.LeaseRef{ID: id, Token: l.token})
	}
	h.mu.Unlock()
	if len(refs) == 0 {
		return 0
	}
	stale, err := h.cfg.Store.Extend(ctx, store.ExtendParams{Leases: refs, Duration: h.cfg.Duration})
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn("extend leases failed; retrying at the next beat", "leases", len(refs), "error", err)
		}
		return len(refs)
	}
	sent := make(map[uuid.UUID]string, len(refs))
	for _, r := range refs {
		sent[r.ID] = r.Token
	}
	var lost []func()
	h.mu.Lock()
	for _, id := range stale {
		// Only a lease still tracked with the token that was sent is lost;
		// one forgotten meanwhile has simply finished.
		if l, ok := h.leases[id]; ok && l.token == sent[id] {
			delete(h.leases, id)
			lost = append(lost, l.lost)
		}
	}
	h.mu.Unlock()
	for _, f := range lost {
		f()
	}
	return len(refs)
}
