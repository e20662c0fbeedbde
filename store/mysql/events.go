package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/store"
)

var _ store.Events = (*Store)(nil)

// scanSubscriber reads one row of store.SubscriberColumns.
func scanSubscriber(row store.Scanner) (*store.Subscriber, error) {
	var (
		s                                       store.Subscriber
		config                                  []byte
		reason, lastErr, claimedBy, token       sql.NullString
		disabledAt, retryAt, delivered, claimed store.SQLTime
		created, updated                        store.SQLTime
	)
	err := row.Scan(&s.ID, &s.Name, &s.Kind, &s.Source, &config, &s.IncludePayload, &s.IncludeResult, &s.Enabled,
		&reason, &disabledAt, &s.Cursor, &s.ConsecutiveFailures, &s.RetrySeq, &s.RetryAttempts, &retryAt,
		&lastErr, &delivered, &claimedBy, &token, &claimed, &created, &updated)
	if err != nil {
		return nil, err
	}
	if config != nil {
		s.Config = json.RawMessage(config)
	}
	s.DisabledReason, s.DisabledAt = reason.String, disabledAt.Ptr()
	s.RetryAt, s.LastError, s.LastDeliveredAt = retryAt.Ptr(), lastErr.String, delivered.Ptr()
	s.ClaimedBy, s.ClaimToken, s.ClaimedUntil = claimedBy.String, token.String, claimed.Ptr()
	s.CreatedAt, s.UpdatedAt = created.Time, updated.Time
	s.FillState()
	return &s, nil
}

// getSubscriber reads the subscriber where column (a fixed name) equals
// value, with lock appended to the query; no row is (nil, nil).
func getSubscriber(ctx context.Context, q batchQuerier, column string, value any, lock string) (*store.Subscriber, error) {
	sub, err := scanSubscriber(q.QueryRowContext(ctx, `SELECT `+store.SubscriberColumns+` FROM hammerwork_event_subscribers
WHERE `+column+` = ?`+lock, value))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return sub, err
}

// nullConfig stores an absent config as NULL.
func nullConfig(c json.RawMessage) any {
	if c == nil {
		return nil
	}
	return string(c)
}

// refreshEventFlags recomputes hammerwork_event_flags, what the triggers
// ask of the subscribers (see 0009_events.sql), after the caller's
// transaction changed which subscribers are enabled or what they include.
// It locks the row first, so the recount is a statement of its own that
// starts after any other refresh committed and sees that one's change.
func refreshEventFlags(ctx context.Context, tx *sql.Tx) error {
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT id FROM hammerwork_event_flags WHERE id = 1 FOR UPDATE`).Scan(&one); err != nil {
		return fmt.Errorf("lock the event flags: %w", err)
	}
	_, err := tx.ExecContext(ctx, `UPDATE hammerwork_event_flags SET
    enabled = EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled),
    include_payload = EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled AND include_payload),
    include_result = EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled AND include_result)
