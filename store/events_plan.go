package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// The outbox's dialect-neutral decisions, made here once so that every
// backend behaves alike and only writes them in its dialect (see
// docs/ARCHITECTURE.md, the "store" row of the package map).

// MaxSubscriberNameLength is the longest subscriber name every backend
// stores, in bytes.
const MaxSubscriberNameLength = 128

// Outbox defaults of a zero limit or grace (see Events).
const (
	DefaultSequenceLimit = 5000
	DefaultReadLimit     = 500
	DefaultCleanupLimit  = 5000
	DefaultTailGrace     = time.Minute
)

// The outbox tables' columns in the order each backend's row scanner reads
// them (and, for deliveries, writes them): one list each, so a column added
// by a migration is added to every backend's statements at once. Entries
// are separated by ", ".
const (
	SubscriberColumns = "id, name, kind, source, config, include_payload, include_result, enabled, " +
		"disabled_reason, disabled_at, cursor_seq, consecutive_failures, retry_seq, retry_attempts, retry_at, " +
		"last_error, last_delivered_at, claimed_by, claim_token, claimed_until, created_at, updated_at"
	DeliveryColumns = "id, subscriber_id, event_id, event_seq, event_type, attempt, outcome, status_code, " +
		"error, response, duration_us, agent_id, attempted_at"
	EventColumns = "pos, seq, id, kind, from_status, status, occurred_at, job_id, queue, priority, attempt, " +
		"prev_attempt, outcome, error, started_at, finished_at, workflow_id, workflow_name, batch_id, " +
		"schedule_name, missed, trace_id, correlation_id, payload, result"
)

var (
	subscriberKinds   = []string{SubscriberWebhook, SubscriberStream, SubscriberTail}
	subscriberSources = []string{SourceConfig, SourceAPI}
)

// Validate checks what the store itself relies on: a name that fits, and a
// known kind and source. The sink validates its own Config. Errors wrap
// ErrInvalid and name the field.
func (d SubscriberDef) Validate() error {
	switch {
	case d.Name == "":
		return fmt.Errorf("%w: name: a subscriber needs a name", ErrInvalid)
	case len(d.Name) > MaxSubscriberNameLength:
		return fmt.Errorf("%w: name: %d bytes long, at most %d", ErrInvalid, len(d.Name), MaxSubscriberNameLength)
	case !slices.Contains(subscriberKinds, d.Kind):
		return fmt.Errorf("%w: kind: unknown subscriber kind %q", ErrInvalid, d.Kind)
	case !slices.Contains(subscriberSources, d.Source):
		return fmt.Errorf("%w: source: unknown subscriber source %q", ErrInvalid, d.Source)
	}
	return nil
}

// sameAs reports whether putting d over a stored definition changes
// nothing: Kind, Source, Config byte for byte (as it is returned), the
// include flags and Enabled equal.
func (d SubscriberDef) sameAs(stored SubscriberDef) bool {
	return d.Kind == stored.Kind && d.Source == stored.Source && bytes.Equal(d.Config, stored.Config) &&
		d.IncludePayload == stored.IncludePayload && d.IncludeResult == stored.IncludeResult &&
		d.Enabled == stored.Enabled
}

// PlanSubscriberPut decides what PutSubscriber writes over existing (nil:
// no subscriber of that name) at now, after p.Def.Validate:
//   - none existing: a new subscriber (a fresh UUIDv7, p.Def, disabled_at
//     now when created disabled); the backend inserts it with cursor_seq =
//     the sequencer's last_seq, read in the insert.
//   - existing and p.CreateOnly: ErrConflict.
//   - an unchanged definition (SubscriberDef.sameAs): existing, write false.
//   - a changed one: the state kept and p.Def taken; enabling clears the
//     disabled reason and time, the failure count and the retry state;
//     disabling stamps disabled_at.
//
// write reports whether the backend writes the returned subscriber.
func PlanSubscriberPut(existing *Subscriber, p PutSubscriberParams, now time.Time) (next *Subscriber, write bool, err error) {
	now = UTC(now)
	if existing == nil {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, false, fmt.Errorf("subscriber %q: new id: %w", p.Def.Name, err)
		}
		sub := &Subscriber{ID: id, SubscriberDef: p.Def, CreatedAt: now, UpdatedAt: now}
		if !p.Def.Enabled {
			sub.DisabledAt = &now
			sub.Disabled = true
		}
		return sub, true, nil
	}
	if p.CreateOnly {
		return nil, false, fmt.Errorf("%w: subscriber %q exists", ErrConflict, p.Def.Name)
	}
	if p.Def.sameAs(existing.SubscriberDef) {
		return existing, false, nil
	}
	sub := *existing
	sub.SubscriberDef, sub.UpdatedAt = p.Def, now
	switch {
	case p.Def.Enabled && !existing.Enabled:
		sub.DisabledAt = nil
		sub.SubscriberState.DisabledReason, sub.DisabledReason, sub.Disabled = "", "", false
		sub.ConsecutiveFailures, sub.RetrySeq, sub.RetryAttempts, sub.RetryAt = 0, 0, 0, nil
	case !p.Def.Enabled && existing.Enabled:
		sub.DisabledAt, sub.Disabled = &now, true
	}
	return &sub, true, nil
}

