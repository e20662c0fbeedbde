// Package agent is hw-agent's run loop: per-queue producers lease jobs into a
// bounded number of in-flight slots, each job is POSTed to the app in its own
// goroutine, outcomes are written in batches, leases are kept alive while
// requests run, and a shutdown drains what is in flight.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/lease"
	"github.com/hammerwork-go/hw-agent/maintenance"
	"github.com/hammerwork-go/hw-agent/metrics"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/tracing"
)

// Params is what an Agent runs with.
type Params struct {
	Config Config
	Store  store.Store
	// Logger: nil discards logs.
	Logger *slog.Logger
	// HTTPClient delivers jobs and probes app.health_url; nil uses the
	// dispatch package's default client.
	HTTPClient *http.Client
	// Tracer records a span per attempt; nil leaves tracing off.
	Tracer *tracing.Tracer
	// Metrics counts jobs and requests; nil records none.
	Metrics *metrics.Metrics
	// Clock is the wall clock of the agent's host; nil means time.Now. It
	// is read only for what faces the app, whose host shares it (the
	// Hammerwork-Deadline header, signature timestamps, Retry-After dates);
	// every due, expired or retention question is the database's clock's.
	// Tests skew it to prove that.
	Clock func() time.Time
}

// busyPoll is how soon a producer polls again after a lease that found
// jobs or answered a wake-up, on stores that cannot announce enqueues
// (MySQL/MariaDB, SQLite): there, jobs that other agents enqueue or make
// ready (a workflow child of a parent they completed) are found only by
// polling. Each quiet lease doubles the wait back to poll_interval, so an
// idle agent polls as before. This agent's own enqueues and completions
// wake its producers at once (Wake), whatever the store.
const busyPoll = 50 * time.Millisecond

// Causes of a request cancelled by the agent, so the goroutine that ran it
// knows what to record.
var (
	errDrain     = errors.New("agent stopping: drain_timeout passed")
	errLeaseLost = errors.New("lease lost: the job was rescued or cancelled")
)

// Agent leases jobs and delivers them to the app. Run it once.
type Agent struct {
	cfg   Config
	store store.Store
	// due answers "how long until the next delayed job" by the database's
	// clock: the store with its DatabaseNow.
	due        store.DueSource
	log        *slog.Logger
	dispatcher *dispatch.Dispatcher
	acquirer   lease.Acquirer
	slots      *slots
	producers  []*producer
	health     *healthChecker   // nil without app.health_url
	listener   *enqueueListener // nil when the store cannot announce enqueues
	heartbeat  *lease.Heartbeat
	rescuer    *maintenance.Rescuer
	expirer    *maintenance.Expirer
	cleaner    *maintenance.Cleaner // nil when retention.interval is 0
	scheduler  *maintenance.Scheduler
	relay      *maintenance.Relay
	webhooks   *webhook.Sink
	completer  *completer
	// db is the agent's one database outage tracker: every loop that
	// reports to it shares it, so an outage is logged and counted once.
	db      *dbOutage
	tracer  *tracing.Tracer
	metrics *metrics.Metrics
	clock   func() time.Time
	ended   recentIDs // workflows whose end was counted

	ran atomic.Bool
	// started is set once Run has applied the configuration's schedules and
	// webhooks and started every service: before it, a job enqueued through
	// the API could miss a configured webhook's events.
	started atomic.Bool
	// bg carries store calls that must finish even while stopping; work is
	// the parent of every request and is cancelled only when the drain
	// gives up. Both are set by Run before any goroutine reads them.
	bg         context.Context
	workCtx    context.Context
	cancelWork context.CancelCauseFunc
	inflight   sync.WaitGroup

	drainedMu sync.Mutex
	drained   []*job.Job // requests cancelled by the drain, released at the end
}

