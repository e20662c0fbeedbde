package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/schedule"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// Schedules read the rules of package store's Schedules: every call takes
// the suite's Now, so a schedule's slots are the fixed times slot(i) and
// nothing depends on the wall clock. Firing is checked by what a user
// sees: the runs, the jobs or workflows they created, and the schedule's
// record.

var scheduleTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"SchedulePutCreatesWithDefaultsAndTheFirstSlotAfterNow", testSchedulePutCreates},
	{"SchedulePutOfTheSameDefinitionChangesNothing", testSchedulePutUnchanged},
	{"SchedulePutOfTheSameDefinitionWithEveryFieldSetChangesNothing", testSchedulePutUnchangedEveryField},
	{"SchedulePutOfAChangedCronCountsFromNowAndKeepsPauseAndLastRun", testSchedulePutChanged},
	{"SchedulePutRejectsInvalidDefinitionsAndWritesNothing", testSchedulePutInvalid},
	{"SchedulePutCreateOnlyOfAnExistingNameIsConflictAndChangesNothing", testSchedulePutCreateOnly},
	{"ScheduleGetUnknownIsNotFound", testScheduleGetNotFound},
	{"ScheduleListPagesByName", testScheduleList},
	{"ScheduleDeleteRemovesTheScheduleAndItsRunsButNotItsJobs", testScheduleDelete},
	{"SchedulePruneDeletesTheUnlistedAndReturnsThemSorted", testSchedulePrune},
	{"SchedulePausedIsNeverFiredAndResumeDoesNotCatchUp", testSchedulePauseResume},
	{"ScheduleTriggerFiresNowEvenWhilePausedAndLeavesTheSlots", testScheduleTrigger},
	{"ScheduleTriggerAtASlotsTimeLeavesTheSlotToFire", testScheduleTriggerAtSlot},
	{"ScheduleFireJobTargetOncePerSlot", testScheduleFireJob},
	{"ScheduleFireWorkflowTarget", testScheduleFireWorkflow},
	{"ScheduleRunsPagesNewestFirst", testScheduleRuns},
	{"ScheduleOverlapSkipHoldsBackSlotsWhileTheRunIsLive", testScheduleOverlapSkip},
	{"ScheduleOverlapAllowFiresWhileTheRunIsLive", testScheduleOverlapAllow},
	{"ScheduleOverlapBufferOneHoldsOneSlotUntilTheRunEnds", testScheduleOverlapBufferOne},
	{"ScheduleCatchupLatestFiresTheNewestSlotWithinTheWindow", testScheduleCatchupLatest},
	{"ScheduleCatchupNoneFiresNothingLate", testScheduleCatchupNone},
	{"ScheduleCatchupAllWithOverlapAllowFiresEveryMissedSlot", testScheduleCatchupAll},
	{"ScheduleCatchupAllIsBoundedByMaxCatchupRuns", testScheduleCatchupAllIsBounded},
	{"ScheduleEndAtStopsTheSchedule", testScheduleEndAt},
	{"ScheduleStartAtFiresNothingBeforeIt", testScheduleStartAt},
	{"ScheduleConcurrentPassesFireEachSlotOnce", testScheduleConcurrentFire},
	{"ScheduleDependsOnScheduleWaitsForItsLatestJob", testScheduleDependsOn},
	{"ScheduleReportAtEightWaitsForThatDaysExtractAtTwo", testScheduleExtractThenReport},
	{"ScheduleUniqueKeyRecordsTheJobHoldingTheKey", testScheduleUniqueKey},
	{"ScheduleRunsKeepsTheNewestScheduleRunsKept", testScheduleRunsKept},
	{"ScheduleDependencyDeletedByRetentionCountsAsResolved", testScheduleDependencyDeletedByRetention},
	{"ScheduleJitterDelaysTheRunNotItsNominalTime", testScheduleJitter},
	{"ScheduleTimezoneFiresAtItsWallClock", testScheduleTimezone},
	{"ScheduleFireTakesAtMostLimitOldestNextRunFirst", testScheduleFireLimit},
	{"ScheduleOverlapSkipWaitsForTheWorkflow", testScheduleOverlapWorkflow},
	{"ScheduleResumeAndAChangedDefinitionDropTheHeldSlot", testScheduleDropTheHeldSlot},
	{"SchedulePutConcurrentlyCreatesOnce", testSchedulePutConcurrently},
}

