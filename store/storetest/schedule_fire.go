package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/schedule"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// The policies of a slot: overlap while the previous run is live, catch-up
// after a gap, start and end, a dependency on another schedule, and firing
// exactly once when several passes race.

// runsOf keeps a pass's runs of one schedule, in the pass's order.
func runsOf(res *store.FireResult, name string) []*store.ScheduleRun {
	var out []*store.ScheduleRun
	for _, r := range res.Runs {
		if r.Schedule == name {
			out = append(out, r)
		}
	}
	return out
}

// fireOne runs one pass at now that must write exactly one run.
func fireOne(t *testing.T, s store.Store, now time.Time) *store.ScheduleRun {
	t.Helper()
	res := fireAt(t, s, now)
	require.Len(t, res.Runs, 1, "one run at %s", now)
	return res.Runs[0]
}

func requireSkipped(t *testing.T, run *store.ScheduleRun, nominal time.Time) {
	t.Helper()
	requireTime(t, nominal, run.NominalTime, "skipped run's nominal time")
	require.Equal(t, store.RunSkipped, run.Outcome)
	require.NotEmpty(t, run.Note, "a skipped run says why")
	require.Nil(t, run.JobID, "a skipped run creates no job")
	require.Nil(t, run.WorkflowID, "a skipped run creates no workflow")
}

func countJobs(t *testing.T, s store.Store, queue string) int {
	t.Helper()
	return len(listAll(t, s, store.ListParams{Queue: queue}))
}

func withOverlap(def store.ScheduleDef, o schedule.Overlap) store.ScheduleDef {
	def.Overlap = o
	return def
}

func testScheduleFireJob(t *testing.T, s store.Store) {
	putSchedule(t, s, cronJob("report"), base)
	res := fireAt(t, s, slot(0).Add(-time.Microsecond))
	require.Zero(t, res.Taken, "not due before its slot")
	require.Empty(t, res.Runs)

	res = fireAt(t, s, slot(0))
	require.Equal(t, 1, res.Taken)
	require.Len(t, res.Runs, 1)
	j := requireFiredJob(t, s, res.Runs[0], "report", slot(0), false)
	requireTime(t, slot(0), res.Runs[0].FiredAt, "fired_at is the pass's Now")
	require.Equal(t, []string{cronQueue}, res.Queues, "the queue that got a job")
	require.Zero(t, res.Missed["report"])
	require.Len(t, listAll(t, s, store.ListParams{}), 1, "one job")

	rec := getSchedule(t, s, "report")
	requireTimePtr(t, slot(0), rec.LastRunAt, "last_run_at")
	require.NotNil(t, rec.LastJobID)
	require.Equal(t, j.ID, *rec.LastJobID, "last_job_id")
	requireTimePtr(t, slot(1), rec.NextRunAt, "next_run_at moves to the next slot")
	requireTime(t, slot(0), rec.Cursor, "the cursor is the slot handled")

	res = fireAt(t, s, slot(0))
	require.Zero(t, res.Taken, "a slot fires once")
	require.Empty(t, res.Runs)
	require.Empty(t, res.Queues)
	require.Len(t, listAll(t, s, store.ListParams{}), 1, "still one job")
	require.Equal(t, []time.Time{slot(0)}, nominals(allRuns(t, s, "report")))
}

