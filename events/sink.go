package events

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Subscription is what a sink knows of its subscriber: the stored
// definition, whose Config is the whole document the user gave (the
// webhook's JSON, a [[stream]] entry), decoded by the sink for its own
// fields and by Policy for the shared ones.
type Subscription struct {
	ID             uuid.UUID
	Name           string
	Kind           string
	Config         json.RawMessage
	IncludePayload bool
	IncludeResult  bool
	// Attempt is the attempt number this delivery is for the first event
	// of the batch (1 unless it is being retried); later events are on
	// their first attempt.
	Attempt int
}

// Sink delivers one subscriber's events. The relay calls it with events in
// seq order, already filtered and shaped, outside any transaction.
type Sink interface {
	// Deliver tries each event at most once and returns one Result per
	// event, by index. Events of one job must be tried in order, and an
	// event whose job had an earlier event in the batch that did not
	// succeed must be NotTried, so a job's events never arrive out of
	// order; events of different jobs may go concurrently.
	Deliver(ctx context.Context, sub Subscription, batch []Event) []Result
}

// Outcome is what one attempt at one event came to.
type Outcome int

const (
	// NotTried: the sink did not attempt the event (an earlier event of its
	// job failed, or ctx ended); it is tried again later.
	NotTried Outcome = iota
	// Delivered: the receiver acknowledged.
	Delivered
	// Retry: a transient failure (5xx, 408, 409, 425, 429, timeout,
	// connection error); RetryAfter may say when.
	Retry
	// Rejected: a permanent failure (another 4xx): the event is given up on.
	Rejected
	// Gone: the receiver asked never to be called again (410): the
	// subscriber is disabled.
	Gone
)

// Result is one event's attempt, as the delivery log keeps it.
type Result struct {
	Outcome Outcome
	// RetryAfter is the receiver's Retry-After, zero when it named none.
	RetryAfter time.Duration
	// StatusCode is the HTTP status or the sink's equivalent (0: none).
	StatusCode int
	Error      string
	// Response is at most the first 4 KiB of the answer.
	Response string
	Duration time.Duration
	// At is when the attempt started.
	At time.Time
}
