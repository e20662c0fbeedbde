package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/store"
)

var _ store.Events = (*Store)(nil)

// scanSubscriber reads one row of store.SubscriberColumns.
func scanSubscriber(row store.Scanner) (*store.Subscriber, error) {
	var (
		s                                                              store.Subscriber
		config                                                         []byte
		reason, lastErr, claimedBy, token                              sql.NullString
		disabledAt, retryAt, delivered, claimedUntil, created, updated store.SQLTime
	)
	if err := row.Scan(&s.ID, &s.Name, &s.Kind, &s.Source, &config, &s.IncludePayload, &s.IncludeResult,
		&s.Enabled, &reason, &disabledAt, &s.Cursor, &s.ConsecutiveFailures, &s.RetrySeq, &s.RetryAttempts,
		&retryAt, &lastErr, &delivered, &claimedBy, &token, &claimedUntil, &created, &updated); err != nil {
		return nil, err
	}
	s.Config = config
	s.DisabledReason, s.DisabledAt = reason.String, disabledAt.Ptr()
	s.RetryAt, s.LastError, s.LastDeliveredAt = retryAt.Ptr(), lastErr.String, delivered.Ptr()
	s.ClaimedBy, s.ClaimToken, s.ClaimedUntil = claimedBy.String, token.String, claimedUntil.Ptr()
	s.CreatedAt, s.UpdatedAt = created.Time, updated.Time
	s.FillState()
	return &s, nil
}

// getSubscriber reads the subscriber whose column (id or name, never
// input) equals v, or ErrNotFound.
func getSubscriber(ctx context.Context, q querier, column string, v any) (*store.Subscriber, error) {
	s, err := scanSubscriber(q.QueryRowContext(ctx,
		`SELECT `+store.SubscriberColumns+` FROM hammerwork_event_subscribers WHERE `+column+` = ?`, v))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return s, err
}

// nullJSON stores an empty JSON document as NULL, so it reads back nil.
func nullJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// PutSubscriber reads the named subscriber and writes what
// store.PlanSubscriberPut decides in one write transaction (SQLite's single
// writer holds the row), and reads the row back.
func (s *Store) PutSubscriber(ctx context.Context, p store.PutSubscriberParams) (*store.Subscriber, bool, error) {
	d := p.Def
	if err := d.Validate(); err != nil {
		return nil, false, fmt.Errorf("put subscriber %q: %w", d.Name, err)
	}
	var sub *store.Subscriber
	var created bool
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now, err := s.clock.At(ctx, p.Now)
		if err != nil {
			return err
		}
		old, err := getSubscriber(ctx, tx, "name", d.Name)
		if errors.Is(err, store.ErrNotFound) {
			old, err = nil, nil
		}
		if err != nil {
			return err
		}
		next, write, err := store.PlanSubscriberPut(old, p, now)
		if err != nil || !write {
			sub = next
			return err
		}
		if old == nil {
			err = insertSubscriber(ctx, tx, next)
		} else {
			err = updateSubscriber(ctx, tx, next)
		}
		if err != nil {
			return err
		}
		created = old == nil
		sub, err = getSubscriber(ctx, tx, "id", next.ID.String())
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("put subscriber %q: %w", d.Name, err)
	}
	return sub, created, nil
}

// insertSubscriber writes a planned new subscriber; its cursor is the
// sequencer's last_seq, so it receives what commits from now on.
func insertSubscriber(ctx context.Context, tx *sql.Tx, sub *store.Subscriber) error {
	d := sub.SubscriberDef
	_, err := tx.ExecContext(ctx, `INSERT INTO hammerwork_event_subscribers (id, name, kind, source, config,
			include_payload, include_result, enabled, disabled_at, cursor_seq, created_at, updated_at)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, last_seq, ?, ? FROM hammerwork_event_sequence WHERE id = 1`,
		sub.ID.String(), d.Name, d.Kind, d.Source, nullJSON(d.Config), sqlBool(d.IncludePayload),
		sqlBool(d.IncludeResult), sqlBool(d.Enabled), nullTS(sub.DisabledAt), ts(sub.CreatedAt), ts(sub.UpdatedAt))
	return err
}

