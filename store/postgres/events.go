package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hammerwork-go/hw-agent/store"
)

var _ store.Events = (*Store)(nil)

// Defaults of the outbox calls (see store.Events).
const (
	defaultSequenceLimit = 5000
	defaultReadLimit     = 500
	defaultCleanupLimit  = 5000
	defaultTailGrace     = time.Minute
	maxSubscriberName    = 128
)

// subscriberColumns are the columns of hammerwork_event_subscribers in the
// order scanSubscriber reads them.
const subscriberCols = `id, name, kind, source, config, include_payload, include_result, enabled,
    disabled_reason, disabled_at, cursor_seq, consecutive_failures, retry_seq, retry_attempts, retry_at,
    last_error, last_delivered_at, claimed_by, claim_token, claimed_until, created_at, updated_at`

// insertSubscriberSQL writes a new subscriber whose cursor is the latest
// seq; an existing name makes it return no row (see PutSubscriber).
const insertSubscriberSQL = `INSERT INTO hammerwork_event_subscribers (id, name, kind, source, config,
    include_payload, include_result, enabled, disabled_at, cursor_seq, created_at, updated_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, q.last_seq, $10, $10 FROM hammerwork_event_sequence q WHERE q.id = 1
ON CONFLICT (name) DO NOTHING RETURNING ` + subscriberCols

// updateSubscriberSQL writes the definition and the state planSubscriberPut
// decided over a row held FOR UPDATE.
const updateSubscriberSQL = `UPDATE hammerwork_event_subscribers SET kind = $2, source = $3, config = $4,
    include_payload = $5, include_result = $6, enabled = $7, disabled_reason = $8, disabled_at = $9,
    consecutive_failures = $10, retry_seq = $11, retry_attempts = $12, retry_at = $13, updated_at = $14
WHERE id = $1 RETURNING ` + subscriberCols

// sequenceSQL gives up to $2 unsequenced rows the seqs after $1 in pos
// order and moves last_seq past them. It runs after the sequence row is
// locked, in a statement of its own, so its snapshot holds every row the
// previous sequencer numbered.
const sequenceSQL = `WITH numbered AS (
    UPDATE hammerwork_events e SET seq = $1 + b.rn
    FROM (SELECT pos, row_number() OVER (ORDER BY pos) AS rn
          FROM (SELECT pos FROM hammerwork_events WHERE seq IS NULL ORDER BY pos LIMIT $2) u) b
    WHERE e.pos = b.pos
    RETURNING e.seq)
UPDATE hammerwork_event_sequence SET last_seq = COALESCE((SELECT max(seq) FROM numbered), last_seq)
WHERE id = 1 RETURNING last_seq - $1`

// eventCols are the columns of hammerwork_events as scanEvent reads them.
const eventCols = `pos, seq, id, kind, from_status, status, occurred_at, job_id, queue, priority, attempt,
    prev_attempt, outcome, error, started_at, finished_at, workflow_id, workflow_name, batch_id,
    schedule_name, missed, trace_id, correlation_id, payload, result`

// claimSQL leases the subscribers that have work, skipping rows another
// transaction holds; each gets a fresh token. An event after the cursor
// exists exactly when the newest seq is past it: max(seq) is one probe of
// the seq index, where a correlated EXISTS may be planned as a scan of the
// outbox.
var claimSQL = `UPDATE hammerwork_event_subscribers s
SET claimed_by = $1, claim_token = gen_random_uuid()::text, claimed_until = $2
FROM (SELECT c.id FROM hammerwork_event_subscribers c
      WHERE c.enabled AND (c.kind = ANY ($3::text[]) OR c.name = ANY ($4::text[]))
        AND (c.claimed_by IS NULL OR c.claimed_until <= $5 OR c.claimed_by = $1)
        AND (c.retry_at IS NULL OR c.retry_at <= $5)
        AND c.cursor_seq < (SELECT max(seq) FROM hammerwork_events)
      ORDER BY c.claimed_until NULLS FIRST, c.name
      LIMIT $6 FOR UPDATE SKIP LOCKED) t
WHERE s.id = t.id RETURNING ` + prefixed("s.", subscriberCols)

