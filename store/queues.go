package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hammerwork-go/hw-agent/job"
)

// QueueControls pauses and resumes queues and reports on them. A pause is a
// row in hammerwork_queue_pauses that every lease query anti-joins, so all
// agents sharing the database stop leasing the queue with their next lease;
// jobs already running finish as usual.
type QueueControls interface {
	// PauseQueue marks a queue paused. Pausing a queue that has no jobs yet
	// is allowed (the pause holds for jobs enqueued later); pausing a paused
	// queue changes nothing. An invalid queue name is ErrInvalid.
	PauseQueue(ctx context.Context, p PauseQueueParams) error
	// ResumeQueue lifts a pause; resuming a queue that is not paused changes
	// nothing. An invalid queue name is ErrInvalid.
	ResumeQueue(ctx context.Context, p ResumeQueueParams) error
	// Queues describes every queue that has jobs or a pause (or only
	// p.Queue when set), ordered by name.
	Queues(ctx context.Context, p QueuesParams) ([]QueueInfo, error)
	// NextDue returns the earliest scheduled_at after p.Now among the jobs a
	// lease with the same selection would take once due (pending,
	// dependency_status none or satisfied, queue not paused), so an idle
	// agent sleeps until then instead of polling; false when there is none.
	NextDue(ctx context.Context, p NextDueParams) (time.Time, bool, error)
	// ReadyPriorities returns, highest first, the priority levels that hold
	// at least one job a lease with the same selection would take now. The
	// agent's weighted selection draws only among these.
	ReadyPriorities(ctx context.Context, p ReadyPrioritiesParams) ([]job.Priority, error)
}

// PauseQueueParams pauses one queue.
type PauseQueueParams struct {
	Queue string
	// By says who paused it (an agent id, "api", "cli"); empty stores NULL.
	By  string
	Now time.Time
}

// ResumeQueueParams resumes one queue.
type ResumeQueueParams struct {
	Queue string
}

// QueuesParams selects the queues Queues describes.
type QueuesParams struct {
	// Queue: empty describes every queue.
	Queue string
	// Now anchors oldest_pending_age and the one-minute throughput window.
	Now time.Time
}

// QueueInfo is what an operator wants to know about one queue.
type QueueInfo struct {
	Name     string
	Paused   bool
	PausedAt *time.Time
	PausedBy string
	// Depth counts the queue's jobs by status; every status is present.
	Depth map[job.Status]int64
	// OldestPendingAt is the scheduled_at of the longest-waiting job that
	// is due now (pending, scheduled_at <= Now, dependencies resolved); nil
	// when none waits.
	OldestPendingAt *time.Time
	// CompletedLastMinute counts jobs completed in (Now-1m, Now].
	CompletedLastMinute int64
}

// NextDueParams selects the jobs NextDue looks at, as LeaseParams does.
type NextDueParams struct {
	Queues        []string
	ExcludeQueues []string
	Now           time.Time
}

// ReadyPrioritiesParams selects the jobs ReadyPriorities looks at, as
// LeaseParams does.
type ReadyPrioritiesParams struct {
	Queues        []string
	ExcludeQueues []string
	Now           time.Time
}

// ValidateQueueName returns an ErrInvalid naming the queue when it is not
// a valid queue name.
func ValidateQueueName(name string) error {
	if !ValidQueueName(name) {
		return fmt.Errorf("%w: queue %q is not a valid name (letters, digits, '_', '.', ':', '-'; at most 128)", ErrInvalid, name)
	}
	return nil
}

// QueuePause is one row of hammerwork_queue_pauses, as backends read it.
type QueuePause struct {
	Queue    string
	PausedAt time.Time
	PausedBy string
}

// MergeQueues completes the per-queue aggregates a backend read with its
// pauses: every status gets a depth, paused queues without jobs are added,
// and the result is ordered by name. Only is the QueuesParams.Queue filter.
func MergeQueues(infos []QueueInfo, pauses []QueuePause, only string) []QueueInfo {
	byName := make(map[string]int, len(infos))
	for i := range infos {
		byName[infos[i].Name] = i
	}
	for _, p := range pauses {
		if only != "" && p.Queue != only {
			continue
		}
		i, ok := byName[p.Queue]
		if !ok {
			infos = append(infos, QueueInfo{Name: p.Queue})
			i = len(infos) - 1
			byName[p.Queue] = i
		}
		at := p.PausedAt
		infos[i].Paused, infos[i].PausedAt, infos[i].PausedBy = true, &at, p.PausedBy
	}
	for i := range infos {
		if infos[i].Depth == nil {
			infos[i].Depth = map[job.Status]int64{}
		}
		for _, st := range job.Statuses {
			infos[i].Depth[st] += 0
		}
	}
	slices.SortFunc(infos, func(a, b QueueInfo) int { return strings.Compare(a.Name, b.Name) })
	if infos == nil {
		infos = []QueueInfo{}
	}
	return infos
}

// QueueList names a selection of queues in an error message: "every queue"
// for none, else the quoted, comma-separated names.
func QueueList(queues []string) string {
	if len(queues) == 0 {
		return "every queue"
	}
	return fmt.Sprintf("%q", strings.Join(queues, ","))
}
