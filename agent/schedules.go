package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/hammerwork-go/hw-agent/store"
)

// configPauseReason is the pause reason of a schedule paused by the file.
const configPauseReason = "paused = true in the configuration file"

// applySchedules writes the configuration's [[schedule]] entries, by name,
// before anything fires: each is upserted (an unchanged one changes
// nothing, so a restart never resets its cursor), paused or resumed when
// the entry says, and with schedules.prune the stored schedules the file
// does not name are deleted. Every agent does this at start-up; agents
// started together with one file write the same rows, and PutSchedule
// holds the row, so they agree. An error stops start-up, naming the entry.
func (a *Agent) applySchedules(ctx context.Context) error {
	keep := make([]string, 0, len(a.cfg.Schedule))
	for i, sc := range a.cfg.Schedule {
		if err := a.applySchedule(ctx, sc); err != nil {
			return fmt.Errorf("schedule[%d] %q: %w", i, sc.Name, err)
		}
		keep = append(keep, sc.Name)
	}
	if !a.cfg.Schedules.Prune {
		return nil
	}
	deleted, err := a.store.PruneSchedules(ctx, store.PruneSchedulesParams{Keep: keep})
	if err != nil {
		return fmt.Errorf("schedules.prune: delete the schedules the file does not name: %w", err)
	}
	for _, name := range deleted {
		a.log.Info("schedule deleted: the configuration file no longer names it (schedules.prune)", "schedule", name)
	}
	return nil
}

// applySchedule upserts one entry and applies its paused key. The row as
// it was is read first only to tell a changed definition from an unchanged
// one in the log; PutSchedule decides alone what to write.
func (a *Agent) applySchedule(ctx context.Context, sc ScheduleConfig) error {
	def, err := sc.def()
	if err != nil {
		return err
	}
	before, err := a.store.GetSchedule(ctx, def.Name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("read the stored schedule: %w", err)
	}
	rec, created, err := a.store.PutSchedule(ctx, store.PutScheduleParams{Def: def})
	if err != nil {
		return fmt.Errorf("write the schedule: %w", err)
	}
	switch {
	case created:
		a.log.Info("schedule created from the configuration file", "schedule", rec.Name, "cron", rec.Cron, "timezone", rec.Timezone, "next_run_at", rec.NextRunAt)
	case before != nil && !rec.UpdatedAt.Equal(before.UpdatedAt):
		a.log.Info("schedule changed by the configuration file; it counts slots again from now", "schedule", rec.Name, "cron", rec.Cron, "timezone", rec.Timezone, "next_run_at", rec.NextRunAt)
	default:
		a.log.Debug("schedule unchanged", "schedule", rec.Name)
	}
	switch {
	case sc.Paused == nil || *sc.Paused == rec.Paused:
	case *sc.Paused:
		if _, err := a.store.PauseSchedule(ctx, store.PauseScheduleParams{Name: rec.Name, Reason: configPauseReason}); err != nil {
			return fmt.Errorf("pause the schedule: %w", err)
		}
		a.log.Info("schedule paused by the configuration file", "schedule", rec.Name)
	default:
		if _, err := a.store.ResumeSchedule(ctx, store.ResumeScheduleParams{Name: rec.Name}); err != nil {
			return fmt.Errorf("resume the schedule: %w", err)
		}
		a.log.Info("schedule resumed by the configuration file (paused = false)", "schedule", rec.Name)
	}
	return nil
}
