package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

var _ store.QueueControls = (*Store)(nil)

// PauseQueue marks a queue paused for every process sharing the database;
// pausing twice keeps the first pause's time and author.
func (s *Store) PauseQueue(ctx context.Context, p store.PauseQueueParams) error {
	if err := store.ValidateQueueName(p.Queue); err != nil {
		return fmt.Errorf("pause queue: %w", err)
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return fmt.Errorf("pause queue %q: %w", p.Queue, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO hammerwork_queue_pauses (queue_name, paused_at, paused_by)
			VALUES (?, ?, ?) ON CONFLICT (queue_name) DO NOTHING`, p.Queue, ts(at), nullString(p.By))
		return err
	})
	if err != nil {
		return fmt.Errorf("pause queue %q: %w", p.Queue, dbErr(err))
	}
	return nil
}

// ResumeQueue lifts a queue's pause.
func (s *Store) ResumeQueue(ctx context.Context, p store.ResumeQueueParams) error {
	if err := store.ValidateQueueName(p.Queue); err != nil {
		return fmt.Errorf("resume queue: %w", err)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM hammerwork_queue_pauses WHERE queue_name = ?`, p.Queue)
		return err
	})
	if err != nil {
		return fmt.Errorf("resume queue %q: %w", p.Queue, dbErr(err))
	}
	return nil
}

// Queues describes every queue with jobs or a pause, or only p.Queue, with
// one aggregate pass over the jobs.
func (s *Store) Queues(ctx context.Context, p store.QueuesParams) ([]store.QueueInfo, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, fmt.Errorf("describe queues: %w", err)
	}
	args := []any{ts(at), ts(at.Add(-time.Minute))}
	filter, pauseFilter := "", ""
	var pauseArgs []any
	if p.Queue != "" {
		args = append(args, p.Queue)
		filter = ` WHERE queue_name = ?3`
		pauseFilter = ` WHERE queue_name = ?`
		pauseArgs = []any{p.Queue}
	}
	rows, err := s.read.QueryContext(ctx, `SELECT queue_name,
			sum(status = 'pending'), sum(status = 'running'), sum(status = 'completed'),
			sum(status = 'failed'), sum(status = 'cancelled'), sum(status = 'skipped'),
			min(CASE WHEN status = 'pending' AND dependency_status IN ('none', 'satisfied') AND scheduled_at <= ?1
				THEN scheduled_at END),
			sum(status = 'completed' AND completed_at > ?2 AND completed_at <= ?1)
		FROM hammerwork_jobs`+filter+` GROUP BY queue_name`, args...)
	if err != nil {
		return nil, fmt.Errorf("describe queues: %w", dbErr(err))
	}
	infos, err := store.CollectQueueInfos(rows)
	if err := errors.Join(err, rows.Close()); err != nil {
		return nil, fmt.Errorf("describe queues: %w", err)
	}
	pauses, err := s.pauses(ctx, pauseFilter, pauseArgs)
	if err != nil {
		return nil, err
	}
	return store.MergeQueues(infos, pauses, p.Queue), nil
}

func (s *Store) pauses(ctx context.Context, filter string, args []any) ([]store.QueuePause, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT queue_name, paused_at, coalesce(paused_by, '') FROM hammerwork_queue_pauses`+filter, args...)
	if err != nil {
		return nil, fmt.Errorf("read queue pauses: %w", dbErr(err))
	}
	defer rows.Close()
	out, err := store.CollectQueuePauses(rows)
	if err != nil {
		return nil, fmt.Errorf("read queue pauses: %w", err)
	}
	return out, nil
}

// leasable is the lease predicate without its time bound, for the selection
// of NextDue and ReadyPriorities; it returns the SQL and its arguments.
func leasable(queues, exclude []string) (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString(`status = 'pending' AND dependency_status IN ('none', 'satisfied')`)
	switch len(queues) {
	case 0:
	case 1:
		b.WriteString(` AND queue_name = ?`)
		args = append(args, queues[0])
	default:
		b.WriteString(` AND queue_name IN (SELECT value FROM json_each(?))`)
		args = append(args, jsonList(queues))
	}
	if len(exclude) > 0 {
		b.WriteString(` AND queue_name NOT IN (SELECT value FROM json_each(?))`)
		args = append(args, jsonList(exclude))
	}
	b.WriteString(` AND NOT EXISTS (SELECT 1 FROM hammerwork_queue_pauses qp WHERE qp.queue_name = hammerwork_jobs.queue_name)`)
	return b.String(), args
}

// NextDue returns the earliest future scheduled_at among the jobs a lease
// of the same selection would take once due: the least of one seek per
// priority level into the lease index, whatever the backlog of delayed jobs.
func (s *Store) NextDue(ctx context.Context, p store.NextDueParams) (time.Time, bool, error) {
	where, sel := leasable(p.Queues, p.ExcludeQueues)
	since, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("find next due job of %s: %w", store.QueueList(p.Queues), err)
	}
	at := ts(since)
	var b strings.Builder
	var args []any
	b.WriteString(`SELECT min(at) FROM (`)
	for l := job.PriorityCritical; l >= job.PriorityBackground; l-- {
		if l != job.PriorityCritical {
			b.WriteString(` UNION ALL `)
		}
		b.WriteString(`SELECT (SELECT scheduled_at FROM hammerwork_jobs WHERE ` + where +
			` AND priority = ? AND scheduled_at > ? ORDER BY scheduled_at LIMIT 1) AS at`)
		args = append(append(args, sel...), int(l), at)
	}
	b.WriteString(`)`)
	var next sql.NullString
	if err := s.read.QueryRowContext(ctx, b.String(), args...).Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("find next due job of %s: %w", store.QueueList(p.Queues), dbErr(err))
	}
	t, err := parseNullTS(next)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("find next due job of %s: %w", store.QueueList(p.Queues), err)
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return *t, true, nil
}

// ReadyPriorities probes each level with an EXISTS on the lease index.
func (s *Store) ReadyPriorities(ctx context.Context, p store.ReadyPrioritiesParams) ([]job.Priority, error) {
	where, sel := leasable(p.Queues, p.ExcludeQueues)
	now, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, fmt.Errorf("find ready priorities of %s: %w", store.QueueList(p.Queues), err)
	}
	at := ts(now)
	var b strings.Builder
	var args []any
	for l := job.PriorityCritical; l >= job.PriorityBackground; l-- {
		if l != job.PriorityCritical {
			b.WriteString(` UNION ALL `)
		}
		b.WriteString(`SELECT ? WHERE EXISTS (SELECT 1 FROM hammerwork_jobs WHERE ` + where +
			` AND scheduled_at <= ? AND priority = ?)`)
		args = append(append(append(args, int(l)), sel...), at, int(l))
	}
	rows, err := s.read.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("find ready priorities of %s: %w", store.QueueList(p.Queues), dbErr(err))
	}
	defer rows.Close()
	out, err := store.CollectPriorities(rows)
	if err != nil {
		return nil, fmt.Errorf("find ready priorities of %s: %w", store.QueueList(p.Queues), err)
	}
	return out, nil
}