func testScheduleFireWorkflow(t *testing.T, s store.Store) {
	w := definition(workflow.FailFast, step("extract"), step("load", "extract"))
	w.Name = "nightly"
	def := store.ScheduleDef{Name: "etl", Cron: every5, Target: store.ScheduleTarget{Workflow: &w}}
	putSchedule(t, s, def, base)

	res := fireAt(t, s, slot(0))
	require.Equal(t, 1, res.Taken)
	require.Len(t, res.Runs, 1)
	run := res.Runs[0]
	require.Equal(t, store.RunFired, run.Outcome)
	require.Nil(t, run.JobID, "a workflow target creates no lone job")
	require.NotNil(t, run.WorkflowID)
	require.Equal(t, []string{wfQueue}, res.Queues, "the workflow's queue got jobs")

	rec, err := s.GetWorkflow(t.Context(), *run.WorkflowID)
	require.NoError(t, err)
	require.Equal(t, store.ScheduledWorkflowName("nightly", slot(0)), rec.Name)
	require.Equal(t, store.RunCorrelationID("etl", slot(0)), rec.CorrelationID)
	require.Equal(t, tracedID, rec.TraceID)
	require.Equal(t, 2, rec.Stats.TotalJobs)

	jobs, err := s.WorkflowJobs(t.Context(), *run.WorkflowID)
	require.NoError(t, err)
	require.Len(t, jobs, 2, "every step's job")
	for _, j := range jobs {
		require.Equal(t, store.RunCorrelationID("etl", slot(0)), j.CorrelationID, "step %s", j.StepName)
		require.Equal(t, tracedID, j.TraceID, "step %s", j.StepName)
		require.Equal(t, tracedSpan, j.SpanContext, "step %s", j.StepName)
	}

	sched := getSchedule(t, s, "etl")
	require.Equal(t, run.WorkflowID, sched.LastWorkflowID, "last_workflow_id")
	require.Nil(t, sched.LastJobID)
	requireTimePtr(t, slot(0), sched.LastRunAt, "last_run_at")
	requireTimePtr(t, slot(1), sched.NextRunAt, "next_run_at")
}

func testScheduleOverlapSkip(t *testing.T, s store.Store) {
	putSchedule(t, s, cronJob("report"), base)
	first := requireFiredJob(t, s, fireOne(t, s, slot(0)), "report", slot(0), false)

	res := fireAt(t, s, slot(1))
	require.Equal(t, 1, res.Taken)
	require.Len(t, res.Runs, 1)
	requireSkipped(t, res.Runs[0], slot(1))
	require.Empty(t, res.Queues, "no queue got a job")
	require.Equal(t, 1, countJobs(t, s, cronQueue), "a pending job holds back the next slot")
	rec := getSchedule(t, s, "report")
	require.Equal(t, first.ID, *rec.LastJobID, "the skipped run is not the last run")
	requireTimePtr(t, slot(0), rec.LastRunAt, "last_run_at stays at the fired slot")
	requireTimePtr(t, slot(2), rec.NextRunAt, "next_run_at moves on")

	leased := leaseOne(t, s, slot(1).Add(time.Second))
	require.Equal(t, first.ID, leased.ID)
	res = fireAt(t, s, slot(2))
	require.Len(t, res.Runs, 1)
	requireSkipped(t, res.Runs[0], slot(2))
	require.Equal(t, 1, countJobs(t, s, cronQueue), "a running job holds back the next slot")

	require.Empty(t, complete(t, s, slot(2).Add(time.Second), store.Completion{LeaseRef: ref(leased)}))
	res = fireAt(t, s, slot(3))
	require.Len(t, res.Runs, 1)
	requireFiredJob(t, s, res.Runs[0], "report", slot(3), false)
	require.Equal(t, 2, countJobs(t, s, cronQueue), "once the job finished the next slot fires")

	runs := allRuns(t, s, "report")
	require.Equal(t, []time.Time{slot(3), slot(2), slot(1), slot(0)}, nominals(runs))
	require.Equal(t, []store.RunOutcome{store.RunFired, store.RunSkipped, store.RunSkipped, store.RunFired},
		[]store.RunOutcome{runs[0].Outcome, runs[1].Outcome, runs[2].Outcome, runs[3].Outcome})
}

func testScheduleOverlapAllow(t *testing.T, s store.Store) {
	putSchedule(t, s, withOverlap(cronJob("report"), schedule.OverlapAllow), base)
	a := requireFiredJob(t, s, fireOne(t, s, slot(0)), "report", slot(0), false)
	res := fireAt(t, s, slot(1))
	require.Len(t, res.Runs, 1)
	b := requireFiredJob(t, s, res.Runs[0], "report", slot(1), false)
	require.NotEqual(t, a.ID, b.ID)
	require.Equal(t, job.StatusPending, get(t, s, a.ID).Status, "the first run is still live")
	require.Equal(t, 2, countJobs(t, s, cronQueue), "allow fires while the previous run is live")
	require.Equal(t, b.ID, *getSchedule(t, s, "report").LastJobID)
}

