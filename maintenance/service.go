package maintenance

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Config schedules a Service.
type Config struct {
	// Name names the service in its log lines ("rescuer").
	Name string
	// Interval is the wait after a pass that came back short.
	Interval time.Duration
	// Jitter spreads each wait uniformly over Interval ± Jitter×Interval
	// (0.1: ±10%), so agents started together drift apart instead of
	// querying in step. Zero waits exactly Interval.
	Jitter float64
	// Limit makes a full pass: one that did at least Limit is followed by
	// another at once, so a backlog drains without waiting an interval per
	// batch. Zero: every pass waits.
	Limit int
	// RunAtStart runs the first pass at Start instead of one wait later.
	RunAtStart bool
	// Logger: nil discards logs.
	Logger *slog.Logger
	// Outage, when set, reports a database outage that is logged
	// elsewhere: a pass failing in it logs at DEBUG instead of ERROR, so the
	// outage's cause is not buried under one ERROR per interval.
	Outage Outage
}

// Outage reports whether a database outage is under way.
type Outage interface{ Down() bool }

// Pass does one bounded batch of a service's work: res is what a test sees
// on Passed, done how much it changed, compared with Config.Limit.
type Pass[R any] func(ctx context.Context) (res R, done int, err error)

// Service runs one pass on the schedule every periodic service shares:
// passes again at once while a pass comes back full, then waits Interval ±
// Jitter. A failed pass is logged and retried at the next interval. Start
// and Stop come from Loop: Stop is safe twice and before Start.
type Service[R any] struct {
	cfg  Config
	pass Pass[R]
	log  *slog.Logger
	Loop
	// Passed receives each successful pass's result once a test has called
	// Init on it, before Start.
	Passed Signal[R]
}

// New returns a stopped Service of pass.
func New[R any](cfg Config, pass Pass[R]) *Service[R] {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service[R]{cfg: cfg, pass: pass, log: log}
}

// Start runs passes until Stop or ctx ends.
func (s *Service[R]) Start(ctx context.Context) error { return s.Run(ctx, s.loop) }

// Stop ends the passes; a store call in progress is cancelled.
func (s *Service[R]) Stop() { s.Loop.Stop() }

func (s *Service[R]) loop(ctx context.Context) {
	wait := s.wait()
	if s.cfg.RunAtStart {
		wait = 0
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.catchUp(ctx)
		t.Reset(s.wait())
	}
}

// catchUp runs passes until one comes back short or fails.
func (s *Service[R]) catchUp(ctx context.Context) {
	for ctx.Err() == nil {
		res, done, err := s.pass(ctx)
		if err != nil {
			s.failed(ctx, err)
			return
		}
		s.Passed.Raise(ctx, res)
		if s.cfg.Limit <= 0 || done < s.cfg.Limit {
			return
		}
	}
}

// failed logs a failed pass: at ERROR, at DEBUG during an outage logged
// elsewhere, and not at all when the service is stopping.
func (s *Service[R]) failed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	level := slog.LevelError
	if s.cfg.Outage != nil && s.cfg.Outage.Down() {
		level = slog.LevelDebug
	}
	s.log.Log(ctx, level, "periodic pass failed; retrying at the next interval", "service", s.cfg.Name, "error", err)
}

// wait is Interval ± Jitter.
func (s *Service[R]) wait() time.Duration {
	return Jittered(s.cfg.Interval, s.cfg.Jitter)
}

// Jittered spreads d uniformly over d ± jitter×d.
func Jittered(d time.Duration, jitter float64) time.Duration {
	if jitter <= 0 || d <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + jitter*(2*rand.Float64()-1)))
}
