package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hammerwork-go/hw-agent/store"
)

// insertDeliveriesSQL writes the deliveries of one call in one statement.
const insertDeliveriesSQL = `INSERT INTO hammerwork_webhook_deliveries (` + store.DeliveryColumns + `)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::int[], $7::text[],
    $8::int[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::timestamptz[])`

// scanDelivery reads one row of store.DeliveryColumns.
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

// RecordDelivery stores one delivery made outside a claim.
func (s *Store) RecordDelivery(ctx context.Context, d store.Delivery) error {
	at, err := s.clock.At(ctx, time.Time{})
	if err != nil {
		return wrap(err, "record a delivery to subscriber %s", d.Subscriber)
	}
	ds, _, err := store.PlanDeliveries(d.Subscriber, d.AgentID, []store.Delivery{d}, at)
	if err == nil {
		err = insertDeliveries(ctx, s.pool, ds)
	}
	if err != nil {
		return wrap(err, "record a delivery to subscriber %s", d.Subscriber)
	}
	return nil
}

// execer is what insertDeliveries writes through: the pool or a
// transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// insertDeliveries writes ds, as store.PlanDeliveries filled them, in one
// statement. A subscriber that does not exist is ErrNotFound.
func insertDeliveries(ctx context.Context, db execer, ds []store.Delivery) error {
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
		ids[i], subs[i], events[i], seqs[i] = d.ID, d.Subscriber, d.EventID, d.EventSeq
		types[i], attempts[i], outcomes[i], codes[i] = d.EventType, int32(d.Attempt), d.Outcome, int32(d.StatusCode)
		errs[i], responses[i] = nullStr(d.Error), nullStr(d.Response)
		micros[i], agents[i], times[i] = d.Duration.Microseconds(), d.AgentID, d.At
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
	pg, err := p.Paging()
	if err != nil {
		return nil, fmt.Errorf("list deliveries of subscriber %s: %w", p.Subscriber, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+store.DeliveryColumns+` FROM hammerwork_webhook_deliveries
WHERE subscriber_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3`, p.Subscriber, pg.Before, pg.Fetch())
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
	return pg.DeliveryPage(ds), nil
}

// GetDelivery returns one delivery of a subscriber, or ErrNotFound.
func (s *Store) GetDelivery(ctx context.Context, subscriber, id uuid.UUID) (*store.Delivery, error) {
	d, err := scanDelivery(s.pool.QueryRow(ctx, `SELECT `+store.DeliveryColumns+` FROM hammerwork_webhook_deliveries
WHERE subscriber_id = $1 AND id = $2`, subscriber, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get delivery %s of subscriber %s: %w", id, subscriber, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "get delivery %s of subscriber %s", id, subscriber)
	}
	return d, nil
}
