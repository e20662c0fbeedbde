// Package job holds the domain types of a job: its states, priorities and retry
// policy. It does no I/O, so every other package can share these types.
package job

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Job is one row of hammerwork_jobs as the rest of the program sees it.
// Optional text columns are empty strings here and NULL in the database.
type Job struct {
	ID          uuid.UUID       `json:"id"`
	Queue       string          `json:"queue"`
	Payload     json.RawMessage `json:"payload"`
	Status      Status          `json:"status"`
	Priority    Priority        `json:"priority"`
	Attempts    int             `json:"attempts"`
	MaxAttempts int             `json:"max_attempts"`

	CreatedAt   time.Time  `json:"created_at"`
	ScheduledAt time.Time  `json:"scheduled_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	FailedAt    *time.Time `json:"failed_at,omitempty"`

	// ErrorMessage is the last attempt's error; Errors keeps every attempt's.
	ErrorMessage string         `json:"error_message,omitempty"`
	Errors       []AttemptError `json:"errors"`

	// Timeout bounds one request to the app; zero means the queue's or the
	// agent's request_timeout applies.
	Timeout     Duration     `json:"timeout,omitempty"`
	RetryPolicy *RetryPolicy `json:"retry,omitempty"`

	Result          json.RawMessage `json:"result,omitempty"`
	ResultExpiresAt *time.Time      `json:"result_expires_at,omitempty"`
	// ResultTTL is how long the result is kept after completion; zero keeps it.
	ResultTTL Duration `json:"result_ttl,omitempty"`

	BatchID             *uuid.UUID       `json:"batch_id,omitempty"`
	WorkflowID          *uuid.UUID       `json:"workflow_id,omitempty"`
	WorkflowName        string           `json:"workflow_name,omitempty"`
	StepName            string           `json:"step_name,omitempty"`
	DependsOn           []uuid.UUID      `json:"depends_on"`
	Dependents          []uuid.UUID      `json:"dependents"`
	DependencyStatus    DependencyStatus `json:"dependency_status"`
	PendingDependencies int              `json:"pending_dependencies"`
	Condition           string           `json:"condition,omitempty"`

	TraceID       string `json:"trace_id,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	ParentSpanID  string `json:"parent_span_id,omitempty"`
	// SpanContext is the W3C traceparent the job was created under.
	SpanContext string `json:"span_context,omitempty"`
	// TraceState is the W3C tracestate of that context: vendor trace data
	// the app receives with traceparent on every attempt.
	TraceState string `json:"trace_state,omitempty"`
	UniqueKey  string `json:"unique_key,omitempty"`
	// Duplicate is set on the job an enqueue returned instead of inserting a
	// new one, because a live job already held the same unique key.
	Duplicate bool `json:"duplicate,omitempty"`

	LeasedBy       string     `json:"leased_by,omitempty"`
	LeaseExpiresAt *time.Time `json:"lease_expires_at,omitempty"`
	LeaseToken     string     `json:"lease_token,omitempty"`
}

// AttemptError records how one attempt ended, so the history survives retries.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	// Outcome says what happened: "retry", "failed", "timeout", "lease_expired", ...
	Outcome string `json:"outcome"`
	Message string `json:"message"`
}

// DefaultMaxAttempts is used when an enqueue names no max_attempts, as in hammerwork.
const DefaultMaxAttempts = 3
