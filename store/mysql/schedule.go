package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/schedule"
	"github.com/hammerwork-go/hw-agent/store"
)

var _ store.Schedules = (*Store)(nil)

// scheduleColumns are hammerwork_schedules' columns in the order
// scanSchedule reads and scheduleArgs binds them; name comes first, so an
// UPDATE sets the rest.
var scheduleColumns = []string{"name", "cron", "timezone", "target", "overlap", "catchup",
	"catchup_window_ms", "jitter_ms", "start_at", "end_at", "depends_on_schedule",
	"paused", "paused_reason", "paused_at", "next_run_at", "cursor_at", "buffered_at",
	"last_run_at", "last_job_id", "last_workflow_id", "created_at", "updated_at"}

var (
	scheduleCols      = strings.Join(scheduleColumns, ", ")
	insertScheduleSQL = `INSERT INTO hammerwork_schedules (` + scheduleCols + `) VALUES (` + placeholders(len(scheduleColumns)) + `)`
	updateScheduleSQL = `UPDATE hammerwork_schedules SET ` + strings.Join(scheduleColumns[1:], " = ?, ") + ` = ? WHERE name = ?`
	getScheduleSQL    = `SELECT ` + scheduleCols + ` FROM hammerwork_schedules WHERE name = ?`
)

// runCols are hammerwork_schedule_runs' columns in the order scanRun reads
// and insertRuns binds them.
const runCols = `schedule_name, nominal_time, fired_at, outcome, triggered, job_id, workflow_id, note`

// scanSchedule reads one row of scheduleColumns. Ids scan into uuid.UUID
// (NULL as nil), times as UTC microseconds (store.SQLTime), durations from
// whole milliseconds.
func scanSchedule(row store.Scanner) (*store.ScheduleRecord, error) {
	var (
		r                                         store.ScheduleRecord
		target                                    []byte
		overlap, catchup                          string
		windowMS, jitterMS                        int64
		start, end, pausedAt, next, buffered, run store.SQLTime
		cursor, created, updated                  store.SQLTime
		dependsOn, reason                         sql.NullString
	)
	err := row.Scan(&r.Name, &r.Cron, &r.Timezone, &target, &overlap, &catchup,
		&windowMS, &jitterMS, &start, &end, &dependsOn,
		&r.Paused, &reason, &pausedAt, &next, &cursor, &buffered,
		&run, &r.LastJobID, &r.LastWorkflowID, &created, &updated)
	if err != nil {
		return nil, err
	}
	if r.Target, err = store.ParseTarget(target); err != nil {
		return nil, fmt.Errorf("schedule %q: %w", r.Name, err)
	}
	r.Overlap, r.Catchup = schedule.Overlap(overlap), schedule.Catchup(catchup)
	r.CatchupWindow = job.Duration(time.Duration(windowMS) * time.Millisecond)
	r.Jitter = job.Duration(time.Duration(jitterMS) * time.Millisecond)
	r.StartAt, r.EndAt = start.Ptr(), end.Ptr()
	r.DependsOnSchedule = dependsOn.String
	r.PausedReason, r.PausedAt = reason.String, pausedAt.Ptr()
	r.NextRunAt, r.Cursor, r.Buffered = next.Ptr(), cursor.Time, buffered.Ptr()
	r.LastRunAt = run.Ptr()
	r.CreatedAt, r.UpdatedAt = created.Time, updated.Time
	return &r, nil
}

// scheduleArgs are rec's values for scheduleColumns.
func scheduleArgs(rec *store.ScheduleRecord) ([]any, error) {
	target, err := rec.Target.MarshalTarget()
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", rec.Name, err)
	}
	return []any{rec.Name, rec.Cron, rec.Timezone, target, string(rec.Overlap), string(rec.Catchup),
		rec.CatchupWindow.D().Milliseconds(), rec.Jitter.D().Milliseconds(),
		nullTime(rec.StartAt), nullTime(rec.EndAt), nullStr(rec.DependsOnSchedule),
		rec.Paused, nullStr(rec.PausedReason), nullTime(rec.PausedAt), nullTime(rec.NextRunAt),
		store.UTC(rec.Cursor), nullTime(rec.Buffered), nullTime(rec.LastRunAt),
		nullID(rec.LastJobID), nullID(rec.LastWorkflowID), store.UTC(rec.CreatedAt), store.UTC(rec.UpdatedAt)}, nil
}