WHERE id = 1`)
	if err != nil {
		return fmt.Errorf("update the event flags: %w", err)
	}
	return nil
}

// PutSubscriber creates or replaces a subscriber in one transaction holding
// its row, as store.PlanSubscriberPut decides. A new row's cursor is the sequencer's last_seq, read in the
// INSERT. Two first puts of one name race to insert it: the loser's INSERT
// fails on the unique name, and it locks the winner's row and decides again
// against it.
func (s *Store) PutSubscriber(ctx context.Context, p store.PutSubscriberParams) (*store.Subscriber, bool, error) {
	d := p.Def
	if err := d.Validate(); err != nil {
		return nil, false, fmt.Errorf("put subscriber %q: %w", d.Name, err)
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, false, wrap(err, "put subscriber %q", d.Name)
	}
	var (
		sub     *store.Subscriber
		created bool
	)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		created = false
		for raced := false; ; raced = true {
			existing, err := getSubscriber(ctx, tx, "name", d.Name, " FOR UPDATE")
			if err != nil {
				return err
			}
			next, write, err := store.PlanSubscriberPut(existing, p, at)
			if err != nil || !write {
				sub = next
				return err
			}
			if existing != nil {
				err = updateSubscriber(ctx, tx, next)
			} else {
				err = insertSubscriber(ctx, tx, next)
				var myErr *mysql.MySQLError
				if !raced && !p.CreateOnly && errors.As(err, &myErr) && myErr.Number == errDuplicateKey {
					continue
				}
				created = err == nil
			}
			if err != nil {
				return err
			}
			if existing == nil || existing.Enabled != d.Enabled || existing.IncludePayload != d.IncludePayload ||
				existing.IncludeResult != d.IncludeResult {
				if err := refreshEventFlags(ctx, tx); err != nil {
					return err
				}
			}
			sub, err = getSubscriber(ctx, tx, "name", d.Name, "")
			return err
		}
	})
	if err != nil {
		return nil, false, wrap(err, "put subscriber %q", d.Name)
	}
	return sub, created, nil
}

// insertSubscriber writes a planned new subscriber; its cursor is the
// sequencer's last_seq.
func insertSubscriber(ctx context.Context, tx *sql.Tx, sub *store.Subscriber) error {
	d := sub.SubscriberDef
	_, err := tx.ExecContext(ctx, `INSERT INTO hammerwork_event_subscribers (id, name, kind, source, config,
    include_payload, include_result, enabled, disabled_at, cursor_seq, created_at, updated_at)
SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, last_seq, ?, ? FROM hammerwork_event_sequence WHERE id = 1`,
		sub.ID.String(), d.Name, d.Kind, d.Source, nullConfig(d.Config), d.IncludePayload, d.IncludeResult, d.Enabled,
		nullTime(sub.DisabledAt), sub.CreatedAt, sub.UpdatedAt)
	return err
}

// updateSubscriber writes a planned change: the definition and the state
// store.PlanSubscriberPut decided; the cursor stays.
func updateSubscriber(ctx context.Context, tx *sql.Tx, sub *store.Subscriber) error {
	d := sub.SubscriberDef
	_, err := tx.ExecContext(ctx, `UPDATE hammerwork_event_subscribers SET kind = ?, source = ?, config = ?,
    include_payload = ?, include_result = ?, enabled = ?, disabled_reason = ?, disabled_at = ?,
    consecutive_failures = ?, retry_seq = ?, retry_attempts = ?, retry_at = ?, updated_at = ?
