package schedule_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/schedule"
)

func mustParse(t *testing.T, expr, timezone string) *schedule.Schedule {
	t.Helper()
	s, err := schedule.Parse(expr, timezone)
	require.NoError(t, err)
	return s
}

// wantPlan is a DuePlan with its times written as RFC 3339 strings.
type wantPlan struct {
	Fire      []string
	Skipped   []string
	Missed    int
	Buffered  string
	Last      string
	NextRunAt string
}

func formatPlan(p schedule.DuePlan) wantPlan {
	one := func(v time.Time) string {
		if v.IsZero() {
			return ""
		}
		return v.UTC().Format(time.RFC3339)
	}
	many := func(vs []time.Time) []string {
		if len(vs) == 0 {
			return nil
		}
		out := make([]string, len(vs))
		for i, v := range vs {
			out[i] = one(v)
		}
		return out
	}
	return wantPlan{
		Fire: many(p.Fire), Skipped: many(p.Skipped), Missed: p.Missed,
		Buffered: one(p.Buffered), Last: one(p.Last), NextRunAt: one(p.NextRunAt),
	}
}

func TestDue(t *testing.T) {
	t.Parallel()
	hourly := "0 * * * *"
	tests := []struct {
		name     string
		cron     string
		timezone string
		policy   schedule.Policy
		last     string
		buffered string
		live     bool
		now      string
		want     wantPlan
	}{
		{
			name: "OnTimeSlotFires", cron: hourly,
			last: "2026-01-01T04:00:00Z", now: "2026-01-01T05:00:01Z",
			want: wantPlan{Fire: []string{"2026-01-01T05:00:00Z"}, Last: "2026-01-01T05:00:00Z", NextRunAt: "2026-01-01T06:00:00Z"},
		},
		{
			name: "NewScheduleOnlyComputesNextRunAt", cron: hourly,
			last: "2026-01-01T05:10:00Z", now: "2026-01-01T05:10:00Z",
			want: wantPlan{Last: "2026-01-01T05:10:00Z", NextRunAt: "2026-01-01T06:00:00Z"},
		},
		{
			name: "StoppedAcrossSlotsLatestFiresNewestWithinWindow", cron: hourly,
			last: "2026-01-01T00:00:00Z", now: "2026-01-01T05:30:00Z",
			want: wantPlan{Fire: []string{"2026-01-01T05:00:00Z"}, Missed: 4, Last: "2026-01-01T05:00:00Z", NextRunAt: "2026-01-01T06:00:00Z"},
		},
		{
			name: "StoppedAcrossSlotsLatestOutsideWindowFiresNothing", cron: hourly,
			policy: schedule.Policy{CatchupWindow: 20 * time.Minute},
			last:   "2026-01-01T00:00:00Z", now: "2026-01-01T05:30:00Z",
			want: wantPlan{Missed: 5, Last: "2026-01-01T05:00:00Z", NextRunAt: "2026-01-01T06:00:00Z"},
		},
		{
			name: "StoppedAcrossSlotsNoneFiresNothing", cron: hourly,
			policy: schedule.Policy{Catchup: schedule.CatchupNone},
			last:   "2026-01-01T00:00:00Z", now: "2026-01-01T05:30:00Z",
			want: wantPlan{Missed: 5, Last: "2026-01-01T05:00:00Z", NextRunAt: "2026-01-01T06:00:00Z"},
		},
		{
			name: "NoneStillFiresASlotNoticedWithinGrace", cron: hourly,
			policy: schedule.Policy{Catchup: schedule.CatchupNone},
			last:   "2026-01-01T00:00:00Z", now: "2026-01-01T05:00:30Z",
			want: wantPlan{Fire: []string{"2026-01-01T05:00:00Z"}, Missed: 4, Last: "2026-01-01T05:00:00Z", NextRunAt: "2026-01-01T06:00:00Z"},
		},
		{
			name: "StoppedAcrossSlotsAllWithAllowFiresEach", cron: hourly,
			policy: schedule.Policy{Catchup: schedule.CatchupAll, Overlap: schedule.OverlapAllow},
			last:   "2026-01-01T00:00:00Z", now: "2026-01-01T03:30:00Z",
			want: wantPlan{
				Fire: []string{"2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z"},
				Last: "2026-01-01T03:00:00Z", NextRunAt: "2026-01-01T04:00:00Z",
			},
		},
		{
			name: "StoppedAcrossSlotsAllWithSkipFiresOneAndSkipsTheOverlapping", cron: hourly,
			policy: schedule.Policy{Catchup: schedule.CatchupAll},
			last:   "2026-01-01T00:00:00Z", now: "2026-01-01T03:30:00Z",
			want: wantPlan{
				Fire:    []string{"2026-01-01T01:00:00Z"},
				Skipped: []string{"2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z"},
				Last:    "2026-01-01T03:00:00Z", NextRunAt: "2026-01-01T04:00:00Z",
			},
		},
		{
			name: "StoppedAcrossSlotsAllWithBufferOneFiresOneAndHoldsOne", cron: hourly,
			policy: schedule.Policy{Catchup: schedule.CatchupAll, Overlap: schedule.OverlapBufferOne},
			last:   "2026-01-01T00:00:00Z", now: "2026-01-01T03:30:00Z",
			want: wantPlan{
				Fire: []string{"2026-01-01T01:00:00Z"}, Buffered: "2026-01-01T02:00:00Z",
				Skipped: []string{"2026-01-01T03:00:00Z"},
				Last:    "2026-01-01T03:00:00Z", NextRunAt: "2026-01-01T03:30:00Z",
			},
		},
		{
			name: "SkipWhileLiveRecordsTheSlotSkipped", cron: hourly, live: true,
			last: "2026-01-01T04:00:00Z", now: "2026-01-01T05:00:01Z",
			want: wantPlan{Skipped: []string{"2026-01-01T05:00:00Z"}, Last: "2026-01-01T05:00:00Z", NextRunAt: "2026-01-01T06:00:00Z"},
		},
		{
			name: "AllowWhileLiveFires", cron: hourly, live: true,
			policy: schedule.Policy{Overlap: schedule.OverlapAllow},
			last:   "2026-01-01T04:00:00Z", now: "2026-01-01T05:00:01Z",
			want: wantPlan{Fire: []string{"2026-01-01T05:00:00Z"}, Last: "2026-01-01T05:00:00Z", NextRunAt: "2026-01-01T06:00:00Z"},
		},
		{
			name: "BufferOneWhileLiveHoldsTheSlotAndPollsAgain", cron: hourly, live: true,
			policy: schedule.Policy{Overlap: schedule.OverlapBufferOne},
			last:   "2026-01-01T04:00:00Z", now: "2026-01-01T05:00:01Z",
			want: wantPlan{Buffered: "2026-01-01T05:00:00Z", Last: "2026-01-01T05:00:00Z", NextRunAt: "2026-01-01T05:00:01Z"},
		},
		{
			name: "BufferOneFiresTheHeldSlotWhenThePreviousRunEnds", cron: hourly,
			policy: schedule.Policy{Overlap: schedule.OverlapBufferOne},
			last:   "2026-01-01T05:00:00Z", buffered: "2026-01-01T05:00:00Z", now: "2026-01-01T05:20:00Z",
			want: wantPlan{Fire: []string{"2026-01-01T05:00:00Z"}, Last: "2026-01-01T05:00:00Z", NextRunAt: "2026-01-01T06:00:00Z"},
		},
		{
			name: "BufferOneKeepsTheFirstHeldSlotAndSkipsLaterOnes", cron: hourly, live: true,
			policy: schedule.Policy{Overlap: schedule.OverlapBufferOne},
			last:   "2026-01-01T05:00:00Z", buffered: "2026-01-01T05:00:00Z", now: "2026-01-01T06:00:01Z",
			want: wantPlan{
				Skipped: []string{"2026-01-01T06:00:00Z"}, Buffered: "2026-01-01T05:00:00Z",
				Last: "2026-01-01T06:00:00Z", NextRunAt: "2026-01-01T06:00:01Z",
			},
		},
		{
			name: "EndAtReachedFiresTheLastSlotAndStops", cron: hourly,
			policy: schedule.Policy{EndAt: at(t, "2026-01-01T03:00:00Z")},
			last:   "2026-01-01T02:00:00Z", now: "2026-01-01T03:00:05Z",
			want: wantPlan{Fire: []string{"2026-01-01T03:00:00Z"}, Last: "2026-01-01T03:00:00Z"},
		},
		{
			name: "AfterEndAtNothingFires", cron: hourly,
			policy: schedule.Policy{EndAt: at(t, "2026-01-01T03:00:00Z")},
			last:   "2026-01-01T03:00:00Z", now: "2026-01-01T04:00:05Z",
			want: wantPlan{Last: "2026-01-01T03:00:00Z"},
		},
		{
			name: "StartAtInTheFutureWaitsForTheFirstSlotFromIt", cron: hourly,
			policy: schedule.Policy{StartAt: at(t, "2026-01-01T10:30:00Z")},
			last:   "2026-01-01T05:00:00Z", now: "2026-01-01T05:00:00Z",
			want: wantPlan{Last: "2026-01-01T05:00:00Z", NextRunAt: "2026-01-01T11:00:00Z"},
		},
		{
			name: "StartAtIsInclusiveAndEarlierSlotsAreNotMissed", cron: hourly,
			policy: schedule.Policy{StartAt: at(t, "2026-01-01T11:00:00Z")},
			last:   "2026-01-01T05:00:00Z", now: "2026-01-01T11:00:01Z",
			want: wantPlan{Fire: []string{"2026-01-01T11:00:00Z"}, Last: "2026-01-01T11:00:00Z", NextRunAt: "2026-01-01T12:00:00Z"},
		},
		{
			name: "SpringGapSlotFiresAtThree", cron: "30 2 * * *", timezone: "America/New_York",
			last: "2026-03-07T07:30:00Z", now: "2026-03-08T07:00:01Z", // 03:00:01 EDT
			want: wantPlan{Fire: []string{"2026-03-08T07:00:00Z"}, Last: "2026-03-08T07:00:00Z", NextRunAt: "2026-03-09T06:30:00Z"},
		},
		{
			name: "AutumnRepeatDoesNotFireAgain", cron: "30 1 * * *", timezone: "America/New_York",
			last: "2026-11-01T05:30:00Z", now: "2026-11-01T06:45:00Z", // 01:45 EST, after 01:30 EST
			want: wantPlan{Last: "2026-11-01T05:30:00Z", NextRunAt: "2026-11-02T06:30:00Z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := schedule.DueParams{
				Schedule: mustParse(t, tt.cron, tt.timezone),
				Policy:   tt.policy,
				Last:     at(t, tt.last),
				Live:     tt.live,
				Now:      at(t, tt.now),
			}
			if tt.buffered != "" {
				p.Buffered = at(t, tt.buffered)
			}
			require.Equal(t, tt.want, formatPlan(schedule.Due(p)))
		})
	}
}

