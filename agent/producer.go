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
	"github.com/hammerwork-go/hw-agent/metrics"
	"github.com/hammerwork-go/hw-agent/store"
)

// slots bounds in-flight requests: agent.concurrency across all producers,
// and each producer's own cap. A producer reserves slots before it leases,
// so a lease never asks for more jobs than can be dispatched at once.
type slots struct {
	mu     sync.Mutex
	free   int
	shares []*share
}

// share is one producer's part of the slots, owned by slots and guarded by
// its mutex; the producer holds it only to name itself.
type share struct {
	limit   int // the producer's cap; 0: only the global cap
	active  int
	starved bool
	wake    chan struct{} // the producer's wake-ups
}

// join adds a producer with cap limit (0: only the global cap) that wakes
// on wake, and returns its share.
func (s *slots) join(limit int, wake chan struct{}) *share {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := &share{limit: limit, wake: wake}
	s.shares = append(s.shares, sh)
	return sh
}

// reserve takes as many slots as sh may use now: the smaller of the global
// free count and sh's own free count. Zero marks sh as starved, so the next
// slot freed anywhere wakes it.
func (s *slots) reserve(sh *share) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.free
	if sh.limit > 0 {
		n = min(n, sh.limit-sh.active)
	}
	n = max(n, 0)
	s.free -= n
	sh.active += n
	sh.starved = n == 0
	return n
}

// unreserve returns n reserved slots sh did not fill. It wakes starved
// producers but not sh's, which has just seen its queues run short.
func (s *slots) unreserve(sh *share, n int) {
	if n > 0 {
		s.put(sh, n, false)
	}
}

// done frees the slot of one of sh's finished requests and wakes its
// producer: its queues were busy a moment ago, so they are worth asking
// again.
func (s *slots) done(sh *share) { s.put(sh, 1, true) }

