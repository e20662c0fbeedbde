package agent

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hammerwork-go/hw-agent/lease"
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
// jitter, so agents drift apart) unless one of its jobs finishes first.
type producer struct {
	a     *Agent
	sel   lease.Selection
	limit int // this producer's cap; 0: only the global cap

	// active and starved are guarded by slots.mu.
	active  int
	starved bool
	wake    chan struct{}

	runner
}

func newProducer(a *Agent, sel lease.Selection, limit int) *producer {
	return &producer{a: a, sel: sel, limit: limit, wake: make(chan struct{}, 1)}
}

// Start leases until ctx ends or Stop. Jobs already leased are not stopped
// by either; the agent drains them.
func (p *producer) Start(ctx context.Context) error { return p.start(ctx, p.loop) }

// Stop ends leasing and waits for a lease call in progress to return.
func (p *producer) Stop() { p.stop() }

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
		// The lease call does not stop with ctx: a lease committed but
		// unseen would cost its jobs an attempt at rescue.
		jobs, err := a.acquirer.Acquire(a.bg, p.sel, n)
		a.slots.unreserve(p, n-len(jobs))
		if err != nil {
			a.metrics.DBError()
			a.log.Error("lease failed; retrying after poll_interval", "queues", p.sel.String(), "error", err)
			if !p.idle(ctx) {
				return
			}
			continue
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
		if len(jobs) < n && !p.idle(ctx) {
			return
		}
	}
}

// idle waits poll_interval ±20%, or until one of p's jobs finishes; false
// when the producer is stopping.
func (p *producer) idle(ctx context.Context) bool {
	d := p.a.cfg.Agent.PollInterval.D()
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
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
