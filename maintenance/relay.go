package maintenance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/store"
)

// Relay defaults.
const (
	DefaultRelayInterval  = 250 * time.Millisecond
	DefaultRelayBatch     = 500
	DefaultRelayClaimTTL  = 30 * time.Second
	DefaultEventRetention = 24 * time.Hour
)

const (
	// relayWorkers bounds the subscribers one relay delivers at once.
	relayWorkers = 8
	// sequenceBatch is one SequenceEvents call's limit; a full one is
	// followed by another in the same pass.
	sequenceBatch = 5000
	// cleanupEvery spaces the outbox cleanups: retention is counted in
	// hours, so once a minute keeps the table near its floor.
	cleanupEvery = time.Minute
	// cleanupBatch bounds each delete of a cleanup, so it never holds the
	// outbox (or SQLite's single writer) long.
	cleanupBatch = 5000
	// ackTimeout bounds the ack of a batch delivered while the relay was
	// stopping: what was delivered is recorded rather than sent again.
	ackTimeout = 10 * time.Second
)

// RelayMetrics counts what the relay did; *metrics.Metrics is one.
type RelayMetrics interface {
	EventsWritten(n int)
	EventsDelivered(subscriber string, n int)
	EventsFailed(subscriber string, n int)
	DeliveryDuration(subscriber string, d time.Duration)
	SubscriberLag(subscriber string, events int64, lag time.Duration)
	SubscriberDisabled(subscriber string)
}

// RelayConfig configures a Relay.
type RelayConfig struct {
	Store   store.Events
	AgentID string
	// Sinks deliver by subscriber kind (store.SubscriberWebhook: the
	// webhook sink). A kind without a sink is never claimed here.
	Sinks map[string]events.Sink
	// Streams names the stream subscribers this agent has sinks for: only
	// they are claimed among kind "stream" (streams are configured per agent).
	Streams map[string]events.Sink
	// Interval between passes; zero is DefaultRelayInterval.
	Interval time.Duration
	// Batch bounds the events read per subscriber per pass; zero is DefaultRelayBatch.
	Batch int
	// ClaimTTL is how long a claim holds; another agent takes a subscriber
	// over this long after its relay died. Zero is DefaultRelayClaimTTL.
	ClaimTTL time.Duration
	// Retention keeps delivered events this long; zero is DefaultEventRetention.
	Retention time.Duration
	// Metrics: nil counts nothing.
	Metrics RelayMetrics
	Logger  *slog.Logger
	// Outage quiets the logs of passes failing in a database outage.
	Outage Outage
}

// RelayPass is what one relay pass did.
type RelayPass struct {
	// Sequenced counts the events given their seq.
	Sequenced int
	// Claimed names the subscribers this pass claimed and started
	// delivering; their batches go on after the pass.
	Claimed []string
	// Cleaned counts the events deleted past retention.
	Cleaned int
}

// Relay delivers the outbox to its subscribers. Every agent runs one and
// none leads: each pass sequences the committed events (one sequencer at
// a time, the others skip), then claims subscribers that have work (a
// lease per subscriber, so one agent delivers a subscriber at a time and
// another takes it over from the acknowledged cursor when its claim lapses)
// and starts a worker for each. A worker reads a batch after the cursor,
// hands the events its filter takes to the sink, and acknowledges what the
// sink did (events.PlanAck) in one transaction guarded by the claim, until
// the subscriber is caught up or waits for a retry. The cursor moves only
// over what was acknowledged, so delivery is at least once: an agent that
// dies mid-batch costs duplicates with the same event ids, never a loss.
// Workers run beside the passes, so a receiver that hangs holds back only
// its own subscriber.
type Relay struct {
	*Service[RelayPass]
	cfg     RelayConfig
	log     *slog.Logger
	clock   store.DatabaseClock
	kinds   []string
	streams []string

	// claimMu is held exclusively by a claim and shared by acks. A claim
	// may take again a subscriber this relay is delivering (it has work and
	// is claimed by this agent), which gives it a fresh token; the claim
	// records it in busy before any ack reads it, so the worker's ack is
	// never stale against its own agent.
	claimMu sync.RWMutex
	mu      sync.Mutex
	// busy holds the claim token of each subscriber a worker delivers.
	busy    map[uuid.UUID]string
	workers sync.WaitGroup
	// lastCleanup is when the pass last cleaned the outbox; only the pass
	// touches it.
	lastCleanup time.Time
}

