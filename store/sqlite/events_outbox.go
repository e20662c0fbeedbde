package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/store"
)

// eventColumns is every column of hammerwork_events in scanEvent's order;
// what a kind does not have reads as zero.
const eventColumns = `pos, coalesce(seq, 0), id, kind, coalesce(from_status, ''), status, occurred_at, job_id,
	coalesce(queue, ''), coalesce(priority, 0), coalesce(attempt, 0), coalesce(prev_attempt, 0),
	coalesce(outcome, ''), coalesce(error, ''), started_at, finished_at, workflow_id, coalesce(workflow_name, ''),
	batch_id, coalesce(schedule_name, ''), coalesce(missed, 0), coalesce(trace_id, ''),
	coalesce(correlation_id, ''), payload, result`

// scanEvent reads one row of eventColumns.
func scanEvent(row store.Scanner) (store.EventRecord, error) {
	var (
		r                     store.EventRecord
		at, started, finished store.SQLTime
		payload, result       []byte
	)
	if err := row.Scan(&r.Pos, &r.Seq, &r.ID, &r.Kind, &r.FromStatus, &r.Status, &at, &r.JobID,
		&r.Queue, &r.Priority, &r.Attempt, &r.PrevAttempt, &r.Outcome, &r.Error, &started, &finished,
		&r.WorkflowID, &r.WorkflowName, &r.BatchID, &r.Schedule, &r.Missed, &r.TraceID, &r.CorrelationID,
		&payload, &result); err != nil {
		return r, err
	}
	r.Time, r.StartedAt, r.FinishedAt = at.Time, started.Ptr(), finished.Ptr()
	r.Payload, r.Result = payload, result
	return r, nil
}

// SequenceEvents numbers the oldest unsequenced events after last_seq in
// one write transaction. SQLite's single writer makes it the only
// sequencer, and its transactions commit in the order they write, so pos
// order is commit order. An idle outbox is seen from the read pool without
// taking the write lock.
func (s *Store) SequenceEvents(ctx context.Context, p store.SequenceEventsParams) (int, error) {
	limit := p.BatchLimit()
	var waiting bool
	if err := s.read.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM hammerwork_events WHERE seq IS NULL)`).Scan(&waiting); err != nil {
		return 0, fmt.Errorf("sequence events: %w", dbErr(err))
	}
	if !waiting {
		return 0, nil
	}
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE hammerwork_events SET seq = q.last_seq + u.n
			FROM (SELECT pos, row_number() OVER (ORDER BY pos) AS n FROM (SELECT pos FROM hammerwork_events
				WHERE seq IS NULL ORDER BY pos LIMIT ?)) AS u, hammerwork_event_sequence AS q
			WHERE q.id = 1 AND hammerwork_events.pos = u.pos`, limit)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE hammerwork_event_sequence SET last_seq = last_seq + ? WHERE id = 1`, n)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sequence events: %w", err)
	}
	return int(n), nil
}

// ReadEvents returns sequenced events after p.AfterSeq in seq order.
func (s *Store) ReadEvents(ctx context.Context, p store.ReadEventsParams) ([]store.EventRecord, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+eventColumns+` FROM hammerwork_events
		WHERE seq > ? ORDER BY seq LIMIT ?`, p.AfterSeq, p.ReadLimit())
	if err != nil {
		return nil, fmt.Errorf("read events after %d: %w", p.AfterSeq, dbErr(err))
	}
	defer rows.Close()
	out, err := store.CollectScanned(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("read events after %d: %w", p.AfterSeq, err)
	}
	if out == nil {
		out = []store.EventRecord{}
	}
	return out, nil
}

// GetEvent returns one sequenced event, or ErrNotFound.
func (s *Store) GetEvent(ctx context.Context, id uuid.UUID) (*store.EventRecord, error) {
	r, err := scanEvent(s.read.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM hammerwork_events
		WHERE id = ? AND seq IS NOT NULL`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get event %s: %w", id, dbErr(err))
	}
	return &r, nil
}

// LatestSeq is the newest seq given.
func (s *Store) LatestSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.read.QueryRowContext(ctx,
		`SELECT last_seq FROM hammerwork_event_sequence WHERE id = 1`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read the latest event seq: %w", dbErr(err))
	}
	return seq, nil
}

// SubscriberLags counts, per enabled subscriber, the events after its
// cursor along the seq index, and reads the first one's time.
func (s *Store) SubscriberLags(ctx context.Context) ([]store.SubscriberLag, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT s.id, s.name, s.kind,
			(SELECT count(*) FROM hammerwork_events e WHERE e.seq > s.cursor_seq),
			(SELECT e.occurred_at FROM hammerwork_events e WHERE e.seq > s.cursor_seq ORDER BY e.seq LIMIT 1)
		FROM hammerwork_event_subscribers s WHERE s.enabled = 1 ORDER BY s.name`)
	if err != nil {
		return nil, fmt.Errorf("read subscriber lags: %w", dbErr(err))
	}
	defer rows.Close()
	out, err := store.CollectScanned(rows, func(row store.Scanner) (store.SubscriberLag, error) {
		var l store.SubscriberLag
		var oldest store.SQLTime
		err := row.Scan(&l.ID, &l.Name, &l.Kind, &l.Events, &oldest)
		l.Oldest = oldest.Time
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("read subscriber lags: %w", err)
	}
	if out == nil {
		out = []store.SubscriberLag{}
	}
	return out, nil
}

// CleanupEvents deletes old events, deliveries and lapsed tails in one
// write transaction. Events and deliveries are examined in insertion order
// (rowid), p.Limit at a time: in SQLite that is the order of their times
// and, for events, of their seqs, so the rows to delete are a prefix of
// that window and a pass never scans rows it keeps beyond it.
func (s *Store) CleanupEvents(ctx context.Context, p store.CleanupEventsParams) (int, error) {
	limit := p.DeleteLimit()
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now, err := s.clock.At(ctx, p.Now)
		if err != nil {
			return err
		}
		cutoff := ts(now.Add(-p.Retention))
		res, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_events WHERE pos IN (
			SELECT pos FROM (SELECT pos, seq, occurred_at FROM hammerwork_events ORDER BY pos LIMIT ?2)
			WHERE occurred_at < ?1
				AND (NOT EXISTS (SELECT 1 FROM hammerwork_event_subscribers WHERE enabled = 1)
					OR seq <= (SELECT min(cursor_seq) FROM hammerwork_event_subscribers WHERE enabled = 1)))`,
			cutoff, limit)
		if err != nil {
			return fmt.Errorf("delete events: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_webhook_deliveries WHERE rowid IN (
			SELECT rowid FROM (SELECT rowid, attempted_at FROM hammerwork_webhook_deliveries ORDER BY rowid LIMIT ?2)
			WHERE attempted_at < ?1)`, cutoff, limit); err != nil {
			return fmt.Errorf("delete deliveries: %w", err)
		}
		// A tail that never claimed counts from its creation.
		if _, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_event_subscribers WHERE id IN (
			SELECT id FROM hammerwork_event_subscribers
			WHERE kind = 'tail' AND coalesce(claimed_until, created_at) < ? LIMIT ?)`,
			ts(p.TailCutoff(now)), limit); err != nil {
			return fmt.Errorf("delete lapsed tails: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("clean up events: %w", err)
	}
	return int(n), nil
}
