package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// Edge is one row of hammerwork_job_dependencies: JobID waits for DependsOnID.
type Edge struct {
	JobID       uuid.UUID
	DependsOnID uuid.UUID
}

// WorkflowPlan is everything EnqueueWorkflow writes, decided before the
// transaction so that every backend writes the same rows.
type WorkflowPlan struct {
	Workflow *workflow.Record
	// Jobs are in step order, every column set (DependsOn, dependency fields,
	// workflow fields, condition).
	Jobs  []*job.Job
	Edges []Edge
	// Steps maps step names to job ids; the jobs of a batch step are
	// "<name>[i]" (workflow.BatchJobName).
	Steps map[string]uuid.UUID
	// Batches are the rows of the batch steps, counters set.
	Batches []PlannedBatch
}

// PlannedBatch is the batch row of a workflow's batch step.
type PlannedBatch struct {
	// Name is the step's name.
	Name  string
	State *BatchState
}

// PlanWorkflow validates a definition (workflow.Validate, its metadata as
// storable JSON, then every step as a job) and lays out the rows to write:
// the workflow running with total = number of jobs (a batch step has one per
// payload), created at now, deadline = now + timeout; each job with the
// step's priority (else the workflow's, else normal), the workflow's trace
// and correlation ids, p.SpanContext and p.TraceState, scheduled_at = now +
// delay; roots dependency_status 'none', the rest 'waiting' on their parent
// count. now is the database's time (p.Now when a test injected one), which
// the backend reads: the deadline and the delays count from the clock that
// later decides whether they passed. Errors wrap ErrInvalid.
func PlanWorkflow(p EnqueueWorkflowParams, now time.Time) (*WorkflowPlan, error) {
	w := p.Workflow
	if err := workflow.Validate(w); err != nil {
		return nil, fmt.Errorf("%w: workflow %q: %w", ErrInvalid, w.Name, err)
	}
	if len(w.Metadata) > 0 {
		if err := CheckJSON(w.Metadata); err != nil {
			return nil, fmt.Errorf("%w: workflow %q: metadata %v", ErrInvalid, w.Name, err)
		}
	}
	now = UTC(now)
	id := p.ID
	if id == uuid.Nil {
		var err error
		if id, err = uuid.NewV7(); err != nil {
			return nil, fmt.Errorf("generate workflow id: %w", err)
		}
	}
	policy, err := workflow.ParseFailurePolicy(string(w.FailurePolicy))
	if err != nil {
		return nil, fmt.Errorf("%w: workflow %q: %w", ErrInvalid, w.Name, err)
	}
	priority := job.PriorityNormal
	if w.Priority != nil {
		priority = *w.Priority
	}
	rec := &workflow.Record{
		ID: id, Name: w.Name, Description: w.Description, Status: workflow.StatusRunning,
		FailurePolicy: policy, Priority: priority, Timeout: w.Timeout,
		TraceID: w.TraceID, CorrelationID: w.CorrelationID, CreatedAt: now,
	}
	if len(w.Metadata) > 0 {
		rec.Metadata = append(json.RawMessage(nil), w.Metadata...)
	}
	if w.Timeout > 0 {
		d := UTC(now.Add(w.Timeout.D()))
		rec.Deadline = &d
	}
	plan := &WorkflowPlan{Workflow: rec, Steps: make(map[string]uuid.UUID, len(w.Steps))}
	// ids holds each step's jobs: one, or one per payload of a batch step.
	ids := make(map[string][]uuid.UUID, len(w.Steps))
	for _, st := range w.Steps {
		for i := range max(1, len(st.Batch)) {
			jid, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("generate job id: %w", err)
			}
			ids[st.Name] = append(ids[st.Name], jid)
			if st.Batch != nil {
				plan.Steps[workflow.BatchJobName(st.Name, i)] = jid
			} else {
				plan.Steps[st.Name] = jid
			}
		}
	}
	for _, st := range w.Steps {
		var batchID *uuid.UUID
		if st.Batch != nil {
			bid, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("generate batch id: %w", err)
			}
			batchID = &bid
		}
		first := len(plan.Jobs)
		for i, jid := range ids[st.Name] {
			n := NewJob{
				ID: jid, Queue: st.Queue, Payload: st.Payload, Priority: priority,
				MaxAttempts: st.MaxAttempts, Timeout: st.Timeout.D(), RetryPolicy: st.Retry,
				ResultTTL: st.ResultTTL.D(), TraceID: w.TraceID, CorrelationID: w.CorrelationID,
				SpanContext: p.SpanContext, TraceState: p.TraceState, BatchID: batchID,
			}
			name := st.Name
			if st.Batch != nil {
				n.Payload = st.Batch[i]
				name = workflow.BatchJobName(st.Name, i)
			}
			if st.Priority != nil {
				n.Priority = *st.Priority
			}
			if st.Delay > 0 {
				n.ScheduledAt = now.Add(st.Delay.D())
			}
			if err := n.Validate(); err != nil {
				return nil, fmt.Errorf("workflow %q step %q: %w", w.Name, name, err)
			}
			j, err := BuildJob(n, now)
			if err != nil {
				return nil, fmt.Errorf("workflow %q step %q: %w", w.Name, name, err)
			}
			wid := id
			j.WorkflowID = &wid
			j.WorkflowName = w.Name
			j.StepName = name
			j.Condition = st.Condition
			for _, parent := range st.DependsOn {
				pids, ok := ids[parent]
				if !ok {
					return nil, fmt.Errorf("%w: workflow %q step %q depends on unknown step %q", ErrInvalid, w.Name, st.Name, parent)
				}
				for _, pid := range pids {
					j.DependsOn = append(j.DependsOn, pid)
					plan.Edges = append(plan.Edges, Edge{JobID: j.ID, DependsOnID: pid})
				}
			}
			if len(j.DependsOn) > 0 {
				j.DependencyStatus = job.DependencyWaiting
				j.PendingDependencies = len(j.DependsOn)
			}
			plan.Jobs = append(plan.Jobs, j)
		}
		if batchID != nil {
			plan.Batches = append(plan.Batches, PlannedBatch{
				Name:  st.Name,
				State: NewBatchState(*batchID, ContinueOnError, plan.Jobs[first:], now),
			})
		}
	}
	rec.Stats.TotalJobs, rec.Stats.PendingJobs = len(plan.Jobs), len(plan.Jobs)
	return plan, nil
}