func TestDueCatchupAllIsBoundedToTheNewestHundred(t *testing.T) {
	t.Parallel()
	// 150 one-second slots missed: 00:00:51 .. 00:02:30 fire, the 50 before are missed.
	plan := schedule.Due(schedule.DueParams{
		Schedule: mustParse(t, "@every 1s", ""),
		Policy:   schedule.Policy{Catchup: schedule.CatchupAll, Overlap: schedule.OverlapAllow},
		Last:     at(t, "2026-01-01T00:00:00Z"),
		Now:      at(t, "2026-01-01T00:02:30Z"),
	})
	require.Len(t, plan.Fire, schedule.MaxCatchupRuns)
	require.Equal(t, "2026-01-01T00:00:51Z", plan.Fire[0].UTC().Format(time.RFC3339))
	require.Equal(t, "2026-01-01T00:02:30Z", plan.Fire[99].UTC().Format(time.RFC3339))
	require.Equal(t, 50, plan.Missed)
	require.Equal(t, "2026-01-01T00:02:31Z", plan.NextRunAt.UTC().Format(time.RFC3339))
}

func TestDueLatestWindowStretchesByTheJitter(t *testing.T) {
	t.Parallel()
	// The 05:00 slot, 30 minutes late, is outside a 20-minute window but
	// within window + jitter: its run may have been jittered that late.
	plan := schedule.Due(schedule.DueParams{
		Schedule: mustParse(t, "0 * * * *", ""),
		Policy:   schedule.Policy{CatchupWindow: 20 * time.Minute, Jitter: 15 * time.Minute},
		Last:     at(t, "2026-01-01T04:00:00Z"),
		Now:      at(t, "2026-01-01T05:30:00Z"),
		Rand:     rand.New(rand.NewPCG(1, 2)),
	})
	require.Equal(t, []string{"2026-01-01T05:00:00Z"}, format(plan.Fire))
	slot := at(t, "2026-01-01T06:00:00Z")
	require.False(t, plan.NextRunAt.Before(slot), "next_run_at %s before the slot", plan.NextRunAt)
	require.False(t, plan.NextRunAt.After(slot.Add(15*time.Minute)), "next_run_at %s beyond the jitter", plan.NextRunAt)
}

