package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/tracing"
)

// enqueueRequest is the body of POST /v1/jobs and one element of a batch.
// Durations, times and the priority arrive raw and are parsed here, so a bad
// value is a 422 naming the field rather than a generic decode error.
type enqueueRequest struct {
	Queue         string          `json:"queue"`
	Payload       json.RawMessage `json:"payload"`
	Priority      json.RawMessage `json:"priority"`
	Delay         *string         `json:"delay"`
	ScheduledAt   *string         `json:"scheduled_at"`
	MaxAttempts   *int            `json:"max_attempts"`
	Timeout       *string         `json:"timeout"`
	Retry         json.RawMessage `json:"retry"`
	TraceID       string          `json:"trace_id"`
	CorrelationID string          `json:"correlation_id"`
	ResultTTL     *string         `json:"result_ttl"`
	DependsOn     json.RawMessage `json:"depends_on"`
	UniqueKey     string          `json:"unique_key"`
}

// newJob turns a request into a validated store.NewJob.
func (r *enqueueRequest) newJob(now time.Time) (store.NewJob, error) {
	nj := store.NewJob{
		Queue:         r.Queue,
		Payload:       r.Payload,
		Priority:      job.PriorityNormal,
		TraceID:       r.TraceID,
		CorrelationID: r.CorrelationID,
		UniqueKey:     r.UniqueKey,
	}
	var err error
	if nj.DependsOn, err = parseDependsOn(r.DependsOn); err != nil {
		return store.NewJob{}, err
	}
	if !isNull(r.Priority) {
		if err := json.Unmarshal(r.Priority, &nj.Priority); err != nil {
			return store.NewJob{}, invalid("%v", err)
		}
	}
	if r.MaxAttempts != nil {
		if *r.MaxAttempts < 1 {
			return store.NewJob{}, invalid("max_attempts %d must be at least 1", *r.MaxAttempts)
		}
		nj.MaxAttempts = *r.MaxAttempts
	}
	if nj.Timeout, err = parseDuration("timeout", r.Timeout); err != nil {
		return store.NewJob{}, err
	}
	if nj.ResultTTL, err = parseDuration("result_ttl", r.ResultTTL); err != nil {
		return store.NewJob{}, err
	}
	if nj.ScheduledAt, err = r.scheduledAt(now); err != nil {
		return store.NewJob{}, err
	}
	if !isNull(r.Retry) {
		var p job.RetryPolicy
		if err := decodeStrict(r.Retry, &p, "retry"); err != nil {
			return store.NewJob{}, err
		}
		nj.RetryPolicy = &p
	}
	if r.TraceID != "" && !tracing.ValidTraceID(r.TraceID) {
		return store.NewJob{}, invalid("trace_id %q must be 32 lowercase hex digits, not all zero (W3C trace-id)", r.TraceID)
	}
	if err := nj.Validate(); err != nil {
		return store.NewJob{}, err
	}
	return nj, nil
}

// scheduledAt resolves delay or scheduled_at; zero means now.
func (r *enqueueRequest) scheduledAt(now time.Time) (time.Time, error) {
	switch {
	case r.Delay != nil && r.ScheduledAt != nil:
		return time.Time{}, invalid("give delay or scheduled_at, not both")
	case r.ScheduledAt != nil:
		t, err := time.Parse(time.RFC3339Nano, *r.ScheduledAt)
		if err != nil {
			return time.Time{}, invalid("scheduled_at %q is not an RFC 3339 time (e.g. 2026-01-02T15:04:05Z)", *r.ScheduledAt)
		}
		return t, nil
	case r.Delay != nil:
		d, err := parseDuration("delay", r.Delay)
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(d), nil
	}
	return time.Time{}, nil
}

// parseDependsOn reads the parent job ids. Whether they exist is the
// store's to say (ErrInvalid, in the same transaction as the insert).
func parseDependsOn(raw json.RawMessage) ([]uuid.UUID, error) {
	if isNull(raw) {
		return nil, nil
	}
	var ids []string
	if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, invalid("depends_on must be an array of job ids")
	}
	if len(ids) == 0 {
		return nil, nil
	}
	out := make([]uuid.UUID, len(ids))
	for i, s := range ids {
		id, err := uuid.Parse(s)
		if err != nil {
			return nil, invalid("depends_on[%d] %q is not a job id (UUID)", i, s)
		}
		out[i] = id
	}
	return out, nil
}

// parseDuration reads an optional Go duration string; negative is invalid.
func parseDuration(field string, s *string) (time.Duration, error) {
	if s == nil {
		return 0, nil
	}
	var d job.Duration
	if err := d.UnmarshalText([]byte(*s)); err != nil {
		return 0, invalid("%s: %v", field, err)
	}
	return d.D(), nil
}