// BuildJobs builds each new job as BuildJob does, in input order; an error
// names the job's index.
func BuildJobs(news []NewJob, now time.Time) ([]*job.Job, error) {
	jobs := make([]*job.Job, len(news))
	for i, n := range news {
		j, err := BuildJob(n, now)
		if err != nil {
			return nil, fmt.Errorf("job %d: %w", i, err)
		}
		jobs[i] = j
	}
	return jobs, nil
}

// BuildJob applies NewJob's documented defaults and returns the row to
// insert: status pending, dependency_status none, created_at = now.
func BuildJob(n NewJob, now time.Time) (*job.Job, error) {
	id := n.ID
	if id == uuid.Nil {
		var err error
		if id, err = uuid.NewV7(); err != nil {
			return nil, fmt.Errorf("generate id: %w", err)
		}
	}
	payload := append(json.RawMessage(nil), n.Payload...)
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	maxAttempts := n.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = job.DefaultMaxAttempts
	}
	scheduled := UTC(now)
	if !n.ScheduledAt.IsZero() {
		scheduled = UTC(n.ScheduledAt)
	}
	j := &job.Job{
		ID: id, Queue: n.Queue, Payload: payload, Status: job.StatusPending,
		Priority: n.Priority, MaxAttempts: maxAttempts,
		CreatedAt: UTC(now), ScheduledAt: scheduled,
		Timeout: job.Duration(n.Timeout), ResultTTL: job.Duration(n.ResultTTL),
		DependencyStatus: job.DependencyNone,
		TraceID:          n.TraceID, CorrelationID: n.CorrelationID,
		ParentSpanID: n.ParentSpanID, SpanContext: n.SpanContext, TraceState: n.TraceState, UniqueKey: n.UniqueKey,
	}
	if n.RetryPolicy != nil {
		rp := *n.RetryPolicy
		j.RetryPolicy = &rp
	}
	if n.BatchID != nil {
		b := *n.BatchID
		j.BatchID = &b
	}
	return j, nil
}

