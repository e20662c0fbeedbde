package store_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/schedule"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// planBase is a time between slots of an every-five-minutes schedule, with
// a fraction of a second as a stored time keeps.
var planBase = time.Date(2099, time.March, 4, 5, 6, 7, 123456000, time.UTC)

// planSlot is the i-th five-minute slot after planBase.
func planSlot(i int) time.Time {
	return time.Date(2099, time.March, 4, 5, 10, 0, 0, time.UTC).Add(time.Duration(i) * 5 * time.Minute)
}

func planDef(name string) store.ScheduleDef {
	return store.ScheduleDef{Name: name, Cron: "*/5 * * * *", Target: store.ScheduleTarget{
		Job: &store.JobTemplate{Queue: "reports", Payload: json.RawMessage(`{"a":1,"b":[1,2]}`), MaxAttempts: 3}}}
}

func planWorkflow() *workflow.Workflow {
	return &workflow.Workflow{Name: "nightly", Steps: []workflow.Step{
		{Name: "extract", Queue: "etl"}, {Name: "load", Queue: "etl", DependsOn: []string{"extract"}}}}
}

// fields lists the field names of a validation error, failing the test
// when err is not one.
func fields(t *testing.T, err error) []string {
	t.Helper()
	require.ErrorIs(t, err, store.ErrInvalid)
	var verr *schedule.ValidationError
	require.True(t, errors.As(err, &verr), "a *schedule.ValidationError: %v", err)
	out := make([]string, len(verr.Problems))
	for i, p := range verr.Problems {
		out[i] = p.Field
		require.NotEmpty(t, p.Message, "field %s has a message", p.Field)
		require.False(t, strings.HasPrefix(p.Message, store.ErrInvalid.Error()+": "), "field %s: the message does not repeat %q: %s", p.Field, store.ErrInvalid, p.Message)
	}
	return out
}

func TestScheduleDefValidateNamesEveryBadField(t *testing.T) {
	t.Parallel()
	require.NoError(t, planDef("report").Validate())
	wf := planDef("etl")
	wf.Target = store.ScheduleTarget{Workflow: planWorkflow()}
	require.NoError(t, wf.Validate(), "a workflow target")

	cases := []struct {
		name string
		edit func(d *store.ScheduleDef)
		want []string
	}{
		{"bad cron", func(d *store.ScheduleDef) { d.Cron = "61 * * * *" }, []string{"cron"}},
		{"bad zone", func(d *store.ScheduleDef) { d.Timezone = "Atlantis/Capital" }, []string{"timezone"}},
		{"no target", func(d *store.ScheduleDef) { d.Target = store.ScheduleTarget{} }, []string{"target"}},
		{"both targets", func(d *store.ScheduleDef) { d.Target.Workflow = planWorkflow() }, []string{"target"}},
		{"bad queue", func(d *store.ScheduleDef) { d.Target.Job.Queue = "no spaces" }, []string{"target.job"}},
		{"bad payload", func(d *store.ScheduleDef) { d.Target.Job.Payload = json.RawMessage(`{`) }, []string{"target.job"}},
		{"empty workflow", func(d *store.ScheduleDef) {
			d.Target = store.ScheduleTarget{Workflow: &workflow.Workflow{Name: "empty"}}
		}, []string{"target.workflow"}},
		{"workflow with a dependency", func(d *store.ScheduleDef) {
			d.Target = store.ScheduleTarget{Workflow: planWorkflow()}
			d.DependsOnSchedule = "extract"
		}, []string{"depends_on_schedule"}},
		{"depends on itself", func(d *store.ScheduleDef) { d.DependsOnSchedule = d.Name }, []string{"depends_on_schedule"}},
		{"name with a slash", func(d *store.ScheduleDef) { d.Name = "a/b" }, []string{"name"}},
		{"bad overlap", func(d *store.ScheduleDef) { d.Overlap = "queue" }, []string{"overlap"}},
		{"every problem at once", func(d *store.ScheduleDef) {
			d.Cron, d.Timezone, d.Target = "nonsense", "Nowhere/Town", store.ScheduleTarget{}
		}, []string{"timezone", "cron", "target"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			def := planDef("report")
			tc.edit(&def)
			require.ElementsMatch(t, tc.want, fields(t, def.Validate()))
		})
	}
}

