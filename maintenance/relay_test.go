package maintenance

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/metrics"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/mysql"
	"github.com/hammerwork-go/hw-agent/store/postgres"
)

// arrival is one request a hook received.
type arrival struct {
	event events.Event
	agent string
}

// hook is a webhook receiver: it records every request and answers with
// the status answer gives (nil: 200).
type hook struct {
	*httptest.Server
	mu     sync.Mutex
	got    []arrival
	answer func(n int, e events.Event) int
}

func newHook(t *testing.T, answer func(n int, e events.Event) int) *hook {
	t.Helper()
	h := &hook{answer: answer}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var e events.Event
		if err := json.NewDecoder(req.Body).Decode(&e); err != nil || req.Header.Get("webhook-id") != e.ID.String() {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, arrival{event: e, agent: req.Header.Get("User-Agent")})
		n := len(h.got)
		h.mu.Unlock()
		if h.answer != nil {
			w.WriteHeader(h.answer(n, e))
		}
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) arrivals() []arrival {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// ids counts the arrivals of each event id.
func (h *hook) ids() map[uuid.UUID]int {
	out := map[uuid.UUID]int{}
	for _, a := range h.arrivals() {
		out[a.event.ID]++
	}
	return out
}

// subscribe defines a webhook to url; its cursor starts at the newest
// event, so it receives what commits from then on.
func subscribe(t *testing.T, s store.Events, url string, def webhook.Def) *store.Subscriber {
	t.Helper()
	def.URL = url
	if def.Name == "" {
		def.Name = "hook"
	}
	raw, err := json.Marshal(def)
	require.NoError(t, err)
	sub, created, err := s.PutSubscriber(context.Background(), store.PutSubscriberParams{Def: store.SubscriberDef{
		Name: def.Name, Kind: store.SubscriberWebhook, Source: store.SourceAPI, Config: raw, Enabled: true}})
	require.NoError(t, err)
	require.True(t, created)
	return sub
}

// runJobs enqueues, leases and completes n jobs: three events each.
func runJobs(t *testing.T, s store.Store, n int) []*job.Job {
	t.Helper()
	ctx := context.Background()
	jobs := testkit.EnqueueNoop(t, s, "relay", n)
	leased, err := s.Lease(ctx, store.LeaseParams{AgentID: "worker", Queues: []string{"relay"}, Limit: n, Duration: time.Minute})
	require.NoError(t, err)
	require.Len(t, leased, n)
	var done []store.Completion
	for _, j := range leased {
		done = append(done, store.Completion{LeaseRef: store.LeaseRef{ID: j.ID, Token: j.LeaseToken}})
	}
	stale, err := s.Complete(ctx, store.CompleteParams{Completions: done})
	require.NoError(t, err)
	require.Empty(t, stale)
	return jobs
}

// relayOf starts a relay with a webhook sink on s, stopped when the test
// ends.
func relayOf(t *testing.T, s store.Events, agent string, cfg RelayConfig) *Relay {
	t.Helper()
	sink := webhook.New(webhook.Config{AgentID: agent})
	t.Cleanup(sink.CloseIdleConnections)
	cfg.Store, cfg.AgentID = s, agent
	cfg.Sinks = map[string]events.Sink{store.SubscriberWebhook: sink}
	if cfg.Interval == 0 {
		cfg.Interval = 10 * time.Millisecond
	}
	r := NewRelay(cfg)
	require.NoError(t, r.Start(context.Background()))
	t.Cleanup(r.Stop)
	return r
}

// allEvents reads every sequenced event.
func allEvents(t *testing.T, s store.Events) []store.EventRecord {
	t.Helper()
	recs, err := s.ReadEvents(context.Background(), store.ReadEventsParams{Limit: 100000})
	require.NoError(t, err)
	return recs
}

// awaitAll waits until h got every one of want events at least once.
func awaitAll(t *testing.T, s store.Events, h *hook, want int) {
	t.Helper()
	testkit.Poll(t, 20*time.Second, 10*time.Millisecond, fmt.Sprintf("%d events delivered", want), func() (bool, string) {
		recs := allEvents(t, s)
		got := h.ids()
		missing := 0
		for _, r := range recs {
			if got[r.ID] == 0 {
				missing++
			}
		}
		return len(recs) == want && missing == 0, fmt.Sprintf("%d sequenced, %d of them not delivered", len(recs), missing)
	})
}

// requireJobOrder checks that no event reached h before every earlier
// event of its job had (a redelivery may repeat a prefix).
func requireJobOrder(t *testing.T, s store.Events, h *hook) {
	t.Helper()
	seqs := map[uuid.UUID][]int64{}
	for _, r := range allEvents(t, s) {
		if r.JobID != nil {
			seqs[*r.JobID] = append(seqs[*r.JobID], r.Seq)
		}
	}
	seen := map[int64]bool{}
	for _, a := range h.arrivals() {
		e := a.event
		if e.JobID != nil {
			for _, earlier := range seqs[*e.JobID] {
				if earlier < e.Seq {
					require.True(t, seen[earlier], "event %d of job %s arrived before its event %d", e.Seq, e.JobID, earlier)
				}
			}
		}
		seen[e.Seq] = true
	}
}

func deliveries(t *testing.T, s store.Events, sub uuid.UUID) []*store.Delivery {
	t.Helper()
	var out []*store.Delivery
	cursor := ""
	for {
		page, err := s.ListDeliveries(context.Background(), store.ListDeliveriesParams{Subscriber: sub, Limit: 500, Cursor: cursor})
		require.NoError(t, err)
		out = append(out, page.Deliveries...)
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

// gauge reads a subscriber's series of a gauge of m; -1 when it has none.
func gauge(t *testing.T, m *metrics.Metrics, name, sub string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "subscriber" && l.GetValue() == sub {
					return s.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

func subscriber(t *testing.T, s store.Events, id uuid.UUID) *store.Subscriber {
	t.Helper()
	sub, err := s.GetSubscriber(context.Background(), id)
	require.NoError(t, err)
	return sub
}

// Every event reaches the receiver, a job's in order, each attempt is in
// the delivery log, and the cursor ends at the newest event.
func TestRelayDeliversEveryEventInOrderPerJob(t *testing.T) {
	t.Parallel()
	s := testkit.SQLite(t)
	h := newHook(t, nil)
	sub := subscribe(t, s, h.URL, webhook.Def{Concurrency: 4})
	m := metrics.New()
	relayOf(t, s, "agent-a", RelayConfig{Metrics: m, Batch: 25})
	runJobs(t, s, 20)

	awaitAll(t, s, h, 60)
	requireJobOrder(t, s, h)
	for id, n := range h.ids() {
		require.Equal(t, 1, n, "event %s delivered once", id)
	}
	testkit.Eventually(t, 10*time.Second, "the cursor at the newest event", func() bool {
		return subscriber(t, s, sub.ID).Cursor == 60
	})
	log := deliveries(t, s, sub.ID)
	require.Len(t, log, 60)
	for _, d := range log {
		require.Equal(t, store.DeliveryDelivered, d.Outcome)
		require.Equal(t, 200, d.StatusCode)
		require.Equal(t, "agent-a", d.AgentID)
	}
	require.Equal(t, 60.0, counter(t, m, "hammerwork_events_delivered_total", map[string]string{"subscriber": "hook"}))
}

// A receiver that is down for a while gets every event once it is up,
// and the others' subscribers are not held back meanwhile.
func TestRelayCatchesUpAfterAReceiverWasDown(t *testing.T) {
	t.Parallel()
	s := testkit.SQLite(t)
	var down atomic.Bool
	down.Store(true)
	broken := newHook(t, func(int, events.Event) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	healthy := newHook(t, nil)
	sub := subscribe(t, s, broken.URL, webhook.Def{Name: "broken", Policy: events.Policy{MaxAttempts: 1000, MaxFailures: 1000,
		RetryInitial: job.Duration(5 * time.Millisecond), RetryMax: job.Duration(20 * time.Millisecond)}})
	subscribe(t, s, healthy.URL, webhook.Def{Name: "healthy"})
	m := metrics.New()
	relayOf(t, s, "agent-a", RelayConfig{Metrics: m})
	runJobs(t, s, 10)

	awaitAll(t, s, healthy, 30)
	testkit.Eventually(t, 10*time.Second, "retries of the first event logged", func() bool {
		return len(deliveries(t, s, sub.ID)) >= 3
	})
	testkit.Eventually(t, 5*time.Second, "the broken receiver's subscriber lagging", func() bool {
		return gauge(t, m, "hammerwork_subscriber_lag_events", "broken") > 0 && gauge(t, m, "hammerwork_subscriber_lag_seconds", "broken") > 0
	})
	down.Store(false)

	awaitAll(t, s, broken, 30)
	requireJobOrder(t, s, broken)
	testkit.Eventually(t, 10*time.Second, "the broken receiver's subscriber caught up", func() bool {
		got := subscriber(t, s, sub.ID)
		return got.Cursor == 30 && got.RetrySeq == 0
	})
	got := subscriber(t, s, sub.ID)
	require.True(t, got.Enabled)
	require.Zero(t, got.ConsecutiveFailures)
	testkit.Eventually(t, 5*time.Second, "the lag back to zero", func() bool {
		return gauge(t, m, "hammerwork_subscriber_lag_events", "broken") == 0 && gauge(t, m, "hammerwork_subscriber_lag_seconds", "broken") == 0
	})
	for _, d := range deliveries(t, s, sub.ID) {
		require.NotEqual(t, store.DeliveryFailed, d.Outcome, "nothing was given up on")
	}
}

// A receiver failing the first attempts gets the event again after a
// growing backoff; each attempt is logged with its number, status and
// answer, and the last is delivered.
func TestRelayRetriesAFailingReceiverWithBackoff(t *testing.T) {
	t.Parallel()
	s := testkit.SQLite(t)
	const failures = 3
	h := newHook(t, func(n int, _ events.Event) int {
		if n <= failures {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	initial := 40 * time.Millisecond
	sub := subscribe(t, s, h.URL, webhook.Def{Policy: events.Policy{RetryInitial: job.Duration(initial), RetryMax: job.Duration(time.Second)}})
	var logs testkit.Buffer
	relayOf(t, s, "agent-a", RelayConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	testkit.EnqueueNoop(t, s, "relay", 1)

	awaitAll(t, s, h, 1)
	var log []*store.Delivery
	testkit.Eventually(t, 10*time.Second, "four attempts logged", func() bool {
		log = deliveries(t, s, sub.ID)
		return len(log) == failures+1
	})
	slices.Reverse(log) // oldest first
	for i, d := range log {
		require.Equal(t, i+1, d.Attempt)
		require.Equal(t, log[0].EventID, d.EventID)
		if i < failures {
			require.Equal(t, store.DeliveryRetrying, d.Outcome)
			require.Equal(t, 500, d.StatusCode)
			require.Contains(t, d.Error, "500")
		} else {
			require.Equal(t, store.DeliveryDelivered, d.Outcome)
		}
		if i > 0 {
			// The n-th retry waits initial*2^(n-1) ± 50%.
			wait := initial << (i - 1) / 2
			require.GreaterOrEqual(t, d.At.Sub(log[i-1].At), wait, "attempt %d came after the backoff", i+1)
		}
	}
	require.Len(t, h.arrivals(), failures+1)
	require.Contains(t, logs.String(), "retrying")
	require.Contains(t, logs.String(), "subscriber=hook")
}

// A 410 disables the subscriber at once, with a reason, a log line naming
// it and the metric; its event is kept for when it is enabled again.
func TestRelayDisablesASubscriberOnGone(t *testing.T) {
	t.Parallel()
	s := testkit.SQLite(t)
	h := newHook(t, func(int, events.Event) int { return http.StatusGone })
	sub := subscribe(t, s, h.URL, webhook.Def{})
	var logs testkit.Buffer
	m := metrics.New()
	relayOf(t, s, "agent-a", RelayConfig{Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	testkit.EnqueueNoop(t, s, "relay", 1)

	testkit.Eventually(t, 10*time.Second, "the subscriber disabled", func() bool {
		return !subscriber(t, s, sub.ID).Enabled
	})
	got := subscriber(t, s, sub.ID)
	require.Contains(t, got.DisabledReason, "410")
	require.Zero(t, got.Cursor, "the event answered 410 is not passed")
	testkit.Eventually(t, 5*time.Second, "the disable logged and counted", func() bool {
		return strings.Contains(logs.String(), "subscriber disabled") &&
			counter(t, m, "hammerwork_subscribers_disabled_total", map[string]string{"subscriber": "hook"}) == 1
	})
	require.Contains(t, logs.String(), "level=WARN")
	require.Contains(t, logs.String(), "subscriber=hook")
	log := deliveries(t, s, sub.ID)
	require.Len(t, log, 1)
	require.Equal(t, store.DeliveryFailed, log[0].Outcome)
	require.Equal(t, 410, log[0].StatusCode)
	require.Len(t, h.arrivals(), 1)
}

// sharedBackends open two stores on one fresh database: two agents.
var sharedBackends = []struct {
	name string
	open func(t *testing.T) (store.Store, store.Store)
}{
	{"sqlite", func(t *testing.T) (store.Store, store.Store) {
		url := testkit.SQLiteURL(t)
		return testkit.SQLiteAt(t, url), testkit.SQLiteAt(t, url)
	}},
	{"postgres", func(t *testing.T) (store.Store, store.Store) {
		url := testkit.PostgresURL(t)
		return openShared(t, url, func(ctx context.Context) (store.Store, error) {
			return postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 4})
		})
	}},
	{"mysql", func(t *testing.T) (store.Store, store.Store) {
		url := testkit.MySQLURL(t)
		return openShared(t, url, func(ctx context.Context) (store.Store, error) {
			return mysql.Open(ctx, mysql.Config{URL: url, MaxConns: 4})
		})
	}},
}

func openShared(t *testing.T, url string, open func(ctx context.Context) (store.Store, error)) (store.Store, store.Store) {
	t.Helper()
	var out [2]store.Store
	for i := range out {
		s, err := open(context.Background())
		require.NoError(t, err, "open %s", url)
		t.Cleanup(func() { _ = s.Close() })
		out[i] = s
	}
	_, err := out[0].Migrate(context.Background())
	require.NoError(t, err)
	return out[0], out[1]
}

// Two agents' relays on one database deliver every event of every
// subscriber exactly once between them.
func TestRelayTwoAgentsDeliverEachEventOnce(t *testing.T) {
	t.Parallel()
	for _, backend := range sharedBackends {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			a, b := backend.open(t)
			var hooks []*hook
			for i := range 4 {
				h := newHook(t, nil)
				subscribe(t, a, h.URL, webhook.Def{Name: fmt.Sprintf("hook-%d", i)})
				hooks = append(hooks, h)
			}
			relayOf(t, a, "agent-a", RelayConfig{Batch: 10})
			relayOf(t, b, "agent-b", RelayConfig{Batch: 10})
			runJobs(t, a, 15)
			runJobs(t, b, 15)

			agents := map[string]bool{}
			for _, h := range hooks {
				awaitAll(t, a, h, 90)
				requireJobOrder(t, a, h)
				for id, n := range h.ids() {
					require.Equal(t, 1, n, "event %s delivered once", id)
				}
				for _, got := range h.arrivals() {
					agents[got.agent] = true
				}
			}
			for agent := range agents {
				require.Contains(t, []string{"hw-agent (agent-a)", "hw-agent (agent-b)"}, agent)
			}
		})
	}
}

// A relay whose agent dies mid-batch (its database gone, its passes
// stopped while a request is in flight) loses nothing: another agent takes
// the subscriber over once the claim lapses, and the only duplicates are
// redeliveries with the same event id, each job still in order.
func TestRelayTakenOverAfterAnAgentDiedMidBatch(t *testing.T) {
	t.Parallel()
	for _, backend := range sharedBackends {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			a, b := backend.open(t)
			hang := make(chan struct{})
			held := make(chan struct{})
			var once sync.Once
			h := newHook(t, func(n int, _ events.Event) int {
				if n == 12 {
					once.Do(func() { close(held) })
					<-hang
				}
				return http.StatusOK
			})
			release := sync.OnceFunc(func() { close(hang) })
			t.Cleanup(release) // before the hook closes, which waits for its requests
			sub := subscribe(t, a, h.URL, webhook.Def{Concurrency: 1})
			runJobs(t, a, 10)

			ttl := 300 * time.Millisecond
			dying := relayOf(t, a, "agent-a", RelayConfig{Batch: 20, ClaimTTL: ttl})
			select {
			case <-held:
			case <-time.After(20 * time.Second):
				t.Fatal("timed out waiting for agent-a's relay to reach the 12th request")
			}
			require.NoError(t, a.Close())
			dying.Stop()
			release()

			relayOf(t, b, "agent-b", RelayConfig{Batch: 20, ClaimTTL: ttl})
			awaitAll(t, b, h, 30)
			requireJobOrder(t, b, h)
			testkit.Eventually(t, 10*time.Second, "agent-b caught the subscriber up", func() bool {
				return subscriber(t, b, sub.ID).Cursor == 30
			})
			var byB int
			for _, got := range h.arrivals() {
				if got.agent == "hw-agent (agent-b)" {
					byB++
				}
			}
			require.GreaterOrEqual(t, byB, 30-11, "agent-b delivered what agent-a had not acknowledged")
			stored := map[uuid.UUID]int64{}
			for _, r := range allEvents(t, b) {
				stored[r.ID] = r.Seq
			}
			for _, got := range h.arrivals() {
				seq, ok := stored[got.event.ID]
				require.True(t, ok, "a duplicate is an event that exists, with its id")
				require.Equal(t, seq, got.event.Seq)
			}
		})
	}
}

// recorder is a stream sink that takes every event.
type recorder struct {
	mu  sync.Mutex
	got []events.Event
}

func (r *recorder) Deliver(_ context.Context, _ events.Subscription, batch []events.Event) []events.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, batch...)
	out := make([]events.Result, len(batch))
	for i := range out {
		out[i] = events.Result{Outcome: events.Delivered, At: time.Now()}
	}
	return out
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// A pass sequences the committed events and claims the subscribers that
// have work: the kinds this agent has a sink for, and among streams only
// those it names; the filter decides what the sink gets.
func TestRelayPassClaimsOnlyWhatItHasSinksFor(t *testing.T) {
	t.Parallel()
	s := testkit.SQLite(t)
	ctx := context.Background()
	for _, name := range []string{"mine", "theirs"} {
		_, _, err := s.PutSubscriber(ctx, store.PutSubscriberParams{Def: store.SubscriberDef{
			Name: name, Kind: store.SubscriberStream, Source: store.SourceConfig, Config: json.RawMessage(`{"events":["job.completed"]}`), Enabled: true}})
		require.NoError(t, err)
	}
	runJobs(t, s, 2)
	mine := &recorder{}
	r := NewRelay(RelayConfig{Store: s, AgentID: "agent-a", Interval: 10 * time.Millisecond,
		Streams: map[string]events.Sink{"mine": mine}})
	passes := r.Passed.Init()
	require.NoError(t, r.Start(ctx))
	t.Cleanup(r.Stop)

	first := <-passes
	require.Equal(t, 6, first.Sequenced)
	require.Equal(t, []string{"mine"}, first.Claimed)
	testkit.Eventually(t, 10*time.Second, "mine's cursor past every event", func() bool {
		sub, err := s.GetSubscriberByName(ctx, "mine")
		require.NoError(t, err)
		return sub.Cursor == 6
	})
	r.Stop()
	require.Equal(t, 2, mine.count(), "only the completions pass the filter")
	for _, e := range mine.got {
		require.Equal(t, events.JobCompleted, e.Type)
	}
	theirs, err := s.GetSubscriberByName(ctx, "theirs")
	require.NoError(t, err)
	require.Zero(t, theirs.Cursor)
	require.Empty(t, theirs.ClaimedBy)
}

// A definition the relay cannot decode parks its subscriber for a minute
// with the error as its last_error, logged once rather than every pass;
// the others go on.
func TestRelayParksASubscriberWhoseDefinitionCannotBeRead(t *testing.T) {
	t.Parallel()
	s := testkit.SQLite(t)
	ctx := context.Background()
	bad, _, err := s.PutSubscriber(ctx, store.PutSubscriberParams{Def: store.SubscriberDef{
		Name: "bad", Kind: store.SubscriberWebhook, Source: store.SourceAPI, Config: json.RawMessage(`{"max_attempts":"ten"}`), Enabled: true}})
	require.NoError(t, err)
	h := newHook(t, nil)
	subscribe(t, s, h.URL, webhook.Def{Name: "good"})
	var logs testkit.Buffer
	relayOf(t, s, "agent-a", RelayConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	runJobs(t, s, 2)

	awaitAll(t, s, h, 6)
	testkit.Eventually(t, 10*time.Second, "bad parked", func() bool {
		return subscriber(t, s, bad.ID).RetryAt != nil
	})
	got := subscriber(t, s, bad.ID)
	require.Contains(t, got.LastError, "max_attempts")
	require.Zero(t, got.Cursor)
	require.True(t, got.Enabled)
	now, err := s.DatabaseNow(ctx)
	require.NoError(t, err)
	require.WithinDuration(t, now.Add(time.Minute), *got.RetryAt, 5*time.Second)
	require.Equal(t, 1, strings.Count(logs.String(), "definition cannot be read"))
}

// Events every cursor has passed are deleted once past retention; those a
// subscriber still owes are kept.
func TestRelayCleansUpDeliveredEventsPastRetention(t *testing.T) {
	t.Parallel()
	s := testkit.SQLite(t)
	ctx := context.Background()
	_, _, err := s.PutSubscriber(ctx, store.PutSubscriberParams{Def: store.SubscriberDef{
		Name: "stream", Kind: store.SubscriberStream, Source: store.SourceConfig, Config: json.RawMessage(`{}`), Enabled: true}})
	require.NoError(t, err)
	runJobs(t, s, 1)
	first := NewRelay(RelayConfig{Store: s, AgentID: "agent-a", Interval: 10 * time.Millisecond,
		Streams: map[string]events.Sink{"stream": &recorder{}}})
	require.NoError(t, first.Start(ctx))
	t.Cleanup(first.Stop)
	testkit.Eventually(t, 10*time.Second, "the stream's cursor past the job's events", func() bool {
		sub, err := s.GetSubscriberByName(ctx, "stream")
		require.NoError(t, err)
		return sub.Cursor == 3
	})
	first.Stop()
	runJobs(t, s, 1) // three events the stream has not had: kept

	r := NewRelay(RelayConfig{Store: s, AgentID: "agent-a", Interval: 10 * time.Millisecond, Retention: time.Millisecond})
	passes := r.Passed.Init()
	require.NoError(t, r.Start(ctx))
	t.Cleanup(r.Stop)
	pass := <-passes
	require.Equal(t, 3, pass.Cleaned)
	left := allEvents(t, s)
	require.Len(t, left, 3)
	require.Equal(t, int64(4), left[0].Seq)
}

// Events rejected for good are each given up on; max_failures of them in
// a row disable the subscriber, saying why.
func TestRelayDisablesAfterMaxFailuresInARow(t *testing.T) {
	t.Parallel()
	s := testkit.SQLite(t)
	h := newHook(t, func(int, events.Event) int { return http.StatusBadRequest })
	sub := subscribe(t, s, h.URL, webhook.Def{Concurrency: 1, Policy: events.Policy{MaxFailures: 2}})
	m := metrics.New()
	relayOf(t, s, "agent-a", RelayConfig{Metrics: m})
	testkit.EnqueueNoop(t, s, "relay", 3)

	testkit.Eventually(t, 10*time.Second, "the subscriber disabled", func() bool {
		return !subscriber(t, s, sub.ID).Enabled
	})
	got := subscriber(t, s, sub.ID)
	require.Equal(t, "2 consecutive failed events", got.DisabledReason)
	require.Equal(t, 2, got.ConsecutiveFailures)
	require.Equal(t, int64(2), got.Cursor, "the events given up on are passed")
	require.Equal(t, 2.0, counter(t, m, "hammerwork_events_failed_total", map[string]string{"subscriber": "hook"}))
	var failed int
	for _, d := range deliveries(t, s, sub.ID) {
		if d.Outcome == store.DeliveryFailed {
			failed++
			require.Equal(t, 400, d.StatusCode)
		}
	}
	require.Equal(t, 2, failed)
}
