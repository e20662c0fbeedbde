package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/store"
)

// scanEvent reads one row of store.EventColumns.
func scanEvent(row store.Scanner) (store.EventRecord, error) {
	var (
		r                                           store.EventRecord
		seq, priority, attempt, prevAttempt, missed sql.NullInt64
		from, queue, outcome, errText, wfName       sql.NullString
		schedule, trace, correlation                sql.NullString
		at, started, finished                       store.SQLTime
		payload, result                             []byte
	)
	err := row.Scan(&r.Pos, &seq, &r.ID, &r.Kind, &from, &r.Status, &at, &r.JobID, &queue, &priority, &attempt,
		&prevAttempt, &outcome, &errText, &started, &finished, &r.WorkflowID, &wfName, &r.BatchID, &schedule,
		&missed, &trace, &correlation, &payload, &result)
	if err != nil {
		return r, err
	}
	r.Seq, r.FromStatus, r.Time, r.Queue = seq.Int64, from.String, at.Time, queue.String
	r.Priority, r.Attempt, r.PrevAttempt = int(priority.Int64), int(attempt.Int64), int(prevAttempt.Int64)
	r.Outcome, r.Error, r.StartedAt, r.FinishedAt = outcome.String, errText.String, started.Ptr(), finished.Ptr()
	r.WorkflowName, r.Schedule, r.Missed = wfName.String, schedule.String, int(missed.Int64)
	r.TraceID, r.CorrelationID = trace.String, correlation.String
	if payload != nil {
		r.Payload = json.RawMessage(payload)
	}
	if result != nil {
		r.Result = json.RawMessage(result)
	}
	return r, nil
}

// SequenceEvents numbers committed events in one transaction that holds
// the sequencer row. The scan of unsequenced events is a plain read, which
// at READ COMMITTED sees exactly the committed ones; one UPDATE joined with
// the scanned positions as a table (FOR ORDINALITY numbers them) gives them
// last_seq+1.. in pos order.
func (s *Store) SequenceEvents(ctx context.Context, p store.SequenceEventsParams) (int, error) {
	limit := p.BatchLimit()
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		n = 0
		var last int64
		err := tx.QueryRowContext(ctx, `SELECT last_seq FROM hammerwork_event_sequence WHERE id = 1
FOR UPDATE SKIP LOCKED`).Scan(&last)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // another agent is sequencing
		}
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT pos FROM hammerwork_events WHERE seq IS NULL ORDER BY pos LIMIT ?`, limit)
		if err != nil {
			return err
		}
		var pos []int64
		for rows.Next() {
			var v int64
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			pos = append(pos, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(pos) == 0 {
			return err
		}
		doc, err := json.Marshal(pos)
		if err != nil {
			return fmt.Errorf("encode positions: %w", err)
		}
		res, err := tx.ExecContext(ctx, `UPDATE hammerwork_events e
JOIN JSON_TABLE(?, '$[*]' COLUMNS (n FOR ORDINALITY, pos BIGINT PATH '$')) t ON e.pos = t.pos
SET e.seq = ? + t.n
WHERE e.seq IS NULL`, string(doc), last)
		if err != nil {
			return err
		}
		if got, err := res.RowsAffected(); err != nil || got != int64(len(pos)) {
			return errors.Join(err, fmt.Errorf("sequenced %d of %d events", got, len(pos)))
		}
		last += int64(len(pos))
		if _, err := tx.ExecContext(ctx, `UPDATE hammerwork_event_sequence SET last_seq = ? WHERE id = 1`, last); err != nil {
			return err
		}
		n = len(pos)
		return nil
	})
	if err != nil {
		return 0, wrap(err, "sequence events")
	}
	return n, nil
}

// ReadEvents returns sequenced events after p.AfterSeq in seq order.
func (s *Store) ReadEvents(ctx context.Context, p store.ReadEventsParams) ([]store.EventRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+store.EventColumns+` FROM hammerwork_events WHERE seq > ? ORDER BY seq LIMIT ?`,
		p.AfterSeq, p.ReadLimit())
	if err != nil {
		return nil, wrap(err, "read events after seq %d", p.AfterSeq)
	}
	defer rows.Close()
	out := []store.EventRecord{}
	for rows.Next() {
		r, err := scanEvent(rows)
		if err != nil {
			return nil, wrap(err, "read events after seq %d", p.AfterSeq)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "read events after seq %d", p.AfterSeq)
	}
	return out, nil
}

// GetEvent returns the sequenced event of that id, or ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, id uuid.UUID) (*store.EventRecord, error) {
	r, err := scanEvent(s.db.QueryRowContext(ctx, `SELECT `+store.EventColumns+` FROM hammerwork_events