func testScheduleOverlapBufferOne(t *testing.T, s store.Store) {
	putSchedule(t, s, withOverlap(cronJob("report"), schedule.OverlapBufferOne), base)
	first := requireFiredJob(t, s, fireOne(t, s, slot(0)), "report", slot(0), false)

	res := fireAt(t, s, slot(1))
	require.Equal(t, 1, res.Taken)
	require.Empty(t, res.Runs, "the slot is held, not written")
	rec := getSchedule(t, s, "report")
	requireTimePtr(t, slot(1), rec.Buffered, "buffered holds the slot")
	require.NotNil(t, rec.NextRunAt)
	require.False(t, rec.NextRunAt.After(slot(1)), "a buffered schedule is due again at once, next_run_at %s", rec.NextRunAt)

	res = fireAt(t, s, slot(2))
	require.Len(t, res.Runs, 1)
	requireSkipped(t, res.Runs[0], slot(2))
	requireTimePtr(t, slot(1), getSchedule(t, s, "report").Buffered, "one slot is held, the rest are skipped")
	require.Equal(t, 1, countJobs(t, s, cronQueue))

	leased := leaseOne(t, s, slot(2).Add(time.Second))
	require.Equal(t, first.ID, leased.ID)
	require.Empty(t, complete(t, s, slot(2).Add(2*time.Second), store.Completion{LeaseRef: ref(leased)}))
	at := slot(2).Add(time.Minute)
	res = fireAt(t, s, at)
	require.Len(t, res.Runs, 1)
	requireFiredJob(t, s, res.Runs[0], "report", slot(1), false)
	rec = getSchedule(t, s, "report")
	require.Nil(t, rec.Buffered, "the held slot fired")
	requireTimePtr(t, slot(3), rec.NextRunAt, "next_run_at is the next slot")
	requireTimePtr(t, slot(1), rec.LastRunAt, "last_run_at is the held slot's nominal time")
	require.Equal(t, 2, countJobs(t, s, cronQueue))
	require.Equal(t, []time.Time{slot(2), slot(1), slot(0)}, nominals(allRuns(t, s, "report")))
}

func testScheduleCatchupLatest(t *testing.T, s store.Store) {
	putSchedule(t, s, cronJob("latest"), base)
	narrow := cronJob("narrow")
	narrow.CatchupWindow = job.Duration(2 * time.Minute)
	putSchedule(t, s, narrow, base)

	at := slot(5).Add(3 * time.Minute)
	res := fireAt(t, s, at)
	require.Equal(t, 2, res.Taken)

	latest := runsOf(res, "latest")
	require.Len(t, latest, 1, "latest fires one run after a gap")
	requireFiredJob(t, s, latest[0], "latest", slot(5), false)
	require.Equal(t, 5, res.Missed["latest"], "the older slots are missed")
	rec := getSchedule(t, s, "latest")
	requireTimePtr(t, slot(6), rec.NextRunAt, "next_run_at is the first slot after Now")
	requireTime(t, slot(5), rec.Cursor, "cursor")

	require.Empty(t, runsOf(res, "narrow"), "a slot later than catchup_window does not fire")
	require.Equal(t, 6, res.Missed["narrow"], "every slot of the gap is missed")
	require.Empty(t, allRuns(t, s, "narrow"), "missed slots are not runs")
	rec = getSchedule(t, s, "narrow")
	requireTimePtr(t, slot(6), rec.NextRunAt, "next_run_at is the first slot after Now")
	require.Nil(t, rec.LastRunAt)
	require.Equal(t, 1, countJobs(t, s, cronQueue), "only latest's run made a job")
}

