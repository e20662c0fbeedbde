package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/schedule"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/tracing"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// The store's schedule calls already name what they did and to which
// schedule ("pause schedule \"nightly\": not found"), so their errors are
// returned as they are rather than wrapped a second time.

// Previews of fire times: GET /v1/schedules/{name}/next?n= and `hw-agent
// cron next -n`.
const (
	DefaultPreview = 10
	MaxPreview     = 100
)

// ScheduleView is one schedule as GET /v1/schedules/{name} and `hw-agent
// cron show --output json` show it: the definition (store.ScheduleDef's
// document, defaults filled in) and the scheduler's state. Durations are Go
// duration strings, times RFC 3339 in UTC.
type ScheduleView struct {
	Name              string               `json:"name"`
	Cron              string               `json:"cron"`
	Timezone          string               `json:"timezone"`
	Target            store.ScheduleTarget `json:"target"`
	Overlap           schedule.Overlap     `json:"overlap"`
	Catchup           schedule.Catchup     `json:"catchup"`
	CatchupWindow     job.Duration         `json:"catchup_window"`
	Jitter            job.Duration         `json:"jitter"`
	DependsOnSchedule string               `json:"depends_on_schedule,omitempty"`
	Paused            bool                 `json:"paused"`
	PausedReason      string               `json:"paused_reason,omitempty"`
	PausedAt          *time.Time           `json:"paused_at,omitempty"`
	StartAt           *time.Time           `json:"start_at,omitempty"`
	EndAt             *time.Time           `json:"end_at,omitempty"`
	// NextRunAt is null once no slot is left (past end_at).
	NextRunAt      *time.Time `json:"next_run_at"`
	LastRunAt      *time.Time `json:"last_run_at,omitempty"`
	LastJobID      *uuid.UUID `json:"last_job_id,omitempty"`
	LastWorkflowID *uuid.UUID `json:"last_workflow_id,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// NewScheduleView renders a stored schedule with its policy defaults.
func NewScheduleView(r *store.ScheduleRecord) ScheduleView {
	p := r.Policy()
	tz := r.Timezone
	if tz == "" {
		tz = "UTC"
	}
	return ScheduleView{
		Name: r.Name, Cron: r.Cron, Timezone: tz, Target: r.Target,
		Overlap: p.Overlap, Catchup: p.Catchup, CatchupWindow: job.Duration(p.CatchupWindow), Jitter: job.Duration(p.Jitter),
		DependsOnSchedule: r.DependsOnSchedule,
		Paused:            r.Paused, PausedReason: r.PausedReason, PausedAt: utcPtr(r.PausedAt),
		StartAt: utcPtr(r.StartAt), EndAt: utcPtr(r.EndAt), NextRunAt: utcPtr(r.NextRunAt),
		LastRunAt: utcPtr(r.LastRunAt), LastJobID: r.LastJobID, LastWorkflowID: r.LastWorkflowID,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
}

// ScheduleRunView is one run of a schedule: what became of one slot, or of
// one trigger.
type ScheduleRunView struct {
	Schedule    string           `json:"schedule"`
	NominalTime time.Time        `json:"nominal_time"`
	FiredAt     time.Time        `json:"fired_at"`
	Outcome     store.RunOutcome `json:"outcome"`
	Triggered   bool             `json:"triggered"`
	JobID       *uuid.UUID       `json:"job_id,omitempty"`
	WorkflowID  *uuid.UUID       `json:"workflow_id,omitempty"`
	Note        string           `json:"note,omitempty"`
}

// NewScheduleRunView renders a stored run.
func NewScheduleRunView(r *store.ScheduleRun) ScheduleRunView {
	return ScheduleRunView{Schedule: r.Schedule, NominalTime: r.NominalTime.UTC(), FiredAt: r.FiredAt.UTC(),
		Outcome: r.Outcome, Triggered: r.Triggered, JobID: r.JobID, WorkflowID: r.WorkflowID, Note: r.Note}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// FireTimes is the next n nominal fire times after now of def, in UTC, as
// schedule.Schedule.Preview counts them from cursor, the schedule's last
// handled slot (zero for a definition not stored).
func FireTimes(def store.ScheduleDef, cursor, now time.Time, n int) ([]time.Time, error) {
	sched, err := schedule.Parse(def.Cron, def.Timezone)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", store.ErrInvalid, err)
	}
	out := sched.Preview(def.Policy(), cursor, now, n)
	for i, t := range out {
		out[i] = t.UTC()
	}
	return out, nil
}

// SchedulePreview is GET /v1/schedules/{name}/next and `hw-agent cron next
// --output json`: the next nominal fire times, in UTC.
type SchedulePreview struct {
	Name     string      `json:"name"`
	Cron     string      `json:"cron"`
	Timezone string      `json:"timezone"`
	Times    []time.Time `json:"times"`
}

type scheduleList struct {
	Schedules  []ScheduleView `json:"schedules"`
	NextCursor string         `json:"next_cursor"`
}

type scheduleRunList struct {
	Runs       []ScheduleRunView `json:"runs"`
	NextCursor string            `json:"next_cursor"`
}

// scheduleRequest is the body of POST /v1/schedules and PUT
// /v1/schedules/{name}: store.ScheduleDef's document. Durations, times and
// the target arrive raw and are parsed here, so a bad value is a 422 that
// names its field, as for a job.
type scheduleRequest struct {
	Name              string           `json:"name"`
	Cron              string           `json:"cron"`
	Timezone          string           `json:"timezone"`
	Target            json.RawMessage  `json:"target"`
	Overlap           schedule.Overlap `json:"overlap"`
	Catchup           schedule.Catchup `json:"catchup"`
	CatchupWindow     *string          `json:"catchup_window"`
	Jitter            *string          `json:"jitter"`
	StartAt           *string          `json:"start_at"`
	EndAt             *string          `json:"end_at"`
	DependsOnSchedule string           `json:"depends_on_schedule"`
}

// targetRequest is the target object; each side is decoded by the rules of
// what it creates.
type targetRequest struct {
	Job      json.RawMessage `json:"job"`
	Workflow json.RawMessage `json:"workflow"`
}

// def turns the request into a validated definition. Every value that does
// not parse is reported at once, each with its field; a request that parses
// is then checked by ScheduleDef.Validate, which reports every problem too.
func (r *scheduleRequest) def() (store.ScheduleDef, error) {
	d := store.ScheduleDef{Name: r.Name, Cron: r.Cron, Timezone: r.Timezone, Overlap: r.Overlap, Catchup: r.Catchup,
		DependsOnSchedule: r.DependsOnSchedule}
	var problems []*schedule.FieldError
	add := func(field string, err error) {
		problems = append(problems, &schedule.FieldError{Field: field, Message: withoutSentinel(err, store.ErrInvalid)})
	}
	for _, dur := range []struct {
		field string
		raw   *string
		out   *job.Duration
	}{{"catchup_window", r.CatchupWindow, &d.CatchupWindow}, {"jitter", r.Jitter, &d.Jitter}} {
		if dur.raw == nil {
			continue
		}
		if err := dur.out.UnmarshalText([]byte(*dur.raw)); err != nil {
			add(dur.field, err)
		}
	}
	for _, at := range []struct {
		field string
		raw   *string
		out   **time.Time
	}{{"start_at", r.StartAt, &d.StartAt}, {"end_at", r.EndAt, &d.EndAt}} {
		if at.raw == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, *at.raw)
		if err != nil {
			add(at.field, fmt.Errorf("%q is not an RFC 3339 time (e.g. 2026-01-02T15:04:05Z)", *at.raw))
			continue
		}
		*at.out = &t
	}
	target, targetProblems, err := parseTarget(r.Target)
	if err != nil {
		return store.ScheduleDef{}, err
	}
	d.Target = target
	problems = append(problems, targetProblems...)
	if len(problems) > 0 {
		return store.ScheduleDef{}, scheduleInvalid(&schedule.ValidationError{Problems: problems})
	}
	if err := d.Validate(); err != nil {
		return store.ScheduleDef{}, scheduleError(err)
	}
	return d, nil
}

