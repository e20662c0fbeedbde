package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hammerwork-go/hw-agent/store"
)

var _ store.Events = (*Store)(nil)

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

// scanEvent reads one row of store.EventColumns.
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

func num(n *int32) int {
	if n == nil {
		return 0
	}
	return int(*n)
}

// SequenceEvents numbers committed events in one transaction holding the
// sequence row; a second caller skips the locked row and returns 0.
func (s *Store) SequenceEvents(ctx context.Context, p store.SequenceEventsParams) (int, error) {
	limit := p.BatchLimit()
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
	rows, err := s.pool.Query(ctx, `SELECT `+store.EventColumns+` FROM hammerwork_events WHERE seq > $1 ORDER BY seq LIMIT $2`, p.AfterSeq, p.ReadLimit())
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
	e, err := scanEvent(s.pool.QueryRow(ctx, `SELECT `+store.EventColumns+` FROM hammerwork_events WHERE id = $1 AND seq IS NOT NULL`, id))
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
	limit := p.DeleteLimit()
	tag, err := s.pool.Exec(ctx, cleanupEventsSQL, at.Add(-p.Retention), limit)
	if err != nil {
		return 0, wrap(err, "clean up events")
	}
	if _, err := s.pool.Exec(ctx, cleanupDeliveriesSQL, at.Add(-p.Retention), limit); err != nil {
		return 0, wrap(err, "clean up webhook deliveries")
	}
	if _, err := s.pool.Exec(ctx, cleanupTailsSQL, p.TailCutoff(at), limit); err != nil {
		return 0, wrap(err, "clean up tail subscribers")
	}
	return int(tag.RowsAffected()), nil
}