func testScheduleCatchupNone(t *testing.T, s store.Store) {
	def := cronJob("report")
	def.Catchup = schedule.CatchupNone
	putSchedule(t, s, def, base)

	res := fireAt(t, s, slot(0).Add(2*time.Minute))
	require.Equal(t, 1, res.Taken)
	require.Empty(t, res.Runs, "none fires nothing for a late slot")
	require.Equal(t, 1, res.Missed["report"])
	require.Zero(t, countJobs(t, s, cronQueue))

	res = fireAt(t, s, slot(1).Add(30*time.Second))
	require.Len(t, res.Runs, 1, "a slot noticed within the grace fires")
	requireFiredJob(t, s, res.Runs[0], "report", slot(1), false)
}

func testScheduleCatchupAll(t *testing.T, s store.Store) {
	def := withOverlap(cronJob("report"), schedule.OverlapAllow)
	def.Catchup = schedule.CatchupAll
	putSchedule(t, s, def, base)

	res := fireAt(t, s, slot(5).Add(time.Minute))
	runs := runsOf(res, "report")
	require.Len(t, runs, 6, "all fires every missed slot")
	for i, r := range runs {
		requireFiredJob(t, s, r, "report", slot(i), false)
	}
	require.Zero(t, res.Missed["report"])
	require.Equal(t, 6, countJobs(t, s, cronQueue))
	requireTimePtr(t, slot(6), getSchedule(t, s, "report").NextRunAt, "next_run_at")
}

func testScheduleCatchupAllIsBounded(t *testing.T, s store.Store) {
	def := withOverlap(cronJob("flood"), schedule.OverlapAllow)
	def.Cron, def.Catchup = "* * * * *", schedule.CatchupAll
	putSchedule(t, s, def, base)

	first := time.Date(2099, time.March, 4, 5, 7, 0, 0, time.UTC)
	const slots = schedule.MaxCatchupRuns + 20
	res := fireAt(t, s, first.Add((slots-1)*time.Minute+30*time.Second))
	runs := runsOf(res, "flood")
	require.Len(t, runs, schedule.MaxCatchupRuns, "one pass fires at most MaxCatchupRuns")
	requireTime(t, first.Add(20*time.Minute), runs[0].NominalTime, "the newest slots fire")
	requireTime(t, first.Add((slots-1)*time.Minute), runs[len(runs)-1].NominalTime, "the newest slots fire, oldest first")
	require.Equal(t, 20, res.Missed["flood"], "the older slots are missed")
	require.Equal(t, schedule.MaxCatchupRuns, countJobs(t, s, cronQueue))
}

func testScheduleEndAt(t *testing.T, s store.Store) {
	def := withOverlap(cronJob("report"), schedule.OverlapAllow)
	end := slot(1)
	def.EndAt = &end
	putSchedule(t, s, def, base)

	requireFiredJob(t, s, fireOne(t, s, slot(0)), "report", slot(0), false)
	requireTimePtr(t, slot(1), getSchedule(t, s, "report").NextRunAt, "end_at is inclusive")
	res := fireAt(t, s, slot(1).Add(time.Second))
	require.Len(t, res.Runs, 1)
	requireFiredJob(t, s, res.Runs[0], "report", slot(1), false)

	require.Nil(t, getSchedule(t, s, "report").NextRunAt, "no slot is left after end_at")
	res = fireAt(t, s, slot(5))
	require.Zero(t, res.Taken, "a schedule past end_at is not taken")
	require.Len(t, allRuns(t, s, "report"), 2)
}

func testScheduleStartAt(t *testing.T, s store.Store) {
	def := cronJob("report")
	start := slot(3)
	def.StartAt = &start
	rec, _ := putSchedule(t, s, def, base)
	requireTimePtr(t, slot(3), rec.NextRunAt, "the first slot is start_at (inclusive)")

	res := fireAt(t, s, slot(1))
	require.Zero(t, res.Taken, "nothing fires before start_at")
	res = fireAt(t, s, slot(3))
	require.Len(t, res.Runs, 1)
	requireFiredJob(t, s, res.Runs[0], "report", slot(3), false)
	require.Zero(t, res.Missed["report"], "slots before start_at are not missed")
	require.Equal(t, 1, countJobs(t, s, cronQueue))
}

