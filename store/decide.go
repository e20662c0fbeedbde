package store

import (
	"bytes"
	"cmp"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
)

// The decisions a backend applies but never makes: what a failed attempt
// does, what happens to an expired lease, which statuses an operator may
// cancel or retry. Each backend locks the rows, hands them here and writes
// the plan in its dialect.

// DefaultRescueLimit bounds a rescue pass when RescueParams.Limit is zero.
const DefaultRescueLimit = 1000

// LeaseExpiredOutcome labels the attempt of a rescued job in its error
// history.
const LeaseExpiredOutcome = "lease_expired"

// LeaseExpiredMessage is the error recorded for an attempt whose agent
// stopped renewing its lease (crashed, partitioned or killed). Backends
// append " (held by <agent>)" to the history entry when the lease named one.
const LeaseExpiredMessage = "lease expired before the attempt finished"

// Outcome labels of a failure sent without one.
const (
	OutcomeRetry  = "retry"
	OutcomeFailed = "failed"
)

// RescueLimit is the bound of one rescue pass.
func (p RescueParams) RescueLimit() int {
	if p.Limit <= 0 {
		return DefaultRescueLimit
	}
	return p.Limit
}

// Locked is a running job a backend locked for a decision: its attempts and
// what resolution needs to know of it.
type Locked struct {
	Attempts    int
	MaxAttempts int
	// Change names the job, its workflow and batch; From and To are set by
	// the decision.
	Change JobChange
}

// attemptsLeft reports whether the job may run again.
func (l Locked) attemptsLeft() bool { return l.Attempts < l.MaxAttempts }

// RescuePlan is what one rescue pass does with the expired leases it locked.
type RescuePlan struct {
	Result RescueResult
	// Fails says, per expired lease in input order, whether it fails.
	Fails []bool
	// Failed are the jobs whose attempts are used up, for Resolve.
	Failed []JobChange
}

// PlanRescue decides each expired lease: back to pending while attempts
// remain, failed once they are used up. Result lists keep the input order
// and are never nil.
func PlanRescue(expired []Locked) RescuePlan {
	p := RescuePlan{Result: RescueResult{Requeued: []uuid.UUID{}, Failed: []uuid.UUID{}}, Fails: make([]bool, len(expired))}
	for i, l := range expired {
		p.Fails[i] = !l.attemptsLeft()
		if !p.Fails[i] {
			p.Result.Requeued = append(p.Result.Requeued, l.Change.ID)
			continue
		}
		c := l.Change
		c.From, c.To = job.StatusRunning, job.StatusFailed
		p.Result.Failed = append(p.Result.Failed, c.ID)
		p.Failed = append(p.Failed, c)
	}
	return p
}

// FailDecision is what Fail does with one failure whose lease matched.
type FailDecision struct {
	ID    uuid.UUID
	Error string
	// Outcome is the label of the attempt: the caller's, else OutcomeRetry
	// or OutcomeFailed.
	Outcome string
	// Retry sends the job back to pending, due at RetryAt; otherwise it
	// fails for good at the plan's time.
	Retry   bool
	RetryAt time.Time
}

// FailPlan is what one Fail call does.
type FailPlan struct {
	// Decisions follow the order of the locked rows given to PlanFailures.
	Decisions []FailDecision
	// Failed are the jobs that fail for good, for Resolve.
	Failed []JobChange
	Result FailResult
}