// parseTarget reads the target: a job template with the job routes' rules
// (an unknown or mistyped field is a 400), a workflow with the definition
// loader of POST /v1/workflows, its problems named under target.workflow.
func parseTarget(raw json.RawMessage) (store.ScheduleTarget, []*schedule.FieldError, error) {
	var t store.ScheduleTarget
	if isNull(raw) {
		return t, nil, nil
	}
	var req targetRequest
	if err := decodeStrict(raw, &req, "target"); err != nil {
		return t, nil, err
	}
	var problems []*schedule.FieldError
	if !isNull(req.Job) {
		var tmpl store.JobTemplate
		if err := decodeStrict(req.Job, &tmpl, "target.job"); err != nil {
			var ae *apiError
			if errors.As(err, &ae) { // malformed: a 400, as for a job
				return t, nil, err
			}
			problems = append(problems, &schedule.FieldError{Field: "target.job", Message: withoutSentinel(err, store.ErrInvalid)})
		}
		t.Job = &tmpl
	}
	if !isNull(req.Workflow) {
		w, err := workflow.ParseJSON(req.Workflow)
		var ve *workflow.ValidationError
		switch {
		case errors.As(err, &ve):
			for _, p := range ve.Problems {
				field := "target.workflow"
				if p.Path != "" {
					field += "." + p.Path
				}
				problems = append(problems, &schedule.FieldError{Field: field, Message: p.Message})
			}
		case err != nil:
			problems = append(problems, &schedule.FieldError{Field: "target.workflow", Message: err.Error()})
		}
		t.Workflow = &w
	}
	return t, problems, nil
}