const (
	cronQueue = "cron"
	every5    = "*/5 * * * *"
)

// slot is the i-th fire time of an every5 schedule after base.
func slot(i int) time.Time {
	return time.Date(2099, time.March, 4, 5, 10, 0, 0, time.UTC).Add(time.Duration(i) * 5 * time.Minute)
}

// cronJob is an every5 schedule of a job with every template field set.
func cronJob(name string) store.ScheduleDef {
	prio := job.PriorityHigh
	return store.ScheduleDef{Name: name, Cron: every5, Target: store.ScheduleTarget{Job: &store.JobTemplate{
		Queue: cronQueue, Payload: json.RawMessage(`{"report":"daily","n":1}`), Priority: &prio,
		MaxAttempts: 7, Timeout: job.Duration(30 * time.Second)}}}
}

const (
	tracedID    = "4bf92f3577b34da6a3ce929d0e0e4736"
	tracedSpan  = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracedState = "vendor=cron"
)

// tracer is the RunTracer the suite passes: one fixed trace for every run.
func tracer(string, time.Time) store.RunTrace {
	return store.RunTrace{TraceID: tracedID, SpanContext: tracedSpan, TraceState: tracedState}
}

func putSchedule(t *testing.T, s store.Store, def store.ScheduleDef, now time.Time) (*store.ScheduleRecord, bool) {
	t.Helper()
	rec, created, err := s.PutSchedule(t.Context(), store.PutScheduleParams{Def: def, Now: now})
	require.NoError(t, err, "put schedule %q", def.Name)
	require.NotNil(t, rec)
	return rec, created
}

func getSchedule(t *testing.T, s store.Store, name string) *store.ScheduleRecord {
	t.Helper()
	rec, err := s.GetSchedule(t.Context(), name)
	require.NoError(t, err, "get schedule %q", name)
	return rec
}

// fireAt runs one scheduler pass at now with the suite's tracer and checks
// that no schedule failed.
func fireAt(t *testing.T, s store.Store, now time.Time) *store.FireResult {
	t.Helper()
	res, err := s.FireSchedules(t.Context(), store.FireSchedulesParams{Limit: 100, Trace: tracer, Now: now})
	require.NoError(t, err, "fire schedules at %s", now)
	require.Empty(t, res.Errors, "no schedule failed at %s", now)
	return res
}

func triggerSchedule(t *testing.T, s store.Store, name string, now time.Time) *store.ScheduleRun {
	t.Helper()
	run, err := s.TriggerSchedule(t.Context(), store.TriggerScheduleParams{Name: name, Trace: tracer, Now: now})
	require.NoError(t, err, "trigger schedule %q", name)
	return run
}

// allRuns lists one schedule's runs, newest first, in one page.
func allRuns(t *testing.T, s store.Store, name string) []*store.ScheduleRun {
	t.Helper()
	page, err := s.ScheduleRuns(t.Context(), store.ScheduleRunsParams{Name: name, Limit: store.MaxListLimit})
	require.NoError(t, err, "runs of %q", name)
	require.Empty(t, page.NextCursor, "the suite never lists more than one full page of runs")
	return page.Runs
}

func nominals(runs []*store.ScheduleRun) []time.Time {
	out := make([]time.Time, len(runs))
	for i, r := range runs {
		out[i] = r.NominalTime.UTC()
	}
	return out
}

func requireNotFound(t *testing.T, err error, what string) {
	t.Helper()
	require.ErrorIsf(t, err, store.ErrNotFound, "%s", what)
}

