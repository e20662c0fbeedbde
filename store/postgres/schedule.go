package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/schedule"
	"github.com/hammerwork-go/hw-agent/store"
)

var _ store.Schedules = (*Store)(nil)

// scheduleColumns are the columns of hammerwork_schedules in the order
// scanSchedule reads and scheduleRow writes them; name comes first.
var scheduleColumns = []string{
	"name", "cron", "timezone", "target", "overlap", "catchup", "catchup_window_ms", "jitter_ms",
	"start_at", "end_at", "depends_on_schedule", "paused", "paused_reason", "paused_at",
	"next_run_at", "cursor_at", "buffered_at", "last_run_at", "last_job_id", "last_workflow_id",
	"created_at", "updated_at",
}

var (
	scheduleCols = strings.Join(scheduleColumns, ", ")

	// insertScheduleSQL writes a new schedule; a concurrent first put of the
	// same name makes it return no row (see PutSchedule).
	insertScheduleSQL = `INSERT INTO hammerwork_schedules (` + scheduleCols + `) VALUES (` + placeholders(1, len(scheduleColumns)) + `)
ON CONFLICT (name) DO NOTHING RETURNING ` + scheduleCols

	// updateScheduleSQL rewrites every column of a schedule but its name.
	updateScheduleSQL = `UPDATE hammerwork_schedules SET (` + strings.Join(scheduleColumns[1:], ", ") + `) = (` +
		placeholders(2, len(scheduleColumns)) + `) WHERE name = $1 RETURNING ` + scheduleCols

	lockScheduleSQL = `SELECT ` + scheduleCols + ` FROM hammerwork_schedules WHERE name = $1 FOR UPDATE`

	// dueScheduleSQL takes the schedule a pass fires next: the partial index
	// on next_run_at serves it, rows another agent is firing are skipped,
	// and those taken earlier in the same pass are left for the next.
	dueScheduleSQL = `SELECT ` + scheduleCols + ` FROM hammerwork_schedules
WHERE NOT paused AND next_run_at <= $1 AND name <> ALL ($2::text[])
ORDER BY next_run_at, name LIMIT 1 FOR UPDATE SKIP LOCKED`

	// saveStateSQL writes store.ScheduleState, the part of a row that firing,
	// triggering and resuming change.
	saveStateSQL = `UPDATE hammerwork_schedules SET cursor_at = $2, buffered_at = $3, next_run_at = $4,
    last_run_at = $5, last_job_id = $6, last_workflow_id = $7
WHERE name = $1 RETURNING ` + scheduleCols
)

// runCols are the columns of hammerwork_schedule_runs as scanRun reads them.
const runCols = `schedule_name, nominal_time, fired_at, outcome, triggered, job_id, workflow_id, note`

// insertRunsSQL writes the runs of one transaction in one statement.
const insertRunsSQL = `INSERT INTO hammerwork_schedule_runs (` + runCols + `)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::text[], $5::bool[],
    $6::uuid[], $7::uuid[], $8::text[])`

// trimRunsSQL deletes a schedule's runs older than its newest $2, walking
// the primary key backwards from the newest.
const trimRunsSQL = `DELETE FROM hammerwork_schedule_runs WHERE schedule_name = $1 AND nominal_time <= (
    SELECT nominal_time FROM hammerwork_schedule_runs WHERE schedule_name = $1
    ORDER BY nominal_time DESC OFFSET $2 LIMIT 1)`

// liveSQL says whether a schedule's latest run is unfinished: its job
// pending or running, or its workflow running or paused.
const liveSQL = `SELECT EXISTS (SELECT 1 FROM hammerwork_jobs WHERE id = $1 AND status IN ('pending', 'running'))
    OR EXISTS (SELECT 1 FROM hammerwork_workflows WHERE id = $2 AND status IN ('running', 'paused'))`

