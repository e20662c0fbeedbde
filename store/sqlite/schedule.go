package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/schedule"
	"github.com/hammerwork-go/hw-agent/store"
)

var _ store.Schedules = (*Store)(nil)

// scheduleColumnList is every column of hammerwork_schedules in
// scanSchedule's and scheduleArgs' order.
var scheduleColumnList = []string{
	"name", "cron", "timezone", "target", "overlap", "catchup", "catchup_window_ms", "jitter_ms",
	"start_at", "end_at", "depends_on_schedule", "paused", "paused_reason", "paused_at",
	"next_run_at", "cursor_at", "buffered_at", "last_run_at", "last_job_id", "last_workflow_id",
	"created_at", "updated_at",
}

var scheduleColumns = strings.Join(scheduleColumnList, ", ")

// upsertSchedule writes a whole schedule row: PlanSchedulePut's record, new
// or replacing the stored one (whose created_at stays).
var upsertSchedule = func() string {
	var set []string
	for _, c := range scheduleColumnList {
		if c != "name" && c != "created_at" {
			set = append(set, c+" = excluded."+c)
		}
	}
	return `INSERT INTO hammerwork_schedules (` + scheduleColumns + `) VALUES (?` +
		strings.Repeat(", ?", len(scheduleColumnList)-1) + `)
		ON CONFLICT (name) DO UPDATE SET ` + strings.Join(set, ", ")
}()

const runColumns = `schedule_name, nominal_time, fired_at, outcome, triggered, job_id, workflow_id, note`

// scanSchedule reads one row of scheduleColumns.
func scanSchedule(row store.Scanner) (*store.ScheduleRecord, error) {
	var (
		r                                                   store.ScheduleRecord
		target                                              []byte
		overlap, catchup                                    string
		windowMS, jitterMS                                  int64
		dependsOn, reason                                   sql.NullString
		startAt, endAt, pausedAt, nextRun, cursor, buffered store.SQLTime
		lastRun, created, updated                           store.SQLTime
	)
	if err := row.Scan(&r.Name, &r.Cron, &r.Timezone, &target, &overlap, &catchup, &windowMS, &jitterMS,
		&startAt, &endAt, &dependsOn, &r.Paused, &reason, &pausedAt,
		&nextRun, &cursor, &buffered, &lastRun, &r.LastJobID, &r.LastWorkflowID,
		&created, &updated); err != nil {
		return nil, err
	}
	t, err := store.ParseTarget(target)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", r.Name, err)
	}
	r.Target = t
	r.Overlap, r.Catchup = schedule.Overlap(overlap), schedule.Catchup(catchup)
	r.CatchupWindow = job.Duration(time.Duration(windowMS) * time.Millisecond)
	r.Jitter = job.Duration(time.Duration(jitterMS) * time.Millisecond)
	r.StartAt, r.EndAt = startAt.Ptr(), endAt.Ptr()
	r.DependsOnSchedule = dependsOn.String
	r.PausedReason, r.PausedAt = reason.String, pausedAt.Ptr()
	r.NextRunAt, r.Cursor, r.Buffered, r.LastRunAt = nextRun.Ptr(), cursor.Time, buffered.Ptr(), lastRun.Ptr()
	r.CreatedAt, r.UpdatedAt = created.Time, updated.Time
	return &r, nil
}

// scheduleArgs is upsertSchedule's arguments for r.
func scheduleArgs(r *store.ScheduleRecord) ([]any, error) {
	target, err := r.Target.MarshalTarget()
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", r.Name, err)
	}
	return []any{
		r.Name, r.Cron, r.Timezone, target, string(r.Overlap), string(r.Catchup),
		r.CatchupWindow.D().Milliseconds(), r.Jitter.D().Milliseconds(),
		nullTS(r.StartAt), nullTS(r.EndAt), nullString(r.DependsOnSchedule),
		sqlBool(r.Paused), nullString(r.PausedReason), nullTS(r.PausedAt),
		nullTS(r.NextRunAt), ts(r.Cursor), nullTS(r.Buffered), nullTS(r.LastRunAt),
		nullUUID(r.LastJobID), nullUUID(r.LastWorkflowID), ts(r.CreatedAt), ts(r.UpdatedAt),
	}, nil
}