// requireFiredJob checks a run that fired a job from cronJob's template
// and returns that job.
func requireFiredJob(t *testing.T, s store.Store, run *store.ScheduleRun, name string, nominal time.Time, triggered bool) *job.Job {
	t.Helper()
	require.Equal(t, name, run.Schedule)
	requireTime(t, nominal, run.NominalTime, "nominal time")
	require.Equal(t, store.RunFired, run.Outcome)
	require.Equal(t, triggered, run.Triggered, "triggered")
	require.Empty(t, run.Note, "a fired run has no note")
	require.Nil(t, run.WorkflowID, "a job target creates no workflow")
	require.NotNil(t, run.JobID, "a fired run names its job")
	j := get(t, s, *run.JobID)
	require.Equal(t, cronQueue, j.Queue)
	require.JSONEq(t, `{"report":"daily","n":1}`, string(j.Payload))
	require.Equal(t, job.PriorityHigh, j.Priority)
	require.Equal(t, 7, j.MaxAttempts)
	require.Equal(t, job.Duration(30*time.Second), j.Timeout)
	require.Equal(t, store.RunCorrelationID(name, nominal), j.CorrelationID)
	require.Equal(t, tracedID, j.TraceID, "the run's trace comes from the RunTracer")
	require.Equal(t, tracedSpan, j.SpanContext)
	require.Equal(t, tracedState, j.TraceState)
	return j
}

func testSchedulePutCreates(t *testing.T, s store.Store) {
	rec, created := putSchedule(t, s, cronJob("report"), base)
	require.True(t, created, "a new name creates")
	require.Equal(t, "report", rec.Name)
	require.Equal(t, "UTC", rec.Timezone, "an empty timezone is UTC")
	require.Equal(t, schedule.OverlapSkip, rec.Overlap)
	require.Equal(t, schedule.CatchupLatest, rec.Catchup)
	require.Equal(t, job.Duration(time.Hour), rec.CatchupWindow)
	requireTimePtr(t, slot(0), rec.NextRunAt, "next_run_at is the first slot after Now")
	requireTime(t, base, rec.Cursor, "the cursor starts at Now")
	requireTime(t, base, rec.CreatedAt, "created_at")
	requireTime(t, base, rec.UpdatedAt, "updated_at")
	require.False(t, rec.Paused)
	require.Nil(t, rec.LastRunAt)
	require.Nil(t, rec.LastJobID)
	require.Nil(t, rec.Buffered)

	got := getSchedule(t, s, "report")
	require.Equal(t, every5, got.Cron)
	require.Equal(t, "UTC", got.Timezone)
	require.Equal(t, schedule.OverlapSkip, got.Overlap)
	require.Equal(t, schedule.CatchupLatest, got.Catchup)
	require.Equal(t, job.Duration(time.Hour), got.CatchupWindow)
	requireTimePtr(t, slot(0), got.NextRunAt, "next_run_at as stored")
	requireTime(t, base, got.Cursor, "cursor as stored")
	require.NotNil(t, got.Target.Job)
	require.Nil(t, got.Target.Workflow)
	require.Equal(t, cronQueue, got.Target.Job.Queue)
	require.JSONEq(t, `{"report":"daily","n":1}`, string(got.Target.Job.Payload))
	require.Equal(t, 7, got.Target.Job.MaxAttempts)
	require.Empty(t, allRuns(t, s, "report"), "a new schedule has no runs")
	require.NotNil(t, allRuns(t, s, "report"), "an empty run list is an empty slice")
}