// FillState completes a subscriber scanned from its row: the state's
// Disabled and DisabledReason are the row's (enabled false, its disabled
// reason), so a state read back and acknowledged again keeps them.
func (s *Subscriber) FillState() {
	s.Disabled, s.SubscriberState.DisabledReason = !s.Enabled, s.DisabledReason
}

// AckRow is what AckEvents reads of the subscriber's row, held for the
// transaction, before deciding.
type AckRow struct {
	Cursor     int64
	ClaimedBy  string
	ClaimToken string
}

// ScanAckRow reads AckRow's columns (cursor_seq, claimed_by, claim_token)
// from row; noRows is the driver's no-row error, which makes the row nil
// (no such subscriber).
func ScanAckRow(row Scanner, noRows error) (*AckRow, error) {
	var (
		r                AckRow
		claimedBy, token *string
	)
	err := row.Scan(&r.Cursor, &claimedBy, &token)
	switch {
	case errors.Is(err, noRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read the subscriber's claim: %w", err)
	}
	if claimedBy != nil {
		r.ClaimedBy = *claimedBy
	}
	if token != nil {
		r.ClaimToken = *token
	}
	return &r, nil
}

// AckPlan is what AckEvents writes once its guard passed.
type AckPlan struct {
	// State is p.State with its texts made storable (SafeText).
	State SubscriberState
	// Deliveries are p.Deliveries with their defaults (PlanDeliveries).
	Deliveries []Delivery
	// LastDeliveredAt is the newest delivered attempt's time; nil keeps
	// the stored one.
	LastDeliveredAt *time.Time
	// ClaimedUntil is the extended claim; nil when p.Release clears it.
	ClaimedUntil *time.Time
	// Now is the time of the ack: disabled_at when State.Disabled.
	Now time.Time
}

// PlanAckEvents decides AckEvents' outcome from the row the backend read
// (nil: no such subscriber, ErrNotFound): a claim that is no longer p's
// (claimed_by or claim_token differ, or p has no token) is ErrStaleLease;
// a cursor below the stored one is ErrInvalid. An expired claim nobody
// took over still acks. The backend writes nothing on an error.
func PlanAckEvents(row *AckRow, p AckEventsParams, now time.Time) (*AckPlan, error) {
	switch {
	case row == nil:
		return nil, fmt.Errorf("subscriber %s: %w", p.Subscriber, ErrNotFound)
	case p.ClaimToken == "" || row.ClaimToken != p.ClaimToken || row.ClaimedBy != p.AgentID:
		return nil, fmt.Errorf("%w: subscriber %s is claimed by %q now", ErrStaleLease, p.Subscriber, row.ClaimedBy)
	case p.State.Cursor < row.Cursor:
		return nil, fmt.Errorf("%w: cursor %d is behind the stored %d", ErrInvalid, p.State.Cursor, row.Cursor)
	}
	now = UTC(now)
	ds, delivered, err := PlanDeliveries(p.Subscriber, p.AgentID, p.Deliveries, now)
	if err != nil {
		return nil, err
	}
	st := p.State
	st.LastError, st.DisabledReason = SafeText(st.LastError), SafeText(st.DisabledReason)
	plan := &AckPlan{State: st, Deliveries: ds, LastDeliveredAt: delivered, Now: now}
	if !p.Release {
		until := now.Add(p.Extend)
		plan.ClaimedUntil = &until
	}
	return plan, nil
}

// PlanDeliveries fills what a caller may leave out of the deliveries it
// records for subscriber sub: a UUIDv7 id, the subscriber, agent for an
// empty AgentID, now for a zero At (others in UTC), and storable Error and
// Response (SafeText). delivered is the newest delivered attempt's At (nil:
// none delivered), the subscriber's last_delivered_at.
func PlanDeliveries(sub uuid.UUID, agent string, ds []Delivery, now time.Time) (out []Delivery, delivered *time.Time, err error) {
	out = make([]Delivery, len(ds))
	for i, d := range ds {
		if d.ID == uuid.Nil {
			if d.ID, err = uuid.NewV7(); err != nil {
				return nil, nil, fmt.Errorf("new delivery id: %w", err)
			}
		}
		d.Subscriber = sub
		if d.AgentID == "" {
			d.AgentID = agent
		}
		if d.At.IsZero() {
			d.At = now
		}
		d.At = UTC(d.At)
		d.Error, d.Response = SafeText(d.Error), SafeText(d.Response)
		if d.Outcome == DeliveryDelivered && (delivered == nil || d.At.After(*delivered)) {
			at := d.At
			delivered = &at
		}
		out[i] = d
	}
	return out, delivered, nil
}

// BatchLimit is how many events one pass sequences: p.Limit, or
// DefaultSequenceLimit when zero.
func (p SequenceEventsParams) BatchLimit() int { return orDefault(p.Limit, DefaultSequenceLimit) }

// ReadLimit is how many events one read returns: p.Limit, or
// DefaultReadLimit when zero.
func (p ReadEventsParams) ReadLimit() int { return orDefault(p.Limit, DefaultReadLimit) }

// DeleteLimit bounds each of a cleanup's deletes: p.Limit, or
// DefaultCleanupLimit when zero.
func (p CleanupEventsParams) DeleteLimit() int { return orDefault(p.Limit, DefaultCleanupLimit) }

// TailCutoff is the time before which a tail subscriber's lapsed claim is
// removed: now - p.TailGrace, DefaultTailGrace when zero.
func (p CleanupEventsParams) TailCutoff(now time.Time) time.Time {
	grace := p.TailGrace
	if grace <= 0 {
		grace = DefaultTailGrace
	}
	return UTC(now.Add(-grace))
}

// ClaimsNothing reports a claim that matches no subscriber: a Limit below
// one, or no Kinds, Streams or Names. A backend returns an empty slice at
// once.
func (p ClaimSubscribersParams) ClaimsNothing() bool {
	return p.Limit <= 0 || len(p.Kinds)+len(p.Streams)+len(p.Names) == 0
}

func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// Paging applies the list default and cap; the cursor is the name after
// which the page starts.
func (p ListSubscribersParams) Paging() NamePaging {
	return NamePaging{Limit: ListParams{Limit: p.Limit}.ListLimit(), After: p.Cursor}
}

// SubscriberPage trims subscribers read with Fetch (by name) to the page
// and sets the next page's cursor, empty on the last page. Subscribers is
// never nil.
func (pg NamePaging) SubscriberPage(rows []*Subscriber) *SubscriberPage {
	subs, next := cutByName(pg, rows, func(s *Subscriber) string { return s.Name })
	return &SubscriberPage{Subscribers: subs, NextCursor: next}
}

// Paging applies the list default and cap and parses the cursor; a cursor
// that is not a delivery id is ErrInvalid.
func (p ListDeliveriesParams) Paging() (Paging, error) {
	return newPaging("delivery", ListParams{Limit: p.Limit}.ListLimit(), p.Cursor)
}

// DeliveryPage trims deliveries read with Fetch (id DESC) to the page and
// sets the next page's cursor, empty on the last page. Deliveries is never
// nil.
func (pg Paging) DeliveryPage(rows []*Delivery) *DeliveryPage {
	ds, next := cut(pg, rows, func(d *Delivery) uuid.UUID { return d.ID })
	return &DeliveryPage{Deliveries: ds, NextCursor: next}
}