// PlanFailures decides each failure of p whose job is among locked (the
// running jobs whose token matched, in the backend's lock order): it goes
// back to pending when the caller asked for a retry and attempts remain,
// and fails otherwise. Failures of other jobs are stale. Result lists are in
// input order, each id once, and never nil.
func PlanFailures(p FailParams, at time.Time, locked []Locked) FailPlan {
	byID := make(map[uuid.UUID]Failure, len(p.Failures))
	for _, f := range p.Failures {
		byID[f.ID] = f
	}
	plan := FailPlan{Result: FailResult{Retried: []uuid.UUID{}, Failed: []uuid.UUID{}, Stale: []uuid.UUID{}}}
	retried := make(map[uuid.UUID]bool, len(locked))
	for _, l := range locked {
		f := byID[l.Change.ID]
		d := FailDecision{ID: f.ID, Error: f.Error, Outcome: f.Outcome, Retry: f.Retry && l.attemptsLeft()}
		if d.Retry {
			d.RetryAt = f.RetryDue(at)
		} else {
			c := l.Change
			c.From, c.To = job.StatusRunning, job.StatusFailed
			plan.Failed = append(plan.Failed, c)
		}
		if d.Outcome == "" {
			d.Outcome = OutcomeFailed
			if d.Retry {
				d.Outcome = OutcomeRetry
			}
		}
		retried[d.ID] = d.Retry
		plan.Decisions = append(plan.Decisions, d)
	}
	seen := make(map[uuid.UUID]bool, len(p.Failures))
	for _, f := range p.Failures {
		if seen[f.ID] {
			continue
		}
		seen[f.ID] = true
		switch retry, ok := retried[f.ID]; {
		case !ok:
			plan.Result.Stale = append(plan.Result.Stale, f.ID)
		case retry:
			plan.Result.Retried = append(plan.Result.Retried, f.ID)
		default:
			plan.Result.Failed = append(plan.Result.Failed, f.ID)
		}
	}
	return plan
}

// Transition is an operator's change of one job: the statuses it may start
// from and the verb its ErrConflict names.
type Transition struct {
	// Op is the verb of the conflict message: "cannot <Op> a <status> job".
	Op   string
	From []job.Status
	To   job.Status
}

// The operator's transitions. A running job may be cancelled (its lease is
// cleared, so the late answer is stale); only a job that ended without
// success may be retried.
var (
	CancelTransition = Transition{Op: "cancel", From: []job.Status{job.StatusPending, job.StatusRunning}, To: job.StatusCancelled}
	RetryTransition  = Transition{Op: "retry", From: []job.Status{job.StatusFailed, job.StatusCancelled}, To: job.StatusPending}
)

// Allows reports whether a job in status current may take the transition.
func (t Transition) Allows(current job.Status) bool { return slices.Contains(t.From, current) }

// Conflict is the error for a job in status current that may not take the
// transition: a *StateError, which is an ErrConflict.
func (t Transition) Conflict(current job.Status) error {
	return &StateError{Op: t.Op, Current: current}
}

// FromStrings is From for a SQL guard bound as a text array or list.
func (t Transition) FromStrings() []string {
	out := make([]string, len(t.From))
	for i, s := range t.From {
		out[i] = string(s)
	}
	return out
}

// Stale is the stale list of Extend, Release and Complete: the ids of refs
// that are not among done (the jobs whose lease matched and changed), in the
// order asked. It is never nil, so "nothing stale" reads alike on every
// backend.
func Stale(refs []LeaseRef, done []uuid.UUID) []uuid.UUID {
	matched := make(map[uuid.UUID]bool, len(done))
	for _, id := range done {
		matched[id] = true
	}
	out := []uuid.UUID{}
	for _, r := range refs {
		if !matched[r.ID] {
			out = append(out, r.ID)
		}
	}
	return out
}

// LeaseOrder sorts leased jobs in the order Lease picks them (priority
// DESC, scheduled_at, id), whatever order the database returned the
// updated rows in, and returns them; none is an empty slice, never nil.
func LeaseOrder(jobs []*job.Job) []*job.Job {
	if jobs == nil {
		return []*job.Job{}
	}
	slices.SortFunc(jobs, func(a, b *job.Job) int {
		if a.Priority != b.Priority {
			return cmp.Compare(b.Priority, a.Priority)
		}
		if c := a.ScheduledAt.Compare(b.ScheduledAt); c != 0 {
			return c
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	return jobs
}
