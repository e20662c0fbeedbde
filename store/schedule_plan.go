package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/schedule"
)

// Spec is the definition as package schedule checks and plans it.
func (d ScheduleDef) Spec() schedule.Spec {
	return schedule.Spec{Name: d.Name, Cron: d.Cron, Timezone: d.Timezone, Policy: d.Policy()}
}

// Policy is the definition's firing policy, defaults applied.
func (d ScheduleDef) Policy() schedule.Policy {
	p := schedule.Policy{Overlap: d.Overlap, Catchup: d.Catchup, CatchupWindow: d.CatchupWindow.D(), Jitter: d.Jitter.D()}
	if d.StartAt != nil {
		p.StartAt = UTC(*d.StartAt)
	}
	if d.EndAt != nil {
		p.EndAt = UTC(*d.EndAt)
	}
	return p.WithDefaults()
}

// Validate checks every field, the target included, and reports all the
// problems at once: an error wrapping ErrInvalid and a
// *schedule.ValidationError whose fields are named as the API names them
// ("cron", "target.job.queue", "target.workflow").
func (d ScheduleDef) Validate() error {
	var problems []*schedule.FieldError
	var verr *schedule.ValidationError
	if errors.As(d.Spec().Validate(), &verr) {
		problems = append(problems, verr.Problems...)
	}
	add := func(field string, err error) {
		problems = append(problems, &schedule.FieldError{Field: field, Message: withoutInvalid(err)})
	}
	t := d.Target
	switch {
	case t.Job == nil && t.Workflow == nil:
		add("target", errors.New("needs a job or a workflow"))
	case t.Job != nil && t.Workflow != nil:
		add("target", errors.New("has both a job and a workflow; give one"))
	case t.Job != nil:
		if err := t.Job.newJob().Validate(); err != nil {
			add("target.job", err)
		}
	default:
		if err := t.Workflow.Validate(); err != nil {
			add("target.workflow", err)
		}
		if n := len(ScheduledWorkflowName(t.Workflow.Name, time.Time{})); n > MaxWorkflowNameLength {
			add("target.workflow.name", fmt.Errorf("is %d bytes long with the run time appended, at most %d", n, MaxWorkflowNameLength))
		}
		if d.DependsOnSchedule != "" {
			add("depends_on_schedule", errors.New("only a job target may depend on another schedule"))
		}
	}
	if len(d.DependsOnSchedule) > schedule.MaxNameLength {
		add("depends_on_schedule", fmt.Errorf("is %d bytes long, at most %d", len(d.DependsOnSchedule), schedule.MaxNameLength))
	}
	if d.DependsOnSchedule == d.Name && d.Name != "" {
		add("depends_on_schedule", errors.New("a schedule cannot depend on itself"))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalid, &schedule.ValidationError{Problems: problems})
}

func withoutInvalid(err error) string {
	msg := err.Error()
	if p := ErrInvalid.Error() + ": "; len(msg) > len(p) && msg[:len(p)] == p {
		return msg[len(p):]
	}
	return msg
}

// MarshalTarget is the target as the schedules table stores it.
func (t ScheduleTarget) MarshalTarget() (string, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("encode schedule target: %w", err)
	}
	return string(b), nil
}

// ParseTarget reads a target stored by MarshalTarget.
func ParseTarget(text []byte) (ScheduleTarget, error) {
	var t ScheduleTarget
	if err := json.Unmarshal(text, &t); err != nil {
		return ScheduleTarget{}, fmt.Errorf("decode schedule target: %w", err)
	}
	return t, nil
}

// newJob is the template as a job to enqueue, without trace or ids.
func (t *JobTemplate) newJob() NewJob {
	prio := job.PriorityNormal
	if t.Priority != nil {
		prio = *t.Priority
	}
	return NewJob{Queue: t.Queue, Payload: t.Payload, Priority: prio, MaxAttempts: t.MaxAttempts,
		Timeout: t.Timeout.D(), RetryPolicy: t.Retry, UniqueKey: t.UniqueKey, ResultTTL: t.ResultTTL.D()}
}