func (s *Server) enqueue(c echo.Context) error {
	var req enqueueRequest
	if err := decodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	now, err := s.clock(c.Request().Context())
	if err != nil {
		return err
	}
	nj, err := req.newJob(now)
	if err != nil {
		return err
	}
	ctx, span, created := s.startCreate(c, tracing.CreateParams{Queue: nj.Queue, TraceID: nj.TraceID, CorrelationID: nj.CorrelationID})
	nj.TraceID, nj.SpanContext, nj.ParentSpanID, nj.TraceState = created.TraceID, created.SpanContext, created.ParentSpanID, created.TraceState
	jobs, err := s.p.Store.Enqueue(ctx, store.EnqueueParams{Jobs: []store.NewJob{nj}, Now: s.now()})
	if err != nil {
		endCreate(span, semconv.MessagingMessageID(""), err)
		return fmt.Errorf("enqueue job on %q: %w", nj.Queue, err)
	}
	j := jobs[0]
	endCreate(span, semconv.MessagingMessageID(j.ID.String()), nil)
	c.Response().Header().Set(echo.HeaderLocation, "/v1/jobs/"+j.ID.String())
	if j.Duplicate {
		// The live job holding the key is the answer: nothing was created.
		s.log.Debug("job enqueue deduplicated", jobAttrs(j)...)
		return c.JSON(http.StatusOK, j)
	}
	s.wake(j.Queue)
	s.log.Debug("job enqueued", jobAttrs(j)...)
	return c.JSON(http.StatusCreated, j)
}

// batchRequest is the body of POST /v1/jobs/batch. A body of only jobs
// (the original shape) is a batch with the default failure mode.
type batchRequest struct {
	Name        string            `json:"name"`
	FailureMode store.FailureMode `json:"failure_mode"`
	Jobs        []enqueueRequest  `json:"jobs"`
}

// batchResponse lists the job ids in input order; Duplicates are the
// indexes whose unique key a live job held (its id is in IDs, and it is not
// part of the batch).
type batchResponse struct {
	BatchID    string   `json:"batch_id"`
	IDs        []string `json:"ids"`
	Duplicates []int    `json:"duplicates,omitempty"`
}

func (s *Server) enqueueBatch(c echo.Context) error {
	var req batchRequest
	if err := decodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	if len(req.Jobs) == 0 {
		return invalid("jobs must be a non-empty array")
	}
	if len(req.Jobs) > store.MaxBatchJobs {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeTooLarge,
			Message: fmt.Sprintf("a batch holds at most %d jobs, got %d: split it into several requests", store.MaxBatchJobs, len(req.Jobs))}
	}
	if !req.FailureMode.Valid() {
		return invalid("failure_mode %q must be continue_on_error, fail_fast or collect_errors", req.FailureMode)
	}
	if err := store.CheckHeaderValue("name", req.Name); err != nil {
		return err
	}
	now, err := s.clock(c.Request().Context())
	if err != nil {
		return err
	}
	news := make([]store.NewJob, len(req.Jobs))
	for i := range req.Jobs {
		nj, err := req.Jobs[i].newJob(now)
		if err != nil {
			return atIndex(err, i)
		}
		news[i] = nj
	}
	// One producer span per job, as for POST /v1/jobs: each job is a
	// message of its own, with its own creation context.
	spans := make([]trace.Span, len(news))
	for i := range news {
		var created tracing.Creation
		_, spans[i], created = s.startCreate(c, tracing.CreateParams{Queue: news[i].Queue, TraceID: news[i].TraceID, CorrelationID: news[i].CorrelationID})
		news[i].TraceID, news[i].SpanContext, news[i].ParentSpanID, news[i].TraceState = created.TraceID, created.SpanContext, created.ParentSpanID, created.TraceState
	}
	got, err := s.p.Store.EnqueueBatch(c.Request().Context(), store.EnqueueBatchParams{
		Name: req.Name, FailureMode: req.FailureMode, Jobs: news, Now: s.now()})
	if err != nil {
		for _, span := range spans {
			endCreate(span, semconv.MessagingMessageID(""), err)
		}
		return fmt.Errorf("enqueue batch of %d jobs: %w", len(news), err)
	}
	resp := batchResponse{BatchID: got.Batch.ID.String(), IDs: make([]string, len(got.Jobs))}
	var queues []string
	for i, j := range got.Jobs {
		resp.IDs[i] = j.ID.String()
		if j.Duplicate {
			resp.Duplicates = append(resp.Duplicates, i)
		} else if !slices.Contains(queues, j.Queue) {
			queues = append(queues, j.Queue)
		}
		endCreate(spans[i], semconv.MessagingMessageID(j.ID.String()), nil)
	}
	if len(queues) > 0 {
		s.wake(queues...)
	}
	s.log.Debug("job batch enqueued", "batch_id", got.Batch.ID, "count", len(got.Jobs), "duplicates", len(resp.Duplicates))
	c.Response().Header().Set(echo.HeaderLocation, "/v1/batches/"+resp.BatchID)
	return c.JSON(http.StatusCreated, resp)
}