func TestDueJitterIsBoundedAndDeterministic(t *testing.T) {
	t.Parallel()
	s := mustParse(t, "0 * * * *", "")
	now := at(t, "2026-01-01T05:10:00Z")
	slot := at(t, "2026-01-01T06:00:00Z")
	plan := func(seed uint64) schedule.DuePlan {
		return schedule.Due(schedule.DueParams{
			Schedule: s, Policy: schedule.Policy{Jitter: 10 * time.Minute},
			Last: now, Now: now, Rand: rand.New(rand.NewPCG(seed, 0)),
		})
	}
	seen := map[time.Time]bool{}
	for seed := range uint64(50) {
		next := plan(seed).NextRunAt
		require.Equal(t, next, plan(seed).NextRunAt, "seed %d gave two jitters", seed)
		require.False(t, next.Before(slot), "seed %d: %s before the slot", seed, next)
		require.False(t, next.After(slot.Add(10*time.Minute)), "seed %d: %s beyond the jitter", seed, next)
		require.Equal(t, next, next.Truncate(time.Millisecond), "seed %d: finer than the store keeps", seed)
		seen[next] = true
	}
	require.Greater(t, len(seen), 40, "jitter barely varies across seeds")
}

func TestDueAfterALongOutageStaysBounded(t *testing.T) {
	t.Parallel()
	// Three days of an "@every 1s" schedule: 259,200 slots, more than one
	// call steps through; the newest still fires and the count stays large.
	start := time.Now()
	plan := schedule.Due(schedule.DueParams{
		Schedule: mustParse(t, "@every 1s", ""),
		Last:     at(t, "2026-01-01T00:00:00Z"),
		Now:      at(t, "2026-01-04T00:00:00.5Z"),
	})
	require.Less(t, time.Since(start), 5*time.Second)
	// The last two seconds are within two intervals: on time. Overlap skip
	// fires the first and skips the second.
	require.Equal(t, []string{"2026-01-03T23:59:59Z"}, format(plan.Fire))
	require.Equal(t, []string{"2026-01-04T00:00:00Z"}, format(plan.Skipped))
	require.GreaterOrEqual(t, plan.Missed, 100_000)
	require.Equal(t, "2026-01-04T00:00:01Z", plan.NextRunAt.UTC().Format(time.RFC3339))
}