func TestPlanSchedulePutNewCountsSlotsFromNow(t *testing.T) {
	t.Parallel()
	def := planDef("report")
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	start := time.Date(2099, time.March, 1, 0, 0, 0, 0, berlin)
	def.StartAt = &start

	rec, changed, err := store.PlanSchedulePut(nil, store.PutScheduleParams{Def: def}, planBase)
	require.NoError(t, err)
	require.True(t, changed, "a new schedule is written")
	require.Equal(t, "UTC", rec.Timezone, "an empty zone is UTC")
	require.Equal(t, schedule.OverlapSkip, rec.Overlap)
	require.Equal(t, schedule.CatchupLatest, rec.Catchup)
	require.Equal(t, job.Duration(schedule.DefaultCatchupWindow), rec.CatchupWindow)
	require.Equal(t, time.UTC, rec.StartAt.Location(), "start_at is kept in UTC")
	require.True(t, start.Equal(*rec.StartAt))
	require.Equal(t, planSlot(0), *rec.NextRunAt, "the first slot after now")
	require.Equal(t, planBase, rec.Cursor)
	require.Equal(t, planBase, rec.CreatedAt)
	require.Equal(t, planBase, rec.UpdatedAt)
	require.Nil(t, rec.Buffered)
	require.Nil(t, rec.LastRunAt)
}

func TestPlanSchedulePutStopsAtEndAt(t *testing.T) {
	t.Parallel()
	def := planDef("report")
	end := planBase.Add(time.Minute)
	def.EndAt = &end
	rec, _, err := store.PlanSchedulePut(nil, store.PutScheduleParams{Def: def}, planBase)
	require.NoError(t, err)
	require.Nil(t, rec.NextRunAt, "no slot before end_at")
}

func TestPlanSchedulePutRejectsAnInvalidDefinition(t *testing.T) {
	t.Parallel()
	def := planDef("report")
	def.Cron = ""
	rec, changed, err := store.PlanSchedulePut(nil, store.PutScheduleParams{Def: def}, planBase)
	require.Equal(t, []string{"cron"}, fields(t, err))
	require.Nil(t, rec)
	require.False(t, changed)
}

func TestPlanSchedulePutOfTheSameDefinitionIsUnchanged(t *testing.T) {
	t.Parallel()
	existing, _, err := store.PlanSchedulePut(nil, store.PutScheduleParams{Def: planDef("report")}, planBase)
	require.NoError(t, err)

	again := planDef("report")
	again.Target.Job.Payload = json.RawMessage("{ \"b\": [1, 2],\n \"a\": 1 }")
	again.Timezone, again.Overlap, again.Catchup = "UTC", schedule.OverlapSkip, schedule.CatchupLatest
	again.CatchupWindow = job.Duration(time.Hour)
	rec, changed, err := store.PlanSchedulePut(existing, store.PutScheduleParams{Def: again}, planBase.Add(time.Hour))
	require.NoError(t, err)
	require.False(t, changed, "key order, spacing and spelled-out defaults do not count")
	require.Same(t, existing, rec, "the stored row is left as it was")
}

func TestPlanSchedulePutOfAChangedDefinitionStartsAgainFromNow(t *testing.T) {
	t.Parallel()
	existing, _, err := store.PlanSchedulePut(nil, store.PutScheduleParams{Def: planDef("report")}, planBase)
	require.NoError(t, err)
	last, lastJob, paused := planSlot(0), uuid.New(), planBase.Add(time.Minute)
	buffered := planSlot(1)
	existing.Paused, existing.PausedReason, existing.PausedAt = true, "holiday", &paused
	existing.LastRunAt, existing.LastJobID, existing.Buffered = &last, &lastJob, &buffered

	changed := planDef("report")
	changed.Cron = "*/10 * * * *"
	now := planBase.Add(20 * time.Minute) // 05:26:07
	rec, ok, err := store.PlanSchedulePut(existing, store.PutScheduleParams{Def: changed}, now)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "*/10 * * * *", rec.Cron)
	require.Equal(t, time.Date(2099, time.March, 4, 5, 30, 0, 0, time.UTC), *rec.NextRunAt)
	require.Equal(t, now, rec.Cursor)
	require.Nil(t, rec.Buffered, "a changed schedule holds no slot")
	require.Equal(t, now, rec.UpdatedAt)
	require.Equal(t, planBase, rec.CreatedAt)
	require.True(t, rec.Paused, "the pause is kept")
	require.Equal(t, "holiday", rec.PausedReason)
	require.Equal(t, &last, rec.LastRunAt, "the last run is kept")
	require.Equal(t, &lastJob, rec.LastJobID)
	require.Equal(t, planSlot(0), *existing.NextRunAt, "the stored row is not modified")
}