// dependencySQL reads the latest job of the schedule depended on and, when
// that job still exists, locks it FOR SHARE, so that it can neither finish
// nor be deleted before the new job's edge to it commits.
const dependencySQL = `SELECT s.last_job_id,
    (SELECT j.id FROM hammerwork_jobs j WHERE j.id = s.last_job_id FOR SHARE)
FROM hammerwork_schedules s WHERE s.name = $1`

// placeholders renders "$from, ..., $to".
func placeholders(from, to int) string {
	ps := make([]string, 0, to-from+1)
	for i := from; i <= to; i++ {
		ps = append(ps, fmt.Sprintf("$%d", i))
	}
	return strings.Join(ps, ", ")
}

// scanSchedule reads one row of scheduleCols.
func scanSchedule(row store.Scanner) (*store.ScheduleRecord, error) {
	var (
		r                              store.ScheduleRecord
		target, overlap, catchup       string
		windowMS, jitterMS             int64
		dependsOn, reason              *string
		startAt, endAt, pausedAt, next *time.Time
		buffered, lastRun              *time.Time
		cursor, created, updated       time.Time
		lastJob, lastWorkflow          *uuid.UUID
	)
	if err := row.Scan(&r.Name, &r.Cron, &r.Timezone, &target, &overlap, &catchup, &windowMS, &jitterMS,
		&startAt, &endAt, &dependsOn, &r.Paused, &reason, &pausedAt,
		&next, &cursor, &buffered, &lastRun, &lastJob, &lastWorkflow, &created, &updated); err != nil {
		return nil, err
	}
	t, err := store.ParseTarget([]byte(target))
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", r.Name, err)
	}
	r.Target = t
	r.Overlap = schedule.Overlap(overlap)
	r.Catchup = schedule.Catchup(catchup)
	r.CatchupWindow = job.Duration(time.Duration(windowMS) * time.Millisecond)
	r.Jitter = job.Duration(time.Duration(jitterMS) * time.Millisecond)
	r.StartAt, r.EndAt = utcPtr(startAt), utcPtr(endAt)
	r.DependsOnSchedule = str(dependsOn)
	r.PausedReason = str(reason)
	r.PausedAt = utcPtr(pausedAt)
	r.NextRunAt = utcPtr(next)
	r.Cursor = store.UTC(cursor)
	r.Buffered = utcPtr(buffered)
	r.LastRunAt = utcPtr(lastRun)
	r.LastJobID, r.LastWorkflowID = lastJob, lastWorkflow
	r.CreatedAt, r.UpdatedAt = store.UTC(created), store.UTC(updated)
	return &r, nil
}

// scheduleRow is rec's values in scheduleColumns order.
func scheduleRow(rec *store.ScheduleRecord) ([]any, error) {
	target, err := rec.Target.MarshalTarget()
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", rec.Name, err)
	}
	return []any{rec.Name, rec.Cron, rec.Timezone, target, string(rec.Overlap), string(rec.Catchup),
		rec.CatchupWindow.D().Milliseconds(), rec.Jitter.D().Milliseconds(),
		rec.StartAt, rec.EndAt, nullStr(rec.DependsOnSchedule), rec.Paused, nullStr(rec.PausedReason), rec.PausedAt,
		rec.NextRunAt, rec.Cursor, rec.Buffered, rec.LastRunAt, rec.LastJobID, rec.LastWorkflowID,
		rec.CreatedAt, rec.UpdatedAt}, nil
}

// scanRun reads one row of runCols.
func scanRun(row store.Scanner) (*store.ScheduleRun, error) {
	var (
		r              store.ScheduleRun
		outcome        string
		nominal, fired time.Time
		note           *string
	)
	if err := row.Scan(&r.Schedule, &nominal, &fired, &outcome, &r.Triggered, &r.JobID, &r.WorkflowID, &note); err != nil {
		return nil, err
	}
	r.NominalTime, r.FiredAt = store.UTC(nominal), store.UTC(fired)
	r.Outcome = store.RunOutcome(outcome)
	r.Note = str(note)
	return &r, nil
}

