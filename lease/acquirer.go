package lease

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// Acquirer takes and gives back leases for one agent, always in batches: one
// store round trip per call whatever the number of jobs, which is what lets
// an agent reach thousands of jobs per second. It sends no time of its own:
// the database's clock says what is due and when a lease expires, so an
// agent whose clock is skewed neither takes jobs early nor hands out leases
// that are already expired.
type Acquirer struct {
	Store   store.Leaser
	AgentID string
	// Duration is the length of a new lease; Heartbeat extends it while the
	// request is in flight.
	Duration time.Duration
}

// Selection names the queues a lease may take jobs from.
type Selection struct {
	// Queues: empty means every queue.
	Queues []string
	// Exclude is skipped: queues that have a producer of their own.
	Exclude []string
	// Priorities, when set, takes only jobs of these levels.
	Priorities []job.Priority
}

func (s Selection) String() string {
	switch {
	case len(s.Queues) > 0:
		return strings.Join(s.Queues, ",")
	case len(s.Exclude) > 0:
		return "* except " + strings.Join(s.Exclude, ",")
	}
	return "*"
}

// Acquire leases at most n jobs of sel. n is the caller's free slots: the
// agent never holds a lease it cannot dispatch at once, trading a little
// throughput (no prefetch) for fairness between agents and short latency
// for slow apps.
func (a Acquirer) Acquire(ctx context.Context, sel Selection, n int) ([]*job.Job, error) {
	if n <= 0 {
		return nil, nil
	}
	jobs, err := a.Store.Lease(ctx, store.LeaseParams{
		AgentID:       a.AgentID,
		Queues:        sel.Queues,
		ExcludeQueues: sel.Exclude,
		Priorities:    sel.Priorities,
		Limit:         n,
		Duration:      a.Duration,
	})
	if err != nil {
		return nil, fmt.Errorf("lease jobs from %s: %w", sel, err)
	}
	return jobs, nil
}

// Release gives leases back without spending their attempts: the jobs return
// to pending, due at the database's now, for any agent to take. It returns
// the ids whose lease was already lost.
func (a Acquirer) Release(ctx context.Context, refs []store.LeaseRef) ([]uuid.UUID, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	stale, err := a.Store.Release(ctx, store.ReleaseParams{Leases: refs})
	if err != nil {
		return nil, fmt.Errorf("release %d leases: %w", len(refs), err)
	}
	return stale, nil
}

// Ref is the fencing reference of a leased job.
func Ref(j *job.Job) store.LeaseRef { return store.LeaseRef{ID: j.ID, Token: j.LeaseToken} }

// Refs are the fencing references of leased jobs.
func Refs(jobs []*job.Job) []store.LeaseRef {
	refs := make([]store.LeaseRef, len(jobs))
	for i, j := range jobs {
		refs[i] = Ref(j)
	}
	return refs
}