// ackSQL writes what a claim delivered over the row AckEvents holds.
const ackSQL = `UPDATE hammerwork_event_subscribers SET cursor_seq = $2, consecutive_failures = $3,
    retry_seq = $4, retry_attempts = $5, retry_at = $6, last_error = $7,
    last_delivered_at = COALESCE($8, last_delivered_at),
    enabled = enabled AND NOT $9,
    disabled_reason = CASE WHEN $9 THEN $10 ELSE disabled_reason END,
    disabled_at = CASE WHEN $9 THEN $11 ELSE disabled_at END,
    claimed_by = $12, claim_token = $13, claimed_until = $14
WHERE id = $1`

// deliveryCols are the columns of hammerwork_webhook_deliveries in the
// order scanDelivery reads and insertDeliveriesSQL writes them.
const deliveryCols = `id, subscriber_id, event_id, event_seq, event_type, attempt, outcome, status_code,
    error, response, duration_us, agent_id, attempted_at`

// insertDeliveriesSQL writes the deliveries of one call in one statement.
const insertDeliveriesSQL = `INSERT INTO hammerwork_webhook_deliveries (` + deliveryCols + `)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::int[], $7::text[],
    $8::int[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::timestamptz[])`

// lagSQL measures every enabled subscriber from the first sequenced event
// after its cursor: seqs are gapless, so last_seq counts the rest.
const lagSQL = `SELECT s.id, s.name, s.kind, COALESCE(q.last_seq - f.seq + 1, 0), f.occurred_at
FROM hammerwork_event_subscribers s
CROSS JOIN hammerwork_event_sequence q
LEFT JOIN LATERAL (SELECT e.seq, e.occurred_at FROM hammerwork_events e
                   WHERE e.seq > s.cursor_seq ORDER BY e.seq LIMIT 1) f ON true
WHERE s.enabled AND q.id = 1
ORDER BY s.name`

// cleanupEventsSQL deletes, of the $2 lowest seqs every enabled cursor has
// passed (all sequenced ones with none enabled), those older than $1.
// Times follow seq but for overlapping transactions, so looking no further
// than $2 rows keeps a pass bounded once only young events are left.
// Unsequenced rows are never touched, so the sequencer's numbering cannot
// lose one.
const cleanupEventsSQL = `DELETE FROM hammerwork_events WHERE pos IN (
    SELECT pos FROM (
        SELECT pos, occurred_at FROM hammerwork_events
        WHERE seq <= COALESCE((SELECT min(cursor_seq) FROM hammerwork_event_subscribers WHERE enabled),
                              (SELECT last_seq FROM hammerwork_event_sequence WHERE id = 1))
        ORDER BY seq LIMIT $2) lowest
    WHERE occurred_at < $1)`

const cleanupDeliveriesSQL = `DELETE FROM hammerwork_webhook_deliveries WHERE id IN (
    SELECT id FROM hammerwork_webhook_deliveries WHERE attempted_at < $1 LIMIT $2)`

// cleanupTailsSQL deletes tail subscribers whose claim lapsed (or, never
// claimed, that were last written) before $1.
const cleanupTailsSQL = `DELETE FROM hammerwork_event_subscribers WHERE id IN (
    SELECT id FROM hammerwork_event_subscribers
    WHERE kind = 'tail' AND COALESCE(claimed_until, updated_at) < $1 LIMIT $2)`