WHERE id = ?`, d.Kind, d.Source, nullConfig(d.Config), d.IncludePayload, d.IncludeResult, d.Enabled,
		nullStr(sub.DisabledReason), nullTime(sub.DisabledAt), sub.ConsecutiveFailures, sub.RetrySeq,
		sub.RetryAttempts, nullTime(sub.RetryAt), sub.UpdatedAt, sub.ID.String())
	return err
}

// GetSubscriber returns one subscriber by id, or ErrNotFound.
func (s *Store) GetSubscriber(ctx context.Context, id uuid.UUID) (*store.Subscriber, error) {
	return s.readSubscriber(ctx, "id", id.String())
}

// GetSubscriberByName returns one subscriber by name, or ErrNotFound.
func (s *Store) GetSubscriberByName(ctx context.Context, name string) (*store.Subscriber, error) {
	return s.readSubscriber(ctx, "name", name)
}

func (s *Store) readSubscriber(ctx context.Context, column, value string) (*store.Subscriber, error) {
	sub, err := getSubscriber(ctx, s.db, column, value, "")
	if err != nil {
		return nil, wrap(err, "get subscriber %s %q", column, value)
	}
	if sub == nil {
		return nil, fmt.Errorf("get subscriber %s %q: %w", column, value, store.ErrNotFound)
	}
	return sub, nil
}

// ListSubscribers lists subscribers by name (the unique index's binary
// collation orders them as Go compares strings), one page at a time.
func (s *Store) ListSubscribers(ctx context.Context, p store.ListSubscribersParams) (*store.SubscriberPage, error) {
	pg := p.Paging()
	query := `SELECT ` + store.SubscriberColumns + ` FROM hammerwork_event_subscribers WHERE name > ?`
	args := []any{pg.After}
	if p.Kind != "" {
		query += ` AND kind = ?`
		args = append(args, p.Kind)
	}
	rows, err := s.db.QueryContext(ctx, query+` ORDER BY name LIMIT ?`, append(args, pg.Fetch())...)
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

// DeleteSubscriber removes a subscriber; its deliveries go with it (the
// foreign key cascades).
func (s *Store) DeleteSubscriber(ctx context.Context, id uuid.UUID) error {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_event_subscribers WHERE id = ?`, id.String())
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		return refreshEventFlags(ctx, tx)
	})
	if err != nil {
		return wrap(err, "delete subscriber %s", id)
	}
	if n == 0 {
		return fmt.Errorf("delete subscriber %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// PruneSubscribers deletes, in one transaction, the subscribers of p.Kind
// and p.Source not in p.Keep, and returns their names, sorted.
func (s *Store) PruneSubscribers(ctx context.Context, p store.PruneSubscribersParams) ([]string, error) {
	names := []string{}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		query := `SELECT name FROM hammerwork_event_subscribers WHERE kind = ? AND source = ?`
		args := []any{p.Kind, p.Source}
		if len(p.Keep) > 0 {
			query += ` AND name NOT IN (` + placeholders(len(p.Keep)) + `)`
			for _, k := range p.Keep {
				args = append(args, k)
			}
		}
		found, err := store.QueryStrings(ctx, tx, query+` ORDER BY name FOR UPDATE`, args...)
		if err != nil || len(found) == 0 {
			names = []string{}
			return err
		}
		del := make([]any, len(found))
		for i, n := range found {
			del[i] = n
		}
		if _, err = tx.ExecContext(ctx, `DELETE FROM hammerwork_event_subscribers WHERE name IN (`+placeholders(len(found))+`)`, del...); err != nil {
			return err
		}
		names = found
		return refreshEventFlags(ctx, tx)
	})
	if err != nil {
		return nil, wrap(err, "prune %s subscribers from %s", p.Kind, p.Source)
	}
	return names, nil
}

// ClaimSubscribers leases the named subscribers and those of the kinds with
// work in one transaction. A plain read finds the candidates (the outbox's
// EXISTS among the kinds' conditions); the subscriber rows alone are then
// locked, their conditions checked again, in claim order (claimed_until
// ascending puts NULL first), skipping rows another transaction holds, so
// no locking read touches the outbox. One UPDATE gives each a fresh token,
// and they are read back.
func (s *Store) ClaimSubscribers(ctx context.Context, p store.ClaimSubscribersParams) ([]*store.Subscriber, error) {
	if p.ClaimsNothing() {
		return []*store.Subscriber{}, nil
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "claim subscribers")
	}
	var match []string
	var args []any
	if len(p.Kinds) > 0 {
		match = append(match, `kind IN (`+placeholders(len(p.Kinds))+`)
  AND EXISTS (SELECT 1 FROM hammerwork_events e WHERE e.seq > s.cursor_seq)`)
		for _, k := range p.Kinds {
			args = append(args, k)
		}
	}
	if len(p.Streams) > 0 {
		match = append(match, `kind = 'stream' AND name IN (`+placeholders(len(p.Streams))+`)
  AND EXISTS (SELECT 1 FROM hammerwork_events e WHERE e.seq > s.cursor_seq)`)
		for _, n := range p.Streams {
			args = append(args, n)
		}
	}
	if len(p.Names) > 0 {
		match = append(match, `name IN (`+placeholders(len(p.Names))+`)`)
		for _, n := range p.Names {
			args = append(args, n)
		}
	}
	claimable := `enabled AND (claimed_by IS NULL OR claimed_until <= ? OR claimed_by = ?)
  AND (retry_at IS NULL OR retry_at <= ?)`
	args = append(args, at, p.AgentID, at)
	query := `SELECT id FROM hammerwork_event_subscribers s WHERE (` + strings.Join(match, " OR ") + `) AND ` + claimable
	var subs []*store.Subscriber
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		subs = []*store.Subscriber{}
		ids, err := store.QueryIDs(ctx, tx, query, args...)
		if err != nil || len(ids) == 0 {
			return err
		}
		ids, err = store.QueryIDs(ctx, tx, `SELECT id FROM hammerwork_event_subscribers WHERE id IN (`+placeholders(len(ids))+`)
  AND `+claimable+` ORDER BY claimed_until, name LIMIT ? FOR UPDATE SKIP LOCKED`,
			append(append(idArgs(sortedIDs(ids)), at, p.AgentID, at), p.Limit)...)
		if err != nil || len(ids) == 0 {
			return err
		}
		tokens := make([]leaseToken, len(ids))
		for i, id := range ids {
			tokens[i] = leaseToken{ID: id.String(), Token: uuid.NewString()}
		}
		doc, err := json.Marshal(tokens)
		if err != nil {
			return fmt.Errorf("encode claim tokens: %w", err)
		}
		in := placeholders(len(ids))
		_, err = tx.ExecContext(ctx, `UPDATE hammerwork_event_subscribers s
JOIN JSON_TABLE(?, '$[*]' COLUMNS (id CHAR(36) PATH '$.id', token VARCHAR(64) PATH '$.token')) v
  ON s.id = v.id COLLATE utf8mb4_bin
SET s.claimed_by = ?, s.claim_token = v.token, s.claimed_until = ?
WHERE s.id IN (`+in+`)`, append([]any{string(doc), p.AgentID, store.UTC(at.Add(p.Duration))}, idArgs(ids)...)...)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+store.SubscriberColumns+` FROM hammerwork_event_subscribers WHERE id IN (`+in+`)`, idArgs(ids)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		read, err := store.CollectScanned(rows, scanSubscriber)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if i := slices.IndexFunc(read, func(r *store.Subscriber) bool { return r.ID == id }); i >= 0 {
				subs = append(subs, read[i])
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap(err, "claim subscribers")
	}
	return subs, nil
}