func TestPlanScheduleResumeSkipsThePause(t *testing.T) {
	t.Parallel()
	rec, _, err := store.PlanSchedulePut(nil, store.PutScheduleParams{Def: planDef("report")}, planBase)
	require.NoError(t, err)
	last, lastJob, buffered := planSlot(0), uuid.New(), planSlot(1)
	rec.LastRunAt, rec.LastJobID, rec.Buffered = &last, &lastJob, &buffered

	now := planSlot(3).Add(time.Minute)
	st := store.PlanScheduleResume(rec, now)
	require.Equal(t, now, st.Cursor)
	require.Equal(t, planSlot(4), *st.NextRunAt, "the first slot after the resume")
	require.Nil(t, st.Buffered)
	require.Equal(t, &last, st.LastRunAt)
	require.Equal(t, &lastJob, st.LastJobID)
}

func stored(t *testing.T, def store.ScheduleDef) *store.ScheduleRecord {
	t.Helper()
	rec, _, err := store.PlanSchedulePut(nil, store.PutScheduleParams{Def: def}, planBase)
	require.NoError(t, err)
	return rec
}

func planTracer(name string, nominal time.Time) store.RunTrace {
	return store.RunTrace{TraceID: "trace-" + name, SpanContext: "span@" + nominal.Format(time.RFC3339), TraceState: "k=v"}
}

func TestPlanScheduleFireBeforeTheDependencyRanSkipsWithANote(t *testing.T) {
	t.Parallel()
	def := planDef("load")
	def.DependsOnSchedule = "extract"
	rec := stored(t, def)

	plan, err := store.PlanScheduleFire(store.FireInput{Schedule: rec, Now: planSlot(0), Trace: planTracer})
	require.NoError(t, err)
	require.Len(t, plan.Runs, 1)
	run := plan.Runs[0]
	require.Equal(t, store.RunSkipped, run.Run.Outcome)
	require.Equal(t, planSlot(0), run.Run.NominalTime)
	require.Equal(t, planSlot(0), run.Run.FiredAt)
	require.Contains(t, run.Run.Note, `"extract"`, "the note names the dependency")
	require.Nil(t, run.Job)
	require.Nil(t, run.Workflow)
	require.Nil(t, run.Run.JobID)
	require.Equal(t, planSlot(0), plan.State.Cursor, "the slot is handled")
	require.Equal(t, planSlot(1), *plan.State.NextRunAt)
	require.Nil(t, plan.State.LastRunAt, "a skipped slot is no last run")
	require.Nil(t, plan.State.LastJobID)
}