// scheduleError answers a rejected definition with a 422 whose message
// names each field and whose details list them ({field, message}); other
// errors pass through to classify.
func scheduleError(err error) error {
	var ve *schedule.ValidationError
	if errors.As(err, &ve) {
		return scheduleInvalid(ve)
	}
	return err
}

func scheduleInvalid(ve *schedule.ValidationError) *apiError {
	return &apiError{Status: http.StatusUnprocessableEntity, Code: codeInvalid, Message: ve.Error(), Details: ve.Details()}
}

func scheduleLocation(name string) string { return "/v1/schedules/" + url.PathEscape(name) }

// createSchedule is POST /v1/schedules: a new schedule only; a name that
// exists is a 409, so a client cannot replace a schedule by mistake (PUT
// does that on purpose).
func (s *Server) createSchedule(c echo.Context) error {
	var req scheduleRequest
	if err := decodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	def, err := req.def()
	if err != nil {
		return err
	}
	rec, _, err := s.p.Store.PutSchedule(c.Request().Context(), store.PutScheduleParams{Def: def, CreateOnly: true, Now: s.now()})
	if err != nil {
		return scheduleError(err)
	}
	s.log.Info("schedule created through the API", scheduleAttrs(rec)...)
	c.Response().Header().Set(echo.HeaderLocation, scheduleLocation(rec.Name))
	return c.JSON(http.StatusCreated, NewScheduleView(rec))
}

// putSchedule is PUT /v1/schedules/{name}: create or replace. An unchanged
// definition (a deploy re-applying its schedules) keeps the schedule's
// state exactly; a changed one counts its slots again from now.
func (s *Server) putSchedule(c echo.Context) error {
	name := c.Param("name")
	var req scheduleRequest
	if err := decodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	if req.Name == "" {
		req.Name = name
	}
	if req.Name != name {
		return scheduleInvalid(&schedule.ValidationError{Problems: []*schedule.FieldError{{Field: "name",
			Message: fmt.Sprintf("%q does not match the path's %q; leave it out or make them equal", req.Name, name)}}})
	}
	def, err := req.def()
	if err != nil {
		return err
	}
	rec, created, err := s.p.Store.PutSchedule(c.Request().Context(), store.PutScheduleParams{Def: def, Now: s.now()})
	if err != nil {
		return scheduleError(err)
	}
	c.Response().Header().Set(echo.HeaderLocation, scheduleLocation(rec.Name))
	if created {
		s.log.Info("schedule created through the API", scheduleAttrs(rec)...)
		return c.JSON(http.StatusCreated, NewScheduleView(rec))
	}
	s.log.Info("schedule put through the API", scheduleAttrs(rec)...)
	return c.JSON(http.StatusOK, NewScheduleView(rec))
}