func testSchedulePutCreateOnly(t *testing.T, s store.Store) {
	before, _ := putSchedule(t, s, cronJob("report"), base)
	changed := cronJob("report")
	changed.Cron = "0 3 * * *"
	_, _, err := s.PutSchedule(t.Context(), store.PutScheduleParams{Def: changed, CreateOnly: true, Now: base.Add(time.Hour)})
	require.ErrorIs(t, err, store.ErrConflict)
	after := getSchedule(t, s, "report")
	require.Equal(t, before.Cron, after.Cron, "the existing definition is kept")
	requireTime(t, before.UpdatedAt, after.UpdatedAt, "updated_at is unchanged")

	_, created, err := s.PutSchedule(t.Context(), store.PutScheduleParams{Def: cronJob("fresh"), CreateOnly: true, Now: base})
	require.NoError(t, err)
	require.True(t, created, "a new name is created")
}

func testSchedulePutUnchanged(t *testing.T, s store.Store) {
	first, _ := putSchedule(t, s, cronJob("report"), base)

	again := cronJob("report")
	again.Target.Job.Payload = json.RawMessage("{ \"n\" : 1,\n  \"report\": \"daily\" }")
	again.Timezone, again.Overlap, again.Catchup = "UTC", schedule.OverlapSkip, schedule.CatchupLatest
	rec, created := putSchedule(t, s, again, slot(2).Add(time.Minute))
	require.False(t, created, "the same name does not create")

	for _, r := range []*store.ScheduleRecord{rec, getSchedule(t, s, "report")} {
		requireTime(t, first.UpdatedAt, r.UpdatedAt, "updated_at is unchanged")
		requireTime(t, first.CreatedAt, r.CreatedAt, "created_at is unchanged")
		requireTime(t, base, r.Cursor, "the cursor is unchanged")
		requireTimePtr(t, slot(0), r.NextRunAt, "next_run_at is unchanged")
	}
}

// testSchedulePutUnchangedEveryField puts definitions with every field set,
// times in another zone with nanoseconds among them, twice: what the
// backend stored must read back as the same definition, or every start-up
// of an agent would restart the schedules of its configuration file.
func testSchedulePutUnchangedEveryField(t *testing.T, s store.Store) {
	tokyo := time.FixedZone("JST", 9*3600)
	start := time.Date(2099, time.March, 4, 15, 0, 0, 123456789, tokyo)
	end := time.Date(2100, time.January, 1, 0, 0, 0, 999, tokyo)
	jitter := 0.2
	prio := job.PriorityCritical
	full := cronJob("full")
	full.Timezone, full.Overlap, full.Catchup = "America/New_York", schedule.OverlapBufferOne, schedule.CatchupAll
	full.CatchupWindow, full.Jitter = job.Duration(90*time.Second+500*time.Millisecond), job.Duration(1500*time.Millisecond)
	full.StartAt, full.EndAt, full.DependsOnSchedule = &start, &end, "other"
	full.Target.Job.Priority, full.Target.Job.UniqueKey = &prio, "full-key"
	full.Target.Job.ResultTTL = job.Duration(48 * time.Hour)
	full.Target.Job.Retry = &job.RetryPolicy{Strategy: "fixed", Initial: job.Duration(time.Second), Max: job.Duration(time.Minute), Jitter: &jitter}

	w := definition(workflow.ContinueOnFailure, step("extract"), step("load", "extract"))
	w.Name, w.Description, w.Timeout = "nightly", "the nightly load", job.Duration(time.Hour)
	w.Metadata = json.RawMessage(`{"team":"data","tags":["a","b"]}`)
	wfDef := store.ScheduleDef{Name: "wf", Cron: "0 3 * * *", Timezone: "Europe/Berlin", Target: store.ScheduleTarget{Workflow: &w}}

	for _, def := range []store.ScheduleDef{full, wfDef} {
		first, created := putSchedule(t, s, def, base)
		require.True(t, created)
		rec, created := putSchedule(t, s, def, base.Add(time.Hour))
		require.False(t, created, "%s: the same definition does not create", def.Name)
		requireTime(t, first.UpdatedAt, rec.UpdatedAt, def.Name+": updated_at is unchanged")
		requireTime(t, first.Cursor, rec.Cursor, def.Name+": the cursor is unchanged")
		require.Equal(t, first.NextRunAt, rec.NextRunAt, "%s: next_run_at is unchanged", def.Name)
	}

	got := getSchedule(t, s, "full")
	require.Equal(t, "America/New_York", got.Timezone)
	require.Equal(t, schedule.OverlapBufferOne, got.Overlap)
	require.Equal(t, schedule.CatchupAll, got.Catchup)
	require.Equal(t, job.Duration(90*time.Second+500*time.Millisecond), got.CatchupWindow, "catchup_window in milliseconds")
	require.Equal(t, job.Duration(1500*time.Millisecond), got.Jitter, "jitter in milliseconds")
	requireTimePtr(t, start.Truncate(time.Microsecond), got.StartAt, "start_at")
	requireTimePtr(t, end.Truncate(time.Microsecond), got.EndAt, "end_at")
	require.Equal(t, "other", got.DependsOnSchedule)
	require.Equal(t, "full-key", got.Target.Job.UniqueKey)
	require.Equal(t, full.Target.Job.Retry, got.Target.Job.Retry)
	require.Equal(t, job.Duration(48*time.Hour), got.Target.Job.ResultTTL)
	gotWF := getSchedule(t, s, "wf").Target.Workflow
	require.NotNil(t, gotWF)
	require.Equal(t, "nightly", gotWF.Name)
	require.Len(t, gotWF.Steps, 2)
	require.JSONEq(t, `{"team":"data","tags":["a","b"]}`, string(gotWF.Metadata))
}