// AckEvents commits a claim's deliveries and state in one transaction that
// locks the subscriber's row and lets store.PlanAckEvents check the claim
// first.
func (s *Store) AckEvents(ctx context.Context, p store.AckEventsParams) error {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return wrap(err, "ack events of subscriber %s", p.Subscriber)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		row, err := store.ScanAckRow(tx.QueryRowContext(ctx, `SELECT cursor_seq, claimed_by, claim_token
FROM hammerwork_event_subscribers WHERE id = ? FOR UPDATE`, p.Subscriber.String()), sql.ErrNoRows)
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
		set := `cursor_seq = ?, consecutive_failures = ?, retry_seq = ?, retry_attempts = ?, retry_at = ?,
    last_error = ?, last_delivered_at = COALESCE(?, last_delivered_at), updated_at = ?`
		args := []any{st.Cursor, st.ConsecutiveFailures, st.RetrySeq, st.RetryAttempts, nullTime(st.RetryAt),
			nullStr(st.LastError), nullTime(plan.LastDeliveredAt), plan.Now}
		if st.Disabled {
			set += `, disabled_at = IF(enabled, ?, disabled_at), enabled = FALSE, disabled_reason = ?`
			args = append(args, plan.Now, nullStr(st.DisabledReason))
		}
		if plan.ClaimedUntil == nil {
			set += `, claimed_by = NULL, claim_token = NULL, claimed_until = NULL`
		} else {
			set += `, claimed_until = ?`
			args = append(args, *plan.ClaimedUntil)
		}
		_, err = tx.ExecContext(ctx, `UPDATE hammerwork_event_subscribers SET `+set+` WHERE id = ?`,
			append(args, p.Subscriber.String())...)
		if err != nil || !st.Disabled {
			return err
		}
		return refreshEventFlags(ctx, tx)
	})
	if err != nil {
		return wrap(err, "ack events of subscriber %s", p.Subscriber)
	}
	return nil
}

