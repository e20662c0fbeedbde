package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Events keeps the transactional outbox (hammerwork_events), its
// subscribers (hammerwork_event_subscribers: webhooks, streams, tails) and
// the webhook delivery log (hammerwork_webhook_deliveries).
//
// Writing: database triggers on hammerwork_jobs, hammerwork_workflows,
// hammerwork_batches, hammerwork_schedule_runs and hammerwork_queue_pauses
// insert one EventRecord per state change inside the changing statement,
// so an event exists exactly when its change committed, on every code path
// and in batches without a round trip per event. They write only while an
// enabled subscriber exists; payload and result only while an enabled
// subscriber asks for them. A trigger records the transition raw (kind,
// from and to status, the row's fields); events.FromRecord names its type
// in Go, once.
//
// Ordering: pos (insertion order) is not commit order when transactions
// overlap, so a relay reading by pos could pass an event that commits
// later. SequenceEvents gives committed events a gapless seq in commit
// order (one sequencer at a time; events of one job in their commit order),
// and everything downstream reads by seq. See docs/ARCHITECTURE.md,
// "Events".
//
// Delivering: a relay claims a subscriber (a lease: claimed_by, claim_token,
// claimed_until, taken with FOR UPDATE SKIP LOCKED), reads the events after
// its cursor, hands them to the sink outside any transaction, and commits
// the deliveries and the new cursor with AckEvents, guarded by the claim
// token. An agent that dies leaves its claim to expire; another then takes
// the subscriber over from the last acknowledged cursor. Holding a lease
// rather than a row lock keeps no transaction open across HTTP calls (which
// would hold back vacuum on PostgreSQL and block SQLite's single writer).
type Events interface {
	// PutSubscriber creates or replaces the subscriber named p.Def.Name in
	// one transaction holding the row, as PlanSubscriberPut decides
	// (sink-specific validation is the caller's; SubscriberDef.Validate's
	// refusals, an empty or too long name or an unknown kind or source, are
	// ErrInvalid and write nothing). A new subscriber's cursor starts at
	// LatestSeq: it receives the events that commit from then on; created
	// disabled, it gets disabled_at. An unchanged definition (Kind, Source,
	// Config byte for byte, the include flags and Enabled equal) changes
	// nothing, so a config upsert at every start-up keeps a disabled
	// subscriber disabled; a changed one keeps the cursor and takes p.Def:
	// enabling it clears the disabled reason and disabled_at, the failure
	// count and the retry state, disabling it sets disabled_at. p.CreateOnly
	// makes an existing name ErrConflict. Created reports a new row.
	PutSubscriber(ctx context.Context, p PutSubscriberParams) (sub *Subscriber, created bool, err error)
	// GetSubscriber returns one subscriber by id, or ErrNotFound.
	GetSubscriber(ctx context.Context, id uuid.UUID) (*Subscriber, error)
	// GetSubscriberByName returns one subscriber by name, or ErrNotFound.
	GetSubscriberByName(ctx context.Context, name string) (*Subscriber, error)
	// ListSubscribers lists subscribers by name (p.Kind filters), p.Limit
	// per page (NamePaging); the cursor is the last name of a page.
	ListSubscribers(ctx context.Context, p ListSubscribersParams) (*SubscriberPage, error)
	// DeleteSubscriber removes a subscriber and its delivery log. Unknown:
	// ErrNotFound.
	DeleteSubscriber(ctx context.Context, id uuid.UUID) error
	// PruneSubscribers deletes every subscriber of p.Kind and p.Source whose
	// name is not in p.Keep (config entries removed from the file) and
	// returns the deleted names, sorted.
	PruneSubscribers(ctx context.Context, p PruneSubscribersParams) ([]string, error)

	// SequenceEvents gives up to p.Limit committed, unsequenced events the
	// next seqs, in pos order, in one transaction holding the sequencer
	// (PostgreSQL and MySQL: the hammerwork_event_sequence row FOR UPDATE
	// SKIP LOCKED, so a second agent returns 0 at once instead of waiting;
	// SQLite: its single writer). Returns how many it sequenced; a full
	// batch means more may wait.
	SequenceEvents(ctx context.Context, p SequenceEventsParams) (int, error)
	// ReadEvents returns sequenced events with seq > p.AfterSeq in seq
	// order, at most p.ReadLimit() (zero Limit: DefaultReadLimit); none is
	// an empty slice.
	ReadEvents(ctx context.Context, p ReadEventsParams) ([]EventRecord, error)
	// GetEvent returns the sequenced event of that id, or ErrNotFound (never
	// written, not yet sequenced, or cleaned up).
	GetEvent(ctx context.Context, id uuid.UUID) (*EventRecord, error)
	// LatestSeq is the newest sequenced seq (0: none yet).
	LatestSeq(ctx context.Context) (int64, error)

	// ClaimSubscribers takes up to p.Limit enabled subscribers for
	// p.Duration: of a kind in p.Kinds or named in p.Streams that have
	// work (an event with seq > cursor_seq exists), or named in p.Names,
	// work or not (an empty list matches nothing of it; p.ClaimsNothing
	// takes none). A named
	// reader, a tail, holds its claim from the start: idle and unclaimed,
	// the cleanup would take it for abandoned and remove it, and the events
	// of that gap would never reach it. Each is unclaimed, claim expired
	// (claimed_until <= now) or already claimed by p.AgentID, with retry_at
	// NULL or <= now. Rows another transaction holds are skipped. Each gets claimed_by = p.AgentID, a
	// fresh claim_token, claimed_until = now + p.Duration. Ordered by
	// claimed_until NULLS FIRST, then name, so no subscriber starves.
	ClaimSubscribers(ctx context.Context, p ClaimSubscribersParams) ([]*Subscriber, error)
	// AckEvents records what a claim delivered, in one transaction guarded
	// by the claim, as PlanAckEvents decides from the row held: unknown id
	// ErrNotFound; claimed_by or claim_token no longer p's ErrStaleLease;
	// the cursor never moves back, a p.State.Cursor below the stored one is
	// ErrInvalid; nothing written on any of them. Otherwise it inserts
	// p.Deliveries (PlanDeliveries' defaults, multi-row inserts), sets the
	// cursor, retry state, failure count, last_error, last_delivered_at
	// (the newest delivered attempt's At, kept when none delivered) and,
	// when p.State.Disabled, enabled = false with the reason; p.Release
	// clears the claim, otherwise claimed_until = now + p.Extend.
	AckEvents(ctx context.Context, p AckEventsParams) error
	// RecordDelivery stores one delivery made outside a claim (a test ping,
	// a redelivery), with PlanDeliveries' defaults; it moves no cursor. An
	// unknown subscriber is ErrNotFound.
	RecordDelivery(ctx context.Context, d Delivery) error
	// ListDeliveries pages a subscriber's delivery log, newest first (id
	// DESC: ids are UUIDv7), p.Limit per page (Paging).
	ListDeliveries(ctx context.Context, p ListDeliveriesParams) (*DeliveryPage, error)
	// GetDelivery returns one delivery of a subscriber, or ErrNotFound.
	GetDelivery(ctx context.Context, subscriber, id uuid.UUID) (*Delivery, error)
	// SubscriberLags reports, for every enabled subscriber, how far its
	// cursor is behind: the number of sequenced events after it and the
	// time of the first of them (zero when caught up).
	SubscriberLags(ctx context.Context) ([]SubscriberLag, error)
	// CleanupEvents deletes, at most p.Limit of each per call: sequenced
	// events whose seq every enabled subscriber's cursor has passed and
	// whose time is older than now - p.Retention (with no enabled
	// subscriber, every event older than that); deliveries older than now -
	// p.Retention; and tail subscribers whose claim lapsed before now -
	// p.TailGrace. Returns the events deleted.
	CleanupEvents(ctx context.Context, p CleanupEventsParams) (int, error)
}