func testScheduleConcurrentFire(t *testing.T, s store.Store) {
	putSchedule(t, s, withOverlap(cronJob("report"), schedule.OverlapAllow), base)
	const passes = 4
	for i := range 3 {
		var wg sync.WaitGroup
		results := make([]*store.FireResult, passes)
		errs := make([]error, passes)
		for g := range passes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[g], errs[g] = s.FireSchedules(t.Context(), store.FireSchedulesParams{Limit: 10, Now: slot(i)})
			}()
		}
		wg.Wait()
		runs := 0
		for g := range passes {
			require.NoError(t, errs[g], "pass %d at slot %d", g, i)
			require.Empty(t, results[g].Errors, "pass %d at slot %d", g, i)
			runs += len(results[g].Runs)
		}
		require.Equal(t, 1, runs, "slot %d fires once across the passes", i)
	}
	require.Equal(t, []time.Time{slot(2), slot(1), slot(0)}, nominals(allRuns(t, s, "report")))
	require.Equal(t, 3, countJobs(t, s, cronQueue), "one job per slot")
}

func testScheduleDependsOn(t *testing.T, s store.Store) {
	extract := cronJob("extract")
	extract.Cron = "0 0 1 1 *" // yearly: never due during the test
	extract.Target.Job.Queue = "extract"
	putSchedule(t, s, extract, base)
	load := cronJob("load")
	load.DependsOnSchedule = "extract"
	putSchedule(t, s, load, base)

	res := fireAt(t, s, slot(0))
	require.Equal(t, 1, res.Taken)
	require.Len(t, res.Runs, 1)
	requireSkipped(t, res.Runs[0], slot(0))
	require.Contains(t, res.Runs[0].Note, "extract", "the note names the dependency")
	require.Zero(t, countJobs(t, s, cronQueue))

	dep := triggerSchedule(t, s, "extract", slot(0).Add(time.Minute))
	res = fireAt(t, s, slot(1))
	require.Len(t, res.Runs, 1)
	j := requireFiredJob(t, s, res.Runs[0], "load", slot(1), false)
	require.Equal(t, []uuid.UUID{*dep.JobID}, j.DependsOn, "the job waits for the dependency's latest job")
	require.Equal(t, job.DependencyWaiting, j.DependencyStatus)

	leased := lease(t, s, store.LeaseParams{Limit: 10, Now: slot(1).Add(time.Second)})
	require.Equal(t, []uuid.UUID{*dep.JobID}, ids(leased), "the dependent waits")
	require.Empty(t, complete(t, s, slot(1).Add(2*time.Second), store.Completion{LeaseRef: ref(leased[0])}))
	require.Equal(t, job.DependencySatisfied, get(t, s, j.ID).DependencyStatus, "the dependency completed")
	require.Equal(t, j.ID, leaseOne(t, s, slot(1).Add(3*time.Second)).ID)
}

