package agent

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/store"
)

// The [[schedule]] entries are written at start-up: created, paused when
// the entry says, and with schedules.prune the schedules the file does not
// name are deleted. A restart with the same file changes nothing (the
// cursor stays); a changed entry is rewritten and logged as changed.
func TestStartUpAppliesTheConfiguredSchedules(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	ctx := t.Context()
	_, _, err := s.PutSchedule(ctx, store.PutScheduleParams{Def: store.ScheduleDef{Name: "stale", Cron: "@daily",
		Target: store.ScheduleTarget{Job: &store.JobTemplate{Queue: "q"}}}})
	require.NoError(t, err)

	paused := true
	cfg := testConfig(t, nil)
	cfg.Schedules.Prune = true
	cfg.Schedule = []ScheduleConfig{
		{Name: "hourly", Cron: "@hourly", Queue: "q", Payload: SchedulePayload(`{"a":1}`)},
		{Name: "held", Cron: "@daily", Queue: "q", Paused: &paused},
	}
	r := start(t, cfg, s)
	eventually(t, "the agent to start", func() bool { return strings.Contains(r.logs.String(), "agent started") })
	require.NoError(t, r.stop(t))
	logs := r.logs.String()
	requireLogLine(t, logs, `msg="schedule created from the configuration file"`, "schedule=hourly")
	requireLogLine(t, logs, `msg="schedule paused by the configuration file"`, "schedule=held")
	requireLogLine(t, logs, `msg="schedule deleted: the configuration file no longer names it (schedules.prune)"`, "schedule=stale")
	_, err = s.GetSchedule(ctx, "stale")
	require.ErrorIs(t, err, store.ErrNotFound)
	held, err := s.GetSchedule(ctx, "held")
	require.NoError(t, err)
	require.True(t, held.Paused)
	require.Equal(t, configPauseReason, held.PausedReason)
	first, err := s.GetSchedule(ctx, "hourly")
	require.NoError(t, err)

	r = start(t, cfg, s)
	eventually(t, "the agent to start", func() bool { return strings.Contains(r.logs.String(), "agent started") })
	require.NoError(t, r.stop(t))
	again, err := s.GetSchedule(ctx, "hourly")
	require.NoError(t, err)
	require.Equal(t, first.UpdatedAt, again.UpdatedAt, "an unchanged entry is not rewritten")
	require.Equal(t, first.Cursor, again.Cursor)
	require.NotContains(t, r.logs.String(), "schedule created")
	require.NotContains(t, r.logs.String(), "schedule changed")
	requireLogLine(t, r.logs.String(), `msg="schedule unchanged"`, "schedule=hourly")

	cfg.Schedule[0].Cron = "@every 2h"
	unpause := false
	cfg.Schedule[1].Paused = &unpause
	r = start(t, cfg, s)
	eventually(t, "the agent to start", func() bool { return strings.Contains(r.logs.String(), "agent started") })
	require.NoError(t, r.stop(t))
	requireLogLine(t, r.logs.String(), `msg="schedule changed by the configuration file; it counts slots again from now"`, "schedule=hourly", `cron="@every 2h"`)
	requireLogLine(t, r.logs.String(), `msg="schedule resumed by the configuration file (paused = false)"`, "schedule=held")
	held, err = s.GetSchedule(ctx, "held")
	require.NoError(t, err)
	require.False(t, held.Paused)
}

// An "@every 1s" schedule from the configuration fires on the agent and its
// jobs reach the app, each in a trace of its own, with the run's
// correlation id.
func TestConfiguredScheduleFiresJobsToTheApp(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []http.Header
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
		ok(w, r, c)
	})
	cfg := testConfig(t, a)
	cfg.Schedule = []ScheduleConfig{{Name: "tick", Cron: "@every 1s", Queue: "ticks", Payload: SchedulePayload(`{"tick":true}`)}}
	s := newSQLite(t)
	start(t, cfg, s)
	eventually(t, "two scheduled jobs to reach the app", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	traces := map[string]bool{}
	for _, h := range got[:2] {
		require.Equal(t, "ticks", h.Get("Hammerwork-Queue"))
		require.True(t, strings.HasPrefix(h.Get("Hammerwork-Correlation-Id"), "tick@"), "%v", h)
		tp := h.Get("Traceparent")
		require.Len(t, tp, 55, "traceparent %q", tp)
		traces[tp[3:35]] = true
	}
	require.Len(t, traces, 2, "each run is a trace of its own")
}

// requireLogLine finds a line of logs holding every one of parts.
func requireLogLine(t *testing.T, logs string, parts ...string) {
	t.Helper()
lines:
	for _, line := range strings.Split(logs, "\n") {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue lines
			}
		}
		return
	}
	t.Fatalf("no log line holds %q in:\n%s", parts, logs)
}
