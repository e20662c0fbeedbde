package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/tracing"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// The store's workflow calls already name what they did and to which
// workflow ("get workflow <id>: not found"), so their errors are returned
// as they are rather than wrapped a second time.

// workflowCreated is the answer to POST /v1/workflows: the workflow's id and
// status, and the job id of every step, so a client can follow each one.
type workflowCreated struct {
	ID     uuid.UUID            `json:"id"`
	Status workflow.Status      `json:"status"`
	Jobs   map[string]uuid.UUID `json:"jobs"`
}

// workflowView is GET /v1/workflows/{id}: the stored workflow with its
// counters and every job, read in one request so a client sees them together.
type workflowView struct {
	*workflow.Record
	Jobs []*job.Job `json:"jobs"`
}

type workflowList struct {
	Workflows  []*workflow.Record `json:"workflows"`
	NextCursor string             `json:"next_cursor"`
}

// createWorkflow writes a workflow definition document (workflow.Workflow) as
// one transaction. A body that is not JSON is a 400 like every other route;
// a definition that does not validate is a 422 whose details list every
// problem with its path, and writes nothing.
func (s *Server) createWorkflow(c echo.Context) error {
	var body json.RawMessage
	if err := decodeJSON(c.Request().Body, &body); err != nil {
		return err
	}
	def, err := workflow.ParseJSON(body)
	if err != nil {
		return definitionError(err)
	}
	// The id is chosen here so that it can be the correlation id of a
	// workflow that names none: every job then carries it to the app.
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("generate workflow id: %w", err)
	}
	if def.CorrelationID == "" {
		def.CorrelationID = id.String()
	}
	ctx, span, created := s.startCreate(c, tracing.CreateParams{Workflow: def.Name, TraceID: def.TraceID, CorrelationID: def.CorrelationID})
	if def.TraceID == "" || def.TraceID == created.TraceID {
		// An invalid trace_id is left for validation to reject with a 422.
		def.TraceID = created.TraceID
	}
	res, err := s.p.Store.EnqueueWorkflow(ctx, store.EnqueueWorkflowParams{Workflow: def, ID: id, SpanContext: created.SpanContext, TraceState: created.TraceState, Now: s.now()})
	endCreate(span, tracing.AttrWorkflowID.String(id.String()), err)
	if err != nil {
		return definitionError(err)
	}
	wf := res.Workflow
	s.wake(rootQueues(def)...)
	s.log.Info("workflow enqueued", "workflow_id", wf.ID, "workflow", wf.Name, "jobs", len(res.Jobs), "trace_id", wf.TraceID)
	c.Response().Header().Set(echo.HeaderLocation, "/v1/workflows/"+wf.ID.String())
	return c.JSON(http.StatusCreated, workflowCreated{ID: wf.ID, Status: wf.Status, Jobs: res.Jobs})
}

// rootQueues lists the queues of def's steps that depend on no other step:
// the ones leasable at once. The others become leasable as their parents
// finish, and the agent's completer wakes its producers for those.
func rootQueues(def workflow.Workflow) []string {
	var queues []string
	for _, st := range def.Steps {
		if len(st.DependsOn) == 0 && !slices.Contains(queues, st.Queue) {
			queues = append(queues, st.Queue)
		}
	}
	return queues
}

// definitionError turns a rejected definition into a 422 whose details list
// each problem ({path, message}). Other errors pass through to classify.
func definitionError(err error) error {
	var ve *workflow.ValidationError
	if errors.As(err, &ve) {
		return &apiError{Status: http.StatusUnprocessableEntity, Code: codeInvalid, Message: ve.Error(), Details: ve.Details()}
	}
	return err
}

// workflowListParams are the query parameters GET /v1/workflows accepts.
var workflowListParams = map[string]bool{"status": true, "limit": true, "cursor": true}