// PlanSchedulePut decides what PutSchedule writes for p.Def, given the
// stored row (nil when there is none): a new row counting slots from now;
// for a changed definition the same, keeping pause, runs and last run; for
// an unchanged definition nothing (changed false, rec is existing). With
// p.CreateOnly an existing row is ErrConflict and nothing is written.
func PlanSchedulePut(existing *ScheduleRecord, p PutScheduleParams, now time.Time) (rec *ScheduleRecord, changed bool, err error) {
	def := p.Def
	if err := def.Validate(); err != nil {
		return nil, false, err
	}
	def = def.normalized()
	now = UTC(now)
	if existing != nil && p.CreateOnly {
		return nil, false, fmt.Errorf("schedule %q already exists: %w", def.Name, ErrConflict)
	}
	if existing != nil {
		if same, err := sameDef(existing.ScheduleDef, def); err != nil || same {
			return existing, false, err
		}
		next := *existing
		next.ScheduleDef = def
		next.UpdatedAt = now
		next.Buffered = nil
		next.applyState(restartState(def, now))
		return &next, true, nil
	}
	rec = &ScheduleRecord{ScheduleDef: def, CreatedAt: now, UpdatedAt: now}
	rec.applyState(restartState(def, now))
	return rec, true, nil
}

// PlanScheduleResume is the state a resumed schedule gets: counting starts
// again from now, so the slots of the pause are neither fired nor missed.
func PlanScheduleResume(rec *ScheduleRecord, now time.Time) ScheduleState {
	st := restartState(rec.ScheduleDef, UTC(now))
	st.LastRunAt, st.LastJobID, st.LastWorkflowID = rec.LastRunAt, rec.LastJobID, rec.LastWorkflowID
	return st
}

// restartState is a schedule counting slots from now: cursor now, nothing
// buffered, next_run_at the first slot after now (nil when none is left).
func restartState(def ScheduleDef, now time.Time) ScheduleState {
	sched, err := schedule.Parse(def.Cron, def.Timezone)
	if err != nil { // validated before any state is planned
		panic(fmt.Sprintf("schedule %q: %v", def.Name, err))
	}
	plan := schedule.Due(schedule.DueParams{Schedule: sched, Policy: def.Policy(), Last: now, Now: now})
	return ScheduleState{Cursor: now, NextRunAt: optTime(plan.NextRunAt)}
}

// applyState copies the cursor, buffer and next run; the last run stays.
func (r *ScheduleRecord) applyState(st ScheduleState) {
	r.Cursor, r.Buffered, r.NextRunAt = st.Cursor, st.Buffered, st.NextRunAt
}

// normalized fills the policy defaults, UTC times and the whole
// milliseconds the tables keep durations in, so that a definition stored and
// read back compares equal to the one given.
func (d ScheduleDef) normalized() ScheduleDef {
	p := d.Policy()
	d.Overlap, d.Catchup = p.Overlap, p.Catchup
	d.CatchupWindow = job.Duration(p.CatchupWindow.Truncate(time.Millisecond))
	d.Jitter = job.Duration(d.Jitter.D().Truncate(time.Millisecond))
	if d.Timezone == "" {
		d.Timezone = "UTC"
	}
	if d.StartAt != nil {
		t := UTC(*d.StartAt)
		d.StartAt = &t
	}
	if d.EndAt != nil {
		t := UTC(*d.EndAt)
		d.EndAt = &t
	}
	return d
}

// sameDef compares two definitions by their meaning: JSON key order and
// spacing in payloads do not count, as a database may keep either.
func sameDef(a, b ScheduleDef) (bool, error) {
	va, err := decoded(a.normalized())
	if err != nil {
		return false, err
	}
	vb, err := decoded(b.normalized())
	if err != nil {
		return false, err
	}
	return reflect.DeepEqual(va, vb), nil
}

func decoded(d ScheduleDef) (any, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode schedule %q: %w", d.Name, err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("decode schedule %q: %w", d.Name, err)
	}
	return v, nil
}

