// Package workflow is the domain of workflows: a DAG of jobs built with a
// builder or read from a definition file, validated before anything is
// written, plus conditions and graph export. It does no I/O: the store
// persists and resolves workflows, the API and CLI read and show them.
package workflow

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
)

// FailurePolicy says what happens to a workflow when one of its jobs ends failed.
type FailurePolicy string

const (
	// FailFast cancels every non-terminal job and fails the workflow. The default.
	FailFast FailurePolicy = "fail_fast"
	// ContinueOnFailure cancels the failed job's descendants and lets
	// independent branches run; the workflow fails once nothing is left.
	ContinueOnFailure FailurePolicy = "continue_on_failure"
	// Manual leaves descendants waiting and pauses the workflow until an
	// operator retries the failed jobs or cancels the workflow.
	Manual FailurePolicy = "manual"
)

// ParseFailurePolicy accepts the three policy names; empty means FailFast.
func ParseFailurePolicy(s string) (FailurePolicy, error) {
	switch p := FailurePolicy(s); p {
	case "":
		return FailFast, nil
	case FailFast, ContinueOnFailure, Manual:
		return p, nil
	}
	return "", fmt.Errorf("unknown failure_policy %q (want fail_fast, continue_on_failure or manual)", s)
}

// Status is a workflow's state.
type Status string

const (
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
	StatusPaused    Status = "paused"
)

// Terminal reports whether the workflow is finished.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Workflow is a definition: what to enqueue. Steps refer to each other by name.
type Workflow struct {
	Name          string          `json:"name"`
	Description   string          `json:"description,omitempty"`
	FailurePolicy FailurePolicy   `json:"failure_policy,omitempty"`
	Priority      *job.Priority   `json:"priority,omitempty"`
	Timeout       job.Duration    `json:"timeout,omitempty"`
	TraceID       string          `json:"trace_id,omitempty"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	Steps         []Step          `json:"jobs"`
}

// Step is one job of a workflow definition.
type Step struct {
	Name    string          `json:"name"`
	Queue   string          `json:"queue"`
	Payload json.RawMessage `json:"payload,omitempty"`
	// DependsOn names the steps this one waits for.
	DependsOn []string `json:"depends_on,omitempty"`
	// Condition is a CEL expression over the parents' results; empty: always run.
	Condition   string           `json:"condition,omitempty"`
	MaxAttempts int              `json:"max_attempts,omitempty"`
	Timeout     job.Duration     `json:"timeout,omitempty"`
	Priority    *job.Priority    `json:"priority,omitempty"`
	Retry       *job.RetryPolicy `json:"retry,omitempty"`
	Delay       job.Duration     `json:"delay,omitempty"`
	ResultTTL   job.Duration     `json:"result_ttl,omitempty"`
	// Batch, instead of Payload, makes the step a batch: one job per
	// payload, all in one batch, named "<name>[0]", "<name>[1]", ...; the
	// step's dependents wait for every one of them, and their conditions
	// see the results as a list under the step's name.
	Batch []json.RawMessage `json:"batch,omitempty"`
}

// MaxBatchSteps bounds the payloads of one batch step, like a batch
// enqueued through the API.
const MaxBatchSteps = 10000

// BatchJobName is the step name of the i-th job of a batch step.
func BatchJobName(step string, i int) string { return fmt.Sprintf("%s[%d]", step, i) }

// Record is a stored workflow with its counters, kept true by the store in
// the same transactions as the job changes.
type Record struct {
	ID            uuid.UUID       `json:"id"`
	Name          string          `json:"name"`
	Description   string          `json:"description,omitempty"`
	Status        Status          `json:"status"`
	FailurePolicy FailurePolicy   `json:"failure_policy"`
	Priority      job.Priority    `json:"priority"`
	Timeout       job.Duration    `json:"timeout,omitempty"`
	Deadline      *time.Time      `json:"deadline,omitempty"`
	TraceID       string          `json:"trace_id,omitempty"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	// ErrorMessage says why a workflow failed or was cancelled (e.g. its timeout).
	ErrorMessage string     `json:"error_message,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	CompletedAt  *time.Time `json:"completed_at,omitempty"`
	FailedAt     *time.Time `json:"failed_at,omitempty"`
	Stats        Stats      `json:"stats"`
}

// Stats are a workflow's counters. Pending and running are derived by the
// store from the jobs; the rest are stored counters.
type Stats struct {
	TotalJobs            int     `json:"total_jobs"`
	CompletedJobs        int     `json:"completed_jobs"`
	FailedJobs           int     `json:"failed_jobs"`
	CancelledJobs        int     `json:"cancelled_jobs"`
	SkippedJobs          int     `json:"skipped_jobs"`
	PendingJobs          int     `json:"pending_jobs"`
	RunningJobs          int     `json:"running_jobs"`
	CompletionPercentage float64 `json:"completion_percentage"`
}

// Percentage is the completion_percentage of the API and hammerwork's
// WorkflowStats: completed and skipped jobs over all jobs, times 100. A
// skipped job counts as done because its branch was resolved, just not run.
// An empty workflow is 0, not NaN, so the value always encodes as JSON.
func (s Stats) Percentage() float64 {
	if s.TotalJobs <= 0 {
		return 0
	}
	return float64(s.CompletedJobs+s.SkippedJobs) / float64(s.TotalJobs) * 100
}