func TestPlanScheduleFireWaitsForTheDependencysJob(t *testing.T) {
	t.Parallel()
	def := planDef("load")
	def.DependsOnSchedule = "extract"
	rec := stored(t, def)
	dep := uuid.New()

	plan, err := store.PlanScheduleFire(store.FireInput{Schedule: rec, Now: planSlot(0), Trace: planTracer,
		DependencyRan: true, Dependency: &dep})
	require.NoError(t, err)
	require.Len(t, plan.Runs, 1)
	run := plan.Runs[0]
	require.Equal(t, store.RunFired, run.Run.Outcome)
	require.False(t, run.Run.Triggered)
	require.NotNil(t, run.Job)
	require.Equal(t, []uuid.UUID{dep}, run.Job.DependsOn)
	require.Equal(t, run.Job.ID, *run.Run.JobID, "the run names the planned job")
	require.Equal(t, "reports", run.Job.Queue)
	require.Equal(t, 3, run.Job.MaxAttempts)
	require.Equal(t, job.PriorityNormal, run.Job.Priority, "no priority is normal")
	require.Equal(t, store.RunCorrelationID("load", planSlot(0)), run.Job.CorrelationID)
	require.Equal(t, "trace-load", run.Job.TraceID)
	require.Equal(t, "span@"+planSlot(0).Format(time.RFC3339), run.Job.SpanContext)
	require.Equal(t, "k=v", run.Job.TraceState)
	require.NoError(t, run.Job.Validate(), "the planned job can be enqueued")
	require.Equal(t, planSlot(0), *plan.State.LastRunAt)
	require.Equal(t, run.Job.ID, *plan.State.LastJobID)

	plan, err = store.PlanScheduleFire(store.FireInput{Schedule: rec, Now: planSlot(0), DependencyRan: true})
	require.NoError(t, err)
	require.Len(t, plan.Runs, 1)
	require.Empty(t, plan.Runs[0].Job.DependsOn, "a dependency whose job is gone is resolved")
	require.Empty(t, plan.Runs[0].Job.TraceID, "no tracer, no trace")
}

func TestPlanScheduleFireOverlapSkipWhileLive(t *testing.T) {
	t.Parallel()
	rec := stored(t, planDef("report"))
	plan, err := store.PlanScheduleFire(store.FireInput{Schedule: rec, Live: true, Now: planSlot(0)})
	require.NoError(t, err)
	require.Len(t, plan.Runs, 1)
	require.Equal(t, store.RunSkipped, plan.Runs[0].Run.Outcome)
	require.Contains(t, plan.Runs[0].Run.Note, "skip")
	require.Nil(t, plan.Runs[0].Job)
}

func TestPlanScheduleFireCatchupReportsMissed(t *testing.T) {
	t.Parallel()
	rec := stored(t, planDef("report"))
	plan, err := store.PlanScheduleFire(store.FireInput{Schedule: rec, Now: planSlot(5).Add(time.Minute)})
	require.NoError(t, err)
	require.Len(t, plan.Runs, 1)
	require.Equal(t, planSlot(5), plan.Runs[0].Run.NominalTime, "latest fires the newest slot")
	require.Equal(t, 5, plan.Missed)
	require.Equal(t, planSlot(6), *plan.State.NextRunAt)
}

func TestPlanScheduleFireWorkflowTarget(t *testing.T) {
	t.Parallel()
	def := planDef("etl")
	def.Target = store.ScheduleTarget{Workflow: planWorkflow()}
	rec := stored(t, def)

	plan, err := store.PlanScheduleFire(store.FireInput{Schedule: rec, Now: planSlot(0), Trace: planTracer})
	require.NoError(t, err)
	require.Len(t, plan.Runs, 1)
	run := plan.Runs[0]
	require.Nil(t, run.Job)
	require.NotNil(t, run.Workflow)
	require.Equal(t, run.Workflow.ID, *run.Run.WorkflowID)
	require.Equal(t, store.ScheduledWorkflowName("nightly", planSlot(0)), run.Workflow.Workflow.Name)
	require.Equal(t, store.RunCorrelationID("etl", planSlot(0)), run.Workflow.Workflow.CorrelationID)
	require.Equal(t, "trace-etl", run.Workflow.Workflow.TraceID)
	require.Equal(t, "span@"+planSlot(0).Format(time.RFC3339), run.Workflow.SpanContext)
	require.Equal(t, "nightly", rec.Target.Workflow.Name, "the definition keeps its own name")
	require.Equal(t, run.Workflow.ID, *plan.State.LastWorkflowID)
	require.Nil(t, plan.State.LastJobID)
}