func (s *slots) put(sh *share, n int, wakeSelf bool) {
	s.mu.Lock()
	s.free += n
	sh.active -= n
	var wake []chan struct{}
	for _, q := range s.shares {
		if q.starved || (wakeSelf && q == sh) {
			wake = append(wake, q.wake)
		}
	}
	s.mu.Unlock()
	for _, w := range wake {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// producerConfig is what a producer uses, handed over by the agent.
type producerConfig struct {
	sel      selection
	acquirer lease.Acquirer
	// due reads the database's clock and the queues' ready priorities and
	// next due jobs.
	due   store.DueSource
	slots *slots
	// health gates leasing on the app's health; nil: no gate.
	health *healthChecker
	// outage is the agent's one tracker, shared by all its producers.
	outage  *dbOutage
	metrics *metrics.Metrics
	log     *slog.Logger
	poll    time.Duration
	// busyPoll, when set, is the first wait after a lease that came up
	// short but found jobs or answered a wake-up; each quiet lease after it
	// doubles the wait, up to poll. Zero: always poll. The agent sets it for stores that cannot
	// announce enqueues, where polling is how jobs other agents enqueue or
	// free are found.
	busyPoll time.Duration
	// start hands a leased job on; the job's request calls done when it
	// ends, freeing its slot.
	start func(j *job.Job, done func())
	// release hands jobs back without spending their attempt.
	release func(jobs []*job.Job, why string)
	// leased counts leased jobs.
	leased func(jobs []*job.Job)
}

// mustValidate panics on a producerConfig the agent built wrong: a
// programming error, not a configuration one.
func (c *producerConfig) mustValidate() *producerConfig {
	for name, missing := range map[string]bool{
		"acquirer.Store": c.acquirer.Store == nil, "due": c.due == nil, "slots": c.slots == nil,
		"outage": c.outage == nil, "log": c.log == nil, "poll": c.poll <= 0,
		"start": c.start == nil, "release": c.release == nil, "leased": c.leased == nil,
	} {
		if missing {
			panic("agent: producerConfig." + name + " is not set")
		}
	}
	return c
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
	cfg producerConfig
	sel lease.Selection
	// weights, when set, splits each lease among priority levels by
	// weighted draw (rng, used by the producer's goroutine only); nil
	// leases in strict priority order.
	weights PriorityWeights
	rng     *rand.Rand
	gate    *dispatchGate // the queue's rate limit; nil: none

	// backoff spaces this producer's lease calls while they fail, and
	// backingOff is set from the first failure to the next success; those
	// two are used by its goroutine only.
	backoff    *backoff.ExponentialBackOff
	backingOff bool
	// wait is the last idle wait with busyPoll set, and woken says the
	// next lease answers a wake-up (both used by the goroutine only).
	wait  time.Duration
	woken bool

	// share is this producer's part of the slots; wake is its wake-ups.
	share *share
	wake  chan struct{}
	// finished frees one slot of share: done of every job this producer
	// starts.
	finished func()
	// calls carries the lease calls, which do not stop with the producer's
	// context (set by its goroutine, used by it only).
	calls context.Context

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

// newProducer builds the producer of cfg.sel.
func newProducer(cfg producerConfig) *producer {
	cfg.mustValidate()
	wake := make(chan struct{}, 1)
	p := &producer{
		cfg: cfg, sel: cfg.sel.Selection, gate: newDispatchGate(cfg.sel.rate, cfg.sel.burst),
		backoff: newDBBackoff(cfg.poll),
		wait:    cfg.poll,
		share:   cfg.slots.join(cfg.sel.limit, wake),
		wake:    wake,
	}
	p.finished = func() { cfg.slots.done(p.share) }
	if cfg.sel.weights.weighted() {
		p.weights = cfg.sel.weights
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
	p.calls = context.WithoutCancel(ctx)
	c := &p.cfg
	for {
		if c.health != nil {
			select {
			case <-c.health.ready():
			case <-ctx.Done():
				return
			}
		}
		n := c.slots.reserve(p.share)
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
			p.woken = true
		default:
		}
		if p.gate != nil {
			allowed, wait := p.gate.available(time.Now(), n)
			c.slots.unreserve(p.share, n-allowed)
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
		c.slots.unreserve(p.share, n-len(jobs))
		if p.gate != nil {
			p.gate.spend(time.Now(), len(jobs))
		}
		if err == nil {
			p.backingOff = false
			c.outage.ok()
		}
		if ctx.Err() != nil {
			// Shutdown began during the lease: hand the jobs straight back.
			c.release(jobs, "agent stopping")
			for range jobs {
				p.finished()
			}
			return
		}
		c.log.Debug("leased jobs", "queues", p.sel.String(), "asked", n, "leased", len(jobs))
		c.leased(jobs)
		for _, j := range jobs {
			c.start(j, p.finished)
		}
		if err != nil {
			if !p.backOff(ctx, err) {
				return
			}
			continue
		}
		if len(jobs) < n {
			busy := len(jobs) > 0 || p.woken
			p.woken = false
			if !p.idle(ctx, busy, since) {
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
	p.cfg.metrics.DBError()
	p.cfg.outage.failed("lease", err)
	if !p.backingOff {
		p.backoff.Reset()
		p.backingOff = true
	}
	wait := p.backoff.NextBackOff()
	p.cfg.log.Debug("lease failed; backing off", "queues", p.sel.String(), "retry_in", wait, "error", err)
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
	acq := p.cfg.acquirer
	if p.weights == nil {
		return acq.Acquire(p.calls, p.sel, n)
	}
	ready, err := p.cfg.due.ReadyPriorities(p.calls, store.ReadyPrioritiesParams{
		Queues: p.sel.Queues, ExcludeQueues: p.sel.Exclude,
	})
	if err != nil {
		return nil, fmt.Errorf("find ready priorities of %s: %w", p.sel, err)
	}
	var jobs []*job.Job
	for _, lc := range p.weights.plan(ready, n, p.rng) {
		sel := p.sel
		sel.Priorities = []job.Priority{lc.level}
		got, err := acq.Acquire(p.calls, sel, lc.n)
		jobs = append(jobs, got...)
		if err != nil {
			return jobs, err
		}
	}
	if left := n - len(jobs); left > 0 {
		got, err := acq.Acquire(p.calls, p.sel, left)
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
	now, err := p.cfg.due.DatabaseNow(p.calls)
	if err != nil {
		return time.Time{}
	}
	return now
}

// idle waits poll_interval ±20% (less while the queues were busy a moment
// ago: pollWait), cut short by the next delayed job of p's queues falling
// due or a wake-up; false when the producer is stopping. busy says whether
// the lease that came up short found jobs or answered a wake-up. since is
// the database's time when the lease that came up short began: a job that fell due since then was not
// leased, so "next due" counts from there and such a job ends the wait at
// once. The wait is a delay by the database's clock, so an agent whose host
// clock is off neither wakes early nor oversleeps.
func (p *producer) idle(ctx context.Context, busy bool, since time.Time) bool {
	d := maintenance.Jittered(p.pollWait(busy), 0.2)
	if in, ok := p.nextDue(since); ok {
		d = min(d, in)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.wake:
		p.woken = true
	case <-ctx.Done():
		return false
	}
	return true
}

// pollWait is the wait before the next lease after one that came up short.
// Without busyPoll it is poll_interval. With it, a busy lease (one that
// found jobs, or answered a wake-up) means the queues are busy, likely with
// jobs other agents enqueue or free too, which this agent hears of from no
// one: the wait drops to busyPoll, and doubles with each quiet lease after
// it, back to poll_interval. A busy queue is thus polled every busyPoll or
// so, and an idle one costs a few extra leases before it is polled at
// poll_interval again. A wake-up counts as busy because on MySQL/MariaDB a
// lease can come back without a ready job that another lease's scan held
// locked for that moment (SKIP LOCKED; producers woken together lease
// together): the short poll that follows finds it.
func (p *producer) pollWait(busy bool) time.Duration {
	if p.cfg.busyPoll <= 0 {
		return p.cfg.poll
	}
	if busy {
		p.wait = p.cfg.busyPoll
	} else {
		p.wait = min(2*p.wait, p.cfg.poll)
	}
	return min(p.wait, p.cfg.poll)
}

// nextDue asks how long until the next delayed job of p's queues that
// falls due after since is due, by the database's clock. An error only
// costs the early wake-up, so it is logged (at DEBUG while the agent is in
// a database outage, which is logged once) and the poll goes on.
func (p *producer) nextDue(since time.Time) (time.Duration, bool) {
	in, ok, err := store.NextDueIn(p.calls, p.cfg.due, store.NextDueParams{
		Queues: p.sel.Queues, ExcludeQueues: p.sel.Exclude, Now: since,
	})
	if err != nil {
		p.cfg.metrics.DBError()
		level := slog.LevelWarn
		if p.cfg.outage.Down() {
			level = slog.LevelDebug
		}
		p.cfg.log.Log(p.calls, level, "finding the next due job failed; polling at poll_interval", "queues", p.sel.String(), "error", err)
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
