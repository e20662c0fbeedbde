package agent

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/lease"
	"github.com/hammerwork-go/hw-agent/maintenance"
	"github.com/hammerwork-go/hw-agent/store"
)

// slots bounds in-flight requests: agent.concurrency across all producers,
// and each producer's own cap. A producer reserves slots before it leases,
// so a lease never asks for more jobs than can be dispatched at once.
type slots struct {
	mu        sync.Mutex
	free      int
	producers []*producer
}

// reserve takes as many slots as p may use now: the smaller of the global
// free count and p's own free count. Zero marks p as starved, so the next
// slot freed anywhere wakes it.
func (s *slots) reserve(p *producer) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.free
	if p.limit > 0 {
		n = min(n, p.limit-p.active)
	}
	n = max(n, 0)
	s.free -= n
	p.active += n
	p.starved = n == 0
	return n
}

// unreserve returns n reserved slots p did not fill. It wakes starved
// producers but not p, which has just seen its queues run short.
func (s *slots) unreserve(p *producer, n int) {
	if n > 0 {
		s.put(p, n, false)
	}
}

// done frees the slot of one of p's finished requests and wakes p: its
// queues were busy a moment ago, so they are worth asking again.
func (s *slots) done(p *producer) { s.put(p, 1, true) }

func (s *slots) put(p *producer, n int, wakeSelf bool) {
	s.mu.Lock()
	s.free += n
	p.active -= n
	var wake []*producer
	for _, q := range s.producers {
		if q.starved || (wakeSelf && q == p) {
			wake = append(wake, q)
		}
	}
	s.mu.Unlock()
	for _, q := range wake {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// producer leases jobs of one queue selection and starts one goroutine per
// job. Every [[queue]] the agent serves has its own producer, so a busy
// queue cannot take the slots of a quiet one beyond its concurrency cap.
// It never prefetches: a lease asks for exactly the free slots, giving up a
// little throughput so that jobs this agent cannot start at once stay
// available to other agents. An empty poll waits poll_interval (±20%
// jitter, so agents drift apart), or less when a delayed job falls due
// sooner, unless one of its jobs finishes first. A failed lease waits
// longer each time, from poll_interval doubling up to maxLeaseBackoff: a
// database that is down gets one lease call every few seconds from each
// producer, not one per poll, at the cost of up to maxLeaseBackoff of idle
// time once it is back.
type producer struct {
	a     *Agent
	sel   lease.Selection
	limit int // this producer's cap; 0: only the global cap
	// weights, when set, splits each lease among priority levels by
	// weighted draw (rng, used by the producer's goroutine only); nil
	// leases in strict priority order.
	weights PriorityWeights
	rng     *rand.Rand
	gate    *dispatchGate // the queue's rate limit; nil: none

	// outage is shared by the agent's producers, so an outage they all see
	// is logged and counted once. backoff spaces this producer's lease
	// calls while they fail, and backingOff is set from the first failure
	// to the next success; those two are used by its goroutine only.
	outage     *dbOutage
	backoff    *backoff.ExponentialBackOff
	backingOff bool

	// active and starved are guarded by slots.mu.
	active  int
	starved bool
	wake    chan struct{}

	maintenance.Loop
}

// maxLeaseBackoff caps the wait between failing lease calls, unless
// poll_interval is longer.
const maxLeaseBackoff = 5 * time.Second

// newDBBackoff spaces the calls of a loop while the database fails them:
// poll after the first failure, twice as long after each further one, up
// to maxLeaseBackoff (or poll when longer), ±20% so agents drift apart.
func newDBBackoff(poll time.Duration) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(poll),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(max(poll, maxLeaseBackoff)),
		backoff.WithRandomizationFactor(0.2),
		backoff.WithMaxElapsedTime(0),
	)
}