func TestDueALatePassFiresEverySlotStillOnTime(t *testing.T) {
	t.Parallel()
	// A pass 1.1 s late for an "@every 1s" schedule (a slow database)
	// finds two slots due; neither is an outage's, so neither is missed.
	for _, c := range []schedule.Catchup{schedule.CatchupLatest, schedule.CatchupNone} {
		plan := schedule.Due(schedule.DueParams{
			Schedule: mustParse(t, "@every 1s", ""),
			Policy:   schedule.Policy{Overlap: schedule.OverlapAllow, Catchup: c},
			Last:     at(t, "2026-01-01T00:00:00Z"),
			Now:      at(t, "2026-01-01T00:00:02.1Z"),
		})
		require.Equal(t, []string{"2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z"}, format(plan.Fire), "catchup %s", c)
		require.Zero(t, plan.Missed, "catchup %s", c)
	}
	// After an outage only the slots of the last two intervals are on time;
	// the older ones are missed.
	plan := schedule.Due(schedule.DueParams{
		Schedule: mustParse(t, "@every 1s", ""),
		Policy:   schedule.Policy{Overlap: schedule.OverlapAllow},
		Last:     at(t, "2026-01-01T00:00:00Z"),
		Now:      at(t, "2026-01-01T00:00:05.5Z"),
	})
	require.Equal(t, []string{"2026-01-01T00:00:04Z", "2026-01-01T00:00:05Z"}, format(plan.Fire))
	require.Equal(t, 3, plan.Missed)
}

func TestPreviewKeepsTheCursorsPhaseAndTheBounds(t *testing.T) {
	t.Parallel()
	every := mustParse(t, "@every 1h", "")
	// Created at 00:20: the slots fall at 20 past, whatever now is.
	got := every.Preview(schedule.Policy{}, at(t, "2026-01-01T00:20:00Z"), at(t, "2026-01-01T05:00:00Z"), 2)
	require.Equal(t, []string{"2026-01-01T05:20:00Z", "2026-01-01T06:20:00Z"}, format(got))

	daily := mustParse(t, "0 2 * * *", "")
	got = daily.Preview(schedule.Policy{StartAt: at(t, "2026-01-05T02:00:00Z"), EndAt: at(t, "2026-01-06T02:00:00Z")},
		time.Time{}, at(t, "2026-01-01T00:00:00Z"), 5)
	require.Equal(t, []string{"2026-01-05T02:00:00Z", "2026-01-06T02:00:00Z"}, format(got), "start_at and end_at are inclusive")
}
