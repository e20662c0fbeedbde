package maintenance

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/metrics"
	"github.com/hammerwork-go/hw-agent/schedule"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/tracing"
)

// woken records the queues a scheduler woke.
type woken struct {
	mu     sync.Mutex
	queues []string
}

func (w *woken) wake(queues ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.queues = append(w.queues, queues...)
}

func (w *woken) seen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.queues)
}

// counter reads one series of m's registry; 0 when it does not exist.
// Histograms read as their sample count.
func counter(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue series
				}
			}
			if h := s.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return s.GetCounter().GetValue()
		}
	}
	return 0
}

func putSchedule(t *testing.T, s store.Schedules, def store.ScheduleDef, now time.Time) {
	t.Helper()
	_, created, err := s.PutSchedule(context.Background(), store.PutScheduleParams{Def: def, Now: now})
	require.NoError(t, err)
	require.True(t, created)
}

func jobSchedule(name, queue string, overlap schedule.Overlap) store.ScheduleDef {
	return store.ScheduleDef{Name: name, Cron: "@every 1s", Overlap: overlap,
		Target: store.ScheduleTarget{Job: &store.JobTemplate{Queue: queue, Payload: []byte(`{"n":1}`)}}}
}

// The scheduler fires due schedules through a real store: every fired run
// is a job in its own new trace, with the run's correlation id; the queues
// that got jobs are woken; runs are logged and counted by outcome, and the
// lag of each fired slot observed. A slot whose previous run is still
// pending (nobody leases here) is skipped under overlap "skip".
func TestSchedulerFiresCountsWakesAndTraces(t *testing.T) {
	t.Parallel()
	s := testkit.SQLite(t)
	putSchedule(t, s, jobSchedule("every", "emails", schedule.OverlapAllow), time.Time{})
	putSchedule(t, s, jobSchedule("once", "reports", schedule.OverlapSkip), time.Time{})

	var logs testkit.Buffer
	m := metrics.New()
	w := &woken{}
	sc := NewScheduler(SchedulerConfig{Store: s, Interval: 20 * time.Millisecond, Trace: tracing.NewTracer(nil).ScheduleRun,
		Wake: w.wake, Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	passes := sc.Passed.Init()
	require.NoError(t, sc.Start(context.Background()))
	t.Cleanup(sc.Stop)

	var runs []*store.ScheduleRun
	count := func(name string, outcome store.RunOutcome) int {
		n := 0
		for _, r := range runs {
			if r.Schedule == name && r.Outcome == outcome {
				n++
			}
		}
		return n
	}
	deadline := time.After(15 * time.Second)
	for count("every", store.RunFired) < 2 || count("once", store.RunSkipped) < 1 {
		select {
		case res := <-passes:
			require.Empty(t, res.Errors)
			runs = append(runs, res.Runs...)
		case <-deadline:
			t.Fatalf("timed out waiting for two fired runs of every and a skipped one of once; runs: %d", len(runs))
		}
	}
	sc.Stop()

	traces := map[string]bool{}
	for _, r := range runs {
		if r.Outcome != store.RunFired {
			require.Nil(t, r.JobID)
			require.Contains(t, r.Note, "overlap skip")
			continue
		}
		require.NotNil(t, r.JobID, "%+v", r)
		j, err := s.Get(context.Background(), *r.JobID)
		require.NoError(t, err)
		require.Equal(t, store.RunCorrelationID(r.Schedule, r.NominalTime), j.CorrelationID)
		require.NotEmpty(t, j.TraceID)
		tp, err := tracing.ParseTraceparent(j.SpanContext)
		require.NoError(t, err, "job %s: span_context %q", j.ID, j.SpanContext)
		require.Equal(t, j.TraceID, fmt.Sprintf("%x", tp.TraceID))
		require.False(t, traces[j.TraceID], "run %s@%s reuses trace %s", r.Schedule, r.NominalTime, j.TraceID)
		traces[j.TraceID] = true
		require.Contains(t, logs.String(), "job_id="+j.ID.String())
	}
	require.Subset(t, w.seen(), []string{"emails", "reports"})

	for _, name := range []string{"every", "once"} {
		fired, skipped := count(name, store.RunFired), count(name, store.RunSkipped)
		require.Equal(t, float64(fired), counter(t, m, "hammerwork_schedule_runs_total", map[string]string{"schedule": name, "outcome": "fired"}), name)
		require.Equal(t, float64(skipped), counter(t, m, "hammerwork_schedule_runs_total", map[string]string{"schedule": name, "outcome": "skipped"}), name)
		require.Equal(t, float64(fired), counter(t, m, "hammerwork_schedule_lag_seconds", map[string]string{"schedule": name}), name)
	}
	require.Contains(t, logs.String(), `msg="schedule fired" schedule=every`)
	require.Contains(t, logs.String(), `msg="schedule slot skipped" schedule=once`)
}

// A schedule created an hour ago, as if every agent had been down since,
// fires its newest slot at the first pass (catch-up "latest") and counts
// the others as missed.
func TestSchedulerCountsAndLogsMissedSlots(t *testing.T) {
	t.Parallel()
	s := testkit.SQLite(t)
	now, err := s.DatabaseNow(context.Background())
	require.NoError(t, err)
	putSchedule(t, s, jobSchedule("late", "q", ""), now.Add(-time.Hour))

	var logs testkit.Buffer
	m := metrics.New()
	sc := NewScheduler(SchedulerConfig{Store: s, Interval: time.Hour, Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	passes := sc.Passed.Init()
	require.NoError(t, sc.Start(context.Background()))
	t.Cleanup(sc.Stop)
	res := <-passes
	sc.Stop()

	require.Empty(t, res.Errors)
	require.Equal(t, 1, res.Taken)
	// The slots of the last two seconds are on time: the first fires, the
	// second is skipped while it runs (overlap skip); the rest are missed.
	require.NotEmpty(t, res.Runs)
	require.LessOrEqual(t, len(res.Runs), 2)
	require.Equal(t, store.RunFired, res.Runs[0].Outcome)
	missed := res.Missed["late"]
	require.Greater(t, missed, 3000, "an hour of one-second slots, all but the newest")
	require.Equal(t, float64(missed), counter(t, m, "hammerwork_schedule_runs_total", map[string]string{"schedule": "late", "outcome": "missed"}))
	require.Equal(t, 1.0, counter(t, m, "hammerwork_schedule_runs_total", map[string]string{"schedule": "late", "outcome": "fired"}))
	require.Contains(t, logs.String(), fmt.Sprintf("schedule=late missed=%d", missed))
	require.True(t, strings.Contains(logs.String(), "level=WARN"), logs.String())
}

// A target that can no longer be written (here a stored row edited behind
// the store's back, as an old version's row might be) costs its slots: they
// are recorded as skipped with the error, counted, and logged as the
// schedule's to fix, pass after pass, instead of failing the pass.
func TestSchedulerLogsABrokenTargetAndCountsItsSkippedSlots(t *testing.T) {
	t.Parallel()
	url := testkit.SQLiteURL(t)
	s := testkit.SQLiteAt(t, url)
	putSchedule(t, s, jobSchedule("broken", "q", ""), time.Time{})
	db, err := sql.Open("sqlite", strings.TrimPrefix(url, "sqlite://")+"?_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	_, err = db.Exec(`UPDATE hammerwork_schedules SET target = ? WHERE name = ?`, `{"job":{"queue":"not a queue"}}`, "broken")
	require.NoError(t, err)

	var logs testkit.Buffer
	m := metrics.New()
	sc := NewScheduler(SchedulerConfig{Store: s, Interval: 20 * time.Millisecond, Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	passes := sc.Passed.Init()
	require.NoError(t, sc.Start(context.Background()))
	t.Cleanup(sc.Stop)
	var res *store.FireResult
	deadline := time.After(15 * time.Second)
	for res == nil || res.Errors["broken"] == nil {
		select {
		case res = <-passes:
		case <-deadline:
			t.Fatal("timed out waiting for the broken schedule's slot")
		}
	}
	sc.Stop()

	require.ErrorIs(t, res.Errors["broken"], store.ErrInvalid)
	require.NotEmpty(t, res.Runs)
	for _, r := range res.Runs {
		require.Equal(t, store.RunSkipped, r.Outcome)
		require.Contains(t, r.Note, "not a queue")
	}
	require.Empty(t, res.Queues)
	require.Equal(t, float64(len(res.Runs)), counter(t, m, "hammerwork_schedule_runs_total", map[string]string{"schedule": "broken", "outcome": "skipped"}))
	require.Zero(t, counter(t, m, "hammerwork_schedule_runs_total", map[string]string{"schedule": "broken", "outcome": "fired"}))
	requireLine(t, logs.String(), `level=ERROR msg="schedule's target cannot be written; its slots are recorded as skipped until the schedule is fixed" schedule=broken`)
}

// requireLine finds a line of logs that holds want.
func requireLine(t *testing.T, logs, want string) {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, want) {
			return
		}
	}
	t.Fatalf("no log line holds %q in:\n%s", want, logs)
}