func testSchedulePutChanged(t *testing.T, s store.Store) {
	putSchedule(t, s, cronJob("report"), base)
	_, err := s.PauseSchedule(t.Context(), store.PauseScheduleParams{Name: "report", Reason: "holiday", Now: base.Add(time.Minute)})
	require.NoError(t, err)
	run := triggerSchedule(t, s, "report", base.Add(2*time.Minute))

	changed := cronJob("report")
	changed.Cron = "*/10 * * * *"
	at := base.Add(20 * time.Minute) // 05:26:07
	rec, created := putSchedule(t, s, changed, at)
	require.False(t, created)

	for _, r := range []*store.ScheduleRecord{rec, getSchedule(t, s, "report")} {
		require.Equal(t, "*/10 * * * *", r.Cron)
		requireTimePtr(t, time.Date(2099, time.March, 4, 5, 30, 0, 0, time.UTC), r.NextRunAt, "next_run_at is the new cron's first slot after the new Now")
		requireTime(t, at, r.Cursor, "the cursor starts again at the new Now")
		requireTime(t, base, r.CreatedAt, "created_at is kept")
		requireTime(t, at, r.UpdatedAt, "updated_at is the new Now")
		require.True(t, r.Paused, "the pause is kept")
		require.Equal(t, "holiday", r.PausedReason)
		requireTimePtr(t, base.Add(2*time.Minute), r.LastRunAt, "the last run is kept")
		require.Equal(t, run.JobID, r.LastJobID, "the last job is kept")
	}
	require.Len(t, allRuns(t, s, "report"), 1, "the runs are kept")
}