// NewRelay returns a stopped Relay. Retry times are counted from the
// database's clock when the store has one (every store.Store does).
func NewRelay(cfg RelayConfig) *Relay {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultRelayInterval
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultRelayBatch
	}
	if cfg.ClaimTTL <= 0 {
		cfg.ClaimTTL = DefaultRelayClaimTTL
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultEventRetention
	}
	r := &Relay{cfg: cfg, log: orDiscard(cfg.Logger), busy: map[uuid.UUID]string{},
		kinds: slices.Sorted(maps.Keys(cfg.Sinks)), streams: slices.Sorted(maps.Keys(cfg.Streams))}
	r.clock, _ = cfg.Store.(store.DatabaseClock)
	r.Service = New(Config{Name: "relay", Interval: cfg.Interval, Jitter: 0.1, RunAtStart: true,
		Logger: cfg.Logger, Outage: cfg.Outage}, r.pass)
	return r
}

// Stop ends the passes and waits for the workers, whose last batches are
// acknowledged.
func (r *Relay) Stop() {
	r.Service.Stop()
	r.workers.Wait()
}

func (r *Relay) pass(ctx context.Context) (RelayPass, int, error) {
	var res RelayPass
	for {
		n, err := r.cfg.Store.SequenceEvents(ctx, store.SequenceEventsParams{Limit: sequenceBatch})
		if err != nil {
			return res, 0, fmt.Errorf("sequence events: %w", err)
		}
		res.Sequenced += n
		if r.cfg.Metrics != nil {
			r.cfg.Metrics.EventsWritten(n)
		}
		if n < sequenceBatch {
			break
		}
	}
	claimed, err := r.claim(ctx)
	if err != nil {
		return res, 0, err
	}
	res.Claimed = claimed
	var errs []error
	if err := r.lags(ctx); err != nil {
		errs = append(errs, err)
	}
	if time.Since(r.lastCleanup) >= cleanupEvery {
		n, err := r.cfg.Store.CleanupEvents(ctx, store.CleanupEventsParams{Retention: r.cfg.Retention, Limit: cleanupBatch})
		res.Cleaned = n
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("clean up events: %w", err))
		case n > 0:
			r.log.Debug("deleted events past retention", "events", n)
		}
		// A full cleanup leaves more behind: the next pass goes on.
		if err == nil && n < cleanupBatch {
			r.lastCleanup = time.Now()
		}
	}
	return res, len(claimed), errors.Join(errs...)
}

// claim takes the subscribers that have work, as many as there are free
// workers, and starts a worker for each new one.
func (r *Relay) claim(ctx context.Context) ([]string, error) {
	r.claimMu.Lock()
	defer r.claimMu.Unlock()
	r.mu.Lock()
	free := relayWorkers - len(r.busy)
	r.mu.Unlock()
	if free <= 0 {
		return nil, nil
	}
	subs, err := r.cfg.Store.ClaimSubscribers(ctx, store.ClaimSubscribersParams{
		AgentID: r.cfg.AgentID, Kinds: r.kinds, Streams: r.streams, Limit: free, Duration: r.cfg.ClaimTTL})
	if err != nil {
		return nil, fmt.Errorf("claim subscribers: %w", err)
	}
	var names []string
	for _, sub := range subs {
		r.mu.Lock()
		_, delivering := r.busy[sub.ID]
		r.busy[sub.ID] = sub.ClaimToken
		r.mu.Unlock()
		if delivering {
			continue
		}
		names = append(names, sub.Name)
		r.workers.Add(1)
		go r.work(ctx, sub)
	}
	return names, nil
}

// sink is the sink of a subscriber: a stream's by name, others by kind.
func (r *Relay) sink(sub *store.Subscriber) events.Sink {
	if s, ok := r.cfg.Streams[sub.Name]; ok && sub.Kind == store.SubscriberStream {
		return s
	}
	return r.cfg.Sinks[sub.Kind]
}

// work delivers one claimed subscriber batch after batch until it is
// caught up, waits for a retry, or fails.
func (r *Relay) work(ctx context.Context, sub *store.Subscriber) {
	defer r.workers.Done()
	for {
		more, err := r.batch(ctx, sub)
		if err != nil {
			r.failed(ctx, sub, err)
			return
		}
		if !more {
			return
		}
	}
}