// scanRun reads one row of runCols.
func scanRun(row store.Scanner) (*store.ScheduleRun, error) {
	var (
		r              store.ScheduleRun
		nominal, fired store.SQLTime
		outcome        string
		note           sql.NullString
	)
	if err := row.Scan(&r.Schedule, &nominal, &fired, &outcome, &r.Triggered, &r.JobID, &r.WorkflowID, &note); err != nil {
		return nil, err
	}
	r.NominalTime, r.FiredAt = nominal.Time, fired.Time
	r.Outcome, r.Note = store.RunOutcome(outcome), note.String
	return &r, nil
}

// getSchedule reads one schedule, with lock (" FOR UPDATE", say) appended
// to the query; no row is (nil, nil).
func getSchedule(ctx context.Context, q batchQuerier, name, lock string) (*store.ScheduleRecord, error) {
	rec, err := scanSchedule(q.QueryRowContext(ctx, getScheduleSQL+lock, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return rec, err
}

// writeSchedule inserts rec, or replaces every column of its row.
func writeSchedule(ctx context.Context, tx *sql.Tx, rec *store.ScheduleRecord, insert bool) error {
	args, err := scheduleArgs(rec)
	if err != nil {
		return err
	}
	if insert {
		_, err = tx.ExecContext(ctx, insertScheduleSQL, args...)
		return err
	}
	_, err = tx.ExecContext(ctx, updateScheduleSQL, append(args[1:], rec.Name)...)
	return err
}

// writeState sets the part of a schedule row that firing changes, and
// counts the slots the plan let pass into missed_slots, whose growth the
// schedule.missed event trigger records.
func writeState(ctx context.Context, tx *sql.Tx, name string, st store.ScheduleState, missed int) error {
	_, err := tx.ExecContext(ctx, `UPDATE hammerwork_schedules SET cursor_at = ?, buffered_at = ?, next_run_at = ?,
    last_run_at = ?, last_job_id = ?, last_workflow_id = ?, missed_slots = missed_slots + ? WHERE name = ?`,
		store.UTC(st.Cursor), nullTime(st.Buffered), nullTime(st.NextRunAt),
		nullTime(st.LastRunAt), nullID(st.LastJobID), nullID(st.LastWorkflowID), missed, name)
	if err != nil {
		return fmt.Errorf("update schedule state: %w", err)
	}
	return nil
}

// insertRuns writes run rows in chunked multi-row INSERTs. A slot that
// already has a run fails the statement: the primary key is the
// exactly-once guard.
func insertRuns(ctx context.Context, tx *sql.Tx, runs []*store.ScheduleRun) error {
	for start := 0; start < len(runs); start += insertChunkRows {
		chunk := runs[start:min(start+insertChunkRows, len(runs))]
		args := make([]any, 0, 8*len(chunk))
		for _, r := range chunk {
			args = append(args, r.Schedule, store.UTC(r.NominalTime), store.UTC(r.FiredAt), string(r.Outcome),
				r.Triggered, nullID(r.JobID), nullID(r.WorkflowID), nullStr(r.Note))
		}
		q := `INSERT INTO hammerwork_schedule_runs (` + runCols + `) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?), ", len(chunk)), ", ")
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert runs: %w", err)
		}
	}
	return nil
}

// trimRuns deletes a schedule's runs beyond the newest ScheduleRunsKept.
// MySQL cannot delete from a table it reads in a subquery, so the oldest
// run to delete is read first.
func trimRuns(ctx context.Context, tx *sql.Tx, name string) error {
	var cutoff store.SQLTime
	err := tx.QueryRowContext(ctx, `SELECT nominal_time FROM hammerwork_schedule_runs WHERE schedule_name = ?
ORDER BY nominal_time DESC LIMIT 1 OFFSET ?`, name, store.ScheduleRunsKept).Scan(&cutoff)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err == nil {
		_, err = tx.ExecContext(ctx, `DELETE FROM hammerwork_schedule_runs WHERE schedule_name = ? AND nominal_time <= ?`,
			name, cutoff.Time)
	}
	if err != nil {
		return fmt.Errorf("trim runs: %w", err)
	}
	return nil
}

// PutSchedule validates the definition, then, in one transaction holding
// the row, writes what store.PlanSchedulePut decides. Two first puts of one
// name race to insert it: the loser's INSERT fails on the primary key, and
// it locks the winner's row and plans again against it, so one row remains.
func (s *Store) PutSchedule(ctx context.Context, p store.PutScheduleParams) (*store.ScheduleRecord, bool, error) {
	name := p.Def.Name
	if err := p.Def.Validate(); err != nil {
		return nil, false, fmt.Errorf("put schedule %q: %w", name, err)
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, false, wrap(err, "put schedule %q", name)
	}
	var (
		rec     *store.ScheduleRecord
		created bool
	)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		rec, created = nil, false
		for raced := false; ; raced = true {
			existing, err := getSchedule(ctx, tx, name, " FOR UPDATE")
			if err != nil {
				return err
			}
			next, changed, err := store.PlanSchedulePut(existing, p, at)
			if err != nil {
				return err
			}
			if !changed {
				rec = existing
				return nil
			}
			err = writeSchedule(ctx, tx, next, existing == nil)
			var myErr *mysql.MySQLError
			if existing == nil && !raced && errors.As(err, &myErr) && myErr.Number == errDuplicateKey {
				continue
			}
			if err != nil {
				return err
			}
			created = existing == nil
			rec, err = getSchedule(ctx, tx, name, "")
			return err
		}
	})
	if err != nil {
		return nil, false, wrap(err, "put schedule %q", name)
	}
	return rec, created, nil
}

// GetSchedule returns one schedule, or ErrNotFound.
func (s *Store) GetSchedule(ctx context.Context, name string) (*store.ScheduleRecord, error) {
	rec, err := getSchedule(ctx, s.db, name, "")
	if err != nil {
		return nil, wrap(err, "get schedule %q", name)
	}
	if rec == nil {
		return nil, fmt.Errorf("get schedule %q: %w", name, store.ErrNotFound)
	}
	return rec, nil
}

// ListSchedules lists schedules by name (the primary key's binary
// collation orders them as Go compares strings), one page at a time.
func (s *Store) ListSchedules(ctx context.Context, p store.ListSchedulesParams) (*store.SchedulePage, error) {
	pg := p.Paging()
	rows, err := s.db.QueryContext(ctx, `SELECT `+scheduleCols+` FROM hammerwork_schedules
WHERE name > ? ORDER BY name LIMIT ?`, pg.After, pg.Fetch())
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

// deleteSchedules removes schedules and their runs in the caller's
// transaction and reports how many schedule rows went.
func deleteSchedules(ctx context.Context, tx *sql.Tx, names []string) (int64, error) {
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	in := `(` + placeholders(len(names)) + `)`
	res, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_schedules WHERE name IN `+in, args...)
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_schedule_runs WHERE schedule_name IN `+in, args...); err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// DeleteSchedule removes a schedule and its runs in one transaction; the
// jobs and workflows of its runs stay.
func (s *Store) DeleteSchedule(ctx context.Context, name string) error {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = deleteSchedules(ctx, tx, []string{name})
		return err
	})
	if err != nil {
		return wrap(err, "delete schedule %q", name)
	}
	if n == 0 {
		return fmt.Errorf("delete schedule %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// PruneSchedules deletes, in one transaction, every schedule not in
// p.Keep, with its runs, and returns the names deleted, sorted.
func (s *Store) PruneSchedules(ctx context.Context, p store.PruneSchedulesParams) ([]string, error) {
	var names []string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		query := `SELECT name FROM hammerwork_schedules`
		args := make([]any, len(p.Keep))
		for i, k := range p.Keep {
			args[i] = k
		}
		if len(p.Keep) > 0 {
			query += ` WHERE name NOT IN (` + placeholders(len(p.Keep)) + `)`
		}
		var err error
		if names, err = store.QueryStrings(ctx, tx, query+` ORDER BY name FOR UPDATE`, args...); err != nil {
			return err
		}
		if len(names) == 0 {
			return nil
		}
		_, err = deleteSchedules(ctx, tx, names)
		return err
	})
	if err != nil {
		return nil, wrap(err, "prune schedules")
	}
	if names == nil {
		names = []string{}
	}
	return names, nil
}

// changeSchedule runs change on a schedule's row, held for update, in one
// transaction and returns the row as written. change reports whether it
// changed rec; an unchanged row is not written.
func (s *Store) changeSchedule(ctx context.Context, op, name string, now time.Time,
	change func(rec *store.ScheduleRecord, at time.Time) bool) (*store.ScheduleRecord, error) {
	at, err := s.clock.At(ctx, now)
	if err != nil {
		return nil, wrap(err, "%s schedule %q", op, name)
	}
	var rec *store.ScheduleRecord
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if rec, err = getSchedule(ctx, tx, name, " FOR UPDATE"); err != nil || rec == nil {
			return err
		}
		if !change(rec, at) {
			return nil
		}
		if err := writeSchedule(ctx, tx, rec, false); err != nil {
			return err
		}
		rec, err = getSchedule(ctx, tx, name, "")
		return err
	})
	if err != nil {
		return nil, wrap(err, "%s schedule %q", op, name)
	}
	if rec == nil {
		return nil, fmt.Errorf("%s schedule %q: %w", op, name, store.ErrNotFound)
	}
	return rec, nil
}

// PauseSchedule pauses a schedule from now; a paused one gets the new
// reason and keeps its paused_at.
func (s *Store) PauseSchedule(ctx context.Context, p store.PauseScheduleParams) (*store.ScheduleRecord, error) {
	return s.changeSchedule(ctx, "pause", p.Name, p.Now, func(rec *store.ScheduleRecord, at time.Time) bool {
		if !rec.Paused {
			rec.Paused, rec.PausedAt = true, &at
		}
		rec.PausedReason = p.Reason
		return true
	})
}

// ResumeSchedule lifts a pause with store.PlanScheduleResume's state, so
// the slots of the pause are neither fired nor missed; a schedule that is
// not paused is left alone.
func (s *Store) ResumeSchedule(ctx context.Context, p store.ResumeScheduleParams) (*store.ScheduleRecord, error) {
	return s.changeSchedule(ctx, "resume", p.Name, p.Now, func(rec *store.ScheduleRecord, at time.Time) bool {
		if !rec.Paused {
			return false
		}
		st := store.PlanScheduleResume(rec, at)
		rec.Paused, rec.PausedReason, rec.PausedAt = false, "", nil
		rec.Cursor, rec.Buffered, rec.NextRunAt = st.Cursor, st.Buffered, st.NextRunAt
		rec.LastRunAt, rec.LastJobID, rec.LastWorkflowID = st.LastRunAt, st.LastJobID, st.LastWorkflowID
		return true
	})
}

// fireInput reads what store.PlanScheduleFire needs beside the row, in one
// query: whether the latest run's job or workflow is live, and the latest
// job of DependsOnSchedule with whether that job still exists. These are
// plain reads: they never wait for the transactions firing the other
// schedules.
func fireInput(ctx context.Context, tx *sql.Tx, rec *store.ScheduleRecord, trace store.RunTracer, rnd *rand.Rand, at time.Time) (store.FireInput, error) {
	in := store.FireInput{Schedule: rec, Trace: trace, Rand: rnd, Now: at}
	var exists bool
	err := tx.QueryRowContext(ctx, `SELECT
    EXISTS (SELECT 1 FROM hammerwork_jobs WHERE id = ? AND status IN ('pending', 'running'))
    OR EXISTS (SELECT 1 FROM hammerwork_workflows WHERE id = ? AND status IN ('running', 'paused')),
    (SELECT last_job_id FROM hammerwork_schedules WHERE name = ?),
    EXISTS (SELECT 1 FROM hammerwork_schedules d JOIN hammerwork_jobs j ON j.id = d.last_job_id WHERE d.name = ?)`,
		nullID(rec.LastJobID), nullID(rec.LastWorkflowID), rec.DependsOnSchedule, rec.DependsOnSchedule).
		Scan(&in.Live, &in.Dependency, &exists)
	if err != nil {
		return store.FireInput{}, fmt.Errorf("read the latest runs: %w", err)
	}
	in.DependencyRan = in.Dependency != nil
	if !exists {
		in.Dependency = nil
	}
	return in, nil
}

// writePlan writes a plan's jobs (enqueueTx: the enqueue rules), its
// workflows (insertWorkflow: EnqueueWorkflow's rows), its run rows and the
// schedule's new state, and trims the schedule's runs. It returns the runs
// as written, a deduplicated job's run naming the job that holds the key,
// and the queues of the jobs written.
func writePlan(ctx context.Context, tx *sql.Tx, name string, plan *store.FirePlan, at time.Time) ([]*store.ScheduleRun, []string, error) {
	runs := make([]*store.ScheduleRun, len(plan.Runs))
	var (
		news    []store.NewJob
		jobRuns []int
		queues  []string
	)
	for i, pr := range plan.Runs {
		r := pr.Run
		runs[i] = &r
		if pr.Job != nil {
			news = append(news, *pr.Job)
			jobRuns = append(jobRuns, i)
		}
	}
	if err := validateJobs(news); err != nil {
		return nil, nil, err
	}
	written := map[uuid.UUID]uuid.UUID{}
	if len(news) > 0 {
		jobs, err := enqueueTx(ctx, tx, news, at)
		if err != nil {
			return nil, nil, err
		}
		for k, j := range jobs {
			id := j.ID
			runs[jobRuns[k]].JobID = &id
			written[news[k].ID] = id
			if id == news[k].ID {
				queues = append(queues, j.Queue)
			}
		}
	}
	for _, pr := range plan.Runs {
		if pr.Workflow == nil {
			continue
		}
		wp := *pr.Workflow
		wp.Now = at
		wf, err := store.PlanWorkflow(wp, at)
		if err != nil {
			return nil, nil, err
		}
		if err := insertWorkflow(ctx, tx, wf); err != nil {
			return nil, nil, err
		}
		for _, j := range wf.Jobs {
			queues = append(queues, j.Queue)
		}
	}
	if err := insertRuns(ctx, tx, runs); err != nil {
		return nil, nil, err
	}
	st := plan.State
	if st.LastJobID != nil {
		if id, ok := written[*st.LastJobID]; ok {
			st.LastJobID = &id
		}
	}
	if err := writeState(ctx, tx, name, st, plan.Missed); err != nil {
		return nil, nil, err
	}
	return runs, queues, trimRuns(ctx, tx, name)
}

// TriggerSchedule fires one run of store.PlanScheduleTrigger in one
// transaction holding the schedule's row (waiting for a pass that holds
// it), written as FireSchedules writes a slot's run.
func (s *Store) TriggerSchedule(ctx context.Context, p store.TriggerScheduleParams) (*store.ScheduleRun, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "trigger schedule %q", p.Name)
	}
	var run *store.ScheduleRun
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		run = nil
		rec, err := getSchedule(ctx, tx, p.Name, " FOR UPDATE")
		if err != nil || rec == nil {
			return err
		}
		in, err := fireInput(ctx, tx, rec, p.Trace, nil, at)
		if err != nil {
			return err
		}
		pr, st, err := store.PlanScheduleTrigger(in)
		if err != nil {
			return err
		}
		runs, _, err := writePlan(ctx, tx, rec.Name, &store.FirePlan{Runs: []store.PlannedRun{pr}, State: st}, at)
		if err != nil {
			return err
		}
		run = runs[0]
		return nil
	})
	if err != nil {
		return nil, wrap(err, "trigger schedule %q", p.Name)
	}
	if run == nil {
		return nil, fmt.Errorf("trigger schedule %q: %w", p.Name, store.ErrNotFound)
	}
	return run, nil
}

// ScheduleRuns pages one schedule's runs newest first, along the primary
// key.
func (s *Store) ScheduleRuns(ctx context.Context, p store.ScheduleRunsParams) (*store.ScheduleRunPage, error) {
	pg, err := p.Paging()
	if err != nil {
		return nil, fmt.Errorf("list runs of schedule %q: %w", p.Name, err)
	}
	query := `SELECT ` + runCols + ` FROM hammerwork_schedule_runs WHERE schedule_name = ?`
	args := []any{p.Name}
	if pg.Before != nil {
		query += ` AND nominal_time < ?`
		args = append(args, *pg.Before)
	}
	rows, err := s.db.QueryContext(ctx, query+` ORDER BY nominal_time DESC LIMIT ?`, append(args, pg.Fetch())...)
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
			return nil, fmt.Errorf("list runs: %w", err)
		}
	}
	return pg.Page(runs), nil
}

// taken is one schedule a pass took: its row and plan as its transaction
// read and made them, and what that transaction wrote.
type taken struct {
	rec    *store.ScheduleRecord
	plan   *store.FirePlan
	runs   []*store.ScheduleRun
	queues []string
}

// FireSchedules takes due schedules one transaction each until p.Limit were
// taken or none is left. A schedule whose transaction failed is not taken
// again in the same pass, so a schedule that stays due (a database error)
// cannot use up the pass.
func (s *Store) FireSchedules(ctx context.Context, p store.FireSchedulesParams) (*store.FireResult, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "fire schedules")
	}
	res := &store.FireResult{Runs: []*store.ScheduleRun{}, Missed: map[string]int{}, Queues: []string{}, Errors: map[string]error{}}
	var names []string
	for res.Taken < p.Limit {
		t, err := s.fireOne(ctx, p, at, names)
		if t == nil {
			if err != nil {
				return nil, wrap(err, "fire schedules: take a due schedule")
			}
			break
		}
		res.Taken++
		name := t.rec.Name
		names = append(names, name)
		if err == nil {
			res.Runs = append(res.Runs, t.runs...)
			res.Queues = append(res.Queues, t.queues...)
			if t.plan.Missed > 0 {
				res.Missed[name] = t.plan.Missed
			}
			continue
		}
		err = wrap(err, "fire schedule %q", name)
		res.Errors[name] = err
		if !recordable(t.plan, err) {
			continue
		}
		runs, skipErr := s.skipPlan(ctx, t.rec, t.plan, err.Error())
		if skipErr != nil {
			res.Errors[name] = errors.Join(err, wrap(skipErr, "record the runs of schedule %q as skipped", name))
			continue
		}
		res.Runs = append(res.Runs, runs...)
		if runs != nil && t.plan.Missed > 0 {
			res.Missed[name] = t.plan.Missed
		}
	}
	slices.Sort(res.Queues)
	res.Queues = slices.Compact(res.Queues)
	return res, nil
}

// recordable reports whether a failed schedule's plan is written again as
// skipped runs: its target can no longer be written (ErrInvalid, or
// ErrConflict from a key such as the run's), which running it again would
// not cure.
func recordable(plan *store.FirePlan, err error) bool {
	return plan != nil && (errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict))
}

// fireOne takes the schedule due longest, skipping rows another pass
// holds and the names in exclude, and writes its plan in the same
// transaction. No schedule due is (nil, nil); an error with a nil taken
// happened before a row was read.
func (s *Store) fireOne(ctx context.Context, p store.FireSchedulesParams, at time.Time, exclude []string) (*taken, error) {
	query := `SELECT ` + scheduleCols + ` FROM hammerwork_schedules WHERE paused = FALSE AND next_run_at <= ?`
	args := []any{at}
	if len(exclude) > 0 {
		query += ` AND name NOT IN (` + placeholders(len(exclude)) + `)`
		for _, n := range exclude {
			args = append(args, n)
		}
	}
	query += ` ORDER BY next_run_at, name LIMIT 1 FOR UPDATE SKIP LOCKED`
	var t *taken
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		t = nil
		rec, err := scanSchedule(tx.QueryRowContext(ctx, query, args...))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		t = &taken{rec: rec}
		in, err := fireInput(ctx, tx, rec, p.Trace, p.Rand, at)
		if err != nil {
			return err
		}
		if t.plan, err = store.PlanScheduleFire(in); err != nil {
			return err
		}
		t.runs, t.queues, err = writePlan(ctx, tx, rec.Name, t.plan, at)
		return err
	})
	return t, err
}

// skipPlan records, in a transaction of its own, a plan whose target could
// not be written: its runs as skipped with note, and its cursor, buffer and
// next run, the latest run left as it was. A slot that already has a run
// keeps it: the cursor went back (a definition changed while the
// database's clock was behind its runs) and that run's key was the
// conflict. When the row is no longer as the plan found it (another agent
// fired it, a put changed it) nothing is written and no runs are returned.
func (s *Store) skipPlan(ctx context.Context, rec *store.ScheduleRecord, plan *store.FirePlan, note string) ([]*store.ScheduleRun, error) {
	var runs []*store.ScheduleRun
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		runs = nil
		cur, err := getSchedule(ctx, tx, rec.Name, " FOR UPDATE")
		if err != nil || !reflect.DeepEqual(cur, rec) {
			return err
		}
		had, err := runTimes(ctx, tx, plan)
		if err != nil {
			return err
		}
		runs = []*store.ScheduleRun{}
		for _, pr := range plan.Runs {
			if had[pr.Run.NominalTime.UnixMicro()] {
				continue
			}
			runs = append(runs, &store.ScheduleRun{Schedule: rec.Name, NominalTime: pr.Run.NominalTime,
				FiredAt: pr.Run.FiredAt, Outcome: store.RunSkipped, Triggered: pr.Run.Triggered, Note: note})
		}
		if err := insertRuns(ctx, tx, runs); err != nil {
			return err
		}
		st := plan.State
		st.LastRunAt, st.LastJobID, st.LastWorkflowID = rec.LastRunAt, rec.LastJobID, rec.LastWorkflowID
		if err := writeState(ctx, tx, rec.Name, st, plan.Missed); err != nil {
			return err
		}
		return trimRuns(ctx, tx, rec.Name)
	})
	return runs, err
}

// runTimes reads which of a plan's slots already have a run, by their
// nominal times in microseconds.
func runTimes(ctx context.Context, tx *sql.Tx, plan *store.FirePlan) (map[int64]bool, error) {
	had := map[int64]bool{}
	if len(plan.Runs) == 0 {
		return had, nil
	}
	first, last := plan.Runs[0].Run, plan.Runs[len(plan.Runs)-1].Run
	rows, err := tx.QueryContext(ctx, `SELECT nominal_time FROM hammerwork_schedule_runs
WHERE schedule_name = ? AND nominal_time BETWEEN ? AND ?`, first.Schedule, store.UTC(first.NominalTime), store.UTC(last.NominalTime))
	if err != nil {
		return nil, fmt.Errorf("read existing runs: %w", err)
	}
	defer rows.Close()
	times, err := store.CollectScanned(rows, func(row store.Scanner) (time.Time, error) {
		var t store.SQLTime
		err := row.Scan(&t)
		return t.Time, err
	})
	if err != nil {
		return nil, fmt.Errorf("read existing runs: %w", err)
	}
	for _, t := range times {
		had[t.UnixMicro()] = true
	}
	return had, nil
}