func TestPlanScheduleTriggerLeavesTheSlots(t *testing.T) {
	t.Parallel()
	rec := stored(t, planDef("report"))
	now := planBase.Add(time.Minute)
	run, st, err := store.PlanScheduleTrigger(store.FireInput{Schedule: rec, Live: true, Now: now})
	require.NoError(t, err)
	require.True(t, run.Run.Triggered)
	require.Equal(t, store.RunFired, run.Run.Outcome, "a trigger fires whatever the overlap")
	require.Equal(t, now, run.Run.NominalTime)
	require.NotNil(t, run.Job)
	require.Equal(t, store.RunCorrelationID("report", now), run.Job.CorrelationID)
	require.Equal(t, rec.Cursor, st.Cursor)
	require.Equal(t, rec.NextRunAt, st.NextRunAt)
	require.Equal(t, now, *st.LastRunAt)
	require.Equal(t, run.Job.ID, *st.LastJobID)
}

func TestRunCorrelationIDAndScheduledWorkflowName(t *testing.T) {
	t.Parallel()
	tokyo := time.FixedZone("JST", 9*3600)
	nominal := time.Date(2099, time.March, 4, 14, 10, 0, 500, tokyo)
	require.Equal(t, "report@2099-03-04T05:10:00Z", store.RunCorrelationID("report", nominal), "UTC, whole seconds")
	require.Equal(t, "nightly@2099-03-04T05:10:00Z", store.ScheduledWorkflowName("nightly", nominal))
}

func TestListSchedulesPaging(t *testing.T) {
	t.Parallel()
	pg := store.ListSchedulesParams{}.Paging()
	require.Equal(t, store.DefaultListLimit, pg.Limit)
	require.Empty(t, pg.After)
	require.Equal(t, store.MaxListLimit, store.ListSchedulesParams{Limit: 5000}.Paging().Limit)

	pg = store.ListSchedulesParams{Limit: 2, Cursor: "b"}.Paging()
	require.Equal(t, "b", pg.After)
	require.Equal(t, 3, pg.Fetch(), "one beyond the page")

	page := pg.Page(nil)
	require.NotNil(t, page.Schedules, "no rows is an empty slice")
	require.Empty(t, page.Schedules)
	require.Empty(t, page.NextCursor)

	rec := func(n string) *store.ScheduleRecord {
		return &store.ScheduleRecord{ScheduleDef: store.ScheduleDef{Name: n}}
	}
	page = pg.Page([]*store.ScheduleRecord{rec("c"), rec("d")})
	require.Len(t, page.Schedules, 2)
	require.Empty(t, page.NextCursor, "a full page holding the last row has no cursor")
	page = pg.Page([]*store.ScheduleRecord{rec("c"), rec("d"), rec("e")})
	require.Len(t, page.Schedules, 2)
	require.Equal(t, "d", page.NextCursor, "the cursor is the page's last name")
}

func TestScheduleRunsPaging(t *testing.T) {
	t.Parallel()
	pg, err := store.ScheduleRunsParams{}.Paging()
	require.NoError(t, err)
	require.Equal(t, store.DefaultListLimit, pg.Limit)
	require.Nil(t, pg.Before)

	_, err = store.ScheduleRunsParams{Cursor: "not-a-time"}.Paging()
	require.ErrorIs(t, err, store.ErrInvalid)

	pg, err = store.ScheduleRunsParams{Limit: 2, Cursor: "2099-03-04T06:10:00.0000005+01:00"}.Paging()
	require.NoError(t, err)
	require.Equal(t, time.Date(2099, time.March, 4, 5, 10, 0, 0, time.UTC), *pg.Before, "the cursor is read in UTC at microsecond precision")
	require.Equal(t, 3, pg.Fetch())

	page := pg.Page(nil)
	require.NotNil(t, page.Runs)
	require.Empty(t, page.Runs)

	runs := []*store.ScheduleRun{{NominalTime: planSlot(2)}, {NominalTime: planSlot(1).Add(123456 * time.Microsecond)}, {NominalTime: planSlot(0)}}
	page = pg.Page(runs)
	require.Len(t, page.Runs, 2)
	require.NotEmpty(t, page.NextCursor)
	next, err := store.ScheduleRunsParams{Cursor: page.NextCursor}.Paging()
	require.NoError(t, err)
	require.Equal(t, runs[1].NominalTime, *next.Before, "the cursor round-trips the last run's nominal time")
	require.Empty(t, pg.Page(runs[:2]).NextCursor, "a full page holding the last run has no cursor")
}
