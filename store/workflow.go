package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// Workflows persists workflows and resolves their dependencies. Its own
// methods' docs hold the workflow-wide rules; the parts that live inside
// other transitions are these:
//
//   - Complete: in the same transaction, each child of a completed job has
//     pending_dependencies decremented once per completed parent (aggregated
//     per child when several parents complete in one batch). A child reaching
//     zero has its condition evaluated over its parents' results
//     (workflow.EvalCondition): true or absent -> dependency_status
//     'satisfied'; false -> status 'skipped' (which resolves its own children
//     in turn); an evaluation error -> status 'failed' with the error text
//     (which applies the failure policy). Cost is O(children), never a scan.
//   - Fail / RescueExpired ending a job 'failed' apply the workflow's failure
//     policy in the same transaction: fail_fast cancels every non-terminal job
//     of the workflow and fails it; continue_on_failure cancels the failed
//     job's descendants with dependency_status 'failed' and fails the
//     workflow once nothing is left to run; manual leaves descendants
//     waiting and sets the workflow 'paused'. A job enqueued alone with
//     depends_on (no workflow) behaves as continue_on_failure.
//   - Every job transition of a workflow job updates the workflow's counters
//     and status in the same transaction (completed once all jobs are
//     completed or skipped).
//   - Cancel of a job in a workflow cancels its descendants like
//     continue_on_failure does.
//   - Descendants are found through hammerwork_job_dependencies whatever
//     workflow (or none) they belong to: a job enqueued alone with
//     depends_on into a workflow is cancelled when its parent is failed or
//     cancelled by fail_fast, a workflow cancel or a workflow timeout.
//   - Retry of one job (Admin.Retry) with a failed or cancelled parent is
//     ErrConflict naming it, and writes nothing. Retry of the
//     one failed job of a failed fail_fast workflow re-pends every job the
//     failure cancelled, as RetryWorkflow does (with another failed job left,
//     ErrConflict: retry the workflow). A retry that reopens a failed or
//     cancelled workflow gives it a new deadline, now + its timeout.
type Workflows interface {
	// EnqueueWorkflow validates the definition (workflow.Validate), then
	// writes the workflow row, every job and every edge in one transaction:
	// all or nothing. Jobs with parents start dependency_status 'waiting'
	// with pending_dependencies = number of parents; roots 'none'. The
	// workflow's priority, trace id, correlation id and span context are
	// stamped on jobs that set none of their own.
	EnqueueWorkflow(ctx context.Context, p EnqueueWorkflowParams) (*WorkflowEnqueued, error)
	// GetWorkflow returns the workflow with its counters, or ErrNotFound.
	GetWorkflow(ctx context.Context, id uuid.UUID) (*workflow.Record, error)
	// ListWorkflows lists newest first with cursor paging like List.
	ListWorkflows(ctx context.Context, p ListWorkflowsParams) (*WorkflowPage, error)
	// WorkflowJobs returns every job of the workflow with DependsOn filled.
	WorkflowJobs(ctx context.Context, id uuid.UUID) ([]*job.Job, error)
	// CancelWorkflow cancels every non-terminal job (running ones too: their
	// tokens go stale) and sets the workflow 'cancelled'. A finished
	// workflow: ErrConflict.
	CancelWorkflow(ctx context.Context, p WorkflowParams) (*workflow.Record, error)
	// RetryWorkflow re-pends the workflow's failed and cancelled jobs
	// (attempts 0), recomputes pending_dependencies and dependency_status of
	// every non-terminal job from its parents, and sets the workflow
	// 'running'. A failed or cancelled workflow gets a new deadline, now +
	// its timeout (a paused one keeps its own), and the returned record
	// shows it. A running or completed workflow: ErrConflict.
	RetryWorkflow(ctx context.Context, p WorkflowParams) (*workflow.Record, error)
	// ExpireWorkflows finds running or paused workflows whose deadline <= Now,
	// cancels what is left of each and fails it with an error naming the
	// timeout. Returns the ids it expired.
	ExpireWorkflows(ctx context.Context, p ExpireWorkflowsParams) ([]uuid.UUID, error)
	// ParentResults returns the results of a job's parents keyed by step
	// name (by job id when a parent has no step name), for the envelope.
	ParentResults(ctx context.Context, jobID uuid.UUID) (map[string]json.RawMessage, error)
}

// EnqueueWorkflowParams carries a definition to write.
type EnqueueWorkflowParams struct {
	Workflow workflow.Workflow
	// ID: zero generates a UUIDv7.
	ID uuid.UUID
	// SpanContext is the W3C traceparent the workflow was created under.
	SpanContext string
	TraceState  string // the W3C tracestate of that context, stored on every job
	Now         time.Time
}

// WorkflowEnqueued is what EnqueueWorkflow wrote.
type WorkflowEnqueued struct {
	Workflow *workflow.Record
	// Jobs maps step names to job ids.
	Jobs map[string]uuid.UUID
}

// WorkflowParams names one workflow.
type WorkflowParams struct {
	ID  uuid.UUID
	Now time.Time
}

// ListWorkflowsParams filters a workflow listing.
type ListWorkflowsParams struct {
	Status workflow.Status
	Limit  int
	Cursor string
}

// WorkflowPage is one page of workflows.
type WorkflowPage struct {
	Workflows  []*workflow.Record
	NextCursor string
}

// ExpireWorkflowsParams drives one pass of the workflow timeout check.
type ExpireWorkflowsParams struct {
	Now   time.Time
	Limit int
}

// ExpireEach expires workflows past their deadline one at a time, so one
// workflow's large cancellation never holds the others' locks: expire runs
// one workflow's transaction and reports whether it still found it live and
// unlocked (another expirer may hold it or have finished it). It returns
// the ids expired, in order, and stops at the first error.
func ExpireEach(ids []uuid.UUID, expire func(uuid.UUID) (bool, error)) ([]uuid.UUID, error) {
	var expired []uuid.UUID
	for _, id := range ids {
		did, err := expire(id)
		if err != nil {
			return expired, err
		}
		if did {
			expired = append(expired, id)
		}
	}
	return expired, nil
}