// newProducer builds the producer of sel; outage is the agent's one
// tracker, shared by all its producers.
func newProducer(a *Agent, sel selection, outage *dbOutage) *producer {
	p := &producer{
		a: a, sel: sel.Selection, limit: sel.limit, gate: newDispatchGate(sel.rate, sel.burst), wake: make(chan struct{}, 1),
		outage:  outage,
		backoff: newDBBackoff(a.cfg.Agent.PollInterval.D()),
	}
	if sel.weights.weighted() {
		p.weights = sel.weights
		p.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return p
}

// Start leases until ctx ends or Stop. Jobs already leased are not stopped
// by either; the agent drains them.
func (p *producer) Start(ctx context.Context) error { return p.Run(ctx, p.loop) }

// Stop ends leasing and waits for a lease call in progress to return.
func (p *producer) Stop() { p.Loop.Stop() }

func (p *producer) loop(ctx context.Context) {
	a := p.a
	for {
		if a.health != nil {
			select {
			case <-a.health.ready():
			case <-ctx.Done():
				return
			}
		}
		n := a.slots.reserve(p)
		if n == 0 {
			select {
			case <-p.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		// A wake-up that came before this lease is answered by it.
		select {
		case <-p.wake:
		default:
		}
		if p.gate != nil {
			allowed, wait := p.gate.available(time.Now(), n)
			a.slots.unreserve(p, n-allowed)
			if allowed == 0 {
				if !p.sleep(ctx, wait) {
					return
				}
				continue
			}
			n = allowed
		}
		since := p.databaseNow()
		jobs, err := p.lease(n)
		a.slots.unreserve(p, n-len(jobs))
		if p.gate != nil {
			p.gate.spend(time.Now(), len(jobs))
		}
		if err == nil {
			p.backingOff = false
			p.outage.ok()
		}
		if ctx.Err() != nil {
			// Shutdown began during the lease: hand the jobs straight back.
			a.release(jobs, "agent stopping")
			for range jobs {
				a.slots.done(p)
			}
			return
		}
		a.log.Debug("leased jobs", "queues", p.sel.String(), "asked", n, "leased", len(jobs))
		a.countLeased(jobs)
		for _, j := range jobs {
			a.inflight.Add(1)
			go a.work(p, j)
		}
		if err != nil {
			if !p.backOff(ctx, err) {
				return
			}
			continue
		}
		if len(jobs) < n {
			if !p.idle(ctx, true, since) {
				return
			}
		}
	}
}

// backOff records a failed lease and waits before the next: poll_interval
// after the first failure, twice as long after each further one, up to the
// cap, ±20% so agents drift apart. Wake-ups do not cut it short; a job
// finishing says nothing about the database. False when the producer is
// stopping.
func (p *producer) backOff(ctx context.Context, err error) bool {
	p.a.metrics.DBError()
	p.outage.failed("lease", err)
	if !p.backingOff {
		p.backoff.Reset()
		p.backingOff = true
	}
	wait := p.backoff.NextBackOff()
	p.a.log.Debug("lease failed; backing off", "queues", p.sel.String(), "retry_in", wait, "error", err)
	return p.sleep(ctx, wait)
}

// lease takes up to n jobs. In strict order that is one lease. With
// weights, the n slots are split among the levels that have jobs due by
// weighted draw, each drawn level is leased on its own (the lease index
// leads with queue and priority, so each stays an index walk), and slots a
// level could not fill go to one strict lease. Lease calls do not stop with
// the producer's ctx: a lease committed but unseen would cost its jobs an
// attempt at rescue. Jobs leased before an error are returned with it.
func (p *producer) lease(n int) ([]*job.Job, error) {
	a := p.a
	if p.weights == nil {
		return a.acquirer.Acquire(a.bg, p.sel, n)
	}
	ready, err := a.store.ReadyPriorities(a.bg, store.ReadyPrioritiesParams{
		Queues: p.sel.Queues, ExcludeQueues: p.sel.Exclude,
	})
	if err != nil {
		return nil, fmt.Errorf("find ready priorities of %s: %w", p.sel, err)
	}
	var jobs []*job.Job
	for _, lc := range p.weights.plan(ready, n, p.rng) {
		sel := p.sel
		sel.Priorities = []job.Priority{lc.level}
		got, err := a.acquirer.Acquire(a.bg, sel, lc.n)
		jobs = append(jobs, got...)
		if err != nil {
			return jobs, err
		}
	}
	if left := n - len(jobs); left > 0 {
		got, err := a.acquirer.Acquire(a.bg, p.sel, left)
		jobs = append(jobs, got...)
		if err != nil {
			return jobs, err
		}
	}
	return jobs, nil
}

// databaseNow is the database's time before a lease, for idle's "since";
// zero when the store cannot tell (the lease that follows then fails too,
// or a zero since only costs the early wake-up of a job that fell due
// during the lease).
func (p *producer) databaseNow() time.Time {
	now, err := p.a.due.DatabaseNow(p.a.bg)
	if err != nil {
		return time.Time{}
	}
	return now
}

// idle waits poll_interval ±20%, cut short by the next delayed job of p's
// queues falling due (when checkDue) or one of p's jobs finishing; false
// when the producer is stopping. since is the database's time when the
// lease that came up short began: a job that fell due since then was not
// leased, so "next due" counts from there and such a job ends the wait at
// once. The wait is a delay by the database's clock, so an agent whose host
// clock is off neither wakes early nor oversleeps.
func (p *producer) idle(ctx context.Context, checkDue bool, since time.Time) bool {
	d := p.a.cfg.Agent.PollInterval.D()
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	if checkDue {
		if in, ok := p.nextDue(since); ok {
			d = min(d, in)
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.wake:
	case <-ctx.Done():
		return false
	}
	return true
}

// nextDue asks how long until the next delayed job of p's queues that
// falls due after since is due, by the database's clock. An error only
// costs the early wake-up, so it is logged (at DEBUG while the agent is in
// a database outage, which is logged once) and the poll goes on.
func (p *producer) nextDue(since time.Time) (time.Duration, bool) {
	in, ok, err := store.NextDueIn(p.a.bg, p.a.due, store.NextDueParams{
		Queues: p.sel.Queues, ExcludeQueues: p.sel.Exclude, Now: since,
	})
	if err != nil {
		p.a.metrics.DBError()
		level := slog.LevelWarn
		if p.outage.Down() {
			level = slog.LevelDebug
		}
		p.a.log.Log(p.a.bg, level, "finding the next due job failed; polling at poll_interval", "queues", p.sel.String(), "error", err)
		return 0, false
	}
	return in, ok
}

// sleep waits d (the rate limit's next token, or a backoff); false when
// the producer is stopping.
func (p *producer) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
