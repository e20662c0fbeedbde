package store

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/schedule"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// Schedules keeps cron schedules (hammerwork_schedules) and their runs
// (hammerwork_schedule_runs) and fires them. Firing needs no leader: every
// agent calls FireSchedules, a due schedule's row is taken with FOR UPDATE
// SKIP LOCKED (SQLite: its single writer), and the run rows, the jobs or
// workflows and the schedule's new state are written in one transaction.
// The run row is unique on (schedule_name, nominal_time), so a slot fires at
// most once across agents and restarts. Every decision (the first
// next_run_at, which slots fire, are skipped or are missed, what a run
// creates) is made in Go by PlanSchedulePut, PlanScheduleResume and
// PlanScheduleFire; a backend reads the rows, calls them and writes the
// plan.
type Schedules interface {
	// PutSchedule validates p.Def (ScheduleDef.Validate: a
	// *schedule.ValidationError wrapping ErrInvalid, nothing written) and
	// creates or replaces the schedule of that name, within one
	// transaction holding the row, as PlanSchedulePut decides: a new
	// schedule starts counting slots from now; a changed one starts again
	// from now; an unchanged one (the configuration file upserting at every
	// start-up) is left exactly as it was. Created reports a new row.
	PutSchedule(ctx context.Context, p PutScheduleParams) (rec *ScheduleRecord, created bool, err error)
	// GetSchedule returns one schedule, or ErrNotFound.
	GetSchedule(ctx context.Context, name string) (*ScheduleRecord, error)
	// ListSchedules lists schedules by name, p.Limit per page
	// (ListSchedulesParams.Paging); the cursor is the last name of a page.
	ListSchedules(ctx context.Context, p ListSchedulesParams) (*SchedulePage, error)
	// DeleteSchedule removes a schedule and its runs; the jobs and workflows
	// its runs created stay. An unknown name is ErrNotFound.
	DeleteSchedule(ctx context.Context, name string) error
	// PruneSchedules deletes (as DeleteSchedule) every schedule whose name
	// is not in p.Keep and returns the deleted names, sorted.
	PruneSchedules(ctx context.Context, p PruneSchedulesParams) ([]string, error)
	// PauseSchedule sets paused, paused_reason and paused_at = now; a paused
	// schedule is never taken by FireSchedules. Pausing a paused schedule
	// updates the reason only. Unknown: ErrNotFound.
	PauseSchedule(ctx context.Context, p PauseScheduleParams) (*ScheduleRecord, error)
	// ResumeSchedule lifts a pause and writes PlanScheduleResume's state:
	// slots during the pause are not caught up; next_run_at is the first
	// slot after now. Resuming a schedule that is not paused changes
	// nothing. Unknown: ErrNotFound.
	ResumeSchedule(ctx context.Context, p ResumeScheduleParams) (*ScheduleRecord, error)
	// TriggerSchedule fires one run now, outside the slot sequence: nominal
	// time = now, triggered = true, whatever the overlap policy and even
	// while paused; next_run_at and the slot cursor are left alone, and
	// last_run_at / last_job_id / last_workflow_id name the new run. The run
	// is built by PlanScheduleTrigger. Unknown: ErrNotFound.
	TriggerSchedule(ctx context.Context, p TriggerScheduleParams) (*ScheduleRun, error)
	// ScheduleRuns pages one schedule's runs, newest nominal time first
	// (ScheduleRunsParams.Paging). Unknown schedule: ErrNotFound.
	ScheduleRuns(ctx context.Context, p ScheduleRunsParams) (*ScheduleRunPage, error)
	// FireSchedules takes, one transaction each, up to p.Limit schedules
	// that are not paused and whose next_run_at <= now, oldest next_run_at
	// first, skipping rows another transaction holds. For each it reads the
	// row, whether the latest run is live (its job pending or running, its
	// workflow running or paused) and, for DependsOnSchedule, that
	// schedule's latest job; calls PlanScheduleFire; and writes, in that
	// transaction, the plan's jobs (with the enqueue rules: unique keys,
	// depends_on) and workflows (as EnqueueWorkflow), one run row per
	// planned run (job_id / workflow_id of what was written: a job
	// deduplicated by its unique key records the job that holds the key),
	// the schedule's new state, and deletes the schedule's runs beyond the
	// newest ScheduleRunsKept. A schedule whose transaction fails is rolled
	// back alone and reported in Errors; the others still fire. When the
	// error wraps ErrInvalid or ErrConflict (a target that can no longer be
	// written), a second transaction writes the planned runs as skipped,
	// each with a Note holding the error, and the planned state, so a broken
	// target costs its slots instead of failing every pass; any other error
	// (the database) leaves the schedule due, to be retried.
	FireSchedules(ctx context.Context, p FireSchedulesParams) (*FireResult, error)
}