// prefixed qualifies every column of a column list with a table alias.
func prefixed(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = alias + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// scanSubscriber reads one row of subscriberCols. The stored disabled
// reason is both the subscriber's and its state's, so a state read back
// and acknowledged again keeps it.
func scanSubscriber(row store.Scanner) (*store.Subscriber, error) {
	var (
		s                                     store.Subscriber
		config                                string
		reason, lastErr, claimedBy, token     *string
		disabledAt, retryAt, delivered, until *time.Time
		created, updated                      time.Time
		failures, retryAttempts               int32
	)
	if err := row.Scan(&s.ID, &s.Name, &s.Kind, &s.Source, &config, &s.IncludePayload, &s.IncludeResult, &s.Enabled,
		&reason, &disabledAt, &s.Cursor, &failures, &s.RetrySeq, &retryAttempts, &retryAt,
		&lastErr, &delivered, &claimedBy, &token, &until, &created, &updated); err != nil {
		return nil, err
	}
	if config != "" {
		s.Config = json.RawMessage(config)
	}
	s.DisabledReason = str(reason)
	s.DisabledAt = utcPtr(disabledAt)
	s.ConsecutiveFailures, s.RetryAttempts = int(failures), int(retryAttempts)
	s.RetryAt = utcPtr(retryAt)
	s.LastError = str(lastErr)
	s.SubscriberState.Disabled, s.SubscriberState.DisabledReason = !s.Enabled, s.DisabledReason
	s.LastDeliveredAt = utcPtr(delivered)
	s.ClaimedBy, s.ClaimToken, s.ClaimedUntil = str(claimedBy), str(token), utcPtr(until)
	s.CreatedAt, s.UpdatedAt = store.UTC(created), store.UTC(updated)
	return &s, nil
}

// scanEvent reads one row of eventCols.
func scanEvent(row store.Scanner) (store.EventRecord, error) {
	var (
		e                                           store.EventRecord
		from, queue, outcome, errMsg, wfName, sched *string
		trace, corr                                 *string
		priority, attempt, prevAttempt, missed      *int32
		at                                          time.Time
		started, finished                           *time.Time
		payload, result                             []byte
	)
	if err := row.Scan(&e.Pos, &e.Seq, &e.ID, &e.Kind, &from, &e.Status, &at, &e.JobID, &queue,
		&priority, &attempt, &prevAttempt, &outcome, &errMsg, &started, &finished,
		&e.WorkflowID, &wfName, &e.BatchID, &sched, &missed, &trace, &corr, &payload, &result); err != nil {
		return store.EventRecord{}, err
	}
	e.FromStatus, e.Queue, e.Outcome, e.Error = str(from), str(queue), str(outcome), str(errMsg)
	e.Time = store.UTC(at)
	e.Priority, e.Attempt, e.PrevAttempt, e.Missed = num(priority), num(attempt), num(prevAttempt), num(missed)
	e.StartedAt, e.FinishedAt = utcPtr(started), utcPtr(finished)
	e.WorkflowName, e.Schedule = str(wfName), str(sched)
	e.TraceID, e.CorrelationID = str(trace), str(corr)
	if payload != nil {
		e.Payload = json.RawMessage(payload)
	}
	if result != nil {
		e.Result = json.RawMessage(result)
	}
	return e, nil
}

// scanDelivery reads one row of deliveryCols.
func scanDelivery(row store.Scanner) (*store.Delivery, error) {
	var (
		d                store.Delivery
		attempt, status  int32
		errMsg, response *string
		micros           int64
		at               time.Time
	)
	if err := row.Scan(&d.ID, &d.Subscriber, &d.EventID, &d.EventSeq, &d.EventType, &attempt, &d.Outcome, &status,
		&errMsg, &response, &micros, &d.AgentID, &at); err != nil {
		return nil, err
	}
	d.Attempt, d.StatusCode = int(attempt), int(status)
	d.Error, d.Response = str(errMsg), str(response)
	d.Duration = time.Duration(micros) * time.Microsecond
	d.At = store.UTC(at)
	return &d, nil
}

func num(n *int32) int {
	if n == nil {
		return 0
	}
	return int(*n)
}

// validateSubscriberDef checks what the store itself relies on: a name
// that fits, and a known kind and source.
func validateSubscriberDef(d store.SubscriberDef) error {
	switch {
	case d.Name == "":
		return fmt.Errorf("%w: a subscriber needs a name", store.ErrInvalid)
	case len(d.Name) > maxSubscriberName:
		return fmt.Errorf("%w: subscriber name is longer than %d bytes", store.ErrInvalid, maxSubscriberName)
	case !slices.Contains([]string{store.SubscriberWebhook, store.SubscriberStream, store.SubscriberTail}, d.Kind):
		return fmt.Errorf("%w: unknown subscriber kind %q", store.ErrInvalid, d.Kind)
	case !slices.Contains([]string{store.SourceConfig, store.SourceAPI}, d.Source):
		return fmt.Errorf("%w: unknown subscriber source %q", store.ErrInvalid, d.Source)
	}
	return nil
}

// planSubscriberPut decides what PutSubscriber writes over existing (nil:
// none) at time at: a new subscriber, nothing (changed false) for an equal
// definition, or p.Def with the state kept, an enable clearing the disabled
// reason, the failure count and the retry state, and a disable stamping
// disabled_at.
func planSubscriberPut(existing *store.Subscriber, p store.PutSubscriberParams, at time.Time) (next *store.Subscriber, changed bool, err error) {
	if existing == nil {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, false, fmt.Errorf("make a subscriber id: %w", err)
		}
		sub := &store.Subscriber{ID: id, SubscriberDef: p.Def, CreatedAt: at, UpdatedAt: at}
		if !p.Def.Enabled {
			sub.DisabledAt = &at
		}
		return sub, true, nil
	}
	if p.CreateOnly {
		return nil, false, fmt.Errorf("%w: subscriber %q exists", store.ErrConflict, p.Def.Name)
	}
	old := existing.SubscriberDef
	if old.Kind == p.Def.Kind && old.Source == p.Def.Source && bytes.Equal(old.Config, p.Def.Config) &&
		old.IncludePayload == p.Def.IncludePayload && old.IncludeResult == p.Def.IncludeResult && old.Enabled == p.Def.Enabled {
		return existing, false, nil
	}
	sub := *existing
	sub.SubscriberDef, sub.UpdatedAt = p.Def, at
	switch {
	case p.Def.Enabled && !old.Enabled:
		sub.DisabledReason, sub.DisabledAt = "", nil
		sub.ConsecutiveFailures, sub.RetrySeq, sub.RetryAttempts, sub.RetryAt = 0, 0, 0, nil
	case !p.Def.Enabled && old.Enabled:
		sub.DisabledAt = &at
	}
	return &sub, true, nil
}