// New validates p.Config and builds a stopped agent.
func New(p Params) (*Agent, error) {
	cfg := p.Config
	if cfg.Agent.ID == "" {
		cfg.Agent.ID = defaultAgentID()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if p.Store == nil {
		return nil, errors.New("agent: no store")
	}
	due, ok := p.Store.(store.DueSource)
	if !ok {
		return nil, fmt.Errorf("agent: store %T cannot read its database's clock", p.Store)
	}
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("agent_id", cfg.Agent.ID)
	leaseFor := cfg.Agent.LeaseDuration.D()
	clock := p.Clock
	if clock == nil {
		clock = time.Now
	}
	db := &dbOutage{log: log, metrics: p.Metrics}
	a := &Agent{
		cfg:        cfg,
		store:      p.Store,
		due:        due,
		log:        log,
		dispatcher: dispatch.New(p.HTTPClient, dispatch.WithLogger(log)),
		acquirer:   lease.Acquirer{Store: p.Store, AgentID: cfg.Agent.ID, Duration: leaseFor},
		slots:      &slots{free: cfg.Agent.Concurrency},
		heartbeat:  lease.NewHeartbeat(lease.HeartbeatConfig{Store: p.Store, Duration: leaseFor, Logger: log}),
		rescuer:    maintenance.NewRescuer(maintenance.RescuerConfig{Store: p.Store, Interval: cfg.Agent.RescueInterval.D(), Logger: log, Outage: db}),
		expirer:    maintenance.NewExpirer(maintenance.ExpirerConfig{Store: p.Store, Interval: cfg.Agent.RescueInterval.D(), Logger: log, Outage: db}),
		completer:  newCompleter(p.Store, log),
		tracer:     p.Tracer,
		metrics:    p.Metrics,
		clock:      clock,
		db:         db,
	}
	a.dispatcher.UseClock(clock)
	if a.tracer == nil {
		a.tracer = tracing.NewTracer(nil)
	}
	a.scheduler = maintenance.NewScheduler(maintenance.SchedulerConfig{
		Store: p.Store, Interval: cfg.Schedules.Interval.D(), Trace: a.tracer.ScheduleRun, Wake: a.Wake,
		Metrics: p.Metrics, Logger: log, Outage: db,
	})
	relay := cfg.Events.relayConfig()
	relay.Store, relay.AgentID, relay.Metrics, relay.Logger, relay.Outage = p.Store, cfg.Agent.ID, p.Metrics, log, db
	a.webhooks = webhook.New(webhook.Config{AgentID: cfg.Agent.ID, Logger: log})
	relay.Sinks = map[string]events.Sink{store.SubscriberWebhook: a.webhooks}
	a.relay = maintenance.NewRelay(relay)
	if cfg.Retention.Interval > 0 {
		a.cleaner = maintenance.NewCleaner(maintenance.CleanerConfig{
			Store: p.Store, Clock: due, Interval: cfg.Retention.Interval.D(), BatchSize: cfg.Retention.BatchSize,
			Retention: cfg.Retention.For, Logger: log, Outage: db,
		})
	}
	a.completer.count = a.countFinished
	a.completer.dbError = a.metrics.DBError
	a.completer.wake = a.Wake
	if cfg.App.HealthURL != "" {
		client := p.HTTPClient
		if client == nil {
			client = &http.Client{}
		}
		a.health = newHealthChecker(cfg.App.HealthURL, client, cfg.App.HealthInterval.D(), log)
		a.health.metrics = p.Metrics
	}
	waiter, notifies := p.Store.(jobWaiter)
	var busy time.Duration
	if !notifies {
		busy = busyPoll
	}
	for _, sel := range cfg.selections() {
		a.producers = append(a.producers, newProducer(producerConfig{
			sel: sel, acquirer: a.acquirer, due: due, slots: a.slots, health: a.health,
			outage: db, metrics: p.Metrics, log: log, poll: cfg.Agent.PollInterval.D(), busyPoll: busy,
			start: a.start, release: a.release, leased: a.countLeased,
		}))
	}
	if notifies {
		a.listener = newEnqueueListener(waiter, p.Store.Ping, a.producers, cfg.Agent.PollInterval.D(), a.db, log)
	}
	return a, nil
}

type selection struct {
	lease.Selection
	limit int
	// weights is the producer's weighted priority selection; empty: strict.
	weights PriorityWeights
	// rate and burst limit the producer's dispatches; zero rate: no limit.
	rate  RateLimit
	burst int
}

// selections splits the queues this agent serves among producers: one per
// configured [[queue]] it serves, with that queue's concurrency; one for the
// other queues named in agent.queues; and with "*", one for every queue
// without a producer of its own.
func (c Config) selections() []selection {
	all := slices.Contains(c.Agent.Queues, "*")
	var sels []selection
	var own []string
	for _, q := range c.Queues {
		if all || slices.Contains(c.Agent.Queues, q.Name) {
			weights := q.PriorityWeights
			if weights == nil {
				weights = c.Agent.PriorityWeights
			}
			sels = append(sels, selection{Selection: lease.Selection{Queues: []string{q.Name}}, limit: q.Concurrency,
				weights: weights, rate: q.RateLimit, burst: q.Burst})
			own = append(own, q.Name)
		}
	}
	if all {
		return append(sels, selection{Selection: lease.Selection{Exclude: own}, weights: c.Agent.PriorityWeights})
	}
	var rest []string
	for _, q := range c.Agent.Queues {
		if !slices.Contains(own, q) && !slices.Contains(rest, q) {
			rest = append(rest, q)
		}
	}
	if len(rest) > 0 {
		sels = append(sels, selection{Selection: lease.Selection{Queues: rest}, weights: c.Agent.PriorityWeights})
	}
	return sels
}

// AppHealthy reports whether the app's health check passes; always true
// without app.health_url.
func (a *Agent) AppHealthy() bool {
	return a.health == nil || a.health.Healthy()
}

// service is a background loop of the agent.
type service interface {
	Start(ctx context.Context) error
	Stop()
}

// Run leases and delivers jobs until ctx ends, then drains: leasing stops at
// once, requests in flight get agent.drain_timeout to finish, the rest are
// cancelled and released without spending their attempt, and pending
// outcomes are written. It returns nil after a clean drain, and an error
// only when the agent cannot start.
func (a *Agent) Run(ctx context.Context) error {
	if !a.ran.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	pending, err := a.store.PendingMigrations(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it started: nothing to drain
		}
		return fmt.Errorf("check database migrations: %w", err)
	}
	if len(pending) > 0 {
		return fmt.Errorf("%w: pending %s", store.ErrNotMigrated, strings.Join(pending, ", "))
	}
	if err := a.applySchedules(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("apply the configuration's schedules: %w", err)
	}
	if err := a.applyWebhooks(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("apply the configuration's webhooks: %w", err)
	}

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	a.bg = bg
	a.workCtx, a.cancelWork = context.WithCancelCause(bg)
	defer a.cancelWork(nil)

	var services []service
	if a.health != nil {
		services = append(services, a.health)
	}
	services = append(services, a.rescuer, a.expirer, a.scheduler, a.relay, a.heartbeat, a.completer)
	if a.listener != nil {
		services = append(services, a.listener)
	}
	if a.cleaner != nil {
		services = append(services, a.cleaner)
	}
	stopAll := func() {
		for i := len(services) - 1; i >= 0; i-- {
			services[i].Stop()
		}
	}
	for _, s := range services {
		if err := s.Start(bg); err != nil {
			stopAll()
			return fmt.Errorf("start agent: %w", err)
		}
	}
	for _, p := range a.producers {
		if err := p.Start(ctx); err != nil {
			a.stopProducers()
			stopAll()
			return fmt.Errorf("start producer for %s: %w", p.sel, err)
		}
	}
	a.started.Store(true)
	a.log.Info("agent started", "queues", a.cfg.Agent.Queues, "concurrency", a.cfg.Agent.Concurrency, "producers", len(a.producers))

	<-ctx.Done()
	a.stopProducers()
	a.drain()
	stopAll()
	a.dispatcher.CloseIdleConnections()
	a.webhooks.CloseIdleConnections()
	if a.health != nil {
		a.health.client.CloseIdleConnections()
	}
	a.log.Info("agent stopped")
	return nil
}