// PlanScheduleFire decides what a taken schedule's transaction writes:
// schedule.Due's slots become fired runs (each with its job or workflow) and
// skipped runs, and the schedule's cursor, buffer and next run move on. A
// schedule with DependsOnSchedule whose dependency has never run skips its
// slots with a note instead of firing. The backend writes the plan as it is,
// replacing LastJobID when a unique key deduplicated the job.
func PlanScheduleFire(in FireInput) (*FirePlan, error) {
	rec := in.Schedule
	sched, err := schedule.Parse(rec.Cron, rec.Timezone)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", rec.Name, err)
	}
	now := UTC(in.Now)
	due := schedule.Due(schedule.DueParams{Schedule: sched, Policy: rec.Policy(), Last: rec.Cursor,
		Buffered: derefTime(rec.Buffered), Live: in.Live, Now: now, Rand: in.Rand})
	plan := &FirePlan{Missed: due.Missed, State: ScheduleState{Cursor: UTC(due.Last),
		Buffered: optTime(due.Buffered), NextRunAt: optTime(due.NextRunAt),
		LastRunAt: rec.LastRunAt, LastJobID: rec.LastJobID, LastWorkflowID: rec.LastWorkflowID}}

	fire := due.Fire
	var blocked []time.Time
	if rec.DependsOnSchedule != "" && !in.DependencyRan {
		fire, blocked = nil, fire
	}
	runs := make([]PlannedRun, 0, len(fire)+len(due.Skipped)+len(blocked))
	for _, t := range fire {
		pr, err := plannedRun(rec, UTC(t), now, false, in.Dependency, in.Trace)
		if err != nil {
			return nil, err
		}
		runs = append(runs, pr)
		plan.State.record(pr)
	}
	for _, t := range due.Skipped {
		runs = append(runs, PlannedRun{Run: ScheduleRun{Schedule: rec.Name, NominalTime: UTC(t), FiredAt: now,
			Outcome: RunSkipped, Note: "the previous run had not finished (overlap " + string(rec.Policy().Overlap) + ")"}})
	}
	for _, t := range blocked {
		runs = append(runs, PlannedRun{Run: ScheduleRun{Schedule: rec.Name, NominalTime: UTC(t), FiredAt: now,
			Outcome: RunSkipped, Note: fmt.Sprintf("schedule %q, which this one depends on, has not run yet", rec.DependsOnSchedule)}})
	}
	slices.SortStableFunc(runs, func(a, b PlannedRun) int { return a.Run.NominalTime.Compare(b.Run.NominalTime) })
	plan.Runs = runs
	return plan, nil
}

// PlanScheduleTrigger is the run TriggerSchedule writes: nominal time now,
// outside the slot sequence, whatever the overlap policy. Its dependency is
// as for a slot; with none run yet the triggered job has no parent.
//
// Slots fall on whole seconds; a trigger whose now does too is moved a
// microsecond later, so it never takes the run key of a slot that is still
// to fire.
func PlanScheduleTrigger(in FireInput) (PlannedRun, ScheduleState, error) {
	rec := in.Schedule
	nominal := UTC(in.Now)
	if nominal.Equal(nominal.Truncate(time.Second)) {
		nominal = nominal.Add(time.Microsecond)
	}
	pr, err := plannedRun(rec, nominal, UTC(in.Now), true, in.Dependency, in.Trace)
	if err != nil {
		return PlannedRun{}, ScheduleState{}, err
	}
	st := ScheduleState{Cursor: rec.Cursor, Buffered: rec.Buffered, NextRunAt: rec.NextRunAt}
	st.record(pr)
	return pr, st, nil
}

// record makes pr the schedule's latest run.
func (st *ScheduleState) record(pr PlannedRun) {
	t := pr.Run.NominalTime
	st.LastRunAt, st.LastJobID, st.LastWorkflowID = &t, pr.Run.JobID, pr.Run.WorkflowID
}

// plannedRun builds the job or workflow of one fired run, with its ids
// chosen here so the run row and the schedule can name them.
func plannedRun(rec *ScheduleRecord, nominal, firedAt time.Time, triggered bool, dependency *uuid.UUID, trace RunTracer) (PlannedRun, error) {
	run := ScheduleRun{Schedule: rec.Name, NominalTime: nominal, FiredAt: firedAt, Outcome: RunFired, Triggered: triggered}
	var tr RunTrace
	if trace != nil {
		tr = trace(rec.Name, nominal)
	}
	correlation := RunCorrelationID(rec.Name, nominal)
	id, err := uuid.NewV7()
	if err != nil {
		return PlannedRun{}, fmt.Errorf("schedule %q: new id: %w", rec.Name, err)
	}
	if t := rec.Target.Job; t != nil {
		n := t.newJob()
		n.ID, n.TraceID, n.SpanContext, n.TraceState, n.CorrelationID = id, tr.TraceID, tr.SpanContext, tr.TraceState, correlation
		if dependency != nil {
			n.DependsOn = []uuid.UUID{*dependency}
		}
		run.JobID = &id
		return PlannedRun{Run: run, Job: &n}, nil
	}
	w := *rec.Target.Workflow
	w.Name = ScheduledWorkflowName(w.Name, nominal)
	w.CorrelationID = correlation
	w.TraceID = tr.TraceID
	run.WorkflowID = &id
	return PlannedRun{Run: run, Workflow: &EnqueueWorkflowParams{Workflow: w, ID: id,
		SpanContext: tr.SpanContext, TraceState: tr.TraceState}}, nil
}