// PutSubscriber creates or replaces a subscriber as planSubscriberPut
// decides. The insert goes first: ON CONFLICT waits for a concurrent first
// put of the name, so a lost race finds the row and plans over it held
// FOR UPDATE.
func (s *Store) PutSubscriber(ctx context.Context, p store.PutSubscriberParams) (*store.Subscriber, bool, error) {
	name := p.Def.Name
	if err := validateSubscriberDef(p.Def); err != nil {
		return nil, false, fmt.Errorf("put subscriber %q: %w", name, err)
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, false, wrap(err, "put subscriber %q", name)
	}
	var (
		sub     *store.Subscriber
		created bool
	)
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		fresh, _, err := planSubscriberPut(nil, p, at)
		if err != nil {
			return err
		}
		d := fresh.SubscriberDef
		sub, err = scanSubscriber(tx.QueryRow(ctx, insertSubscriberSQL, fresh.ID, d.Name, d.Kind, d.Source, string(d.Config),
			d.IncludePayload, d.IncludeResult, d.Enabled, fresh.DisabledAt, at))
		if created = err == nil; created || !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		existing, err := scanSubscriber(tx.QueryRow(ctx, `SELECT `+subscriberCols+`
FROM hammerwork_event_subscribers WHERE name = $1 FOR UPDATE`, name))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: subscriber deleted while being put", store.ErrConflict)
		}
		if err != nil {
			return err
		}
		next, changed, err := planSubscriberPut(existing, p, at)
		if err != nil || !changed {
			sub = next
			return err
		}
		d = next.SubscriberDef
		sub, err = scanSubscriber(tx.QueryRow(ctx, updateSubscriberSQL, next.ID, d.Kind, d.Source, string(d.Config),
			d.IncludePayload, d.IncludeResult, d.Enabled, nullStr(next.DisabledReason), next.DisabledAt,
			next.ConsecutiveFailures, next.RetrySeq, next.RetryAttempts, next.RetryAt, at))
		return err
	})
	if err != nil {
		return nil, false, wrap(err, "put subscriber %q", name)
	}
	return sub, created, nil
}