func testSchedulePutInvalid(t *testing.T, s store.Store) {
	wfDef := definition(workflow.FailFast, step("a"))
	cases := []struct {
		field string
		edit  func(d *store.ScheduleDef)
	}{
		{"cron", func(d *store.ScheduleDef) { d.Cron = "every tuesday" }},
		{"timezone", func(d *store.ScheduleDef) { d.Timezone = "Mars/Olympus_Mons" }},
		{"target", func(d *store.ScheduleDef) { d.Target = store.ScheduleTarget{} }},
		{"target", func(d *store.ScheduleDef) { d.Target.Workflow = &wfDef }},
		{"target.job", func(d *store.ScheduleDef) { d.Target.Job.Queue = "bad queue!" }},
		{"depends_on_schedule", func(d *store.ScheduleDef) {
			d.Target = store.ScheduleTarget{Workflow: &wfDef}
			d.DependsOnSchedule = "other"
		}},
	}
	for _, tc := range cases {
		def := cronJob("bad")
		tc.edit(&def)
		_, _, err := s.PutSchedule(t.Context(), store.PutScheduleParams{Def: def, Now: base})
		require.ErrorIsf(t, err, store.ErrInvalid, "field %s", tc.field)
		var verr *schedule.ValidationError
		require.Truef(t, errors.As(err, &verr), "field %s: a *schedule.ValidationError, got %v", tc.field, err)
		var fields []string
		for _, p := range verr.Problems {
			fields = append(fields, p.Field)
		}
		require.Containsf(t, fields, tc.field, "the problems name the field: %v", err)

		_, err = s.GetSchedule(t.Context(), "bad")
		requireNotFound(t, err, "an invalid definition writes nothing")
	}
}

func testScheduleGetNotFound(t *testing.T, s store.Store) {
	_, err := s.GetSchedule(t.Context(), "nope")
	requireNotFound(t, err, "unknown schedule")
}

func testScheduleList(t *testing.T, s store.Store) {
	page, err := s.ListSchedules(t.Context(), store.ListSchedulesParams{})
	require.NoError(t, err)
	require.NotNil(t, page.Schedules, "an empty listing is an empty slice")
	require.Empty(t, page.Schedules)
	require.Empty(t, page.NextCursor)

	for _, n := range []string{"d", "b", "e", "a", "c"} {
		putSchedule(t, s, cronJob(n), base)
	}
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 3, "5 schedules by 2 fill 3 pages")
		page, err := s.ListSchedules(t.Context(), store.ListSchedulesParams{Limit: 2, Cursor: cursor})
		require.NoError(t, err)
		for _, r := range page.Schedules {
			seen = append(seen, r.Name)
		}
		if page.NextCursor == "" {
			require.Len(t, page.Schedules, 1, "the last page holds the fifth")
			break
		}
		require.Len(t, page.Schedules, 2)
		cursor = page.NextCursor
	}
	require.Equal(t, []string{"a", "b", "c", "d", "e"}, seen, "every schedule once, by name")

	page, err = s.ListSchedules(t.Context(), store.ListSchedulesParams{Limit: 5})
	require.NoError(t, err)
	require.Len(t, page.Schedules, 5)
	require.Empty(t, page.NextCursor, "a full page holding the last schedule has no cursor")
}

func testScheduleDelete(t *testing.T, s store.Store) {
	putSchedule(t, s, cronJob("report"), base)
	putSchedule(t, s, cronJob("other"), base)
	run := triggerSchedule(t, s, "report", base.Add(time.Minute))

	require.NoError(t, s.DeleteSchedule(t.Context(), "report"))
	_, err := s.GetSchedule(t.Context(), "report")
	requireNotFound(t, err, "a deleted schedule")
	_, err = s.ScheduleRuns(t.Context(), store.ScheduleRunsParams{Name: "report"})
	requireNotFound(t, err, "the runs of a deleted schedule")
	require.Equal(t, job.StatusPending, get(t, s, *run.JobID).Status, "the jobs its runs created stay")
	getSchedule(t, s, "other")

	requireNotFound(t, s.DeleteSchedule(t.Context(), "report"), "deleting again")
	requireNotFound(t, s.DeleteSchedule(t.Context(), "nope"), "deleting an unknown schedule")

	rec, created := putSchedule(t, s, cronJob("report"), slot(0).Add(time.Second))
	require.True(t, created, "a deleted name can be created again")
	require.Nil(t, rec.LastJobID, "as a new schedule")
	require.Empty(t, allRuns(t, s, "report"), "without the old runs")
}