// testScheduleExtractThenReport is the workflow guide's "Cron Jobs with
// Dependencies": an extract at 02:00 daily and a report at 08:00 daily
// that waits for that day's extract, over two days.
func testScheduleExtractThenReport(t *testing.T, s store.Store) {
	day := func(d, hour int) time.Time { return time.Date(2099, time.June, d, hour, 0, 0, 0, time.UTC) }
	daily := func(name, queue, cron string) store.ScheduleDef {
		return store.ScheduleDef{Name: name, Cron: cron, Target: store.ScheduleTarget{Job: &store.JobTemplate{Queue: queue}}}
	}
	putSchedule(t, s, daily("daily-extract", "extract", "0 2 * * *"), day(1, 0))
	report := daily("daily-report", "report", "0 8 * * *")
	report.DependsOnSchedule = "daily-extract"
	putSchedule(t, s, report, day(1, 0))

	for d := 1; d <= 2; d++ {
		ex := fireAt(t, s, day(d, 2))
		require.Len(t, ex.Runs, 1, "day %d: the extract fires at 02:00", d)
		extractJob := *ex.Runs[0].JobID
		// The extract is slow: still running at 08:00.
		running := lease(t, s, store.LeaseParams{Queues: []string{"extract"}, Limit: 1, Duration: 12 * time.Hour, Now: day(d, 2)})
		require.Equal(t, []uuid.UUID{extractJob}, ids(running))

		rep := fireAt(t, s, day(d, 8))
		require.Len(t, rep.Runs, 1, "day %d: the report fires at 08:00", d)
		reportJob := get(t, s, *rep.Runs[0].JobID)
		require.Equal(t, []uuid.UUID{extractJob}, reportJob.DependsOn, "day %d: the report waits for that day's extract", d)
		require.Empty(t, lease(t, s, store.LeaseParams{Queues: []string{"report"}, Limit: 1, Now: day(d, 8)}),
			"day %d: no report before its extract is done", d)

		require.Empty(t, complete(t, s, day(d, 9), store.Completion{LeaseRef: ref(running[0])}))
		got := lease(t, s, store.LeaseParams{Queues: []string{"report"}, Limit: 1, Now: day(d, 9)})
		require.Equal(t, []uuid.UUID{reportJob.ID}, ids(got), "day %d: the report runs once the extract completed", d)
		require.Empty(t, complete(t, s, day(d, 10), store.Completion{LeaseRef: ref(got[0])}))
	}
}

func testScheduleUniqueKey(t *testing.T, s store.Store) {
	def := withOverlap(cronJob("report"), schedule.OverlapAllow)
	def.Target.Job.UniqueKey = "daily-report"
	putSchedule(t, s, def, base)

	first := fireOne(t, s, slot(0))
	res := fireAt(t, s, slot(1))
	require.Len(t, res.Runs, 1)
	second := res.Runs[0]
	require.Equal(t, store.RunFired, second.Outcome)
	require.Equal(t, first.JobID, second.JobID, "a deduplicated job records the job that holds the key")
	require.Equal(t, first.JobID, getSchedule(t, s, "report").LastJobID)
	require.Equal(t, 1, countJobs(t, s, cronQueue))
}

func testScheduleRunsKept(t *testing.T, s store.Store) {
	def := withOverlap(cronJob("often"), schedule.OverlapAllow)
	def.Cron, def.Catchup = "@every 1s", schedule.CatchupAll
	putSchedule(t, s, def, base)

	const passes = store.ScheduleRunsKept/schedule.MaxCatchupRuns + 1
	at := base.Truncate(time.Second)
	for range passes {
		at = at.Add(schedule.MaxCatchupRuns * time.Second)
		require.Len(t, fireAt(t, s, at).Runs, schedule.MaxCatchupRuns)
	}
	page, err := s.ScheduleRuns(t.Context(), store.ScheduleRunsParams{Name: "often", Limit: store.MaxListLimit})
	require.NoError(t, err)
	require.Len(t, page.Runs, store.ScheduleRunsKept, "a fire deletes the runs beyond the newest ScheduleRunsKept")
	require.Empty(t, page.NextCursor)
	requireTime(t, at, page.Runs[0].NominalTime, "the newest run is kept")
	requireTime(t, at.Add(-(store.ScheduleRunsKept-1)*time.Second), page.Runs[len(page.Runs)-1].NominalTime, "the oldest kept run")
}