// GetSubscriber returns one subscriber by id, or ErrNotFound.
func (s *Store) GetSubscriber(ctx context.Context, id uuid.UUID) (*store.Subscriber, error) {
	return s.getSubscriber(ctx, "id", id)
}

// GetSubscriberByName returns one subscriber by name, or ErrNotFound.
func (s *Store) GetSubscriberByName(ctx context.Context, name string) (*store.Subscriber, error) {
	return s.getSubscriber(ctx, "name", name)
}

// getSubscriber reads the subscriber whose column (a fixed name, id or
// name) equals key.
func (s *Store) getSubscriber(ctx context.Context, column string, key any) (*store.Subscriber, error) {
	sub, err := scanSubscriber(s.pool.QueryRow(ctx, `SELECT `+subscriberCols+` FROM hammerwork_event_subscribers WHERE `+column+` = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get subscriber %v: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "get subscriber %v", key)
	}
	return sub, nil
}

// ListSubscribers lists subscribers by name from the unique index, one page
// at a time; names compare byte by byte as on every backend.
func (s *Store) ListSubscribers(ctx context.Context, p store.ListSubscribersParams) (*store.SubscriberPage, error) {
	pg := store.NamePaging{Limit: store.ListParams{Limit: p.Limit}.ListLimit(), After: p.Cursor}
	rows, err := s.pool.Query(ctx, `SELECT `+subscriberCols+` FROM hammerwork_event_subscribers
WHERE name > $1 AND ($2::text = '' OR kind = $2) ORDER BY name LIMIT $3`, pg.After, p.Kind, pg.Fetch())
	if err != nil {
		return nil, wrap(err, "list subscribers")
	}
	defer rows.Close()
	subs, err := store.CollectScanned(rows, scanSubscriber)
	if err != nil {
		return nil, wrap(err, "list subscribers")
	}
	page := &store.SubscriberPage{Subscribers: subs}
	if subs == nil {
		page.Subscribers = []*store.Subscriber{}
	}
	if len(subs) > pg.Limit {
		page.Subscribers = subs[:pg.Limit]
		page.NextCursor = subs[pg.Limit-1].Name
	}
	return page, nil
}

// DeleteSubscriber removes a subscriber; its deliveries go with it (ON
// DELETE CASCADE).
func (s *Store) DeleteSubscriber(ctx context.Context, id uuid.UUID) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM hammerwork_event_subscribers WHERE id = $1`, id)
	if err != nil {
		return wrap(err, "delete subscriber %s", id)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete subscriber %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// PruneSubscribers deletes the subscribers of p.Kind and p.Source not in
// p.Keep, with their deliveries, in one statement.
func (s *Store) PruneSubscribers(ctx context.Context, p store.PruneSubscribersParams) ([]string, error) {
	keep := p.Keep
	if keep == nil {
		keep = []string{} // NULL would make name <> ALL (...) unknown and keep everything
	}
	rows, err := s.pool.Query(ctx, `DELETE FROM hammerwork_event_subscribers
WHERE kind = $1 AND source = $2 AND name <> ALL ($3::text[]) RETURNING name`, p.Kind, p.Source, keep)
	if err != nil {
		return nil, wrap(err, "prune subscribers")
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, wrap(err, "prune subscribers")
	}
	slices.Sort(names)
	return names, nil
}

// SequenceEvents numbers committed events in one transaction holding the
// sequence row; a second caller skips the locked row and returns 0.
func (s *Store) SequenceEvents(ctx context.Context, p store.SequenceEventsParams) (int, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = defaultSequenceLimit
	}
	var n int
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		n = 0
		var last int64
		err := tx.QueryRow(ctx, `SELECT last_seq FROM hammerwork_event_sequence WHERE id = 1 FOR UPDATE SKIP LOCKED`).Scan(&last)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		return tx.QueryRow(ctx, sequenceSQL, last, limit).Scan(&n)
	})
	if err != nil {
		return 0, wrap(err, "sequence events")
	}
	return n, nil
}