// scanRun reads one row of runColumns.
func scanRun(row store.Scanner) (*store.ScheduleRun, error) {
	var (
		r              store.ScheduleRun
		outcome        string
		nominal, fired store.SQLTime
		note           sql.NullString
	)
	if err := row.Scan(&r.Schedule, &nominal, &fired, &outcome, &r.Triggered, &r.JobID, &r.WorkflowID, &note); err != nil {
		return nil, err
	}
	r.NominalTime, r.FiredAt = nominal.Time, fired.Time
	r.Outcome, r.Note = store.RunOutcome(outcome), note.String
	return &r, nil
}

// sqlBool stores a boolean as SQLite's 0 or 1.
func sqlBool(b bool) int {
	if b {
		return 1
	}
	return 0
}

// getSchedule reads one schedule, or ErrNotFound.
func getSchedule(ctx context.Context, q querier, name string) (*store.ScheduleRecord, error) {
	r, err := scanSchedule(q.QueryRowContext(ctx, `SELECT `+scheduleColumns+` FROM hammerwork_schedules WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return r, err
}

// PutSchedule validates the definition before taking the write lock, then
// reads the stored row and writes what PlanSchedulePut decides in one
// transaction. The row is read back, so the record returned is the one
// GetSchedule returns (JSON payloads as stored).
func (s *Store) PutSchedule(ctx context.Context, p store.PutScheduleParams) (*store.ScheduleRecord, bool, error) {
	if err := p.Def.Validate(); err != nil {
		return nil, false, fmt.Errorf("put schedule %q: %w", p.Def.Name, err)
	}
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, false, fmt.Errorf("put schedule %q: %w", p.Def.Name, err)
	}
	var rec *store.ScheduleRecord
	var created bool
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		existing, err := getSchedule(ctx, tx, p.Def.Name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		next, changed, err := store.PlanSchedulePut(existing, p, now)
		if err != nil || !changed {
			rec = next
			return err
		}
		args, err := scheduleArgs(next)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, upsertSchedule, args...); err != nil {
			return err
		}
		created = existing == nil
		rec, err = getSchedule(ctx, tx, p.Def.Name)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("put schedule %q: %w", p.Def.Name, err)
	}
	return rec, created, nil
}

// GetSchedule returns one schedule, or ErrNotFound.
func (s *Store) GetSchedule(ctx context.Context, name string) (*store.ScheduleRecord, error) {
	r, err := getSchedule(ctx, s.read, name)
	if err != nil {
		return nil, fmt.Errorf("get schedule %q: %w", name, dbErr(err))
	}
	return r, nil
}

// ListSchedules lists schedules by name, one page at a time.
func (s *Store) ListSchedules(ctx context.Context, p store.ListSchedulesParams) (*store.SchedulePage, error) {
	pg := p.Paging()
	rows, err := s.read.QueryContext(ctx, `SELECT `+scheduleColumns+` FROM hammerwork_schedules
		WHERE name > ? ORDER BY name LIMIT ?`, pg.After, pg.Fetch())
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", dbErr(err))
	}
	defer rows.Close()
	recs, err := store.CollectScanned(rows, scanSchedule)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	return pg.Page(recs), nil
}

// DeleteSchedule removes a schedule and its runs in one transaction.
func (s *Store) DeleteSchedule(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		n, err := deleteSchedules(ctx, tx, []string{name})
		if err == nil && n == 0 {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete schedule %q: %w", name, err)
	}
	return nil
}

// PruneSchedules reads and deletes the schedules not kept in one
// transaction, so the names returned are the ones deleted.
func (s *Store) PruneSchedules(ctx context.Context, p store.PruneSchedulesParams) ([]string, error) {
	keep := p.Keep
	if keep == nil {
		keep = []string{} // jsonList(nil) is JSON null, against which NOT IN matches no name
	}
	var names []string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		names, err = store.QueryStrings(ctx, tx, `SELECT name FROM hammerwork_schedules
			WHERE name NOT IN (SELECT value FROM json_each(?)) ORDER BY name`, jsonList(keep))
		if err != nil || len(names) == 0 {
			return err
		}
		_, err = deleteSchedules(ctx, tx, names)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prune schedules: %w", err)
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// deleteSchedules deletes the named schedules and their runs in the
// caller's transaction and counts the schedules deleted. The jobs and
// workflows the runs created stay.
func deleteSchedules(ctx context.Context, tx *sql.Tx, names []string) (int64, error) {
	list := jsonList(names)
	if _, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_schedule_runs
		WHERE schedule_name IN (SELECT value FROM json_each(?))`, list); err != nil {
		return 0, fmt.Errorf("delete runs: %w", err)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_schedules WHERE name IN (SELECT value FROM json_each(?))`, list)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// PauseSchedule pauses a schedule in one statement; paused_at keeps the
// time of the first pause when the schedule already was paused.
func (s *Store) PauseSchedule(ctx context.Context, p store.PauseScheduleParams) (*store.ScheduleRecord, error) {
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, fmt.Errorf("pause schedule %q: %w", p.Name, err)
	}
	var rec *store.ScheduleRecord
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		rec, err = scanSchedule(tx.QueryRowContext(ctx, `UPDATE hammerwork_schedules
			SET paused = 1, paused_reason = ?, paused_at = CASE WHEN paused = 1 THEN paused_at ELSE ? END
			WHERE name = ? RETURNING `+scheduleColumns, nullString(p.Reason), ts(now), p.Name))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pause schedule %q: %w", p.Name, err)
	}
	return rec, nil
}

// ResumeSchedule reads the schedule and, when it is paused, lifts the pause
// with PlanScheduleResume's state, in one transaction.
func (s *Store) ResumeSchedule(ctx context.Context, p store.ResumeScheduleParams) (*store.ScheduleRecord, error) {
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, fmt.Errorf("resume schedule %q: %w", p.Name, err)
	}
	var rec *store.ScheduleRecord
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if rec, err = getSchedule(ctx, tx, p.Name); err != nil || !rec.Paused {
			return err
		}
		st := store.PlanScheduleResume(rec, now)
		rec, err = scanSchedule(tx.QueryRowContext(ctx, `UPDATE hammerwork_schedules
			SET paused = 0, paused_reason = NULL, paused_at = NULL,
				cursor_at = ?, buffered_at = ?, next_run_at = ?, last_run_at = ?, last_job_id = ?, last_workflow_id = ?
			WHERE name = ? AND paused = 1 RETURNING `+scheduleColumns, append(stateArgs(st), p.Name)...))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("resume schedule %q: %w", p.Name, err)
	}
	return rec, nil
}

// TriggerSchedule reads the schedule and its dependency, and writes
// PlanScheduleTrigger's run, its job or workflow and the schedule's last
// run in one transaction.
func (s *Store) TriggerSchedule(ctx context.Context, p store.TriggerScheduleParams) (*store.ScheduleRun, error) {
	var run *store.ScheduleRun
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now, err := s.clock.At(ctx, p.Now)
		if err != nil {
			return err
		}
		rec, err := getSchedule(ctx, tx, p.Name)
		if err != nil {
			return err
		}
		in, err := readFireInput(ctx, tx, rec)
		if err != nil {
			return err
		}
		in.Trace, in.Now = p.Trace, now
		pr, st, err := store.PlanScheduleTrigger(in)
		if err != nil {
			return err
		}
		pr.Run.FiredAt = now
		runs, _, err := writeFire(ctx, tx, rec.Name, []store.PlannedRun{pr}, st, 0, now)
		if err != nil {
			return err
		}
		run = runs[0]
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("trigger schedule %q: %w", p.Name, err)
	}
	return run, nil
}

// ScheduleRuns pages one schedule's runs, newest first, along the primary
// key. An empty page checks that the schedule exists.
func (s *Store) ScheduleRuns(ctx context.Context, p store.ScheduleRunsParams) (*store.ScheduleRunPage, error) {
	pg, err := p.Paging()
	if err != nil {
		return nil, fmt.Errorf("runs of schedule %q: %w", p.Name, err)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+runColumns+` FROM hammerwork_schedule_runs
		WHERE schedule_name = ?1 AND (?2 IS NULL OR nominal_time < ?2)
		ORDER BY nominal_time DESC LIMIT ?3`, p.Name, nullTS(pg.Before), pg.Fetch())
	if err != nil {
		return nil, fmt.Errorf("runs of schedule %q: %w", p.Name, dbErr(err))
	}
	defer rows.Close()
	runs, err := store.CollectScanned(rows, scanRun)
	if err != nil {
		return nil, fmt.Errorf("runs of schedule %q: %w", p.Name, err)
	}
	if len(runs) == 0 {
		if _, err := s.GetSchedule(ctx, p.Name); err != nil {
			return nil, err
		}
	}
	return pg.Page(runs), nil
}

// FireSchedules takes the due schedules one transaction each: BEGIN
// IMMEDIATE on the single write connection holds the database's write lock,
// so no other agent reads a schedule between its selection and its new
// state (there is no row lock to skip). A schedule is taken at most once
// per pass, so one whose transaction fails is not retried until the next.
func (s *Store) FireSchedules(ctx context.Context, p store.FireSchedulesParams) (*store.FireResult, error) {
	res := &store.FireResult{Runs: []*store.ScheduleRun{}, Missed: map[string]int{}, Errors: map[string]error{}}
	queues := map[string]bool{}
	taken := []string{} // not nil: jsonList(nil) is JSON null, against which NOT IN matches no name
	for len(taken) < p.Limit {
		f, err := s.fireNext(ctx, p, taken)
		if err != nil {
			return nil, fmt.Errorf("fire schedules: %w", err)
		}
		if f == nil {
			break
		}
		taken = append(taken, f.name)
		res.Runs = append(res.Runs, f.runs...)
		if f.missed > 0 {
			res.Missed[f.name] = f.missed
		}
		if f.err != nil {
			res.Errors[f.name] = f.err
		}
		for _, q := range f.queues {
			queues[q] = true
		}
	}
	res.Taken = len(taken)
	res.Queues = make([]string, 0, len(queues))
	for q := range queues {
		res.Queues = append(res.Queues, q)
	}
	slices.Sort(res.Queues)
	return res, nil
}

// fired is what became of one taken schedule.
type fired struct {
	name   string
	runs   []*store.ScheduleRun
	missed int
	queues []string
	// err is why the schedule's transaction was rolled back.
	err error
}

// fireNext takes the oldest due schedule not yet taken in this pass and
// writes its fire plan in one transaction; nil when none is due. An error
// is returned only when no schedule could be selected; a taken schedule's
// failure is in fired.err, after the second transaction that records a
// broken target's slots as skipped.
func (s *Store) fireNext(ctx context.Context, p store.FireSchedulesParams, taken []string) (*fired, error) {
	var (
		f    *fired
		rec  *store.ScheduleRecord
		plan *store.FirePlan
		now  time.Time
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if now, err = s.clock.At(ctx, p.Now); err != nil {
			return err
		}
		// The name first: whatever goes wrong after it is that schedule's
		// error, and the others still fire.
		var name string
		err = tx.QueryRowContext(ctx, `SELECT name FROM hammerwork_schedules
			WHERE paused = 0 AND next_run_at <= ? AND name NOT IN (SELECT value FROM json_each(?))
			ORDER BY next_run_at, name LIMIT 1`, ts(now), jsonList(taken)).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("select a due schedule: %w", err)
		}
		f = &fired{name: name}
		if rec, err = getSchedule(ctx, tx, name); err != nil {
			return err
		}
		in, err := readFireInput(ctx, tx, rec)
		if err != nil {
			return err
		}
		in.Trace, in.Rand, in.Now = p.Trace, p.Rand, now
		if plan, err = store.PlanScheduleFire(in); err != nil {
			return err
		}
		runs, queues, err := writeFire(ctx, tx, name, plan.Runs, plan.State, plan.Missed, now)
		if err != nil {
			return err
		}
		f.runs, f.queues, f.missed = runs, queues, plan.Missed
		return nil
	})
	switch {
	case err == nil:
		return f, nil
	case f == nil:
		return nil, err
	}
	f.runs, f.queues = nil, nil
	f.err = fmt.Errorf("fire schedule %q: %w", f.name, err)
	if plan != nil && (errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict)) {
		runs, skipErr := s.skipBrokenRuns(ctx, rec, plan, now, f.err)
		if skipErr != nil {
			f.err = errors.Join(f.err, fmt.Errorf("record the runs of schedule %q as skipped: %w", f.name, skipErr))
		} else if runs != nil {
			f.runs, f.missed = runs, plan.Missed
		}
	}
	return f, nil
}

// skipBrokenRuns is the second transaction for a schedule whose target can
// no longer be written: its fired runs become skipped runs noting cause,
// and its cursor, buffer and next run move on as planned (the last run
// stays), so the broken target costs its slots instead of failing every
// pass. It applies only while the schedule is still as the failed
// transaction read it; otherwise (another agent took it since, or it was
// paused or changed) it writes nothing and returns nil runs.
func (s *Store) skipBrokenRuns(ctx context.Context, rec *store.ScheduleRecord, plan *store.FirePlan,
	now time.Time, cause error) ([]*store.ScheduleRun, error) {
	var runs []*store.ScheduleRun
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		runs = nil
		var same bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM hammerwork_schedules
			WHERE name = ? AND paused = 0 AND cursor_at = ? AND next_run_at IS ?)`,
			rec.Name, ts(rec.Cursor), nullTS(rec.NextRunAt)).Scan(&same); err != nil || !same {
			return err
		}
		st := plan.State
		st.LastRunAt, st.LastJobID, st.LastWorkflowID = rec.LastRunAt, rec.LastJobID, rec.LastWorkflowID
		runs = []*store.ScheduleRun{}
		for _, pr := range plan.Runs {
			run := pr.Run
			if run.Outcome == store.RunFired {
				run.Outcome, run.JobID, run.WorkflowID, run.Note = store.RunSkipped, nil, nil, cause.Error()
			}
			ok, err := insertRun(ctx, tx, &run)
			if err != nil {
				return err
			}
			if ok {
				runs = append(runs, &run)
			}
		}
		if err := writeState(ctx, tx, rec.Name, st, plan.Missed); err != nil {
			return err
		}
		return trimRuns(ctx, tx, rec.Name)
	})
	return runs, err
}