WHERE id = ? AND seq IS NOT NULL`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get event %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, wrap(err, "get event %s", id)
	}
	return &r, nil
}

// LatestSeq reads the sequencer's last_seq, without waiting for a
// sequencer that holds the row.
func (s *Store) LatestSeq(ctx context.Context) (int64, error) {
	var last int64
	if err := s.db.QueryRowContext(ctx, `SELECT last_seq FROM hammerwork_event_sequence WHERE id = 1`).Scan(&last); err != nil {
		return 0, wrap(err, "read the latest event seq")
	}
	return last, nil
}

// SubscriberLags counts, per enabled subscriber, the sequenced events after
// its cursor (a range of the seq index) and reads the first one's time.
func (s *Store) SubscriberLags(ctx context.Context) ([]store.SubscriberLag, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT s.id, s.name, s.kind,
    (SELECT COUNT(*) FROM hammerwork_events e WHERE e.seq > s.cursor_seq),
    (SELECT e.occurred_at FROM hammerwork_events e WHERE e.seq > s.cursor_seq ORDER BY e.seq LIMIT 1)
FROM hammerwork_event_subscribers s WHERE s.enabled ORDER BY s.name`)
	if err != nil {
		return nil, wrap(err, "read subscriber lags")
	}
	defer rows.Close()
	lags := []store.SubscriberLag{}
	for rows.Next() {
		var (
			l      store.SubscriberLag
			oldest store.SQLTime
		)
		if err := rows.Scan(&l.ID, &l.Name, &l.Kind, &l.Events, &oldest); err != nil {
			return nil, wrap(err, "read subscriber lags")
		}
		l.Oldest = oldest.Time
		lags = append(lags, l)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "read subscriber lags")
	}
	return lags, nil
}

// CleanupEvents deletes, each in a short transaction of its own, the events
// every enabled cursor has passed, old deliveries and lapsed tails. An event
// is deleted only once sequenced, so a sequencer never finds a position
// gone. The smallest cursor is read by a plain SELECT rather than a subquery
// of the DELETE, which would lock the subscriber rows. A tail is gone once
// its claim lapsed, or it was released (or never claimed), longer than the
// grace ago.
func (s *Store) CleanupEvents(ctx context.Context, p store.CleanupEventsParams) (int, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return 0, wrap(err, "clean up events")
	}
	limit := p.DeleteLimit()
	cutoff := store.UTC(at.Add(-p.Retention))
	var n int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var passed sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT MIN(cursor_seq) FROM hammerwork_event_subscribers WHERE enabled`).Scan(&passed)
		if err != nil {
			return err
		}
		query := `DELETE FROM hammerwork_events WHERE seq IS NOT NULL AND occurred_at < ?`
		args := []any{cutoff}
		if passed.Valid {
			query += ` AND seq <= ?`
			args = append(args, passed.Int64)
		}
		res, err := tx.ExecContext(ctx, query+` ORDER BY seq LIMIT ?`, append(args, limit)...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, wrap(err, "clean up events")
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_webhook_deliveries WHERE attempted_at < ? LIMIT ?`, cutoff, limit)
		return err
	})
	if err != nil {
		return 0, wrap(err, "clean up deliveries")
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_event_subscribers
WHERE kind = 'tail' AND COALESCE(claimed_until, updated_at) < ? LIMIT ?`, p.TailCutoff(at), limit)
		if err != nil {
			return err
		}
		if tails, err := res.RowsAffected(); err != nil || tails == 0 {
			return err
		}
		return refreshEventFlags(ctx, tx)
	})
	if err != nil {
		return 0, wrap(err, "clean up tail subscribers")
	}
	return int(n), nil
}
