package postgres

import (
	"context"
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
	var by *string
	if p.By != "" {
		by = &p.By
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return wrap(err, "pause queue %q", p.Queue)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO hammerwork_queue_pauses (queue_name, paused_at, paused_by)
VALUES ($1, $2, $3) ON CONFLICT (queue_name) DO NOTHING`, p.Queue, at, by)
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
	if _, err := s.pool.Exec(ctx, `DELETE FROM hammerwork_queue_pauses WHERE queue_name = $1`, p.Queue); err != nil {
		return wrap(err, "resume queue %q", p.Queue)
	}
	return nil
}

// queuesSQL aggregates every queue in one pass over its jobs. %s is the
// optional one-queue filter.
const queuesSQL = `SELECT queue_name,
    count(*) FILTER (WHERE status = 'pending'),
    count(*) FILTER (WHERE status = 'running'),
    count(*) FILTER (WHERE status = 'completed'),
    count(*) FILTER (WHERE status = 'failed'),
    count(*) FILTER (WHERE status = 'cancelled'),
    count(*) FILTER (WHERE status = 'skipped'),
    min(scheduled_at) FILTER (WHERE status = 'pending' AND dependency_status IN ('none', 'satisfied') AND scheduled_at <= $1),
    count(*) FILTER (WHERE status = 'completed' AND completed_at > $2 AND completed_at <= $1)
FROM hammerwork_jobs%s
GROUP BY queue_name`

// Queues describes every queue with jobs or a pause, or only p.Queue.
func (s *Store) Queues(ctx context.Context, p store.QueuesParams) ([]store.QueueInfo, error) {
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "describe queues")
	}
	args := []any{at, at.Add(-time.Minute)}
	filter, pauseFilter := "", ""
	if p.Queue != "" {
		args = append(args, p.Queue)
		filter = "\nWHERE queue_name = $3"
		pauseFilter = " WHERE queue_name = $1"
	}
	rows, err := s.pool.Query(ctx, fmt.Sprintf(queuesSQL, filter), args...)
	if err != nil {
		return nil, wrap(err, "describe queues")
	}
	infos, err := store.CollectQueueInfos(rows)
	rows.Close()
	if err != nil {
		return nil, wrap(err, "describe queues")
	}
	var pauseArgs []any
	if p.Queue != "" {
		pauseArgs = []any{p.Queue}
	}
	rows, err = s.pool.Query(ctx, `SELECT queue_name, paused_at, coalesce(paused_by, '') FROM hammerwork_queue_pauses`+pauseFilter, pauseArgs...)
	if err != nil {
		return nil, wrap(err, "read queue pauses")
	}
	pauses, err := store.CollectQueuePauses(rows)
	rows.Close()
	if err != nil {
		return nil, wrap(err, "read queue pauses")
	}
	return store.MergeQueues(infos, pauses, p.Queue), nil
}

// leasableSQL is the lease predicate without its time bound, paused queues
// excluded as Lease does; %s is the queue filter.
const leasableSQL = `status = 'pending' AND dependency_status IN ('none', 'satisfied')
    AND queue_name <> ALL ($2::text[] || ARRAY(SELECT queue_name FROM hammerwork_queue_pauses))%s`

// selectionFilter is the queue filter of NextDue and ReadyPriorities, whose
// first two parameters are the time and the excluded queues.
func selectionFilter(queues, exclude []string) (string, []any) {
	if exclude == nil {
		exclude = []string{}
	}
	switch len(queues) {
	case 0:
		return "", []any{exclude}
	case 1:
		return "\n    AND queue_name = $3::text", []any{exclude, queues[0]}
	}
	return "\n    AND queue_name = ANY ($3::text[])", []any{exclude, queues}
}

// NextDue returns the earliest future scheduled_at among the jobs a lease
// of the same selection would take once due: the least of one seek per
// priority level into the lease index, whatever the backlog of delayed jobs.
func (s *Store) NextDue(ctx context.Context, p store.NextDueParams) (time.Time, bool, error) {
	filter, args := selectionFilter(p.Queues, p.ExcludeQueues)
	var b strings.Builder
	b.WriteString("SELECT min(at) FROM (")
	for l := job.PriorityCritical; l >= job.PriorityBackground; l-- {
		if l != job.PriorityCritical {
			b.WriteString("\nUNION ALL ")
		}
		fmt.Fprintf(&b, "SELECT (SELECT scheduled_at FROM hammerwork_jobs WHERE %s\n    AND priority = %d AND scheduled_at > $1 ORDER BY scheduled_at LIMIT 1) AS at",
			fmt.Sprintf(leasableSQL, filter), l)
	}
	b.WriteString(") n")
	since, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return time.Time{}, false, wrap(err, "find next due job of %s", store.QueueList(p.Queues))
	}
	var at *time.Time
	if err := s.pool.QueryRow(ctx, b.String(), append([]any{since}, args...)...).Scan(&at); err != nil {
		return time.Time{}, false, wrap(err, "find next due job of %s", store.QueueList(p.Queues))
	}
	if at == nil {
		return time.Time{}, false, nil
	}
	return store.UTC(*at), true, nil
}

// ReadyPriorities probes each level with an EXISTS that walks the lease
// index from (queue, level): five index probes, whatever the backlog.
func (s *Store) ReadyPriorities(ctx context.Context, p store.ReadyPrioritiesParams) ([]job.Priority, error) {
	filter, args := selectionFilter(p.Queues, p.ExcludeQueues)
	var b strings.Builder
	for l := job.PriorityCritical; l >= job.PriorityBackground; l-- {
		if l != job.PriorityCritical {
			b.WriteString("\nUNION ALL ")
		}
		fmt.Fprintf(&b, "SELECT %d WHERE EXISTS (SELECT 1 FROM hammerwork_jobs WHERE %s\n    AND scheduled_at <= $1 AND priority = %d)",
			l, fmt.Sprintf(leasableSQL, filter), l)
	}
	at, err := s.clock.At(ctx, p.Now)
	if err != nil {
		return nil, wrap(err, "find ready priorities of %s", store.QueueList(p.Queues))
	}
	rows, err := s.pool.Query(ctx, b.String(), append([]any{at}, args...)...)
	if err != nil {
		return nil, wrap(err, "find ready priorities of %s", store.QueueList(p.Queues))
	}
	out, err := store.CollectPriorities(rows)
	rows.Close()
	if err != nil {
		return nil, wrap(err, "find ready priorities of %s", store.QueueList(p.Queues))
	}
	return out, nil
}