// lockSchedule reads a schedule FOR UPDATE; nil when there is none.
func lockSchedule(ctx context.Context, tx pgx.Tx, name string) (*store.ScheduleRecord, error) {
	rec, err := scanSchedule(tx.QueryRow(ctx, lockScheduleSQL, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return rec, err
}

// errPutRaced says a concurrent first put of the same name inserted the row
// between this put's read and its insert.
var errPutRaced = errors.New("schedule created concurrently")

// PutSchedule creates or replaces a schedule as store.PlanSchedulePut
// decides, the stored row held FOR UPDATE so that puts and fires of one
// schedule take turns. Two first puts of one name both find no row; the
// one whose insert finds the other's runs again once and then sees the row,
// so the result is one schedule either way.
func (s *Store) PutSchedule(ctx context.Context, p store.PutScheduleParams) (*store.ScheduleRecord, bool, error) {
	name := p.Def.Name
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, false, wrap(err, "put schedule %q", name)
	}
	var (
		rec     *store.ScheduleRecord
		created bool
	)
	put := func(tx pgx.Tx) error {
		existing, err := lockSchedule(ctx, tx, name)
		if err != nil {
			return err
		}
		next, changed, err := store.PlanSchedulePut(existing, p, at)
		if err != nil {
			return err
		}
		rec, created = next, existing == nil
		if !changed {
			return nil
		}
		row, err := scheduleRow(next)
		if err != nil {
			return err
		}
		if existing != nil {
			rec, err = scanSchedule(tx.QueryRow(ctx, updateScheduleSQL, row...))
			return err
		}
		rec, err = scanSchedule(tx.QueryRow(ctx, insertScheduleSQL, row...))
		if errors.Is(err, pgx.ErrNoRows) {
			return errPutRaced
		}
		return err
	}
	err = s.inTx(ctx, put)
	if errors.Is(err, errPutRaced) {
		err = s.inTx(ctx, put)
	}
	if err != nil {
		return nil, false, wrap(err, "put schedule %q", name)
	}
	return rec, created, nil
}

// GetSchedule returns one schedule, or ErrNotFound.
func (s *Store) GetSchedule(ctx context.Context, name string) (*store.ScheduleRecord, error) {
	rec, err := scanSchedule(s.pool.QueryRow(ctx, `SELECT `+scheduleCols+` FROM hammerwork_schedules WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get schedule %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "get schedule %q", name)
	}
	return rec, nil
}

// ListSchedules lists schedules by name from the primary key, one page at a
// time; names compare byte by byte (the column's "C" collation), as on
// every backend.
func (s *Store) ListSchedules(ctx context.Context, p store.ListSchedulesParams) (*store.SchedulePage, error) {
	pg := p.Paging()
	rows, err := s.pool.Query(ctx, `SELECT `+scheduleCols+` FROM hammerwork_schedules
WHERE name > $1 ORDER BY name LIMIT $2`, pg.After, pg.Fetch())
	if err != nil {
		return nil, wrap(err, "list schedules")
	}
	defer rows.Close()
	recs, err := store.CollectScanned(rows, scanSchedule)
	if err != nil {
		return nil, wrap(err, "list schedules")
	}
	return pg.Page(recs), nil
}

// DeleteSchedule removes a schedule, then its runs, in one transaction. The
// row goes first: it waits for a fire holding it, so the runs that fire
// wrote are committed, and deleted, by the time the runs are.
func (s *Store) DeleteSchedule(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM hammerwork_schedules WHERE name = $1`, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		_, err = tx.Exec(ctx, `DELETE FROM hammerwork_schedule_runs WHERE schedule_name = $1`, name)
		return err
	})
	if err != nil {
		return wrap(err, "delete schedule %q", name)
	}
	return nil
}

// PruneSchedules deletes every schedule not in p.Keep, then their runs, in
// one transaction (in that order for the reason DeleteSchedule gives).
func (s *Store) PruneSchedules(ctx context.Context, p store.PruneSchedulesParams) ([]string, error) {
	keep := p.Keep
	if keep == nil {
		keep = []string{} // NULL would make name <> ALL (...) unknown and keep everything
	}
	var names []string
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM hammerwork_schedules WHERE name <> ALL ($1::text[]) RETURNING name`, keep)
		if err != nil {
			return err
		}
		if names, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if len(names) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `DELETE FROM hammerwork_schedule_runs WHERE schedule_name = ANY ($1::text[])`, names)
		return err
	})
	if err != nil {
		return nil, wrap(err, "prune schedules")
	}
	slices.Sort(names)
	return names, nil
}

// PauseSchedule pauses a schedule in one statement; paused_at keeps the
// first pause's time when the schedule was paused already.
func (s *Store) PauseSchedule(ctx context.Context, p store.PauseScheduleParams) (*store.ScheduleRecord, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "pause schedule %q", p.Name)
	}
	rec, err := scanSchedule(s.pool.QueryRow(ctx, `UPDATE hammerwork_schedules
SET paused = true, paused_reason = $2, paused_at = CASE WHEN paused THEN paused_at ELSE $3 END
WHERE name = $1 RETURNING `+scheduleCols, p.Name, nullStr(p.Reason), at))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pause schedule %q: %w", p.Name, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "pause schedule %q", p.Name)
	}
	return rec, nil
}

// ResumeSchedule lifts a pause and writes store.PlanScheduleResume's state
// in one transaction holding the row; a schedule that is not paused is
// returned as it is.
func (s *Store) ResumeSchedule(ctx context.Context, p store.ResumeScheduleParams) (*store.ScheduleRecord, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "resume schedule %q", p.Name)
	}
	var rec *store.ScheduleRecord
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if rec, err = lockSchedule(ctx, tx, p.Name); err != nil {
			return err
		}
		if rec == nil {
			return store.ErrNotFound
		}
		if !rec.Paused {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE hammerwork_schedules
SET paused = false, paused_reason = NULL, paused_at = NULL WHERE name = $1`, p.Name); err != nil {
			return err
		}
		rec, err = saveState(ctx, tx, p.Name, store.PlanScheduleResume(rec, at))
		return err
	})
	if err != nil {
		return nil, wrap(err, "resume schedule %q", p.Name)
	}
	return rec, nil
}