// atIndex names the batch element an error is about.
func atIndex(err error, i int) error {
	var ae *apiError
	if errors.As(err, &ae) {
		cp := *ae
		cp.Message = fmt.Sprintf("jobs[%d]: %s", i, ae.Message)
		details := map[string]any{"index": i}
		if d, ok := ae.Details.(map[string]any); ok {
			maps.Copy(details, d)
		}
		cp.Details = details
		return &cp
	}
	return fmt.Errorf("jobs[%d]: %w", i, err)
}

// listParams are the query parameters GET /v1/jobs accepts; any other is a
// 400, so a misspelt filter is not silently ignored.
var listParams = map[string]bool{
	"queue": true, "status": true, "dependency_status": true,
	"workflow_id": true, "limit": true, "cursor": true,
}

type listResponse struct {
	Jobs       []*job.Job `json:"jobs"`
	NextCursor string     `json:"next_cursor"`
}

func (s *Server) listJobs(c echo.Context) error {
	q := c.QueryParams()
	for k := range q {
		if !listParams[k] {
			return badRequest("unknown query parameter %q (want queue, status, dependency_status, workflow_id, limit or cursor)", k)
		}
	}
	p := store.ListParams{Queue: q.Get("queue")}
	if v := q.Get("status"); v != "" {
		st, err := job.ParseStatus(v)
		if err != nil {
			return badRequest("%v", err)
		}
		p.Status = st
	}
	if v := q.Get("dependency_status"); v != "" {
		ds, err := job.ParseDependencyStatus(v)
		if err != nil {
			return badRequest("%v", err)
		}
		p.DependencyStatus = ds
	}
	if v := q.Get("workflow_id"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			return badRequest("workflow_id %q is not a UUID", v)
		}
		p.WorkflowID = &id
	}
	if v := q.Get("limit"); v != "" {
		n, err := parseLimit(v)
		if err != nil {
			return err
		}
		p.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		if _, err := uuid.Parse(v); err != nil {
			return badRequest("cursor %q is not a cursor from a previous page", v)
		}
		p.Cursor = v
	}
	page, err := s.p.Store.List(c.Request().Context(), p)
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}
	resp := listResponse{Jobs: page.Jobs, NextCursor: page.NextCursor}
	if resp.Jobs == nil {
		resp.Jobs = []*job.Job{}
	}
	return c.JSON(http.StatusOK, resp)
}

// parseLimit accepts a page size within the store's bounds.
func parseLimit(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > store.MaxListLimit {
		return 0, badRequest("limit %q must be a number from 1 to %d", v, store.MaxListLimit)
	}
	return n, nil
}

func (s *Server) getJob(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	j, err := s.p.Store.Get(c.Request().Context(), id)
	if err != nil {
		return fmt.Errorf("get job %s: %w", id, err)
	}
	return c.JSON(http.StatusOK, j)
}

func (s *Server) cancelJob(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	j, err := s.p.Store.Cancel(c.Request().Context(), store.CancelParams{ID: id, Now: s.now()})
	if err != nil {
		return fmt.Errorf("cancel job %s: %w", id, err)
	}
	s.log.Info("job cancelled through the API", jobAttrs(j)...)
	if j.WorkflowID == nil {
		// A workflow's cancelled jobs are counted when the workflow ends.
		s.p.Metrics.Cancelled(j.Queue)
	}
	return c.JSON(http.StatusOK, j)
}

func (s *Server) retryJob(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	j, err := s.p.Store.Retry(c.Request().Context(), store.RetryParams{ID: id, Now: s.now()})
	if err != nil {
		return fmt.Errorf("retry job %s: %w", id, err)
	}
	s.wake(j.Queue)
	s.log.Info("job retried through the API", jobAttrs(j)...)
	return c.JSON(http.StatusOK, j)
}

func jobAttrs(j *job.Job) []any {
	// Always the same keys, empty when unset, as in the agent's logs, so
	// that one query follows a job, workflow or trace through every line.
	workflowID := ""
	if j.WorkflowID != nil {
		workflowID = j.WorkflowID.String()
	}
	return []any{"job_id", j.ID, "queue", j.Queue, "attempt", j.Attempts, "workflow_id", workflowID, "trace_id", j.TraceID}
}