// ReadEvents returns sequenced events after p.AfterSeq from the seq index.
func (s *Store) ReadEvents(ctx context.Context, p store.ReadEventsParams) ([]store.EventRecord, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = defaultReadLimit
	}
	rows, err := s.pool.Query(ctx, `SELECT `+eventCols+` FROM hammerwork_events WHERE seq > $1 ORDER BY seq LIMIT $2`, p.AfterSeq, limit)
	if err != nil {
		return nil, wrap(err, "read events after %d", p.AfterSeq)
	}
	defer rows.Close()
	evs, err := store.CollectScanned(rows, scanEvent)
	if err != nil {
		return nil, wrap(err, "read events after %d", p.AfterSeq)
	}
	if evs == nil {
		evs = []store.EventRecord{}
	}
	return evs, nil
}

// GetEvent returns the sequenced event of that id, or ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, id uuid.UUID) (*store.EventRecord, error) {
	e, err := scanEvent(s.pool.QueryRow(ctx, `SELECT `+eventCols+` FROM hammerwork_events WHERE id = $1 AND seq IS NOT NULL`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get event %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "get event %s", id)
	}
	return &e, nil
}

// LatestSeq reads the sequence row.
func (s *Store) LatestSeq(ctx context.Context) (int64, error) {
	var last int64
	if err := s.pool.QueryRow(ctx, `SELECT last_seq FROM hammerwork_event_sequence WHERE id = 1`).Scan(&last); err != nil {
		return 0, wrap(err, "read the latest event seq")
	}
	return last, nil
}

// ClaimSubscribers leases subscribers with work in one statement; they are
// returned by name.
func (s *Store) ClaimSubscribers(ctx context.Context, p store.ClaimSubscribersParams) ([]*store.Subscriber, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "claim subscribers")
	}
	kinds, names := p.Kinds, p.Names
	if kinds == nil {
		kinds = []string{}
	}
	if names == nil {
		names = []string{}
	}
	rows, err := s.pool.Query(ctx, claimSQL, p.AgentID, at.Add(p.Duration), kinds, names, at, max(p.Limit, 1))
	if err != nil {
		return nil, wrap(err, "claim subscribers")
	}
	defer rows.Close()
	subs, err := store.CollectScanned(rows, scanSubscriber)
	if err != nil {
		return nil, wrap(err, "claim subscribers")
	}
	if subs == nil {
		subs = []*store.Subscriber{}
	}
	slices.SortFunc(subs, func(a, b *store.Subscriber) int { return strings.Compare(a.Name, b.Name) })
	return subs, nil
}

