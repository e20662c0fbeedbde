package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/store"
)

// deliveryColumnList is store.DeliveryColumns one by one: the insert binds
// a variable for each.
var deliveryColumnList = strings.Split(store.DeliveryColumns, ", ")

// deliveryColumns reads deliveryColumnList in scanDelivery's order.
const deliveryColumns = `id, subscriber_id, event_id, event_seq, event_type, attempt, outcome, status_code,
	coalesce(error, ''), coalesce(response, ''), duration_us, agent_id, attempted_at`

// deliveryRows bounds one multi-row insert by SQLite's limit of 32766
// bound variables per statement.
var deliveryRows = 32766 / len(deliveryColumnList)

func scanDelivery(row store.Scanner) (*store.Delivery, error) {
	var d store.Delivery
	var micros int64
	var at store.SQLTime
	if err := row.Scan(&d.ID, &d.Subscriber, &d.EventID, &d.EventSeq, &d.EventType, &d.Attempt, &d.Outcome,
		&d.StatusCode, &d.Error, &d.Response, &micros, &d.AgentID, &at); err != nil {
		return nil, err
	}
	d.Duration, d.At = time.Duration(micros)*time.Microsecond, at.Time
	return &d, nil
}

// insertDeliveries writes deliveries, as store.PlanDeliveries filled them,
// in the caller's transaction, one statement per deliveryRows.
func insertDeliveries(ctx context.Context, tx *sql.Tx, ds []store.Delivery) error {
	row := "(?" + strings.Repeat(", ?", len(deliveryColumnList)-1) + ")"
	for chunk := range slices.Chunk(ds, deliveryRows) {
		args := make([]any, 0, len(chunk)*len(deliveryColumnList))
		for _, d := range chunk {
			args = append(args, d.ID.String(), d.Subscriber.String(), d.EventID.String(), d.EventSeq, d.EventType,
				d.Attempt, d.Outcome, d.StatusCode, nullString(d.Error), nullString(d.Response),
				d.Duration.Microseconds(), d.AgentID, ts(d.At))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO hammerwork_webhook_deliveries (`+
			strings.Join(deliveryColumnList, ", ")+`) VALUES `+
			strings.Repeat(row+", ", len(chunk)-1)+row, args...); err != nil {
			if strings.Contains(err.Error(), "FOREIGN KEY constraint failed") {
				return fmt.Errorf("%w: no such subscriber", store.ErrNotFound)
			}
			return fmt.Errorf("insert %d deliveries: %w", len(chunk), err)
		}
	}
	return nil
}

// ClaimSubscribers selects the named subscribers and those of the kinds
// with work, in claim order, and leases them in the same write
// transaction: SQLite's single writer means no other agent reads them in
// between, so there are no locked rows to skip. Each row draws its own
// claim token.
func (s *Store) ClaimSubscribers(ctx context.Context, p store.ClaimSubscribersParams) ([]*store.Subscriber, error) {
	out := []*store.Subscriber{}
	if p.ClaimsNothing() {
		return out, nil
	}
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, fmt.Errorf("claim subscribers for %q: %w", p.AgentID, dbErr(err))
	}
	// Every agent's relay asks every pass: the read pool answers "none"
	// without taking the single writer from the agent's own writes.
	if ids, err := claimCandidates(ctx, s.read, p, now); err != nil || len(ids) == 0 {
		if err != nil {
			return nil, fmt.Errorf("claim subscribers for %q: %w", p.AgentID, dbErr(err))
		}
		return out, nil
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		ids, err := claimCandidates(ctx, tx, p, now)
		if err != nil || len(ids) == 0 {
			return err
		}
		rows, err := tx.QueryContext(ctx, `UPDATE hammerwork_event_subscribers
			SET claimed_by = ?, claim_token = lower(hex(randomblob(16))), claimed_until = ?
			WHERE id IN (SELECT value FROM json_each(?)) RETURNING `+store.SubscriberColumns,
			p.AgentID, ts(now.Add(p.Duration)), jsonList(ids))
		if err != nil {
			return err
		}
		defer rows.Close()
		claimed, err := store.CollectScanned(rows, scanSubscriber)
		if err != nil {
			return err
		}
		slices.SortFunc(claimed, func(a, b *store.Subscriber) int {
			return slices.Index(ids, a.ID.String()) - slices.Index(ids, b.ID.String())
		})
		out = claimed
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim subscribers for %q: %w", p.AgentID, err)
	}
	return out, nil
}

// claimCandidates lists the subscribers p may claim at now, in claim order.
func claimCandidates(ctx context.Context, q store.SQLQueryer, p store.ClaimSubscribersParams, now time.Time) ([]string, error) {
	return store.QueryStrings(ctx, q, `SELECT id FROM hammerwork_event_subscribers s
		WHERE enabled = 1
			AND (name IN (SELECT value FROM json_each(?2))
				OR (kind IN (SELECT value FROM json_each(?1))
					OR kind = 'stream' AND name IN (SELECT value FROM json_each(?6)))
					AND EXISTS (SELECT 1 FROM hammerwork_events e WHERE e.seq > s.cursor_seq))
			AND (claimed_by IS NULL OR claimed_until <= ?3 OR claimed_by = ?4)
			AND (retry_at IS NULL OR retry_at <= ?3)
		ORDER BY claimed_until NULLS FIRST, name LIMIT ?5`,
		jsonList(p.Kinds), jsonList(p.Names), ts(now), p.AgentID, p.Limit, jsonList(p.Streams))
}

// AckEvents reads the subscriber's row in a write transaction (SQLite's
// single writer holds it), lets store.PlanAckEvents check the claim, and
// writes the new state and the deliveries.
func (s *Store) AckEvents(ctx context.Context, p store.AckEventsParams) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now, err := s.clock.At(ctx, p.Now)
		if err != nil {
			return err
		}
		row, err := store.ScanAckRow(tx.QueryRowContext(ctx, `SELECT cursor_seq, claimed_by, claim_token
FROM hammerwork_event_subscribers WHERE id = ?`, p.Subscriber.String()), sql.ErrNoRows)
		if err != nil {
			return err
		}
		plan, err := store.PlanAckEvents(row, p, now)
		if err != nil {
			return err
		}
		st := plan.State
		if _, err := tx.ExecContext(ctx, `UPDATE hammerwork_event_subscribers SET cursor_seq = ?1,
				consecutive_failures = ?2, retry_seq = ?3, retry_attempts = ?4, retry_at = ?5, last_error = ?6,
				last_delivered_at = coalesce(?7, last_delivered_at),
				enabled = CASE WHEN ?8 = 1 THEN 0 ELSE enabled END,
				disabled_reason = CASE WHEN ?8 = 1 THEN ?9 ELSE disabled_reason END,
				disabled_at = CASE WHEN ?8 = 1 THEN ?10 ELSE disabled_at END,
				claimed_by = CASE WHEN ?11 IS NULL THEN NULL ELSE claimed_by END,
				claim_token = CASE WHEN ?11 IS NULL THEN NULL ELSE claim_token END,
				claimed_until = ?11
			WHERE id = ?12`,
			st.Cursor, st.ConsecutiveFailures, st.RetrySeq, st.RetryAttempts, nullTS(st.RetryAt),
			nullString(st.LastError), nullTS(plan.LastDeliveredAt), sqlBool(st.Disabled), nullString(st.DisabledReason),
			ts(plan.Now), nullTS(plan.ClaimedUntil), p.Subscriber.String()); err != nil {
			return err
		}
		return insertDeliveries(ctx, tx, plan.Deliveries)
	})
	if err != nil {
		return fmt.Errorf("ack events of subscriber %s: %w", p.Subscriber, err)
	}
	return nil
}

// RecordDelivery stores one delivery made outside a claim.
func (s *Store) RecordDelivery(ctx context.Context, d store.Delivery) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now, err := s.clock.At(ctx, time.Time{})
		if err != nil {
			return err
		}
		ds, _, err := store.PlanDeliveries(d.Subscriber, d.AgentID, []store.Delivery{d}, now)
		if err != nil {
			return err
		}
		return insertDeliveries(ctx, tx, ds)
	})
	if err != nil {
		return fmt.Errorf("record a delivery of subscriber %s: %w", d.Subscriber, err)
	}
	return nil
}

// ListDeliveries pages a subscriber's deliveries newest first along the
// (subscriber_id, id) index. An empty page checks that the subscriber
// exists.
func (s *Store) ListDeliveries(ctx context.Context, p store.ListDeliveriesParams) (*store.DeliveryPage, error) {
	pg, err := p.Paging()
	if err != nil {
		return nil, fmt.Errorf("deliveries of subscriber %s: %w", p.Subscriber, err)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM hammerwork_webhook_deliveries
		WHERE subscriber_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3`,
		p.Subscriber.String(), pg.BeforeString(), pg.Fetch())
	if err != nil {
		return nil, fmt.Errorf("deliveries of subscriber %s: %w", p.Subscriber, dbErr(err))
	}
	defer rows.Close()
	ds, err := store.CollectScanned(rows, scanDelivery)
	if err != nil {
		return nil, fmt.Errorf("deliveries of subscriber %s: %w", p.Subscriber, err)
	}
	if len(ds) == 0 {
		if _, err := s.GetSubscriber(ctx, p.Subscriber); err != nil {
			return nil, err
		}
	}
	return pg.DeliveryPage(ds), nil
}

// GetDelivery returns one delivery of a subscriber, or ErrNotFound.
func (s *Store) GetDelivery(ctx context.Context, subscriber, id uuid.UUID) (*store.Delivery, error) {
	d, err := scanDelivery(s.read.QueryRowContext(ctx, `SELECT `+deliveryColumns+`
		FROM hammerwork_webhook_deliveries WHERE subscriber_id = ? AND id = ?`, subscriber.String(), id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get delivery %s of subscriber %s: %w", id, subscriber, dbErr(err))
	}
	return d, nil
}