// failed logs a batch that could not be acknowledged and forgets the
// subscriber: its claim lapses, or this agent's next pass takes it again.
func (r *Relay) failed(ctx context.Context, sub *store.Subscriber, err error) {
	r.mu.Lock()
	delete(r.busy, sub.ID)
	r.mu.Unlock()
	switch {
	case errors.Is(err, store.ErrStaleLease):
		r.log.Info("subscriber taken over by another agent; its delivery there goes on from the acknowledged cursor",
			"subscriber", sub.Name, "error", err)
	case ctx.Err() != nil:
	default:
		level := slog.LevelError
		if r.cfg.Outage != nil && r.cfg.Outage.Down() {
			level = slog.LevelDebug
		}
		r.log.Log(ctx, level, "subscriber's batch not acknowledged; it is delivered again from its cursor",
			"subscriber", sub.Name, "error", err)
	}
}

// batch delivers one batch and acknowledges it; more reports a full batch
// done, after which more events may wait.
func (r *Relay) batch(ctx context.Context, sub *store.Subscriber) (more bool, err error) {
	sink := r.sink(sub)
	if sink == nil {
		// Claimed by a stream name whose subscriber is of another kind:
		// left to an agent that has its sink.
		return false, r.ack(ctx, sub, events.AckPlan{State: sub.SubscriberState}, true)
	}
	pol, err := events.PolicyOf(sub.Config)
	if err != nil {
		return false, r.unreadable(ctx, sub, err)
	}
	recs, err := r.cfg.Store.ReadEvents(ctx, store.ReadEventsParams{AfterSeq: sub.Cursor, Limit: r.cfg.Batch})
	if err != nil {
		return false, fmt.Errorf("read events after %d: %w", sub.Cursor, err)
	}
	batch := make([]events.Event, 0, len(recs))
	var dropped []bool
	var send []int
	for _, rec := range recs {
		e := events.FromRecord(rec)
		keep := pol.Match(e)
		batch, dropped = append(batch, e), append(dropped, !keep)
		if keep {
			send = append(send, len(batch)-1)
			if sub.RetrySeq != 0 {
				// A retry probes the receiver with the event owed alone;
				// the rest follow once it is done.
				break
			}
		}
	}
	results := make([]events.Result, len(batch))
	if len(send) > 0 {
		s := events.Subscription{ID: sub.ID, Name: sub.Name, Kind: sub.Kind, Config: sub.Config,
			IncludePayload: sub.IncludePayload, IncludeResult: sub.IncludeResult, Attempt: 1}
		if batch[send[0]].Seq == sub.RetrySeq {
			s.Attempt = sub.RetryAttempts + 1
		}
		out := r.deliver(ctx, sub, sink, s, pick(batch, send))
		for i, j := range send {
			if i < len(out) {
				results[j] = out[i]
			}
		}
	}
	// A relay stopping still acknowledges what its sink did.
	now, err := r.now(context.WithoutCancel(ctx))
	if err != nil {
		return false, err
	}
	plan := events.PlanAck(events.PlanAckParams{Subscriber: sub.ID, AgentID: r.cfg.AgentID, State: sub.SubscriberState,
		Policy: pol, Batch: batch, Dropped: dropped, Results: results, Now: now})
	// More events may wait after a full read, or after a retry's probe
	// that cut the batch short.
	more = plan.CaughtUp && ctx.Err() == nil && (len(recs) == r.cfg.Batch || len(batch) < len(recs))
	r.count(sub, plan)
	if err := r.ack(ctx, sub, plan, !more); err != nil {
		return false, err
	}
	r.report(sub, plan)
	sub.SubscriberState = plan.State
	return more, nil
}

// unreadableWait is how long a subscriber whose definition cannot be
// decoded waits before it is claimed again: its error is logged once a
// wait rather than once a pass.
const unreadableWait = time.Minute

// unreadable parks a subscriber whose stored definition cannot be decoded:
// its events wait, the error is its last_error, and a retry time keeps
// every agent from claiming it again until unreadableWait has passed.
func (r *Relay) unreadable(ctx context.Context, sub *store.Subscriber, err error) error {
	r.log.Error("subscriber's definition cannot be read; its events wait", "subscriber", sub.Name, "error", err)
	now, nerr := r.now(context.WithoutCancel(ctx))
	if nerr != nil {
		return nerr
	}
	st := sub.SubscriberState
	at := now.Add(unreadableWait)
	st.RetryAt, st.LastError = &at, err.Error()
	return r.ack(ctx, sub, events.AckPlan{State: st}, true)
}