// scheduleListParams are the query parameters the schedule listings accept.
var scheduleListParams = map[string]bool{"limit": true, "cursor": true}

// pageQuery reads limit and cursor, refusing any other parameter.
func pageQuery(c echo.Context) (limit int, cursor string, err error) {
	q := c.QueryParams()
	for k := range q {
		if !scheduleListParams[k] {
			return 0, "", badRequest("unknown query parameter %q (want limit or cursor)", k)
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = parseLimit(v); err != nil {
			return 0, "", err
		}
	}
	return limit, q.Get("cursor"), nil
}

func (s *Server) listSchedules(c echo.Context) error {
	limit, cursor, err := pageQuery(c)
	if err != nil {
		return err
	}
	page, err := s.p.Store.ListSchedules(c.Request().Context(), store.ListSchedulesParams{Limit: limit, Cursor: cursor})
	if err != nil {
		return err
	}
	out := scheduleList{Schedules: make([]ScheduleView, len(page.Schedules)), NextCursor: page.NextCursor}
	for i, r := range page.Schedules {
		out.Schedules[i] = NewScheduleView(r)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getSchedule(c echo.Context) error {
	name := c.Param("name")
	rec, err := s.p.Store.GetSchedule(c.Request().Context(), name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, NewScheduleView(rec))
}

// deleteSchedule removes the schedule and its runs; the jobs and workflows
// the runs created stay.
func (s *Server) deleteSchedule(c echo.Context) error {
	name := c.Param("name")
	if err := s.p.Store.DeleteSchedule(c.Request().Context(), name); err != nil {
		return err
	}
	s.log.Info("schedule deleted through the API", "schedule", name)
	return c.NoContent(http.StatusNoContent)
}

// pauseRequest is the optional body of POST /v1/schedules/{name}/pause.
type pauseRequest struct {
	Reason string `json:"reason"`
}

// pauseSchedule stops every agent from firing the schedule; pausing again
// only updates the reason, so retried requests are harmless.
func (s *Server) pauseSchedule(c echo.Context) error {
	name := c.Param("name")
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return decodeError(err, "")
	}
	var req pauseRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeJSON(bytes.NewReader(body), &req); err != nil {
			return err
		}
	}
	rec, err := s.p.Store.PauseSchedule(c.Request().Context(), store.PauseScheduleParams{Name: name, Reason: req.Reason, Now: s.now()})
	if err != nil {
		return err
	}
	s.log.Info("schedule paused through the API", append(scheduleAttrs(rec), "reason", rec.PausedReason)...)
	return c.JSON(http.StatusOK, NewScheduleView(rec))
}

// resumeSchedule lifts a pause; the slots of the pause are not caught up.
func (s *Server) resumeSchedule(c echo.Context) error {
	name := c.Param("name")
	rec, err := s.p.Store.ResumeSchedule(c.Request().Context(), store.ResumeScheduleParams{Name: name, Now: s.now()})
	if err != nil {
		return err
	}
	s.log.Info("schedule resumed through the API", scheduleAttrs(rec)...)
	return c.JSON(http.StatusOK, NewScheduleView(rec))
}

// triggerSchedule fires one run now, whatever the overlap policy and even
// while paused. The run's job or workflow is created under a producer span
// of the caller's trace, as POST /v1/jobs creates a job, and the producers
// of the queues it made leasable are woken.
func (s *Server) triggerSchedule(c echo.Context) error {
	name := c.Param("name")
	ctx := c.Request().Context()
	rec, err := s.p.Store.GetSchedule(ctx, name)
	if err != nil {
		return err
	}
	var spans []trace.Span
	tracer := func(sched string, nominal time.Time) store.RunTrace {
		p := tracing.CreateParams{CorrelationID: store.RunCorrelationID(sched, nominal)}
		if rec.Target.Job != nil {
			p.Queue = rec.Target.Job.Queue
		} else if rec.Target.Workflow != nil {
			p.Workflow = store.ScheduledWorkflowName(rec.Target.Workflow.Name, nominal)
		}
		_, span, created := s.startCreate(c, p)
		spans = append(spans, span)
		return store.RunTrace{TraceID: created.TraceID, SpanContext: created.SpanContext, TraceState: created.TraceState}
	}
	run, err := s.p.Store.TriggerSchedule(ctx, store.TriggerScheduleParams{Name: name, Trace: tracer, Now: s.now()})
	for _, span := range spans {
		switch {
		case err != nil:
			endCreate(span, semconv.MessagingMessageID(""), err)
		case run.WorkflowID != nil:
			endCreate(span, tracing.AttrWorkflowID.String(run.WorkflowID.String()), nil)
		default:
			endCreate(span, semconv.MessagingMessageID(optID(run.JobID)), nil)
		}
	}
	if err != nil {
		return err
	}
	// The target is the one read before the trigger; when the schedule was
	// replaced by another kind in between, every producer is woken.
	switch {
	case run.JobID != nil:
		c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+run.JobID.String())
		if rec.Target.Job != nil {
			s.wake(rec.Target.Job.Queue)
		} else {
			s.wake()
		}
	case run.WorkflowID != nil:
		c.Response().Header().Set(echo.HeaderLocation, "/v1/workflows/"+run.WorkflowID.String())
		if rec.Target.Workflow != nil {
			s.wake(rootQueues(*rec.Target.Workflow)...)
		} else {
			s.wake()
		}
	}
	s.log.Info("schedule triggered through the API", "schedule", name, "nominal_time", run.NominalTime,
		"job_id", optID(run.JobID), "workflow_id", optID(run.WorkflowID))
	return c.JSON(http.StatusCreated, NewScheduleRunView(run))
}