// TriggerSchedule writes store.PlanScheduleTrigger's run, its job or
// workflow and the schedule's latest run in one transaction holding the
// row, as a fire would, whatever the pause and overlap.
func (s *Store) TriggerSchedule(ctx context.Context, p store.TriggerScheduleParams) (*store.ScheduleRun, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "trigger schedule %q", p.Name)
	}
	var run *store.ScheduleRun
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		rec, err := lockSchedule(ctx, tx, p.Name)
		if err != nil {
			return err
		}
		if rec == nil {
			return store.ErrNotFound
		}
		in := store.FireInput{Schedule: rec, Trace: p.Trace, Now: at}
		if in.Dependency, in.DependencyRan, err = readDependency(ctx, tx, rec.DependsOnSchedule); err != nil {
			return err
		}
		pr, st, err := store.PlanScheduleTrigger(in)
		if err != nil {
			return err
		}
		pr.Run.FiredAt = at
		runs, _, err := writeTargets(ctx, tx, []store.PlannedRun{pr}, &st, at)
		if err != nil {
			return err
		}
		if err := writeRuns(ctx, tx, rec.Name, runs, st); err != nil {
			return err
		}
		run = runs[0]
		return nil
	})
	if err != nil {
		return nil, wrap(err, "trigger schedule %q", p.Name)
	}
	return run, nil
}