func testScheduleDependencyDeletedByRetention(t *testing.T, s store.Store) {
	extract := cronJob("extract")
	extract.Cron = "0 0 1 1 *" // yearly: never due during the test
	extract.Target.Job.Queue = "extract"
	putSchedule(t, s, extract, base)
	load := withOverlap(cronJob("load"), schedule.OverlapAllow)
	load.DependsOnSchedule = "extract"
	putSchedule(t, s, load, base)

	run := triggerSchedule(t, s, "load", base.Add(time.Minute))
	j := requireFiredJob(t, s, run, "load", base.Add(time.Minute), true)
	require.Empty(t, j.DependsOn, "a trigger before the dependency ran has no parent")

	dep := triggerSchedule(t, s, "extract", base.Add(2*time.Minute))
	leased := lease(t, s, store.LeaseParams{Queues: []string{"extract"}, Limit: 1, Now: base.Add(3 * time.Minute)})
	require.Equal(t, []uuid.UUID{*dep.JobID}, ids(leased))
	require.Empty(t, complete(t, s, base.Add(4*time.Minute), store.Completion{LeaseRef: ref(leased[0])}))
	require.Equal(t, 1, deleteFinished(t, s, store.DeleteFinishedParams{FinishedFilter: store.FinishedFilter{Status: job.StatusCompleted}}))

	res := fireAt(t, s, slot(0))
	require.Len(t, res.Runs, 1)
	j = requireFiredJob(t, s, res.Runs[0], "load", slot(0), false)
	require.Empty(t, j.DependsOn, "a dependency job deleted by retention counts as resolved")
	require.NotEqual(t, job.DependencyWaiting, j.DependencyStatus)
}

func testScheduleJitter(t *testing.T, s store.Store) {
	def := cronJob("report")
	def.Jitter = job.Duration(30 * time.Second)
	rec, _ := putSchedule(t, s, def, base)
	require.NotNil(t, rec.NextRunAt)
	require.False(t, rec.NextRunAt.Before(slot(0)), "next_run_at %s is the slot plus jitter", rec.NextRunAt)
	require.False(t, rec.NextRunAt.After(slot(0).Add(30*time.Second)), "next_run_at %s is at most jitter after the slot", rec.NextRunAt)
	require.Equal(t, job.Duration(30*time.Second), getSchedule(t, s, "report").Jitter, "jitter is stored")

	if rec.NextRunAt.After(slot(0)) {
		require.Zero(t, fireAt(t, s, slot(0)).Taken, "not taken before its jittered next_run_at")
	}
	run := fireOne(t, s, *rec.NextRunAt)
	requireFiredJob(t, s, run, "report", slot(0), false)
	requireTime(t, *rec.NextRunAt, run.FiredAt, "fired_at is the pass's Now")
	next := getSchedule(t, s, "report").NextRunAt
	require.NotNil(t, next)
	require.False(t, next.Before(slot(1)) || next.After(slot(1).Add(30*time.Second)), "next_run_at %s is the next slot plus jitter", next)
}

func testScheduleTimezone(t *testing.T, s store.Store) {
	def := cronJob("berlin")
	def.Cron, def.Timezone = "0 3 * * *", "Europe/Berlin"
	rec, _ := putSchedule(t, s, def, base)
	threeInBerlin := time.Date(2099, time.March, 5, 2, 0, 0, 0, time.UTC) // CET, UTC+1
	requireTimePtr(t, threeInBerlin, rec.NextRunAt, "03:00 in Berlin")
	require.Equal(t, "Europe/Berlin", getSchedule(t, s, "berlin").Timezone)

	run := fireOne(t, s, threeInBerlin)
	requireFiredJob(t, s, run, "berlin", threeInBerlin, false)
	requireTimePtr(t, threeInBerlin.Add(24*time.Hour), getSchedule(t, s, "berlin").NextRunAt, "the next day's 03:00")
}

func testScheduleFireLimit(t *testing.T, s store.Store) {
	for name, minute := range map[string]string{"a": "12", "b": "11", "c": "13"} {
		def := cronJob(name)
		def.Cron = minute + " * * * *"
		putSchedule(t, s, def, base)
	}
	at := time.Date(2099, time.March, 4, 5, 20, 0, 0, time.UTC)
	res, err := s.FireSchedules(t.Context(), store.FireSchedulesParams{Limit: 2, Now: at})
	require.NoError(t, err)
	require.Empty(t, res.Errors)
	require.Equal(t, 2, res.Taken, "at most Limit schedules")
	var names []string
	for _, r := range res.Runs {
		names = append(names, r.Schedule)
	}
	require.ElementsMatch(t, []string{"b", "a"}, names, "the oldest next_run_at first")

	res = fireAt(t, s, at)
	require.Equal(t, 1, res.Taken, "the next pass takes the rest")
	require.Len(t, res.Runs, 1)
	require.Equal(t, "c", res.Runs[0].Schedule)
}