// ScheduleRunsKept is how many runs of one schedule the runs table keeps; a
// fire deletes the older ones, so an "@every 1s" schedule's history stays
// bounded.
const ScheduleRunsKept = 1000

// ScheduleDef is a schedule as the API, the CLI and the configuration file
// give it; its JSON is the API's schedule document. Zero policy fields take
// schedule.Policy's defaults.
type ScheduleDef struct {
	Name     string           `json:"name"`
	Cron     string           `json:"cron"`
	Timezone string           `json:"timezone,omitempty"` // IANA; empty is UTC
	Target   ScheduleTarget   `json:"target"`
	Overlap  schedule.Overlap `json:"overlap,omitempty"`
	Catchup  schedule.Catchup `json:"catchup,omitempty"`
	// CatchupWindow: zero is schedule.DefaultCatchupWindow.
	CatchupWindow job.Duration `json:"catchup_window,omitempty"`
	Jitter        job.Duration `json:"jitter,omitempty"`
	// StartAt and EndAt bound the nominal times that fire, both inclusive.
	StartAt *time.Time `json:"start_at,omitempty"`
	EndAt   *time.Time `json:"end_at,omitempty"`
	// DependsOnSchedule names a schedule whose latest run's job each new job
	// waits for; only a job target may name one.
	DependsOnSchedule string `json:"depends_on_schedule,omitempty"`
}

// ScheduleTarget is what a run creates: exactly one of Job and Workflow.
// It is stored as this JSON document.
type ScheduleTarget struct {
	Job *JobTemplate `json:"job,omitempty"`
	// Workflow is instantiated whole per run, its name suffixed with the
	// run's nominal time (ScheduledWorkflowName).
	Workflow *workflow.Workflow `json:"workflow,omitempty"`
}

// JobTemplate is the job a run enqueues.
type JobTemplate struct {
	Queue       string           `json:"queue"`
	Payload     json.RawMessage  `json:"payload,omitempty"`
	Priority    *job.Priority    `json:"priority,omitempty"` // nil is normal
	MaxAttempts int              `json:"max_attempts,omitempty"`
	Timeout     job.Duration     `json:"timeout,omitempty"`
	Retry       *job.RetryPolicy `json:"retry,omitempty"`
	UniqueKey   string           `json:"unique_key,omitempty"`
	ResultTTL   job.Duration     `json:"result_ttl,omitempty"`
}