// insertDeliveries writes ds, as store.PlanDeliveries filled them, in
// chunked multi-row INSERTs.
func insertDeliveries(ctx context.Context, tx *sql.Tx, ds []store.Delivery) error {
	for start := 0; start < len(ds); start += insertChunkRows {
		chunk := ds[start:min(start+insertChunkRows, len(ds))]
		args := make([]any, 0, 13*len(chunk))
		for _, d := range chunk {
			args = append(args, d.ID.String(), d.Subscriber.String(), d.EventID.String(), d.EventSeq, d.EventType,
				d.Attempt, d.Outcome, d.StatusCode, nullStr(d.Error), nullStr(d.Response),
				d.Duration.Microseconds(), d.AgentID, d.At)
		}
		q := `INSERT INTO hammerwork_webhook_deliveries (` + store.DeliveryColumns + `) VALUES ` +
			strings.TrimSuffix(strings.Repeat("("+placeholders(13)+"), ", len(chunk)), ", ")
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert deliveries: %w", err)
		}
	}
	return nil
}

func scanDelivery(row store.Scanner) (*store.Delivery, error) {
	var (
		d               store.Delivery
		errText, answer sql.NullString
		us              int64
		at              store.SQLTime
	)
	err := row.Scan(&d.ID, &d.Subscriber, &d.EventID, &d.EventSeq, &d.EventType, &d.Attempt, &d.Outcome,
		&d.StatusCode, &errText, &answer, &us, &d.AgentID, &at)
	if err != nil {
		return nil, err
	}
	d.Error, d.Response = errText.String, answer.String
	d.Duration, d.At = time.Duration(us)*time.Microsecond, at.Time
	return &d, nil
}

// RecordDelivery stores one delivery made outside a claim. A subscriber
// that does not exist (the foreign key refuses the row) is ErrNotFound.
func (s *Store) RecordDelivery(ctx context.Context, d store.Delivery) error {
	at, err := s.clock.At(ctx, time.Time{})
	if err != nil {
		return wrap(err, "record a delivery to subscriber %s", d.Subscriber)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		ds, _, err := store.PlanDeliveries(d.Subscriber, d.AgentID, []store.Delivery{d}, at)
		if err != nil {
			return err
		}
		return insertDeliveries(ctx, tx, ds)
	})
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) && myErr.Number == errNoReferencedRow {
		return fmt.Errorf("record a delivery to subscriber %s: %w", d.Subscriber, store.ErrNotFound)
	}
	if err != nil {
		return wrap(err, "record a delivery to subscriber %s", d.Subscriber)
	}
	return nil
}

// errNoReferencedRow is MySQL's foreign key violation on insert.
const errNoReferencedRow = 1452

// ListDeliveries pages a subscriber's delivery log newest first, along the
// (subscriber_id, id) index. A subscriber that does not exist is
// ErrNotFound; a cursor that is not a delivery id ErrInvalid.
func (s *Store) ListDeliveries(ctx context.Context, p store.ListDeliveriesParams) (*store.DeliveryPage, error) {
	pg, err := p.Paging()
	if err != nil {
		return nil, fmt.Errorf("list deliveries of subscriber %s: %w", p.Subscriber, err)
	}
	query := `SELECT ` + store.DeliveryColumns + ` FROM hammerwork_webhook_deliveries WHERE subscriber_id = ?`
	args := []any{p.Subscriber.String()}
	if pg.Before != nil {
		query += ` AND id < ?`
		args = append(args, pg.BeforeString())
	}
	rows, err := s.db.QueryContext(ctx, query+` ORDER BY id DESC LIMIT ?`, append(args, pg.Fetch())...)
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
			return nil, fmt.Errorf("list deliveries: %w", err)
		}
	}
	return pg.DeliveryPage(ds), nil
}

// GetDelivery returns one delivery of a subscriber, or ErrNotFound.
func (s *Store) GetDelivery(ctx context.Context, subscriber, id uuid.UUID) (*store.Delivery, error) {
	d, err := scanDelivery(s.db.QueryRowContext(ctx, `SELECT `+store.DeliveryColumns+` FROM hammerwork_webhook_deliveries
WHERE subscriber_id = ? AND id = ?`, subscriber.String(), id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get delivery %s of subscriber %s: %w", id, subscriber, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "get delivery %s of subscriber %s", id, subscriber)
	}
	return d, nil
}