// updateSubscriber writes a planned change: the definition and the state
// store.PlanSubscriberPut decided; the cursor stays.
func updateSubscriber(ctx context.Context, tx *sql.Tx, sub *store.Subscriber) error {
	d := sub.SubscriberDef
	_, err := tx.ExecContext(ctx, `UPDATE hammerwork_event_subscribers SET kind = ?, source = ?, config = ?,
			include_payload = ?, include_result = ?, enabled = ?, disabled_reason = ?, disabled_at = ?,
			consecutive_failures = ?, retry_seq = ?, retry_attempts = ?, retry_at = ?, updated_at = ?
		WHERE id = ?`, d.Kind, d.Source, nullJSON(d.Config), sqlBool(d.IncludePayload), sqlBool(d.IncludeResult),
		sqlBool(d.Enabled), nullString(sub.DisabledReason), nullTS(sub.DisabledAt), sub.ConsecutiveFailures,
		sub.RetrySeq, sub.RetryAttempts, nullTS(sub.RetryAt), ts(sub.UpdatedAt), sub.ID.String())
	return err
}

// GetSubscriber returns one subscriber by id, or ErrNotFound.
func (s *Store) GetSubscriber(ctx context.Context, id uuid.UUID) (*store.Subscriber, error) {
	sub, err := getSubscriber(ctx, s.read, "id", id.String())
	if err != nil {
		return nil, fmt.Errorf("get subscriber %s: %w", id, dbErr(err))
	}
	return sub, nil
}

// GetSubscriberByName returns one subscriber by name, or ErrNotFound.
func (s *Store) GetSubscriberByName(ctx context.Context, name string) (*store.Subscriber, error) {
	sub, err := getSubscriber(ctx, s.read, "name", name)
	if err != nil {
		return nil, fmt.Errorf("get subscriber %q: %w", name, dbErr(err))
	}
	return sub, nil
}

// ListSubscribers lists subscribers by name, one page at a time.
func (s *Store) ListSubscribers(ctx context.Context, p store.ListSubscribersParams) (*store.SubscriberPage, error) {
	pg := p.Paging()
	rows, err := s.read.QueryContext(ctx, `SELECT `+store.SubscriberColumns+` FROM hammerwork_event_subscribers
		WHERE name > ?1 AND (?2 = '' OR kind = ?2) ORDER BY name LIMIT ?3`, pg.After, p.Kind, pg.Fetch())
	if err != nil {
		return nil, fmt.Errorf("list subscribers: %w", dbErr(err))
	}
	defer rows.Close()
	subs, err := store.CollectScanned(rows, scanSubscriber)
	if err != nil {
		return nil, fmt.Errorf("list subscribers: %w", err)
	}
	return pg.SubscriberPage(subs), nil
}

// DeleteSubscriber removes a subscriber; its deliveries go with it (ON
// DELETE CASCADE).
func (s *Store) DeleteSubscriber(ctx context.Context, id uuid.UUID) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_event_subscribers WHERE id = ?`, id.String())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err == nil && n == 0 {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete subscriber %s: %w", id, err)
	}
	return nil
}

// PruneSubscribers deletes the subscribers of p.Kind and p.Source not
// kept, returning the names it deleted.
func (s *Store) PruneSubscribers(ctx context.Context, p store.PruneSubscribersParams) ([]string, error) {
	keep := p.Keep
	if keep == nil {
		keep = []string{} // jsonList(nil) is JSON null, against which NOT IN matches no name
	}
	var names []string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		names, err = store.QueryStrings(ctx, tx, `DELETE FROM hammerwork_event_subscribers
			WHERE kind = ? AND source = ? AND name NOT IN (SELECT value FROM json_each(?)) RETURNING name`,
			p.Kind, p.Source, jsonList(keep))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prune %s subscribers from %s: %w", p.Kind, p.Source, err)
	}
	if names == nil {
		names = []string{}
	}
	slices.Sort(names)
	return names, nil
}