func testSchedulePrune(t *testing.T, s store.Store) {
	for _, n := range []string{"d", "a", "c", "b"} {
		putSchedule(t, s, cronJob(n), base)
	}
	triggerSchedule(t, s, "c", base.Add(time.Minute))
	deleted, err := s.PruneSchedules(t.Context(), store.PruneSchedulesParams{Keep: []string{"d", "b", "unknown"}})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "c"}, deleted, "the deleted names, sorted")

	page, err := s.ListSchedules(t.Context(), store.ListSchedulesParams{})
	require.NoError(t, err)
	var names []string
	for _, r := range page.Schedules {
		names = append(names, r.Name)
	}
	require.Equal(t, []string{"b", "d"}, names)
	_, err = s.ScheduleRuns(t.Context(), store.ScheduleRunsParams{Name: "c"})
	requireNotFound(t, err, "a pruned schedule's runs")

	deleted, err = s.PruneSchedules(t.Context(), store.PruneSchedulesParams{Keep: []string{"b", "d"}})
	require.NoError(t, err)
	require.Empty(t, deleted, "nothing left to prune")
}

func testSchedulePauseResume(t *testing.T, s store.Store) {
	putSchedule(t, s, cronJob("report"), base)
	pausedAt := base.Add(time.Minute)
	rec, err := s.PauseSchedule(t.Context(), store.PauseScheduleParams{Name: "report", Reason: "maintenance", Now: pausedAt})
	require.NoError(t, err)
	for _, r := range []*store.ScheduleRecord{rec, getSchedule(t, s, "report")} {
		require.True(t, r.Paused)
		require.Equal(t, "maintenance", r.PausedReason)
		requireTimePtr(t, pausedAt, r.PausedAt, "paused_at")
	}

	res := fireAt(t, s, slot(0))
	require.Zero(t, res.Taken, "a paused schedule is not taken")
	require.Empty(t, res.Runs)
	require.Empty(t, listAll(t, s, store.ListParams{}), "no job")

	rec, err = s.PauseSchedule(t.Context(), store.PauseScheduleParams{Name: "report", Reason: "still broken", Now: slot(1)})
	require.NoError(t, err)
	require.Equal(t, "still broken", rec.PausedReason, "pausing again updates the reason")
	requireTimePtr(t, pausedAt, rec.PausedAt, "pausing again keeps paused_at")

	resumedAt := slot(3).Add(time.Minute)
	rec, err = s.ResumeSchedule(t.Context(), store.ResumeScheduleParams{Name: "report", Now: resumedAt})
	require.NoError(t, err)
	for _, r := range []*store.ScheduleRecord{rec, getSchedule(t, s, "report")} {
		require.False(t, r.Paused)
		require.Empty(t, r.PausedReason)
		require.Nil(t, r.PausedAt)
		requireTimePtr(t, slot(4), r.NextRunAt, "next_run_at is the first slot after the resume")
		requireTime(t, resumedAt, r.Cursor, "counting starts again at the resume")
	}
	again, err := s.ResumeSchedule(t.Context(), store.ResumeScheduleParams{Name: "report", Now: resumedAt.Add(time.Minute)})
	require.NoError(t, err)
	requireTime(t, resumedAt, again.Cursor, "resuming a running schedule changes nothing")
	requireTimePtr(t, slot(4), again.NextRunAt, "resuming a running schedule changes nothing")

	res = fireAt(t, s, resumedAt.Add(time.Minute))
	require.Zero(t, res.Taken, "the slots of the pause are not caught up")
	require.Empty(t, listAll(t, s, store.ListParams{}))

	res = fireAt(t, s, slot(4))
	require.Equal(t, 1, res.Taken)
	require.Len(t, res.Runs, 1)
	requireFiredJob(t, s, res.Runs[0], "report", slot(4), false)
	require.Zero(t, res.Missed["report"], "the pause's slots are not missed either")
	require.Equal(t, []time.Time{slot(4)}, nominals(allRuns(t, s, "report")))

	_, err = s.PauseSchedule(t.Context(), store.PauseScheduleParams{Name: "nope", Now: base})
	requireNotFound(t, err, "pausing an unknown schedule")
	_, err = s.ResumeSchedule(t.Context(), store.ResumeScheduleParams{Name: "nope", Now: base})
	requireNotFound(t, err, "resuming an unknown schedule")
}