// MaxWorkflowNameLength is the longest workflow name every backend stores
// (MySQL's VARCHAR(255)); a cron workflow's name must fit with its run time.
const MaxWorkflowNameLength = 255

// RunCorrelationID is the correlation id of a run's job or workflow: the
// schedule's name and the run's nominal time, so one day's run is found by
// either.
func RunCorrelationID(name string, nominal time.Time) string {
	return name + "@" + nominal.UTC().Format(time.RFC3339)
}

// ScheduledWorkflowName is a cron workflow's name for one run: the
// definition's name suffixed with the run's nominal time, as the run's
// correlation id is.
func ScheduledWorkflowName(name string, nominal time.Time) string {
	return RunCorrelationID(name, nominal)
}

// Paging applies the list default and cap; the cursor is the name after
// which the page starts.
func (p ListSchedulesParams) Paging() NamePaging {
	return NamePaging{Limit: ListParams{Limit: p.Limit}.ListLimit(), After: p.Cursor}
}

// NamePaging is one page of a listing ordered by name.
type NamePaging struct {
	Limit int
	// After: the page holds names greater than it; empty on the first page.
	After string
}

// Fetch is how many rows a backend reads: one beyond the page.
func (pg NamePaging) Fetch() int { return pg.Limit + 1 }

// Page trims the fetched rows to the page and sets the cursor.
func (pg NamePaging) Page(rows []*ScheduleRecord) *SchedulePage {
	recs, next := cutByName(pg, rows, func(r *ScheduleRecord) string { return r.Name })
	return &SchedulePage{Schedules: recs, NextCursor: next}
}

// cutByName trims rows read with Fetch (by name) to the page and returns
// the next page's cursor, the page's last name, empty on the last page.
// The rows are never nil.
func cutByName[T any](pg NamePaging, rows []T, name func(T) string) ([]T, string) {
	if rows == nil {
		return []T{}, ""
	}
	if len(rows) <= pg.Limit {
		return rows, ""
	}
	rows = rows[:pg.Limit]
	return rows, name(rows[pg.Limit-1])
}

// Paging applies the list default and cap and parses the cursor, the
// RFC 3339 nominal time the page starts below; another cursor is
// ErrInvalid.
func (p ScheduleRunsParams) Paging() (RunPaging, error) {
	pg := RunPaging{Limit: ListParams{Limit: p.Limit}.ListLimit()}
	if p.Cursor == "" {
		return pg, nil
	}
	t, err := time.Parse(time.RFC3339Nano, p.Cursor)
	if err != nil {
		return RunPaging{}, fmt.Errorf("%w: cursor %q is not an RFC 3339 time", ErrInvalid, p.Cursor)
	}
	t = UTC(t)
	pg.Before = &t
	return pg, nil
}

// RunPaging is one page of runs, newest nominal time first.
type RunPaging struct {
	Limit int
	// Before: the page holds nominal times before it; nil on the first page.
	Before *time.Time
}

// Fetch is how many rows a backend reads: one beyond the page.
func (pg RunPaging) Fetch() int { return pg.Limit + 1 }

// Page trims the fetched rows to the page and sets the cursor.
func (pg RunPaging) Page(rows []*ScheduleRun) *ScheduleRunPage {
	page := &ScheduleRunPage{Runs: rows}
	if page.Runs == nil {
		page.Runs = []*ScheduleRun{}
	}
	if len(rows) > pg.Limit {
		page.Runs = rows[:pg.Limit]
		page.NextCursor = rows[pg.Limit-1].NominalTime.Format(time.RFC3339Nano)
	}
	return page
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := UTC(t)
	return &u
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