func testScheduleOverlapWorkflow(t *testing.T, s store.Store) {
	w := definition(workflow.FailFast, step("only"))
	w.Name = "nightly"
	putSchedule(t, s, store.ScheduleDef{Name: "etl", Cron: every5, Target: store.ScheduleTarget{Workflow: &w}}, base)

	first := fireOne(t, s, slot(0))
	require.NotNil(t, first.WorkflowID)
	requireSkipped(t, fireOne(t, s, slot(1)), slot(1))

	leased := leaseOne(t, s, slot(1).Add(time.Second))
	require.Equal(t, *first.WorkflowID, *leased.WorkflowID)
	requireSkipped(t, fireOne(t, s, slot(2)), slot(2))
	require.Empty(t, complete(t, s, slot(2).Add(time.Second), store.Completion{LeaseRef: ref(leased)}))
	rec, err := s.GetWorkflow(t.Context(), *first.WorkflowID)
	require.NoError(t, err)
	require.Equal(t, workflow.StatusCompleted, rec.Status)

	run := fireOne(t, s, slot(3))
	require.Equal(t, store.RunFired, run.Outcome, "once the workflow finished the next slot fires")
	require.NotNil(t, run.WorkflowID)
	require.NotEqual(t, *first.WorkflowID, *run.WorkflowID)
}

func testScheduleDropTheHeldSlot(t *testing.T, s store.Store) {
	def := withOverlap(cronJob("report"), schedule.OverlapBufferOne)
	putSchedule(t, s, def, base)
	fireOne(t, s, slot(0))
	require.Empty(t, fireAt(t, s, slot(1)).Runs)
	requireTimePtr(t, slot(1), getSchedule(t, s, "report").Buffered, "slot 1 is held")

	_, err := s.PauseSchedule(t.Context(), store.PauseScheduleParams{Name: "report", Now: slot(1).Add(time.Second)})
	require.NoError(t, err)
	rec, err := s.ResumeSchedule(t.Context(), store.ResumeScheduleParams{Name: "report", Now: slot(3).Add(time.Minute)})
	require.NoError(t, err)
	require.Nil(t, rec.Buffered, "a resume drops the held slot")
	requireTimePtr(t, slot(4), rec.NextRunAt, "next_run_at")

	require.Empty(t, fireAt(t, s, slot(4)).Runs, "the first run is still live: slot 4 is held")
	def.Cron = "*/10 * * * *"
	rec, _ = putSchedule(t, s, def, slot(4).Add(time.Second))
	require.Nil(t, rec.Buffered, "a changed definition drops the held slot")
	require.Nil(t, getSchedule(t, s, "report").Buffered)
}

// testSchedulePutConcurrently is agents starting together, each putting
// the schedules of the same configuration file.
func testSchedulePutConcurrently(t *testing.T, s store.Store) {
	const agents = 4
	var wg sync.WaitGroup
	created := make([]bool, agents)
	errs := make([]error, agents)
	for i := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created[i], errs[i] = s.PutSchedule(t.Context(), store.PutScheduleParams{Def: cronJob("report"), Now: base})
		}()
	}
	wg.Wait()
	n := 0
	for i := range agents {
		require.NoError(t, errs[i], "agent %d", i)
		if created[i] {
			n++
		}
	}
	require.Equal(t, 1, n, "one agent creates the schedule, the others find it unchanged")
	requireTimePtr(t, slot(0), getSchedule(t, s, "report").NextRunAt, "next_run_at")
}