// AckEvents writes a claim's deliveries and state in one transaction that
// holds the subscriber's row only while it is still this claim's.
func (s *Store) AckEvents(ctx context.Context, p store.AckEventsParams) error {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return wrap(err, "acknowledge events of subscriber %s", p.Subscriber)
	}
	st := p.State
	var delivered *time.Time
	for _, d := range p.Deliveries {
		if d.Outcome == store.DeliveryDelivered {
			delivered = &at
		}
	}
	var claimedBy, token *string
	var until *time.Time
	if !p.Release {
		claimedBy, token = &p.AgentID, &p.ClaimToken
		u := at.Add(p.Extend)
		until = &u
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var cursor int64
		err := tx.QueryRow(ctx, `SELECT cursor_seq FROM hammerwork_event_subscribers
WHERE id = $1 AND claimed_by = $2 AND claim_token = $3 FOR UPDATE`, p.Subscriber, p.AgentID, p.ClaimToken).Scan(&cursor)
		if errors.Is(err, pgx.ErrNoRows) {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE id = $1)`, p.Subscriber).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return store.ErrNotFound
			}
			return fmt.Errorf("%w: the subscriber is claimed by another agent", store.ErrStaleLease)
		}
		if err != nil {
			return err
		}
		if st.Cursor < cursor {
			return fmt.Errorf("%w: cursor %d is behind the stored %d", store.ErrInvalid, st.Cursor, cursor)
		}
		if err := insertDeliveries(ctx, tx, p.Subscriber, p.Deliveries, at); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, ackSQL, p.Subscriber, st.Cursor, st.ConsecutiveFailures, st.RetrySeq, st.RetryAttempts, st.RetryAt,
			nullStr(st.LastError), delivered, st.Disabled, nullStr(st.DisabledReason), at, claimedBy, token, until)
		return err
	})
	if err != nil {
		return wrap(err, "acknowledge events of subscriber %s", p.Subscriber)
	}
	return nil
}

// RecordDelivery stores one delivery made outside a claim.
func (s *Store) RecordDelivery(ctx context.Context, d store.Delivery) error {
	at, err := s.clock.At(ctx, time.Time{})
	if err != nil {
		return wrap(err, "record a delivery to subscriber %s", d.Subscriber)
	}
	if err := insertDeliveries(ctx, s.pool, d.Subscriber, []store.Delivery{d}, at); err != nil {
		return wrap(err, "record a delivery to subscriber %s", d.Subscriber)
	}
	return nil
}

// execer is what insertDeliveries writes through: the pool or a
// transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// insertDeliveries writes ds in one statement: a delivery without an id
// gets a UUIDv7, one without a subscriber is sub's, one without a time at.
// A subscriber that does not exist is ErrNotFound.
func insertDeliveries(ctx context.Context, db execer, sub uuid.UUID, ds []store.Delivery, at time.Time) error {
	if len(ds) == 0 {
		return nil
	}
	n := len(ds)
	var (
		ids, subs, events       = make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
		seqs, micros            = make([]int64, n), make([]int64, n)
		types, outcomes, agents = make([]string, n), make([]string, n), make([]string, n)
		attempts, codes         = make([]int32, n), make([]int32, n)
		errs, responses         = make([]*string, n), make([]*string, n)
		times                   = make([]time.Time, n)
	)
	for i, d := range ds {
		if d.ID == uuid.Nil {
			id, err := uuid.NewV7()
			if err != nil {
				return fmt.Errorf("make a delivery id: %w", err)
			}
			d.ID = id
		}
		if d.Subscriber == uuid.Nil {
			d.Subscriber = sub
		}
		if d.At.IsZero() {
			d.At = at
		}
		ids[i], subs[i], events[i], seqs[i] = d.ID, d.Subscriber, d.EventID, d.EventSeq
		types[i], attempts[i], outcomes[i], codes[i] = d.EventType, int32(d.Attempt), d.Outcome, int32(d.StatusCode)
		errs[i], responses[i] = nullStr(d.Error), nullStr(d.Response)
		micros[i], agents[i], times[i] = d.Duration.Microseconds(), d.AgentID, store.UTC(d.At)
	}
	_, err := db.Exec(ctx, insertDeliveriesSQL, ids, subs, events, seqs, types, attempts, outcomes, codes,
		errs, responses, micros, agents, times)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation: no such subscriber
		return fmt.Errorf("insert deliveries: %w", store.ErrNotFound)
	}
	if errors.As(err, &pgErr) && pgErr.Code == "23514" { // check_violation: an unknown outcome
		return fmt.Errorf("insert deliveries: %w: %s", store.ErrInvalid, pgErr.Message)
	}
	if err != nil {
		return fmt.Errorf("insert deliveries: %w", err)
	}
	return nil
}

// ListDeliveries pages a subscriber's delivery log newest first from the
// (subscriber_id, id) index; an empty page checks that the subscriber
// exists.
func (s *Store) ListDeliveries(ctx context.Context, p store.ListDeliveriesParams) (*store.DeliveryPage, error) {
	limit := store.ListParams{Limit: p.Limit}.ListLimit()
	var before *uuid.UUID
	if p.Cursor != "" {
		id, err := uuid.Parse(p.Cursor)
		if err != nil {
			return nil, fmt.Errorf("list deliveries of subscriber %s: %w: cursor %q is not a delivery id", p.Subscriber, store.ErrInvalid, p.Cursor)
		}
		before = &id
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryCols+` FROM hammerwork_webhook_deliveries
WHERE subscriber_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3`, p.Subscriber, before, limit+1)
	if err != nil {
		return nil, wrap(err, "list deliveries of subscriber %s", p.Subscriber)
	}
	defer rows.Close()
	ds, err := store.CollectScanned(rows, scanDelivery)
	if err != nil {
		return nil, wrap(err, "list deliveries of subscriber %s", p.Subscriber)
	}
	if len(ds) == 0 {
		if _, err := s.GetSubscriber(ctx, p.Subscriber); err != nil {
			return nil, err
		}
	}
	page := &store.DeliveryPage{Deliveries: ds}
	if ds == nil {
		page.Deliveries = []*store.Delivery{}
	}
	if len(ds) > limit {
		page.Deliveries = ds[:limit]
		page.NextCursor = ds[limit-1].ID.String()
	}
	return page, nil
}

// GetDelivery returns one delivery of a subscriber, or ErrNotFound.
func (s *Store) GetDelivery(ctx context.Context, subscriber, id uuid.UUID) (*store.Delivery, error) {
	d, err := scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryCols+` FROM hammerwork_webhook_deliveries
WHERE subscriber_id = $1 AND id = $2`, subscriber, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get delivery %s of subscriber %s: %w", id, subscriber, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "get delivery %s of subscriber %s", id, subscriber)
	}
	return d, nil
}

// SubscriberLags reports every enabled subscriber's lag, by name.
func (s *Store) SubscriberLags(ctx context.Context) ([]store.SubscriberLag, error) {
	rows, err := s.pool.Query(ctx, lagSQL)
	if err != nil {
		return nil, wrap(err, "measure subscriber lag")
	}
	defer rows.Close()
	lags, err := store.CollectScanned(rows, func(row store.Scanner) (store.SubscriberLag, error) {
		var (
			l      store.SubscriberLag
			oldest *time.Time
		)
		if err := row.Scan(&l.ID, &l.Name, &l.Kind, &l.Events, &oldest); err != nil {
			return l, err
		}
		if oldest != nil {
			l.Oldest = store.UTC(*oldest)
		}
		return l, nil
	})
	if err != nil {
		return nil, wrap(err, "measure subscriber lag")
	}
	if lags == nil {
		lags = []store.SubscriberLag{}
	}
	return lags, nil
}

// CleanupEvents runs its three bounded deletes, each a statement of its
// own: none depends on another.
func (s *Store) CleanupEvents(ctx context.Context, p store.CleanupEventsParams) (int, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return 0, wrap(err, "clean up events")
	}
	limit, grace := p.Limit, p.TailGrace
	if limit <= 0 {
		limit = defaultCleanupLimit
	}
	if grace <= 0 {
		grace = defaultTailGrace
	}
	tag, err := s.pool.Exec(ctx, cleanupEventsSQL, at.Add(-p.Retention), limit)
	if err != nil {
		return 0, wrap(err, "clean up events")
	}
	if _, err := s.pool.Exec(ctx, cleanupDeliveriesSQL, at.Add(-p.Retention), limit); err != nil {
		return 0, wrap(err, "clean up webhook deliveries")
	}
	if _, err := s.pool.Exec(ctx, cleanupTailsSQL, at.Add(-grace), limit); err != nil {
		return 0, wrap(err, "clean up tail subscribers")
	}
	return int(tag.RowsAffected()), nil
}