// ScheduleRuns pages one schedule's runs newest first, from the primary
// key; an empty page checks that the schedule exists.
func (s *Store) ScheduleRuns(ctx context.Context, p store.ScheduleRunsParams) (*store.ScheduleRunPage, error) {
	pg, err := p.Paging()
	if err != nil {
		return nil, fmt.Errorf("list runs of schedule %q: %w", p.Name, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+runCols+` FROM hammerwork_schedule_runs
WHERE schedule_name = $1 AND ($2::timestamptz IS NULL OR nominal_time < $2)
ORDER BY nominal_time DESC LIMIT $3`, p.Name, pg.Before, pg.Fetch())
	if err != nil {
		return nil, wrap(err, "list runs of schedule %q", p.Name)
	}
	defer rows.Close()
	runs, err := store.CollectScanned(rows, scanRun)
	if err != nil {
		return nil, wrap(err, "list runs of schedule %q", p.Name)
	}
	if len(runs) == 0 {
		if _, err := s.GetSchedule(ctx, p.Name); err != nil {
			return nil, err
		}
	}
	return pg.Page(runs), nil
}

// fired is what one schedule's fire wrote, or why it failed.
type fired struct {
	name   string
	runs   []*store.ScheduleRun
	missed int
	queues []string
	err    error
}

// FireSchedules takes due schedules one transaction each (fireNext) until
// p.Limit were taken or none is due. A pass takes each schedule once: one
// that is due again at once (a buffered slot waiting for its live run) or
// that failed waits for the next pass instead of using up this one.
func (s *Store) FireSchedules(ctx context.Context, p store.FireSchedulesParams) (*store.FireResult, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "fire schedules")
	}
	res := &store.FireResult{Missed: map[string]int{}, Errors: map[string]error{}}
	taken := []string{}
	for res.Taken < max(p.Limit, 1) {
		f, err := s.fireNext(ctx, p, at, taken)
		if err != nil {
			return nil, err
		}
		if f == nil {
			break
		}
		res.Taken++
		taken = append(taken, f.name)
		res.Runs = append(res.Runs, f.runs...)
		if f.missed > 0 {
			res.Missed[f.name] = f.missed
		}
		for _, q := range f.queues {
			if !slices.Contains(res.Queues, q) {
				res.Queues = append(res.Queues, q)
			}
		}
		if f.err != nil {
			res.Errors[f.name] = f.err
		}
	}
	slices.Sort(res.Queues)
	return res, nil
}

// fireNext takes the next due schedule and writes its store.PlanScheduleFire
// plan in one transaction; nil when none is due. A plan whose target can no
// longer be written (ErrInvalid, ErrConflict) is rolled back and then
// written as skipped runs by skipBroken; any other failure leaves the
// schedule due. Only a failure to find a due schedule is returned as an
// error: a schedule's own failure is reported in fired.err.
func (s *Store) fireNext(ctx context.Context, p store.FireSchedulesParams, at time.Time, skip []string) (*fired, error) {
	var (
		rec    *store.ScheduleRecord
		plan   *store.FirePlan
		out    *fired
		broken error
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rec, plan, out, broken = nil, nil, nil, nil
		var err error
		if rec, err = scanSchedule(tx.QueryRow(ctx, dueScheduleSQL, at, skip)); err != nil {
			rec = nil
			return err
		}
		in := store.FireInput{Schedule: rec, Trace: p.Trace, Rand: p.Rand, Now: at}
		if in.Live, err = isLive(ctx, tx, rec); err != nil {
			return err
		}
		if in.Dependency, in.DependencyRan, err = readDependency(ctx, tx, rec.DependsOnSchedule); err != nil {
			return err
		}
		if plan, err = store.PlanScheduleFire(in); err != nil {
			return err
		}
		st := plan.State
		runs, queues, err := writeTargets(ctx, tx, plan.Runs, &st, at)
		if err != nil {
			if errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict) {
				broken = err
			}
			return err
		}
		out = &fired{name: rec.Name, runs: runs, missed: plan.Missed, queues: queues}
		if err := addMissed(ctx, tx, rec.Name, plan.Missed); err != nil {
			return err
		}
		return writeRuns(ctx, tx, rec.Name, runs, st)
	})
	switch {
	case rec == nil && errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case rec == nil:
		return nil, wrap(err, "find due schedules")
	case err == nil:
		return out, nil
	case broken == nil:
		return &fired{name: rec.Name, err: wrap(err, "fire schedule %q", rec.Name)}, nil
	}
	out = &fired{name: rec.Name, err: fmt.Errorf("fire schedule %q: %w", rec.Name, broken)}
	runs, err := s.skipBroken(ctx, rec, plan, broken, at)
	if err != nil {
		out.err = errors.Join(out.err, wrap(err, "record the runs of schedule %q as skipped", rec.Name))
		return out, nil
	}
	if runs != nil {
		out.runs, out.missed = runs, plan.Missed
	}
	return out, nil
}