func pick(batch []events.Event, idx []int) []events.Event {
	out := make([]events.Event, len(idx))
	for i, j := range idx {
		out[i] = batch[j]
	}
	return out
}

// deliver hands the events to the sink while keeping the claim alive: a
// slow receiver may take longer than the claim's TTL over a whole batch.
// A claim found taken over stops the batch; what was not sent is NotTried.
func (r *Relay) deliver(ctx context.Context, sub *store.Subscriber, sink events.Sink, s events.Subscription, batch []events.Event) []events.Result {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(max(r.cfg.ClaimTTL/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := r.ack(ctx, sub, events.AckPlan{State: sub.SubscriberState}, false); errors.Is(err, store.ErrStaleLease) {
				cancel()
				return
			}
		}
	}()
	out := sink.Deliver(ctx, s, batch)
	close(done)
	wg.Wait()
	return out
}

// ack writes a plan under the subscriber's current claim token. A release
// forgets the subscriber in the same hold of claimMu, so a claim never
// sees it busy after its claim was released.
func (r *Relay) ack(ctx context.Context, sub *store.Subscriber, plan events.AckPlan, release bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	r.claimMu.RLock()
	defer r.claimMu.RUnlock()
	r.mu.Lock()
	token := r.busy[sub.ID]
	r.mu.Unlock()
	err := r.cfg.Store.AckEvents(ctx, store.AckEventsParams{Subscriber: sub.ID, AgentID: r.cfg.AgentID, ClaimToken: token,
		State: plan.State, Deliveries: plan.Deliveries, Release: release, Extend: r.cfg.ClaimTTL})
	if err != nil {
		return fmt.Errorf("acknowledge events of subscriber %q: %w", sub.Name, err)
	}
	if release {
		r.mu.Lock()
		delete(r.busy, sub.ID)
		r.mu.Unlock()
	}
	return nil
}

// count records a batch's attempts, acknowledged or not: they happened.
func (r *Relay) count(sub *store.Subscriber, plan events.AckPlan) {
	if r.cfg.Metrics == nil {
		return
	}
	r.cfg.Metrics.EventsDelivered(sub.Name, plan.Delivered)
	r.cfg.Metrics.EventsFailed(sub.Name, plan.Failed)
	for _, d := range plan.Deliveries {
		r.cfg.Metrics.DeliveryDuration(sub.Name, d.Duration)
	}
}

// report logs what an acknowledged batch changed that a human cares
// about: events given up on, a retry, the subscriber disabled.
func (r *Relay) report(sub *store.Subscriber, plan events.AckPlan) {
	st := plan.State
	if plan.Failed > 0 {
		r.log.Warn("events given up on", "subscriber", sub.Name, "events", plan.Failed,
			"consecutive_failures", st.ConsecutiveFailures, "error", st.LastError)
	}
	if st.RetrySeq != 0 && (st.RetrySeq != sub.RetrySeq || st.RetryAttempts != sub.RetryAttempts) {
		r.log.Info("event delivery failed; retrying", "subscriber", sub.Name, "seq", st.RetrySeq,
			"attempt", st.RetryAttempts, "retry_at", *st.RetryAt, "error", st.LastError)
	}
	if st.Disabled {
		r.log.Warn("subscriber disabled", "subscriber", sub.Name, "reason", st.DisabledReason)
		if r.cfg.Metrics != nil {
			r.cfg.Metrics.SubscriberDisabled(sub.Name)
		}
	}
}

// lags reports every enabled subscriber's lag, when anything counts it.
func (r *Relay) lags(ctx context.Context) error {
	if r.cfg.Metrics == nil {
		return nil
	}
	lags, err := r.cfg.Store.SubscriberLags(ctx)
	if err != nil {
		return fmt.Errorf("read subscriber lags: %w", err)
	}
	now, err := r.now(ctx)
	if err != nil {
		return err
	}
	for _, l := range lags {
		var lag time.Duration
		if !l.Oldest.IsZero() {
			lag = now.Sub(l.Oldest)
		}
		r.cfg.Metrics.SubscriberLag(l.Name, l.Events, lag)
	}
	return nil
}

// now is the database's now, which retry times count from.
func (r *Relay) now(ctx context.Context) (time.Time, error) {
	if r.clock == nil {
		return time.Now(), nil
	}
	now, err := r.clock.DatabaseNow(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the database's clock: %w", err)
	}
	return now, nil
}
