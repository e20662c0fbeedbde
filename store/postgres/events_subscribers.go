package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hammerwork-go/hw-agent/store"
)

// insertSubscriberSQL writes a new subscriber whose cursor is the latest
// seq; an existing name makes it return no row (see PutSubscriber).
const insertSubscriberSQL = `INSERT INTO hammerwork_event_subscribers (id, name, kind, source, config,
    include_payload, include_result, enabled, disabled_at, cursor_seq, created_at, updated_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, q.last_seq, $10, $10 FROM hammerwork_event_sequence q WHERE q.id = 1
ON CONFLICT (name) DO NOTHING RETURNING ` + store.SubscriberColumns

// updateSubscriberSQL writes the definition and the state
// store.PlanSubscriberPut decided over a row held FOR UPDATE.
const updateSubscriberSQL = `UPDATE hammerwork_event_subscribers SET kind = $2, source = $3, config = $4,
    include_payload = $5, include_result = $6, enabled = $7, disabled_reason = $8, disabled_at = $9,
    consecutive_failures = $10, retry_seq = $11, retry_attempts = $12, retry_at = $13, updated_at = $14
WHERE id = $1 RETURNING ` + store.SubscriberColumns

// claimSQL leases the named subscribers and those of the kinds that have
// work, skipping rows another transaction holds; each gets a fresh token.
// An event after the cursor exists exactly when the newest seq is past it:
// max(seq) is one probe of the seq index, where a correlated EXISTS may be
// planned as a scan of the outbox.
var claimSQL = `UPDATE hammerwork_event_subscribers s
SET claimed_by = $1, claim_token = gen_random_uuid()::text, claimed_until = $2
FROM (SELECT c.id FROM hammerwork_event_subscribers c
      WHERE c.enabled
        AND (c.name = ANY ($4::text[])
             OR (c.kind = ANY ($3::text[]) OR c.kind = 'stream' AND c.name = ANY ($7::text[]))
                AND c.cursor_seq < (SELECT max(seq) FROM hammerwork_events))
        AND (c.claimed_by IS NULL OR c.claimed_until <= $5 OR c.claimed_by = $1)
        AND (c.retry_at IS NULL OR c.retry_at <= $5)
      ORDER BY c.claimed_until NULLS FIRST, c.name
      LIMIT $6 FOR UPDATE SKIP LOCKED) t
WHERE s.id = t.id RETURNING ` + prefixed("s.", store.SubscriberColumns)

// ackSQL writes what a claim delivered over the row AckEvents holds.
const ackSQL = `UPDATE hammerwork_event_subscribers SET cursor_seq = $2, consecutive_failures = $3,
    retry_seq = $4, retry_attempts = $5, retry_at = $6, last_error = $7,
    last_delivered_at = COALESCE($8, last_delivered_at),
    enabled = enabled AND NOT $9,
    disabled_reason = CASE WHEN $9 THEN $10 ELSE disabled_reason END,
    disabled_at = CASE WHEN $9 THEN $11 ELSE disabled_at END,
    claimed_by = CASE WHEN $12::timestamptz IS NULL THEN NULL ELSE claimed_by END,
    claim_token = CASE WHEN $12::timestamptz IS NULL THEN NULL ELSE claim_token END,
    claimed_until = $12
WHERE id = $1`

// prefixed qualifies every column of a column list with a table alias.
func prefixed(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = alias + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// scanSubscriber reads one row of store.SubscriberColumns.
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
	s.LastDeliveredAt = utcPtr(delivered)
	s.ClaimedBy, s.ClaimToken, s.ClaimedUntil = str(claimedBy), str(token), utcPtr(until)
	s.CreatedAt, s.UpdatedAt = store.UTC(created), store.UTC(updated)
	s.FillState()
	return &s, nil
}

// PutSubscriber creates or replaces a subscriber as
// store.PlanSubscriberPut decides. The insert goes first: ON CONFLICT waits for a concurrent first
// put of the name, so a lost race finds the row and plans over it held
// FOR UPDATE.
func (s *Store) PutSubscriber(ctx context.Context, p store.PutSubscriberParams) (*store.Subscriber, bool, error) {
	name := p.Def.Name
	if err := p.Def.Validate(); err != nil {
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
		fresh, _, err := store.PlanSubscriberPut(nil, p, at)
		if err != nil {
			return err
		}
		d := fresh.SubscriberDef
		sub, err = scanSubscriber(tx.QueryRow(ctx, insertSubscriberSQL, fresh.ID, d.Name, d.Kind, d.Source, string(d.Config),
			d.IncludePayload, d.IncludeResult, d.Enabled, fresh.DisabledAt, at))
		if created = err == nil; created || !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		existing, err := scanSubscriber(tx.QueryRow(ctx, `SELECT `+store.SubscriberColumns+`
FROM hammerwork_event_subscribers WHERE name = $1 FOR UPDATE`, name))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: subscriber deleted while being put", store.ErrConflict)
		}
		if err != nil {
			return err
		}
		next, write, err := store.PlanSubscriberPut(existing, p, at)
		if err != nil || !write {
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
	sub, err := scanSubscriber(s.pool.QueryRow(ctx, `SELECT `+store.SubscriberColumns+` FROM hammerwork_event_subscribers WHERE `+column+` = $1`, key))
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
	pg := p.Paging()
	rows, err := s.pool.Query(ctx, `SELECT `+store.SubscriberColumns+` FROM hammerwork_event_subscribers
WHERE name > $1 AND ($2::text = '' OR kind = $2) ORDER BY name LIMIT $3`, pg.After, p.Kind, pg.Fetch())
	if err != nil {
		return nil, wrap(err, "list subscribers")
	}
	defer rows.Close()
	subs, err := store.CollectScanned(rows, scanSubscriber)
	if err != nil {
		return nil, wrap(err, "list subscribers")
	}
	return pg.SubscriberPage(subs), nil
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

// ClaimSubscribers leases the named subscribers and those of the kinds
// with work in one statement; they are returned by name.
func (s *Store) ClaimSubscribers(ctx context.Context, p store.ClaimSubscribersParams) ([]*store.Subscriber, error) {
	if p.ClaimsNothing() {
		return []*store.Subscriber{}, nil
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "claim subscribers")
	}
	rows, err := s.pool.Query(ctx, claimSQL, p.AgentID, at.Add(p.Duration), p.Kinds, p.Names, at, p.Limit, p.Streams)
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
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		row, err := store.ScanAckRow(tx.QueryRow(ctx, `SELECT cursor_seq, claimed_by, claim_token
FROM hammerwork_event_subscribers WHERE id = $1 FOR UPDATE`, p.Subscriber), pgx.ErrNoRows)
		if err != nil {
			return err
		}
		plan, err := store.PlanAckEvents(row, p, at)
		if err != nil {
			return err
		}
		if err := insertDeliveries(ctx, tx, plan.Deliveries); err != nil {
			return err
		}
		st := plan.State
		_, err = tx.Exec(ctx, ackSQL, p.Subscriber, st.Cursor, st.ConsecutiveFailures, st.RetrySeq, st.RetryAttempts, st.RetryAt,
			nullStr(st.LastError), plan.LastDeliveredAt, st.Disabled, nullStr(st.DisabledReason), plan.Now,
			plan.ClaimedUntil)
		return err
	})
	if err != nil {
		return wrap(err, "acknowledge events of subscriber %s", p.Subscriber)
	}
	return nil
}