// readFireInput reads what PlanScheduleFire and PlanScheduleTrigger need
// besides the row: whether the latest run is live, and the dependency's
// latest job.
func readFireInput(ctx context.Context, tx *sql.Tx, rec *store.ScheduleRecord) (store.FireInput, error) {
	in := store.FireInput{Schedule: rec}
	if err := tx.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM hammerwork_jobs WHERE id = ? AND status IN ('pending', 'running'))
		OR EXISTS (SELECT 1 FROM hammerwork_workflows WHERE id = ? AND status IN ('running', 'paused'))`,
		nullUUID(rec.LastJobID), nullUUID(rec.LastWorkflowID)).Scan(&in.Live); err != nil {
		return in, fmt.Errorf("read the latest run: %w", err)
	}
	if rec.DependsOnSchedule == "" {
		return in, nil
	}
	var last *uuid.UUID
	var exists bool
	err := tx.QueryRowContext(ctx, `SELECT s.last_job_id, EXISTS (SELECT 1 FROM hammerwork_jobs j WHERE j.id = s.last_job_id)
		FROM hammerwork_schedules s WHERE s.name = ?`, rec.DependsOnSchedule).Scan(&last, &exists)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return in, nil
	case err != nil:
		return in, fmt.Errorf("read the latest job of schedule %q: %w", rec.DependsOnSchedule, err)
	}
	in.DependencyRan = last != nil
	if exists {
		in.Dependency = last
	}
	return in, nil
}

// writeFire writes planned runs in the taken schedule's transaction: their
// jobs and workflows, one run row each, the schedule's new state with the
// slots missed and the trimming of its runs. It returns the runs as
// written and the queues that got new jobs.
func writeFire(ctx context.Context, tx *sql.Tx, name string, planned []store.PlannedRun, st store.ScheduleState,
	missed int, now time.Time) ([]*store.ScheduleRun, []string, error) {
	queues, err := writeRunTargets(ctx, tx, planned, &st, now)
	if err != nil {
		return nil, nil, err
	}
	runs := make([]*store.ScheduleRun, len(planned))
	for i := range planned {
		run := planned[i].Run
		ok, err := insertRun(ctx, tx, &run)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			return nil, nil, fmt.Errorf("%w: the run at %s is already written", store.ErrConflict,
				run.NominalTime.Format(time.RFC3339Nano))
		}
		runs[i] = &run
	}
	if err := writeState(ctx, tx, name, st, missed); err != nil {
		return nil, nil, err
	}
	if err := trimRuns(ctx, tx, name); err != nil {
		return nil, nil, err
	}
	return runs, queues, nil
}

// writeRunTargets writes the jobs and workflows of planned runs with the
// code and rules of Enqueue (validation, unique keys, depends_on) and
// EnqueueWorkflow. A job deduplicated by its unique key is replaced by the
// job holding the key, in its run and, when it is the latest, in st. It
// returns the queues of the jobs written.
func writeRunTargets(ctx context.Context, tx *sql.Tx, planned []store.PlannedRun, st *store.ScheduleState,
	now time.Time) ([]string, error) {
	var queues []string
	var news []store.NewJob
	var at []int
	for i, pr := range planned {
		switch {
		case pr.Job != nil:
			news = append(news, *pr.Job)
			at = append(at, i)
		case pr.Workflow != nil:
			plan, err := store.PlanWorkflow(*pr.Workflow, now)
			if err != nil {
				return nil, err
			}
			if err := insertWorkflow(ctx, tx, plan); err != nil {
				return nil, fmt.Errorf("workflow %q: %w", plan.Workflow.Name, err)
			}
			for _, j := range plan.Jobs {
				queues = append(queues, j.Queue)
			}
		}
	}
	if len(news) == 0 {
		return queues, nil
	}
	if err := validateJobs(news); err != nil {
		return nil, err
	}
	jobs, err := enqueueTx(ctx, tx, news, now)
	if err != nil {
		return nil, err
	}
	for k, j := range jobs {
		id := j.ID
		if st.LastJobID != nil && *st.LastJobID == news[k].ID {
			st.LastJobID = &id
		}
		planned[at[k]].Run.JobID = &id
		if !j.Duplicate {
			queues = append(queues, j.Queue)
		}
	}
	return queues, nil
}

// insertRun writes one run row and reports false when the slot already
// has one: the primary key is the exactly-once guard.
func insertRun(ctx context.Context, tx *sql.Tx, r *store.ScheduleRun) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO hammerwork_schedule_runs (`+runColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (schedule_name, nominal_time) DO NOTHING`,
		r.Schedule, ts(r.NominalTime), ts(r.FiredAt), string(r.Outcome), sqlBool(r.Triggered),
		nullUUID(r.JobID), nullUUID(r.WorkflowID), nullString(r.Note))
	if err != nil {
		return false, fmt.Errorf("insert the run at %s: %w", r.NominalTime.Format(time.RFC3339Nano), err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// stateArgs is the cursor_at, buffered_at, next_run_at, last_run_at,
// last_job_id and last_workflow_id arguments of st.
func stateArgs(st store.ScheduleState) []any {
	return []any{ts(st.Cursor), nullTS(st.Buffered), nullTS(st.NextRunAt), nullTS(st.LastRunAt),
		nullUUID(st.LastJobID), nullUUID(st.LastWorkflowID)}
}

// writeState writes a schedule's new firing state and adds the slots
// missed to missed_slots, whose rise writes a schedule.missed event.
func writeState(ctx context.Context, tx *sql.Tx, name string, st store.ScheduleState, missed int) error {
	if _, err := tx.ExecContext(ctx, `UPDATE hammerwork_schedules SET cursor_at = ?, buffered_at = ?, next_run_at = ?,
		last_run_at = ?, last_job_id = ?, last_workflow_id = ?, missed_slots = missed_slots + ? WHERE name = ?`,
		append(stateArgs(st), missed, name)...); err != nil {
		return fmt.Errorf("write the state: %w", err)
	}
	return nil
}

// trimRuns deletes a schedule's runs older than its newest
// ScheduleRunsKept; with fewer runs the bound is NULL and nothing goes.
func trimRuns(ctx context.Context, tx *sql.Tx, name string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_schedule_runs WHERE schedule_name = ?1 AND nominal_time <
		(SELECT nominal_time FROM hammerwork_schedule_runs WHERE schedule_name = ?1
		 ORDER BY nominal_time DESC LIMIT 1 OFFSET ?2)`, name, store.ScheduleRunsKept-1); err != nil {
		return fmt.Errorf("trim the runs: %w", err)
	}
	return nil
}
