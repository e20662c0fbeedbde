// Package events is the event model of the transactional outbox: the event
// types, the JSON every sink sends, subscriber filters, the Sink interface
// sinks implement, and the relay's decisions (PlanAck). The rows come from
// store (written by database triggers in the transaction of each change);
// sinks (events/webhook, ...) import this package and never store.
package events

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/store"
)

// Event types. A job's or workflow's event is named after its transition;
// docs/ARCHITECTURE.md ("Events") lists which change writes which.
const (
	JobEnqueued       = "job.enqueued"
	JobStarted        = "job.started"
	JobCompleted      = "job.completed"
	JobRetryScheduled = "job.retry_scheduled"
	JobFailed         = "job.failed"
	JobCancelled      = "job.cancelled"
	JobSkipped        = "job.skipped"
	// JobRescued: the lease expired (its agent died) and the job is pending
	// again. A rescue with no attempt left is JobFailed.
	JobRescued = "job.rescued"
	// JobReleased: the agent gave the job back without spending the
	// attempt (a drain, or the app was down).
	JobReleased = "job.released"
	// JobRetried: an operator re-pended a failed, cancelled or skipped job.
	JobRetried = "job.retried"

	WorkflowStarted   = "workflow.started"
	WorkflowCompleted = "workflow.completed"
	WorkflowFailed    = "workflow.failed"
	WorkflowCancelled = "workflow.cancelled"
	WorkflowPaused    = "workflow.paused"
	// WorkflowResumed: a paused or finished workflow runs again.
	WorkflowResumed = "workflow.resumed"

	// BatchFinished: every job of the batch finished; Status says how.
	BatchFinished = "batch.finished"

	ScheduleFired   = "schedule.fired"
	ScheduleSkipped = "schedule.skipped"
	// ScheduleMissed: the catch-up policy let slots pass (downtime).
	ScheduleMissed = "schedule.missed"

	QueuePaused  = "queue.paused"
	QueueResumed = "queue.resumed"

	// Ping is sent by a webhook test; it is never in the outbox.
	Ping = "webhook.ping"
)

// Types lists every outbox event type, for validation and documentation.
var Types = []string{
	JobEnqueued, JobStarted, JobCompleted, JobRetryScheduled, JobFailed, JobCancelled,
	JobSkipped, JobRescued, JobReleased, JobRetried,
	WorkflowStarted, WorkflowCompleted, WorkflowFailed, WorkflowCancelled, WorkflowPaused, WorkflowResumed,
	BatchFinished,
	ScheduleFired, ScheduleSkipped, ScheduleMissed,
	QueuePaused, QueueResumed,
}

// Event is one state change as every sink sends it: the JSON body of a
// webhook, the value of a stream record. ID is the idempotency key: a
// redelivery carries the same ID.
type Event struct {
	Seq          int64      `json:"seq"`
	ID           uuid.UUID  `json:"id"`
	Type         string     `json:"type"`
	Time         time.Time  `json:"time"`
	JobID        *uuid.UUID `json:"job_id,omitempty"`
	Queue        string     `json:"queue,omitempty"`
	WorkflowID   *uuid.UUID `json:"workflow_id,omitempty"`
	WorkflowName string     `json:"workflow_name,omitempty"`
	BatchID      *uuid.UUID `json:"batch_id,omitempty"`
	Schedule     string     `json:"schedule,omitempty"`
	// Priority is a job's (0 background .. 4 critical); nil for others.
	Priority *int `json:"priority,omitempty"`
	// Attempt is a job's attempts so far (1-based once started).
	Attempt int `json:"attempt,omitempty"`
	// Status is the row's status after the change (a schedule run's
	// outcome; a queue's "paused" or "resumed").
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// DurationMS is a finished attempt's length, started to finished.
	DurationMS *int64 `json:"duration_ms,omitempty"`
	// Missed is how many slots a schedule.missed let pass.
	Missed        int             `json:"missed,omitempty"`
	TraceID       string          `json:"trace_id,omitempty"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	Result        json.RawMessage `json:"result,omitempty"`
}

// FromRecord names a stored transition's type and shapes it as an Event.
// Payload and Result are copied as stored; a sink drops those its
// subscription did not ask for (Subscription.Shape).
func FromRecord(r store.EventRecord) Event {
	e := Event{
		Seq: r.Seq, ID: r.ID, Type: TypeOf(r), Time: r.Time,
		JobID: r.JobID, Queue: r.Queue, WorkflowID: r.WorkflowID, WorkflowName: r.WorkflowName,
		BatchID: r.BatchID, Schedule: r.Schedule, Status: r.Status, Error: r.Error,
		Missed: r.Missed, TraceID: r.TraceID, CorrelationID: r.CorrelationID,
		Payload: r.Payload, Result: r.Result,
	}
	if r.Kind == store.EventKindJob {
		p := r.Priority
		e.Priority = &p
		e.Attempt = r.Attempt
		e.DurationMS = duration(r)
		if !slices.Contains(errorTypes, e.Type) {
			e.Error = ""
		}
	}
	return e
}

// errorTypes are the job events whose error is the change's own: a job's
// error_message outlives the attempt that wrote it, and a completion after a
// retry must not carry the retry's error.
var errorTypes = []string{JobRetryScheduled, JobFailed, JobRescued, JobCancelled}

// duration is a finished attempt's length: started to finished, or to the
// change for an attempt that ends without a finish time (a retry, a
// rescue). Nil while no attempt has finished.
func duration(r store.EventRecord) *int64 {
	if r.StartedAt == nil || r.FromStatus != "running" {
		return nil
	}
	end := r.Time
	if r.FinishedAt != nil {
		end = *r.FinishedAt
	}
	ms := max(end.Sub(*r.StartedAt).Milliseconds(), 0)
	return &ms
}

// TypeOf decides a transition's event type: the one place that reads what
// a trigger recorded.
func TypeOf(r store.EventRecord) string {
	switch r.Kind {
	case store.EventKindJob:
		return jobType(r)
	case store.EventKindWorkflow:
		switch {
		case r.FromStatus == "":
			return WorkflowStarted
		case r.Status == "running":
			return WorkflowResumed
		}
		return "workflow." + r.Status
	case store.EventKindBatch:
		return BatchFinished
	case store.EventKindSchedule:
		return "schedule." + r.Status
	case store.EventKindQueue:
		return "queue." + r.Status
	}
	return r.Kind + "." + r.Status
}

func jobType(r store.EventRecord) string {
	switch {
	case r.FromStatus == "":
		return JobEnqueued
	case r.Status == "running":
		return JobStarted
	case r.Status != "pending":
		return "job." + r.Status
	case r.FromStatus != "running":
		return JobRetried
	case r.Attempt < r.PrevAttempt:
		return JobReleased
	case r.Outcome == store.LeaseExpiredOutcome:
		return JobRescued
	}
	return JobRetryScheduled
}