// ScheduleRecord is a stored schedule: its definition and the scheduler's
// state.
type ScheduleRecord struct {
	ScheduleDef
	Paused       bool
	PausedReason string
	PausedAt     *time.Time
	// NextRunAt is when FireSchedules takes the schedule next; nil once no
	// slot is left (past EndAt).
	NextRunAt *time.Time
	// Cursor is the nominal time of the newest slot handled (fired, skipped
	// or missed), or when the schedule was created, changed or resumed:
	// schedule.DueParams.Last.
	Cursor time.Time
	// Buffered is the slot schedule.OverlapBufferOne holds; nil for none.
	Buffered *time.Time
	// LastRunAt is the nominal time of the newest run that created a job or
	// workflow (triggered runs too); LastJobID or LastWorkflowID names what
	// it created.
	LastRunAt      *time.Time
	LastJobID      *uuid.UUID
	LastWorkflowID *uuid.UUID
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// RunOutcome is what became of one slot.
type RunOutcome string

const (
	// RunFired created the run's job or workflow.
	RunFired RunOutcome = "fired"
	// RunSkipped created nothing: the overlap policy held it back while a
	// run was live, or DependsOnSchedule had no run yet (Note says which).
	RunSkipped RunOutcome = "skipped"
)

// ScheduleRun is one row of hammerwork_schedule_runs.
type ScheduleRun struct {
	Schedule    string
	NominalTime time.Time
	// FiredAt is when the run was written: Now, or the database's now when
	// Now is zero.
	FiredAt    time.Time
	Outcome    RunOutcome
	Triggered  bool
	JobID      *uuid.UUID
	WorkflowID *uuid.UUID
	// Note says why a run was skipped; empty otherwise.
	Note string
}

// PutScheduleParams creates or replaces one schedule.
type PutScheduleParams struct {
	Def ScheduleDef
	// CreateOnly makes an existing schedule of that name ErrConflict, left
	// as it was (POST /v1/schedules), decided under the row's lock.
	CreateOnly bool
	Now        time.Time
}

// ListSchedulesParams pages the schedules.
type ListSchedulesParams struct {
	Limit  int
	Cursor string
}

// SchedulePage is one page of schedules.
type SchedulePage struct {
	Schedules  []*ScheduleRecord
	NextCursor string
}

// PruneSchedulesParams names the schedules to keep.
type PruneSchedulesParams struct {
	Keep []string
}

// PauseScheduleParams pauses one schedule.
type PauseScheduleParams struct {
	Name   string
	Reason string
	Now    time.Time
}

// ResumeScheduleParams resumes one schedule.
type ResumeScheduleParams struct {
	Name string
	Now  time.Time
}

// TriggerScheduleParams fires one schedule now.
type TriggerScheduleParams struct {
	Name string
	// Trace starts the run's trace; nil leaves the job without one.
	Trace RunTracer
	Now   time.Time
}

// ScheduleRunsParams pages one schedule's runs.
type ScheduleRunsParams struct {
	Name   string
	Limit  int
	Cursor string
}

// ScheduleRunPage is one page of runs.
type ScheduleRunPage struct {
	Runs       []*ScheduleRun
	NextCursor string
}

// FireSchedulesParams drives one scheduler pass.
type FireSchedulesParams struct {
	// Limit bounds the schedules taken; a pass that takes Limit is followed
	// by another at once.
	Limit int
	// Trace starts each fired run's trace; nil leaves jobs without one.
	Trace RunTracer
	// Rand draws jitter; nil uses the global source.
	Rand *rand.Rand
	Now  time.Time
}

// RunTracer starts the trace of one fired run and returns the context its
// job or workflow carries: a new trace whose root span names the schedule.
type RunTracer func(schedule string, nominal time.Time) RunTrace

// RunTrace is the trace context a run's job or workflow is stamped with.
type RunTrace struct {
	TraceID     string
	SpanContext string // W3C traceparent
	TraceState  string
}

// FireResult is what one FireSchedules pass did.
type FireResult struct {
	// Taken counts the schedules taken, fired or not.
	Taken int
	// Runs are the runs written, fired and skipped, per schedule in nominal
	// order.
	Runs []*ScheduleRun
	// Missed counts, per schedule, the slots the catch-up policy let pass.
	Missed map[string]int
	// Queues lists, sorted and once each, the queues that got new jobs, so
	// the agent wakes its producers for them.
	Queues []string
	// Errors holds, per schedule, why its transaction was rolled back.
	Errors map[string]error
}

// FireInput is what a backend read about a taken schedule, for
// PlanScheduleFire.
type FireInput struct {
	Schedule *ScheduleRecord
	// Live: the latest run's job or workflow has not finished.
	Live bool
	// Dependency is the latest job of DependsOnSchedule when that job still
	// exists; DependencyRan reports that the schedule has had a run at all
	// (a run whose job was since deleted by retention counts as resolved).
	Dependency    *uuid.UUID
	DependencyRan bool
	Trace         RunTracer
	Rand          *rand.Rand
	Now           time.Time
}

// FirePlan is what a backend writes for one taken schedule.
type FirePlan struct {
	// Runs in nominal order; a fired run has exactly one of Job and
	// Workflow, a skipped run neither.
	Runs []PlannedRun
	// Missed counts the slots let pass without a run.
	Missed int
	// State is the schedule's new state: Cursor, Buffered, NextRunAt and,
	// when a run fired, LastRunAt; LastJobID / LastWorkflowID are the
	// planned ids, which the backend replaces with what it wrote (a
	// deduplicated job's holder).
	State ScheduleState
}

// PlannedRun is one run to write.
type PlannedRun struct {
	Run      ScheduleRun
	Job      *NewJob
	Workflow *EnqueueWorkflowParams
}

// ScheduleState is the part of a schedule row that firing, pausing and
// resuming change.
type ScheduleState struct {
	Cursor         time.Time
	Buffered       *time.Time
	NextRunAt      *time.Time
	LastRunAt      *time.Time
	LastJobID      *uuid.UUID
	LastWorkflowID *uuid.UUID
}