func testScheduleTrigger(t *testing.T, s store.Store) {
	putSchedule(t, s, cronJob("report"), base)
	_, err := s.PauseSchedule(t.Context(), store.PauseScheduleParams{Name: "report", Now: base})
	require.NoError(t, err)

	at := base.Add(2 * time.Minute)
	run := triggerSchedule(t, s, "report", at)
	requireFiredJob(t, s, run, "report", at, true)

	rec := getSchedule(t, s, "report")
	require.True(t, rec.Paused, "a trigger does not resume")
	requireTimePtr(t, slot(0), rec.NextRunAt, "next_run_at is left alone")
	requireTime(t, base, rec.Cursor, "the slot cursor is left alone")
	requireTimePtr(t, at, rec.LastRunAt, "last_run_at names the triggered run")
	require.Equal(t, run.JobID, rec.LastJobID, "last_job_id names the triggered job")

	requireTime(t, at, run.FiredAt, "fired_at is Now")

	runs := allRuns(t, s, "report")
	require.Len(t, runs, 1)
	require.True(t, runs[0].Triggered)
	require.Equal(t, run.JobID, runs[0].JobID)
	require.Equal(t, store.RunFired, runs[0].Outcome)
	requireTime(t, at, runs[0].FiredAt, "fired_at as stored")

	_, err = s.TriggerSchedule(t.Context(), store.TriggerScheduleParams{Name: "nope", Now: at})
	requireNotFound(t, err, "triggering an unknown schedule")
}

func testScheduleTriggerAtSlot(t *testing.T, s store.Store) {
	def := cronJob("report")
	def.Overlap = schedule.OverlapAllow // the triggered job is still pending
	putSchedule(t, s, def, base)
	trig := triggerSchedule(t, s, "report", slot(0))
	requireTime(t, slot(0).Add(time.Microsecond), trig.NominalTime, "a trigger on a whole second takes the microsecond after it")
	res := fireAt(t, s, slot(0))
	require.Len(t, res.Runs, 1, "the slot fires beside the trigger")
	requireFiredJob(t, s, res.Runs[0], "report", slot(0), false)
	require.NotEqual(t, trig.JobID, res.Runs[0].JobID, "the slot has its own job")
	require.Len(t, allRuns(t, s, "report"), 2)
}

func testScheduleRuns(t *testing.T, s store.Store) {
	putSchedule(t, s, cronJob("report"), base)
	var want []time.Time
	for i := 1; i <= 5; i++ {
		at := base.Add(time.Duration(i) * time.Minute)
		triggerSchedule(t, s, "report", at)
		want = append([]time.Time{at}, want...)
	}

	var seen []time.Time
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 3, "5 runs by 2 fill 3 pages")
		page, err := s.ScheduleRuns(t.Context(), store.ScheduleRunsParams{Name: "report", Limit: 2, Cursor: cursor})
		require.NoError(t, err)
		seen = append(seen, nominals(page.Runs)...)
		if page.NextCursor == "" {
			require.Len(t, page.Runs, 1)
			break
		}
		require.Len(t, page.Runs, 2)
		cursor = page.NextCursor
	}
	require.Len(t, seen, len(want))
	for i := range want {
		requireTime(t, want[i], seen[i], "runs newest nominal time first")
	}

	_, err := s.ScheduleRuns(t.Context(), store.ScheduleRunsParams{Name: "nope"})
	requireNotFound(t, err, "runs of an unknown schedule")
	_, err = s.ScheduleRuns(t.Context(), store.ScheduleRunsParams{Name: "report", Cursor: "yesterday"})
	require.ErrorIs(t, err, store.ErrInvalid, "a malformed cursor")
}