func (s *Server) scheduleRuns(c echo.Context) error {
	name := c.Param("name")
	limit, cursor, err := pageQuery(c)
	if err != nil {
		return err
	}
	if cursor != "" {
		if _, err := time.Parse(time.RFC3339Nano, cursor); err != nil {
			return badRequest("cursor %q is not a cursor from a previous page", cursor)
		}
	}
	page, err := s.p.Store.ScheduleRuns(c.Request().Context(), store.ScheduleRunsParams{Name: name, Limit: limit, Cursor: cursor})
	if err != nil {
		return err
	}
	out := scheduleRunList{Runs: make([]ScheduleRunView, len(page.Runs)), NextCursor: page.NextCursor}
	for i, r := range page.Runs {
		out.Runs[i] = NewScheduleRunView(r)
	}
	return c.JSON(http.StatusOK, out)
}

// scheduleNext previews the next n nominal fire times from now.
func (s *Server) scheduleNext(c echo.Context) error {
	name := c.Param("name")
	q := c.QueryParams()
	for k := range q {
		if k != "n" {
			return badRequest("unknown query parameter %q (want n)", k)
		}
	}
	n := DefaultPreview
	if v := q.Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > MaxPreview {
			return invalid("n %q must be a number from 1 to %d", v, MaxPreview)
		}
	}
	ctx := c.Request().Context()
	rec, err := s.p.Store.GetSchedule(ctx, name)
	if err != nil {
		return err
	}
	now, err := s.clock(ctx)
	if err != nil {
		return err
	}
	var cursor time.Time
	if !rec.Paused {
		// A resume counts again from its own now.
		cursor = rec.Cursor
	}
	times, err := FireTimes(rec.ScheduleDef, cursor, now, n)
	if err != nil {
		return fmt.Errorf("preview schedule %q: %w", name, err)
	}
	return c.JSON(http.StatusOK, SchedulePreview{Name: rec.Name, Cron: rec.Cron, Timezone: NewScheduleView(rec).Timezone, Times: times})
}

func scheduleAttrs(r *store.ScheduleRecord) []any {
	return []any{"schedule", r.Name, "cron", r.Cron, "timezone", r.Timezone, "paused", r.Paused, "next_run_at", optTimeAttr(r.NextRunAt)}
}

func optID(id *uuid.UUID) string {
	if id == nil {
		return ""
	}
	return id.String()
}

func optTimeAttr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
