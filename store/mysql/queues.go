package mysql

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

// PauseQueue marks a queue paused for every agent; pausing twice keeps the
// first pause's time and author.
func (s *Store) PauseQueue(ctx context.Context, p store.PauseQueueParams) error {
	if err := store.ValidateQueueName(p.Queue); err != nil {
		return fmt.Errorf("pause queue: %w", err)
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return wrap(err, "pause queue %q", p.Queue)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO hammerwork_queue_pauses (queue_name, paused_at, paused_by)
VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE queue_name = queue_name`, p.Queue, at, nullStr(p.By))
	if err != nil {
		return wrap(err, "pause queue %q", p.Queue)
	}
	return nil
}

// ResumeQueue lifts a queue's pause.
func (s *Store) ResumeQueue(ctx context.Context, p store.ResumeQueueParams) error {
	if err := store.ValidateQueueName(p.Queue); err != nil {
		return fmt.Errorf("resume queue: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM hammerwork_queue_pauses WHERE queue_name = ?`, p.Queue); err != nil {
		return wrap(err, "resume queue %q", p.Queue)
	}
	return nil
}

// queuesSQL aggregates every queue in one pass over its jobs. %s is the
// optional one-queue filter.
const queuesSQL = `SELECT queue_name,
    COUNT(CASE WHEN status = 'pending' THEN 1 END),
    COUNT(CASE WHEN status = 'running' THEN 1 END),
    COUNT(CASE WHEN status = 'completed' THEN 1 END),
    COUNT(CASE WHEN status = 'failed' THEN 1 END),
    COUNT(CASE WHEN status = 'cancelled' THEN 1 END),
    COUNT(CASE WHEN status = 'skipped' THEN 1 END),
    MIN(CASE WHEN status = 'pending' AND dependency_status IN ('none', 'satisfied') AND scheduled_at <= ?
        THEN scheduled_at END),
    COUNT(CASE WHEN status = 'completed' AND completed_at > ? AND completed_at <= ? THEN 1 END)
FROM hammerwork_jobs%s
GROUP BY queue_name`

// Queues describes every queue with jobs or a pause, or only p.Queue.
func (s *Store) Queues(ctx context.Context, p store.QueuesParams) ([]store.QueueInfo, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "describe queues")
	}
	args := []any{at, at.Add(-time.Minute), at}
	filter, pauseFilter := "", ""
	var pauseArgs []any
	if p.Queue != "" {
		args = append(args, p.Queue)
		filter = "\nWHERE queue_name = ?"
		pauseFilter = " WHERE queue_name = ?"
		pauseArgs = []any{p.Queue}
	}
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(queuesSQL, filter), args...)
	if err != nil {
		return nil, wrap(err, "describe queues")
	}
	infos, err := store.CollectQueueInfos(rows)
	if err := errors.Join(err, rows.Close()); err != nil {
		return nil, wrap(err, "describe queues")
	}
	rows, err = s.db.QueryContext(ctx, `SELECT queue_name, paused_at, COALESCE(paused_by, '') FROM hammerwork_queue_pauses`+pauseFilter, pauseArgs...)
	if err != nil {
		return nil, wrap(err, "read queue pauses")
	}
	defer rows.Close()
	pauses, err := store.CollectQueuePauses(rows)
	if err != nil {
		return nil, wrap(err, "read queue pauses")
	}
	return store.MergeQueues(infos, pauses, p.Queue), nil
}

// leasable is the lease predicate without its time bound, for the selection
// of NextDue and ReadyPriorities; it returns the SQL and its arguments.
func leasable(queues, exclude []string) (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString(`j.status = 'pending' AND j.dependency_status IN ('none', 'satisfied')`)
	switch len(queues) {
	case 0:
	case 1:
		b.WriteString(` AND j.queue_name = ?`)
		args = append(args, queues[0])
	default:
		fmt.Fprintf(&b, ` AND j.queue_name IN (%s)`, placeholders(len(queues)))
		for _, q := range queues {
			args = append(args, q)
		}
	}
	if len(exclude) > 0 {
		fmt.Fprintf(&b, ` AND j.queue_name NOT IN (%s)`, placeholders(len(exclude)))
		for _, q := range exclude {
			args = append(args, q)
		}
	}
	b.WriteString(` AND NOT EXISTS (SELECT 1 FROM hammerwork_queue_pauses qp WHERE qp.queue_name = j.queue_name)`)
	return b.String(), args
}

// NextDue returns the earliest future scheduled_at among the jobs a lease
// of the same selection would take once due: the least of one seek per
// priority level into the lease index, whatever the backlog of delayed jobs.
func (s *Store) NextDue(ctx context.Context, p store.NextDueParams) (time.Time, bool, error) {
	where, sel := leasable(p.Queues, p.ExcludeQueues)
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return time.Time{}, false, wrap(err, "find next due job of %s", store.QueueList(p.Queues))
	}
	var b strings.Builder
	var args []any
	b.WriteString(`SELECT MIN(n.at) FROM (`)
	for l := job.PriorityCritical; l >= job.PriorityBackground; l-- {
		if l != job.PriorityCritical {
			b.WriteString(` UNION ALL `)
		}
		fmt.Fprintf(&b, `SELECT (SELECT j.scheduled_at FROM hammerwork_jobs j WHERE %s AND j.priority = %d AND j.scheduled_at > ? ORDER BY j.scheduled_at LIMIT 1) AS at`, where, l)
		args = append(append(args, sel...), at)
	}
	b.WriteString(`) n`)
	var next sql.NullTime
	if err := s.db.QueryRowContext(ctx, b.String(), args...).Scan(&next); err != nil {
		return time.Time{}, false, wrap(err, "find next due job of %s", store.QueueList(p.Queues))
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return store.UTC(next.Time), true, nil
}

// ReadyPriorities probes each level with an EXISTS on the lease index.
func (s *Store) ReadyPriorities(ctx context.Context, p store.ReadyPrioritiesParams) ([]job.Priority, error) {
	where, sel := leasable(p.Queues, p.ExcludeQueues)
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "find ready priorities of %s", store.QueueList(p.Queues))
	}
	var b strings.Builder
	var args []any
	for l := job.PriorityCritical; l >= job.PriorityBackground; l-- {
		if l != job.PriorityCritical {
			b.WriteString(` UNION ALL `)
		}
		fmt.Fprintf(&b, `SELECT %d FROM DUAL WHERE EXISTS (SELECT 1 FROM hammerwork_jobs j WHERE %s AND j.scheduled_at <= ? AND j.priority = %d)`, l, where, l)
		args = append(append(args, sel...), at)
	}
	rows, err := s.db.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, wrap(err, "find ready priorities of %s", store.QueueList(p.Queues))
	}
	defer rows.Close()
	out, err := store.CollectPriorities(rows)
	if err != nil {
		return nil, wrap(err, "find ready priorities of %s", store.QueueList(p.Queues))
	}
	return out, nil
}