// Subscriber kinds.
const (
	SubscriberWebhook = "webhook"
	SubscriberStream  = "stream"
	// SubscriberTail is a transient reader (hw-agent events tail, the
	// dashboard's live view): it holds its own claim while it reads and is
	// cleaned up once the claim lapses.
	SubscriberTail = "tail"
)

// Subscriber sources: where a definition came from. Config subscribers are
// upserted at start-up and pruned when removed from the file; API ones live
// until deleted.
const (
	SourceConfig = "config"
	SourceAPI    = "api"
)

// SubscriberDef is what a caller defines; the rest of Subscriber is state.
type SubscriberDef struct {
	Name   string
	Kind   string
	Source string
	// Config is the sink's own definition (a webhook's URL, secrets,
	// filter, retry settings), stored and returned as given.
	Config json.RawMessage
	// IncludePayload and IncludeResult make the triggers copy payload and
	// result into events while this subscriber is enabled.
	IncludePayload bool
	IncludeResult  bool
	Enabled        bool
}

// Subscriber is a stored subscriber and its delivery state.
type Subscriber struct {
	ID uuid.UUID
	SubscriberDef
	// DisabledReason says why Enabled is false ("410 Gone from ...",
	// "20 consecutive failed events", "disabled by the API").
	DisabledReason string
	DisabledAt     *time.Time
	SubscriberState
	LastDeliveredAt *time.Time
	ClaimedBy       string
	ClaimToken      string
	ClaimedUntil    *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// SubscriberState is what a relay changes after delivering; events.PlanAck
// decides it.
type SubscriberState struct {
	// Cursor is the seq of the last event done with (delivered, failed for
	// good, or filtered out).
	Cursor int64
	// ConsecutiveFailures counts events given up on since the last one
	// delivered.
	ConsecutiveFailures int
	// RetrySeq is the event being retried (0: none); RetryAttempts its
	// attempts so far; RetryAt when the next is due. Durable, so a retry
	// survives the agent.
	RetrySeq      int64
	RetryAttempts int
	RetryAt       *time.Time
	LastError     string
	// Disabled turns the subscriber off (AckEvents sets enabled = false,
	// disabled_at = now) with DisabledReason.
	Disabled       bool
	DisabledReason string
}

// PutSubscriberParams creates or replaces a subscriber.
type PutSubscriberParams struct {
	Def SubscriberDef
	// CreateOnly refuses an existing name with ErrConflict (POST).
	CreateOnly bool
	Now        time.Time
}

// ListSubscribersParams filters and pages ListSubscribers.
type ListSubscribersParams struct {
	Kind   string
	Limit  int
	Cursor string
}

// SubscriberPage is one page of subscribers.
type SubscriberPage struct {
	Subscribers []*Subscriber
	NextCursor  string
}

// PruneSubscribersParams names the subscribers to keep.
type PruneSubscribersParams struct {
	Kind   string
	Source string
	Keep   []string
}

// SequenceEventsParams bounds one sequencing pass; zero Limit means
// DefaultSequenceLimit (BatchLimit).
type SequenceEventsParams struct {
	Limit int
}

// ReadEventsParams selects events after a cursor.
type ReadEventsParams struct {
	AfterSeq int64
	Limit    int
}

// ClaimSubscribersParams selects and leases subscribers for a relay.
type ClaimSubscribersParams struct {
	AgentID string
	// Kinds are taken when they have work.
	Kinds []string
	// Streams are stream subscribers this agent has sinks for (streams are
	// configured per agent), by name: taken, like Kinds, only with work.
	Streams []string
	// Names are taken work or not: a reader holding its claim while idle.
	Names    []string
	Limit    int
	Duration time.Duration
	Now      time.Time
}

// AckEventsParams commits what a claimed subscriber's sink did.
type AckEventsParams struct {
	Subscriber uuid.UUID
	AgentID    string
	ClaimToken string
	State      SubscriberState
	Deliveries []Delivery
	// Release ends the claim; otherwise it is extended by Extend.
	Release bool
	Extend  time.Duration
	Now     time.Time
}

// Delivery outcomes.
const (
	DeliveryDelivered = "delivered"
	// DeliveryRetrying: this attempt failed and another is scheduled.
	DeliveryRetrying = "retrying"
	// DeliveryFailed: the event is given up on (a permanent answer, or the
	// last attempt).
	DeliveryFailed = "failed"
)

// Delivery is one attempt to deliver one event, as the log keeps it.
type Delivery struct {
	ID         uuid.UUID
	Subscriber uuid.UUID
	EventID    uuid.UUID
	EventSeq   int64
	EventType  string
	Attempt    int
	Outcome    string
	// StatusCode is the HTTP status (0: no answer).
	StatusCode int
	Error      string
	// Response is the first 4 KiB of the answer's body.
	Response string
	Duration time.Duration
	AgentID  string
	// At is when the attempt started; zero means now.
	At time.Time
}

// ListDeliveriesParams pages one subscriber's delivery log.
type ListDeliveriesParams struct {
	Subscriber uuid.UUID
	Limit      int
	Cursor     string
}

// DeliveryPage is one page of deliveries.
type DeliveryPage struct {
	Deliveries []*Delivery
	NextCursor string
}

// SubscriberLag is how far one subscriber is behind.
type SubscriberLag struct {
	ID     uuid.UUID
	Name   string
	Kind   string
	Events int64
	// Oldest is the time of the first event after the cursor; zero when
	// caught up.
	Oldest time.Time
}

// CleanupEventsParams bounds one cleanup pass.
type CleanupEventsParams struct {
	Retention time.Duration
	// TailGrace is how long a tail subscriber's lapsed claim is kept; zero
	// means DefaultTailGrace (TailCutoff).
	TailGrace time.Duration
	// Limit bounds each delete; zero means DefaultCleanupLimit
	// (DeleteLimit).
	Limit int
	Now   time.Time
}

// Event kinds: which table's row changed.
const (
	EventKindJob      = "job"
	EventKindWorkflow = "workflow"
	EventKindBatch    = "batch"
	EventKindSchedule = "schedule"
	EventKindQueue    = "queue"
)

// EventRecord is one outbox row as a trigger wrote it. Fields a kind does
// not have are zero.
type EventRecord struct {
	// Pos is insertion order; Seq is commit order (0 until sequenced).
	Pos int64
	Seq int64
	ID  uuid.UUID
	// Kind is the changed row's table (EventKind*).
	Kind string
	// FromStatus is the status before the change: empty for an insert. For
	// a queue: empty; Status is "paused" or "resumed".
	FromStatus string
	// Status is the status after the change. For a schedule run: the run's
	// outcome.
	Status string
	Time   time.Time
	JobID  *uuid.UUID
	Queue  string
	// Priority and Attempt are the job's; PrevAttempt its attempts before
	// the change (a release gives one back).
	Priority    int
	Attempt     int
	PrevAttempt int
	// Outcome is the job's last AttemptError outcome ("lease_expired" marks
	// a rescue).
	Outcome      string
	Error        string
	StartedAt    *time.Time
	FinishedAt   *time.Time
	WorkflowID   *uuid.UUID
	WorkflowName string
	BatchID      *uuid.UUID
	Schedule     string
	// Missed is a schedule.missed event's count of slots let pass.
	Missed        int
	TraceID       string
	CorrelationID string
	// Payload and Result are copied only while a subscriber asks for them
	// (Result only on completion); nil otherwise.
	Payload json.RawMessage
	Result  json.RawMessage
}
