package maintenance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/hammerwork-go/hw-agent/store"
)

// Scheduler defaults.
const (
	// DefaultScheduleInterval is the longest wait between passes: an
	// "@every 1s" schedule fires every second only if some agent looks at
	// least that often.
	DefaultScheduleInterval = time.Second
	// scheduleBatch bounds the schedules one pass takes; a full pass is
	// followed by another at once.
	scheduleBatch = 100
)

// ScheduleMetrics counts what the scheduler did; *metrics.Metrics is one.
type ScheduleMetrics interface {
	ScheduleRuns(schedule, outcome string, n int)
	ScheduleLag(schedule string, lag time.Duration)
}

// SchedulerConfig configures a Scheduler.
type SchedulerConfig struct {
	Store store.Schedules
	// Interval is the longest wait between passes; zero is
	// DefaultScheduleInterval. The first pass runs at Start, so slots due
	// while no agent ran are caught up at once.
	Interval time.Duration
	// Trace starts each fired run's trace; nil leaves jobs without one.
	Trace store.RunTracer
	// Wake is told the queues that got new jobs, so this agent's producers
	// lease them at once instead of at their next poll; nil wakes nothing.
	Wake func(queues ...string)
	// Metrics: nil counts nothing.
	Metrics ScheduleMetrics
	Logger  *slog.Logger
	// Outage quiets the logs of passes failing in a database outage.
	Outage Outage
}

// Scheduler fires cron schedules: every interval it asks the store to fire
// the schedules that are due. Every agent runs one and none leads; the
// store takes each due schedule in a transaction of its own and its run
// rows are unique per slot, so a slot fires once however many agents pass
// at the same time, and an agent killed mid-pass leaves its slot due for
// the next. Due is judged by the database's clock. Passed receives each
// pass's result.
type Scheduler struct {
	*Service[*store.FireResult]
	cfg SchedulerConfig
	log *slog.Logger
}

// NewScheduler returns a stopped Scheduler.
func NewScheduler(cfg SchedulerConfig) *Scheduler {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultScheduleInterval
	}
	s := &Scheduler{cfg: cfg, log: orDiscard(cfg.Logger)}
	// Each wait is 85 to 95% of Interval, never more: with catch-up
	// "latest" two slots due in one pass fire only the newer, so a wait
	// (plus the pass's own time) longer than an "@every 1s" schedule's
	// second would cost it a slot although an agent was up. The spread
	// keeps agents started together from querying in step.
	s.Service = New(Config{Name: "scheduler", Interval: cfg.Interval * 9 / 10, Jitter: 1.0 / 18, Limit: scheduleBatch, RunAtStart: true,
		Logger: cfg.Logger, Outage: cfg.Outage}, s.pass)
	return s
}

// pass leaves Now zero: the database's clock says what is due. A schedule
// that failed is logged and stays due; the pass still counts as done for
// the ones it fired.
func (s *Scheduler) pass(ctx context.Context) (*store.FireResult, int, error) {
	res, err := s.cfg.Store.FireSchedules(ctx, store.FireSchedulesParams{Limit: scheduleBatch, Trace: s.cfg.Trace})
	if err != nil {
		return nil, 0, fmt.Errorf("fire due schedules: %w", err)
	}
	if len(res.Queues) > 0 && s.cfg.Wake != nil {
		s.cfg.Wake(res.Queues...)
	}
	s.report(ctx, res)
	return res, res.Taken, nil
}

// report logs and counts every run, missed slot and failed schedule.
func (s *Scheduler) report(ctx context.Context, res *store.FireResult) {
	for _, r := range res.Runs {
		s.cfg.metricRuns(r.Schedule, string(r.Outcome), 1)
		attrs := []any{"schedule", r.Schedule, "nominal_time", r.NominalTime}
		switch {
		case r.Outcome == store.RunSkipped:
			s.log.Info("schedule slot skipped", append(attrs, "reason", r.Note)...)
			continue
		case r.JobID != nil:
			attrs = append(attrs, "job_id", *r.JobID)
		case r.WorkflowID != nil:
			attrs = append(attrs, "workflow_id", *r.WorkflowID)
		}
		lag := r.FiredAt.Sub(r.NominalTime)
		if !r.Triggered {
			s.cfg.metricLag(r.Schedule, lag)
		}
		s.log.Info("schedule fired", append(attrs, "lag", lag)...)
	}
	// Sorted, so a pass's log lines read the same way every time.
	for _, name := range slices.Sorted(maps.Keys(res.Missed)) {
		n := res.Missed[name]
		s.cfg.metricRuns(name, "missed", n)
		if n > 0 {
			s.log.Warn("schedule slots missed: the catch-up policy let them pass", "schedule", name, "missed", n)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(res.Errors)) {
		err := res.Errors[name]
		if errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict) {
			s.log.Error("schedule's target cannot be written; its slots are recorded as skipped until the schedule is fixed",
				"schedule", name, "error", err)
			continue
		}
		level := slog.LevelError
		if s.cfg.Outage != nil && s.cfg.Outage.Down() {
			level = slog.LevelDebug
		}
		s.log.Log(ctx, level, "schedule not fired; it stays due and is retried at the next pass", "schedule", name, "error", err)
	}
}

func (c SchedulerConfig) metricRuns(schedule, outcome string, n int) {
	if c.Metrics != nil {
		c.Metrics.ScheduleRuns(schedule, outcome, n)
	}
}

func (c SchedulerConfig) metricLag(schedule string, lag time.Duration) {
	if c.Metrics != nil {
		c.Metrics.ScheduleLag(schedule, lag)
	}
}