// skipBroken writes a plan whose target failed as skipped runs noting the
// error, and the planned cursor, buffer and next run (the latest run stays
// the record's, as nothing fired), so a broken target costs its slots
// instead of failing every pass. It is guarded by the row fireNext read:
// when another agent fired the schedule since, or it was changed or
// paused, it writes nothing and returns nil.
func (s *Store) skipBroken(ctx context.Context, rec *store.ScheduleRecord, plan *store.FirePlan, cause error, at time.Time) ([]*store.ScheduleRun, error) {
	var runs []*store.ScheduleRun
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		runs = nil
		var held bool
		err := tx.QueryRow(ctx, `SELECT true FROM hammerwork_schedules
WHERE name = $1 AND cursor_at = $2 AND updated_at = $3 AND NOT paused AND next_run_at <= $4 FOR UPDATE`,
			rec.Name, rec.Cursor, rec.UpdatedAt, at).Scan(&held)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		written := make([]*store.ScheduleRun, len(plan.Runs))
		for i, pr := range plan.Runs {
			run := pr.Run
			run.Outcome, run.JobID, run.WorkflowID, run.Note = store.RunSkipped, nil, nil, cause.Error()
			written[i] = &run
		}
		st := plan.State
		st.LastRunAt, st.LastJobID, st.LastWorkflowID = rec.LastRunAt, rec.LastJobID, rec.LastWorkflowID
		if err := addMissed(ctx, tx, rec.Name, plan.Missed); err != nil {
			return err
		}
		if err := writeRuns(ctx, tx, rec.Name, written, st); err != nil {
			return err
		}
		runs = written
		return nil
	})
	return runs, err
}

// isLive reads whether the schedule's latest run has not finished.
func isLive(ctx context.Context, tx pgx.Tx, rec *store.ScheduleRecord) (bool, error) {
	if rec.LastJobID == nil && rec.LastWorkflowID == nil {
		return false, nil
	}
	var live bool
	err := tx.QueryRow(ctx, liveSQL, rec.LastJobID, rec.LastWorkflowID).Scan(&live)
	return live, err
}

// readDependency reads the latest job of the schedule named (none for ""):
// ran reports that it had one, dep names it while its row exists.
func readDependency(ctx context.Context, tx pgx.Tx, name string) (dep *uuid.UUID, ran bool, err error) {
	if name == "" {
		return nil, false, nil
	}
	var last *uuid.UUID
	err = tx.QueryRow(ctx, dependencySQL, name).Scan(&last, &dep)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the latest job of schedule %q: %w", name, err)
	}
	return dep, last != nil, nil
}

