package agent

import (
	"context"
	"errors"
	"sync"

	"github.com/google/uuid"

	"go.opentelemetry.io/otel/trace"

	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/tracing"
)

// startAttempt opens the process span of j's attempt, linked to the last
// process spans of its parents when it has several (a fan-in), and counts
// the request in flight. The parents are read only for fan-ins and only
// while tracing is on: a chain's parent is already the previous span in the
// trace, and a link nobody exports is not worth a query.
func (a *Agent) startAttempt(ctx context.Context, j *job.Job) (context.Context, trace.Span) {
	var links []trace.Link
	if len(j.DependsOn) > 1 && a.tracer.Enabled() {
		for _, pid := range j.DependsOn {
			parent, err := a.store.Get(ctx, pid)
			if err != nil {
				a.metrics.DBError()
				a.log.Debug("cannot read a parent for its span link", jobAttrs(j, "parent_id", pid, "error", err)...)
				continue
			}
			if l, ok := tracing.ParentLink(parent); ok {
				links = append(links, l)
			}
		}
	}
	a.metrics.InFlight(1)
	return a.tracer.StartProcess(ctx, j, links)
}

// deliver sends j inside a client span whose context the app receives in
// traceparent, so the app's server span is the client span's child.
func (a *Agent) deliver(ctx context.Context, j *job.Job, t dispatch.Target) dispatch.Result {
	ctx, span := a.tracer.StartClient(ctx, t.URL)
	t.Header = a.tracer.Headers(ctx)
	res := a.dispatcher.Dispatch(ctx, j, t)
	tracing.EndClient(span, res.StatusCode, res.Label)
	return res
}

// endAttempt closes the attempt's span and records its metrics. cause is
// why the agent cancelled the request, if it did.
func (a *Agent) endAttempt(span trace.Span, j *job.Job, res dispatch.Result, cause error) {
	a.metrics.InFlight(-1)
	outcome := string(res.Outcome)
	switch {
	case res.Outcome == dispatch.OutcomeRetry && errors.Is(cause, errDrain):
		outcome = "released"
	case res.Outcome == dispatch.OutcomeRetry && errors.Is(cause, errLeaseLost):
		outcome = "lease_lost"
	case res.Outcome == dispatch.OutcomeRetry && res.Label == dispatch.LabelCancelled:
		outcome = "cancelled"
	}
	a.metrics.Dispatched(j.Queue, outcome, res.Duration)
	tracing.EndProcess(span, outcome, res.Label, res.Error)
}

// countFinished counts the outcomes the store accepted; stale ones belong
// to whoever holds the job now.
func (a *Agent) countFinished(j *job.Job, completed, retried bool) {
	a.CountFinished(a.bg, j, completed, retried)
}

// CountFinished counts an outcome the store accepted, wherever it came
// from: the API passes here the answers of apps that replied 202 and
// finished the job later, so those jobs are in the same counters and a
// workflow they finish is counted once, not once per path. ctx carries the
// read of the workflow.
func (a *Agent) CountFinished(ctx context.Context, j *job.Job, completed, retried bool) {
	switch {
	case completed:
		a.metrics.Completed(j.Queue)
	case retried:
		a.metrics.Retried(j.Queue)
	default:
		a.metrics.Failed(j.Queue)
	}
	if j.WorkflowID != nil && !retried && a.metrics != nil {
		a.countWorkflowEnd(ctx, *j.WorkflowID)
	}
}

// countWorkflowEnd counts the workflow's end when the outcome just written
// finished it. Jobs of one workflow written in one batch may each see it
// finished; ended remembers the last workflows counted so it counts once.
func (a *Agent) countWorkflowEnd(ctx context.Context, id uuid.UUID) {
	wf, err := a.store.GetWorkflow(ctx, id)
	if err != nil {
		a.metrics.DBError()
		a.log.Debug("cannot read the workflow to count its end", "workflow_id", id, "error", err)
		return
	}
	if !wf.Status.Terminal() || !a.ended.add(id) {
		return
	}
	jobs, err := a.store.WorkflowJobs(ctx, id)
	if err != nil {
		a.metrics.DBError()
		a.log.Debug("cannot read the workflow's jobs to count them", "workflow_id", id, "error", err)
	}
	a.metrics.WorkflowEnded(string(wf.Status), jobs)
}

// recentIDs is a bounded set of the ids added last.
type recentIDs struct {
	mu   sync.Mutex
	set  map[uuid.UUID]bool
	ring []uuid.UUID
	next int
}

// recentWorkflows bounds the workflows remembered as counted: far more than
// can finish within one completion batch.
const recentWorkflows = 1024

// add reports whether id was new, remembering it and forgetting the oldest.
func (r *recentIDs) add(id uuid.UUID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.set == nil {
		r.set = make(map[uuid.UUID]bool, recentWorkflows)
		r.ring = make([]uuid.UUID, recentWorkflows)
	}
	if r.set[id] {
		return false
	}
	delete(r.set, r.ring[r.next])
	r.ring[r.next] = id
	r.set[id] = true
	r.next = (r.next + 1) % len(r.ring)
	return true
}

// countLeased records one lease call's batch size and its jobs by queue.
func (a *Agent) countLeased(jobs []*job.Job) {
	queues := make([]string, len(jobs))
	for i, j := range jobs {
		queues[i] = j.Queue
	}
	a.metrics.Leased(queues)
}