// ApplyDependsOn sets the dependency fields of new jobs enqueued with
// NewJob.DependsOn (jobs[i] from news[i]) and returns their edges. parents
// holds the current status of every existing parent (read, and locked
// against change, in the enqueue transaction); a parent may also be an
// earlier job of the same batch. Completed or skipped parents count as
// resolved; a failed or cancelled one cancels the new job at once with
// dependency_status 'failed'; an unknown id is ErrInvalid naming it.
func ApplyDependsOn(news []NewJob, jobs []*job.Job, parents map[uuid.UUID]job.Status) ([]Edge, error) {
	inBatch := map[uuid.UUID]job.Status{}
	var edges []Edge
	for i, n := range news {
		j := jobs[i]
		seen := map[uuid.UUID]bool{}
		for _, pid := range n.DependsOn {
			if seen[pid] {
				continue
			}
			seen[pid] = true
			status, ok := parents[pid]
			if !ok {
				status, ok = inBatch[pid]
			}
			if !ok {
				return nil, fmt.Errorf("%w: job %d depends on unknown job %s", ErrInvalid, i, pid)
			}
			if pid == j.ID {
				return nil, fmt.Errorf("%w: job %d depends on itself", ErrInvalid, i)
			}
			j.DependsOn = append(j.DependsOn, pid)
			edges = append(edges, Edge{JobID: j.ID, DependsOnID: pid})
			switch status {
			case job.StatusCompleted, job.StatusSkipped:
			case job.StatusFailed, job.StatusCancelled:
				j.Status = job.StatusCancelled
				j.DependencyStatus = job.DependencyFailed
			default:
				j.PendingDependencies++
			}
		}
		if len(j.DependsOn) > 0 && j.Status == job.StatusPending {
			j.DependencyStatus = job.DependencySatisfied
			if j.PendingDependencies > 0 {
				j.DependencyStatus = job.DependencyWaiting
			}
		}
		if j.Status == job.StatusCancelled {
			j.PendingDependencies = 0
		}
		inBatch[j.ID] = j.Status
	}
	return edges, nil
}

// HasDependsOn reports whether any new job names parents.
func HasDependsOn(news []NewJob) bool {
	for _, n := range news {
		if len(n.DependsOn) > 0 {
			return true
		}
	}
	return false
}

// ParentIDs lists every distinct parent id named by the new jobs.
func ParentIDs(news []NewJob) []uuid.UUID {
	seen := map[uuid.UUID]bool{}
	var out []uuid.UUID
	for _, n := range news {
		for _, id := range n.DependsOn {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}

// FinishStats fills a workflow's derived counters: pending and running
// (counted from its jobs by the backend) and the completion percentage.
func FinishStats(s *workflow.Stats, pending, running int) {
	s.PendingJobs = pending
	s.RunningJobs = running
	s.CompletionPercentage = s.Percentage()
}

// ListLimit applies List's default and cap to a workflow listing.
func (p ListWorkflowsParams) ListLimit() int {
	return ListParams{Limit: p.Limit}.ListLimit()
}

// DefaultExpireLimit bounds one ExpireWorkflows pass when Limit is zero.
const DefaultExpireLimit = 100

// ExpireLimit applies the default.
func (p ExpireWorkflowsParams) ExpireLimit() int {
	if p.Limit <= 0 {
		return DefaultExpireLimit
	}
	return p.Limit
}