// writeTargets writes the jobs of the planned runs in one call of
// enqueueTx, the code of Enqueue (validation, depends_on, unique keys,
// NOTIFY), and each workflow as EnqueueWorkflow does. It returns the runs
// naming what was written, a job deduplicated by its unique key naming the
// live job holding the key, points st's latest run at the same, and lists
// the queues that got new jobs.
func writeTargets(ctx context.Context, tx pgx.Tx, planned []store.PlannedRun, st *store.ScheduleState, at time.Time) ([]*store.ScheduleRun, []string, error) {
	runs := make([]*store.ScheduleRun, len(planned))
	var (
		news   []store.NewJob
		jobRun []int // jobRun[k] is the run of news[k]
		queues []string
	)
	for i, pr := range planned {
		run := pr.Run
		runs[i] = &run
		switch {
		case pr.Job != nil:
			news = append(news, *pr.Job)
			jobRun = append(jobRun, i)
		case pr.Workflow != nil:
			wf, err := store.PlanWorkflow(*pr.Workflow, at)
			if err != nil {
				return nil, nil, err
			}
			if err := writeWorkflow(ctx, tx, wf); err != nil {
				return nil, nil, workflowError(err, wf.Workflow.Name)
			}
			for _, j := range wf.Jobs {
				queues = append(queues, j.Queue)
			}
		}
	}
	if len(news) == 0 {
		return runs, queues, nil
	}
	if err := validateJobs(news); err != nil {
		return nil, nil, err
	}
	jobs, err := enqueueTx(ctx, tx, news, at)
	if err != nil {
		return nil, nil, enqueueError(err, len(news))
	}
	for k, j := range jobs {
		id := j.ID
		if st.LastJobID != nil && *st.LastJobID == news[k].ID {
			st.LastJobID = &id
		}
		runs[jobRun[k]].JobID = &id
		if id == news[k].ID {
			queues = append(queues, j.Queue)
		}
	}
	return runs, queues, nil
}

// writeRuns inserts the run rows, whose primary key refuses a slot written
// before, saves the schedule's state and trims its runs to the newest
// store.ScheduleRunsKept.
func writeRuns(ctx context.Context, tx pgx.Tx, name string, runs []*store.ScheduleRun, st store.ScheduleState) error {
	if len(runs) > 0 {
		n := len(runs)
		var (
			names, outcomes  []string
			nominal, firedAt = make([]time.Time, n), make([]time.Time, n)
			triggered        = make([]bool, n)
			jobIDs, wfIDs    = make([]*uuid.UUID, n), make([]*uuid.UUID, n)
			notes            = make([]*string, n)
		)
		for i, r := range runs {
			names, outcomes = append(names, r.Schedule), append(outcomes, string(r.Outcome))
			nominal[i], firedAt[i], triggered[i] = r.NominalTime, r.FiredAt, r.Triggered
			jobIDs[i], wfIDs[i], notes[i] = r.JobID, r.WorkflowID, nullStr(r.Note)
		}
		if _, err := tx.Exec(ctx, insertRunsSQL, names, nominal, firedAt, outcomes, triggered, jobIDs, wfIDs, notes); err != nil {
			return fmt.Errorf("insert runs: %w", err)
		}
	}
	if _, err := saveState(ctx, tx, name, st); err != nil {
		return err
	}
	if len(runs) > 0 {
		if _, err := tx.Exec(ctx, trimRunsSQL, name, store.ScheduleRunsKept); err != nil {
			return fmt.Errorf("trim runs: %w", err)
		}
	}
	return nil
}

// addMissed adds the slots a fire let pass to missed_slots, whose increase
// the events trigger records as schedule.missed; none writes nothing.
func addMissed(ctx context.Context, tx pgx.Tx, name string, missed int) error {
	if missed <= 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `UPDATE hammerwork_schedules SET missed_slots = missed_slots + $2 WHERE name = $1`, name, missed); err != nil {
		return fmt.Errorf("count missed slots: %w", err)
	}
	return nil
}

// saveState writes st to the schedule and returns the row.
func saveState(ctx context.Context, tx pgx.Tx, name string, st store.ScheduleState) (*store.ScheduleRecord, error) {
	rec, err := scanSchedule(tx.QueryRow(ctx, saveStateSQL, name, st.Cursor, st.Buffered, st.NextRunAt,
		st.LastRunAt, st.LastJobID, st.LastWorkflowID))
	if err != nil {
		return nil, fmt.Errorf("save state: %w", err)
	}
	return rec, nil
}