// Started reports whether Run has finished starting: the configuration's
// schedules and webhooks are in the database and every service runs. The
// API's readiness waits for it.
func (a *Agent) Started() bool { return a.started.Load() }

func (a *Agent) stopProducers() {
	for _, p := range a.producers {
		p.Stop()
	}
}

// drain waits up to drain_timeout for the requests in flight, then cancels
// the rest and releases their jobs in one call.
func (a *Agent) drain() {
	done := make(chan struct{})
	go func() {
		a.inflight.Wait()
		close(done)
	}()
	timeout := a.cfg.Agent.DrainTimeout.D()
	a.log.Info("draining requests in flight", "in_flight", a.heartbeat.Len(), "drain_timeout", timeout)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	a.cancelWork(errDrain)
	<-done
	a.drainedMu.Lock()
	jobs := a.drained
	a.drained = nil
	a.drainedMu.Unlock()
	a.release(jobs, "drain_timeout passed")
}

// release hands jobs back without spending their attempt.
func (a *Agent) release(jobs []*job.Job, why string) {
	if len(jobs) == 0 {
		return
	}
	stale, err := a.acquirer.Release(a.bg, lease.Refs(jobs))
	if err != nil {
		a.log.Error("releasing jobs failed; they are retried when their leases expire", "jobs", len(jobs), "reason", why, "error", err)
		return
	}
	isStale := set(stale)
	for _, j := range jobs {
		if isStale[j.ID] {
			continue
		}
		a.log.Info("job released", jobAttrs(j, "reason", why)...)
	}
}