func (s *Server) listWorkflows(c echo.Context) error {
	q := c.QueryParams()
	for k := range q {
		if !workflowListParams[k] {
			return badRequest("unknown query parameter %q (want status, limit or cursor)", k)
		}
	}
	var p store.ListWorkflowsParams
	if v := q.Get("status"); v != "" {
		st, err := parseWorkflowStatus(v)
		if err != nil {
			return badRequest("%v", err)
		}
		p.Status = st
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
	page, err := s.p.Store.ListWorkflows(c.Request().Context(), p)
	if err != nil {
		return err
	}
	resp := workflowList{Workflows: page.Workflows, NextCursor: page.NextCursor}
	if resp.Workflows == nil {
		resp.Workflows = []*workflow.Record{}
	}
	return c.JSON(http.StatusOK, resp)
}

// parseWorkflowStatus accepts the five workflow statuses.
func parseWorkflowStatus(v string) (workflow.Status, error) {
	switch st := workflow.Status(v); st {
	case workflow.StatusRunning, workflow.StatusCompleted, workflow.StatusFailed, workflow.StatusCancelled, workflow.StatusPaused:
		return st, nil
	}
	return "", fmt.Errorf("unknown workflow status %q (want running, completed, failed, cancelled or paused)", v)
}

func (s *Server) getWorkflow(c echo.Context) error {
	id, err := workflowID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	wf, err := s.p.Store.GetWorkflow(ctx, id)
	if err != nil {
		return err
	}
	jobs, err := s.p.Store.WorkflowJobs(ctx, id)
	if err != nil {
		return err
	}
	if jobs == nil {
		jobs = []*job.Job{}
	}
	return c.JSON(http.StatusOK, workflowView{Record: wf, Jobs: jobs})
}

// graphFormats maps ?format= to the content type of each export.
var graphFormats = map[string]string{
	"json":    echo.MIMEApplicationJSON,
	"dot":     "text/vnd.graphviz; charset=utf-8",
	"mermaid": echo.MIMETextPlainCharsetUTF8,
}

func (s *Server) workflowGraph(c echo.Context) error {
	id, err := workflowID(c)
	if err != nil {
		return err
	}
	format := c.QueryParam("format")
	if format == "" {
		format = "json"
	}
	contentType, ok := graphFormats[format]
	if !ok {
		return badRequest("format %q is not a graph format (want dot, mermaid or json)", format)
	}
	ctx := c.Request().Context()
	if _, err := s.p.Store.GetWorkflow(ctx, id); err != nil {
		return err
	}
	jobs, err := s.p.Store.WorkflowJobs(ctx, id)
	if err != nil {
		return err
	}
	g := workflow.NewGraph(jobs)
	var out []byte
	switch format {
	case "dot":
		out = []byte(g.DOT())
	case "mermaid":
		out = []byte(g.Mermaid())
	default:
		if out, err = g.JSON(); err != nil {
			return fmt.Errorf("export graph of workflow %s: %w", id, err)
		}
	}
	return c.Blob(http.StatusOK, contentType, out)
}

func (s *Server) cancelWorkflow(c echo.Context) error {
	id, err := workflowID(c)
	if err != nil {
		return err
	}
	wf, err := s.p.Store.CancelWorkflow(c.Request().Context(), store.WorkflowParams{ID: id, Now: s.now()})
	if err != nil {
		return err
	}
	s.log.Info("workflow cancelled through the API", workflowAttrs(wf)...)
	if s.p.Metrics != nil {
		jobs, err := s.p.Store.WorkflowJobs(c.Request().Context(), id)
		if err != nil {
			s.log.Warn("cannot read the cancelled workflow's jobs to count them", append(workflowAttrs(wf), "error", err)...)
		}
		s.p.Metrics.WorkflowEnded(string(wf.Status), jobs)
	}
	return c.JSON(http.StatusOK, wf)
}

func (s *Server) retryWorkflow(c echo.Context) error {
	id, err := workflowID(c)
	if err != nil {
		return err
	}
	wf, err := s.p.Store.RetryWorkflow(c.Request().Context(), store.WorkflowParams{ID: id, Now: s.now()})
	if err != nil {
		return err
	}
	// The record does not say which queues the retried jobs are in, so
	// every producer is woken.
	s.wake()
	s.log.Info("workflow retried through the API", workflowAttrs(wf)...)
	return c.JSON(http.StatusOK, wf)
}

func workflowAttrs(wf *workflow.Record) []any {
	attrs := []any{"workflow_id", wf.ID, "workflow", wf.Name, "status", wf.Status}
	if wf.TraceID != "" {
		attrs = append(attrs, "trace_id", wf.TraceID)
	}
	return attrs
}

func workflowID(c echo.Context) (uuid.UUID, error) {
	id, err := uuid.Parse(c.Param("id"))
	if err != nil {
		return uuid.Nil, badRequest("workflow id %q is not a UUID", c.Param("id"))
	}
	return id, nil
}