// start delivers a leased job in its own goroutine; done frees its slot
// when the job's request ends.
func (a *Agent) start(j *job.Job, done func()) {
	a.inflight.Add(1)
	go a.work(j, done)
}

// work delivers one leased job and hands its outcome on.
func (a *Agent) work(j *job.Job, done func()) {
	defer a.inflight.Done()
	defer done()
	ctx, cancel := context.WithCancelCause(a.workCtx)
	defer cancel(nil)
	// The lease is extended until the outcome is written, not only while
	// the request runs: an outcome waiting for the database (a busy SQLite
	// file, a slow flush) must not let the lease run out and the job run
	// again elsewhere. Lost after the answer, the outcome is refused as
	// stale when written, and the completer says so.
	var answered atomic.Bool
	a.heartbeat.Track(lease.Ref(j), func() {
		if answered.Load() {
			return
		}
		a.log.Warn("lease lost while the request was in flight; cancelling it", jobAttrs(j)...)
		cancel(errLeaseLost)
	})
	forget := func() { a.heartbeat.Forget(j.ID) }
	t, err := a.target(ctx, j)
	if err != nil {
		forget()
		a.log.Warn("cannot build the request; releasing the job", jobAttrs(j, "error", err)...)
		a.release([]*job.Job{j}, "parent results unavailable")
		return
	}
	start := time.Now()
	spanCtx, span := a.startAttempt(ctx, j)
	res := a.deliver(spanCtx, j, t)
	answered.Store(true)
	a.endAttempt(span, j, res, context.Cause(ctx))
	a.record(j, res, context.Cause(ctx), start, forget)
}

// record turns one request's result into the job's next state. forget
// stops extending the job's lease: at once, or once the completer has
// written the outcome.
func (a *Agent) record(j *job.Job, res dispatch.Result, cause error, start time.Time, forget func()) {
	ref := lease.Ref(j)
	switch {
	case res.Outcome == dispatch.OutcomeCompleted:
		a.completer.add(a.workCtx, outcome{job: j, res: res, written: forget, completion: &store.Completion{LeaseRef: ref, Result: res.Result, Note: res.ResultNote}})
	case res.Outcome == dispatch.OutcomeAccepted:
		// The app finishes the job through the API; if it never does, the
		// lease runs out and the rescuer retries it.
		forget()
		a.log.Info("job accepted by the app; awaiting its completion through the API", jobAttrs(j, "duration", res.Duration)...)
	case res.Outcome == dispatch.OutcomeFailed:
		a.completer.add(a.workCtx, outcome{job: j, res: res, written: forget, failure: &store.Failure{LeaseRef: ref, Error: res.Error, Outcome: res.Label}})
	case errors.Is(cause, errDrain):
		forget()
		a.drainedMu.Lock()
		a.drained = append(a.drained, j)
		a.drainedMu.Unlock()
	case errors.Is(cause, errLeaseLost):
		// Whoever holds the job now records its outcome.
		forget()
	case res.ConnRefused && a.health != nil && !a.health.check(a.bg, start):
		forget()
		a.release([]*job.Job{j}, "app down: connection refused and health check failing")
	default:
		// A delay, not a time: the database adds it to its own now. The
		// dispatcher read Retry-After on a.clock, so the delay is measured
		// on that clock too.
		delay := dispatch.RetryIn(a.cfg.RetryPolicyFor(j), j.Attempts, a.clock(), res.RetryAfter)
		a.completer.add(a.workCtx, outcome{job: j, res: res, written: forget, failure: &store.Failure{LeaseRef: ref, Error: res.Error, Outcome: res.Label, Retry: true, RetryDelay: delay}})
	}
}

// Wake tells this agent's producers that jobs of queues may have become
// leasable (every producer when queues is empty), so they lease at once
// instead of at their next poll. The API calls it after an enqueue, a retry
// or a resume it wrote itself: the change is known in-process, so no
// database round trip (nor LISTEN/NOTIFY, which only PostgreSQL has) is
// needed to learn of it. Safe to call at any time, before Run and after it.
func (a *Agent) Wake(queues ...string) { wakeProducers(a.producers, queues...) }
