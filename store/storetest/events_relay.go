package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/store"
)

// The relay's side of a subscriber: claims (a lease per subscriber), acks
// guarded by the claim, the delivery log, and lags. ClaimSubscribers'
// order decides which subscribers a limited claim takes; like Lease, the
// suite checks which are taken, not the order they come back in.

var relayTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"SubscriberClaimTakesEnabledSubscribersWithWorkOfTheKindsOrNames", testSubscriberClaimSelects},
	{"SubscriberClaimTakesNamedStreamsOnlyWithWork", testSubscriberClaimStreams},
	{"SubscriberClaimByNameNeedsNoWork", testSubscriberClaimByName},
	{"SubscriberClaimOrdersUnclaimedFirstThenByNameUpToLimit", testSubscriberClaimOrder},
	{"SubscriberClaimHoldsAgainstOtherAgentsUntilItExpires", testSubscriberClaimHolds},
	{"SubscriberClaimWaitsForRetryAt", testSubscriberClaimRetryAt},
	{"SubscriberConcurrentClaimsNeverShareASubscriber", testSubscriberClaimConcurrent},
	{"SubscriberLagsCountEventsBehindTheCursor", testSubscriberLags},
	{"DeliverAckMovesTheCursorAndStoresTheDeliveries", testDeliverAck},
	{"DeliverAckDisablesTheSubscriber", testDeliverAckDisables},
	{"DeliverAckWithAStaleClaimIsErrStaleLeaseAndWritesNothing", testDeliverAckStale},
	{"DeliverAckOfAnExpiredClaimNobodyTookStillAcks", testDeliverAckExpired},
	{"DeliverAckMovingTheCursorBackIsInvalid", testDeliverAckBack},
	{"DeliverAckReleaseClearsTheClaim", testDeliverAckRelease},
	{"DeliverListDeliveriesPagesNewestFirst", testDeliverList},
	{"DeliverRecordDeliveryMovesNoCursor", testDeliverRecord},
	{"DeliverDeleteSubscriberRemovesItsDeliveries", testDeliverDeleteSubscriber},
}

const (
	claimFor   = time.Minute
	otherAgent = "storetest-other-agent"
)

// withWork commits one event (a job enqueued) and sequences it, so every
// enabled subscriber has work.
func withWork(t *testing.T, s store.Store) {
	t.Helper()
	enqueue(t, s, base, newJob("work"))
	require.Positive(t, sequenceAll(t, s), "the enqueue wrote an event")
}

// claim claims subscribers; AgentID, Limit and Duration take the suite's
// defaults.
func claim(t *testing.T, s store.Store, p store.ClaimSubscribersParams) []*store.Subscriber {
	t.Helper()
	if p.AgentID == "" {
		p.AgentID = agentID
	}
	if p.Limit == 0 {
		p.Limit = 10
	}
	if p.Duration == 0 {
		p.Duration = claimFor
	}
	got, err := s.ClaimSubscribers(t.Context(), p)
	require.NoError(t, err, "claim subscribers")
	return got
}

// claimOne claims exactly one subscriber.
func claimOne(t *testing.T, s store.Store, p store.ClaimSubscribersParams) *store.Subscriber {
	t.Helper()
	got := claim(t, s, p)
	require.Len(t, got, 1, "one subscriber claimed")
	return got[0]
}

// ack acknowledges as agentID unless p names another agent.
func ack(t *testing.T, s store.Store, p store.AckEventsParams) {
	t.Helper()
	if p.AgentID == "" {
		p.AgentID = agentID
	}
	require.NoError(t, s.AckEvents(t.Context(), p), "ack events")
}

// requireClaimed checks a claim as returned and as stored.
func requireClaimed(t *testing.T, s store.Store, sub *store.Subscriber, agent string, until time.Time) {
	t.Helper()
	for _, got := range []*store.Subscriber{sub, getSubscriber(t, s, sub.ID)} {
		require.Equal(t, agent, got.ClaimedBy, "claimed_by")
		require.NotEmpty(t, got.ClaimToken, "claim_token")
		require.Equal(t, sub.ClaimToken, got.ClaimToken, "the stored token is the one returned")
		requireTimePtr(t, until, got.ClaimedUntil, "claimed_until")
	}
}

func testSubscriberClaimSelects(t *testing.T, s store.Store) {
	putSubscriber(t, s, webhookDef("hook"), base)
	off := webhookDef("off")
	off.Enabled = false
	putSubscriber(t, s, off, base)
	putSubscriber(t, s, store.SubscriberDef{Name: "stream", Kind: store.SubscriberStream, Source: store.SourceConfig,
		Config: []byte(`{}`), Enabled: true}, base)
	putSubscriber(t, s, store.SubscriberDef{Name: "tail", Kind: store.SubscriberTail, Source: store.SourceAPI,
		Config: []byte(`{}`), Enabled: true}, base)
	everything := []string{store.SubscriberWebhook, store.SubscriberStream, store.SubscriberTail}
	require.Empty(t, claim(t, s, store.ClaimSubscribersParams{Kinds: everything, Now: base}), "no work yet")

	withWork(t, s)
	late := putSubscriber(t, s, webhookDef("late"), base)
	require.Empty(t, claim(t, s, store.ClaimSubscribersParams{Now: base}), "no kinds and no names match nothing")

	got := claim(t, s, store.ClaimSubscribersParams{Kinds: []string{store.SubscriberWebhook}, Now: base})
	require.Equal(t, []string{"hook"}, namesOf(got), "enabled webhooks with work; not the disabled one nor the caught-up one")
	requireClaimed(t, s, got[0], agentID, base.Add(claimFor))

	got = claim(t, s, store.ClaimSubscribersParams{AgentID: otherAgent, Names: []string{"tail", "off"}, Now: base})
	require.Equal(t, []string{"tail"}, namesOf(got), "by name, not the disabled one")
	requireClaimed(t, s, got[0], otherAgent, base.Add(claimFor))

	got = claim(t, s, store.ClaimSubscribersParams{AgentID: "third", Kinds: everything, Now: base})
	require.Equal(t, []string{"stream"}, namesOf(got), "the rest are claimed by others")
	require.Empty(t, getSubscriber(t, s, late.ID).ClaimedBy, "a caught-up subscriber is not claimed")
}

// testSubscriberClaimStreams: streams are configured per agent, so a relay
// names the ones it can deliver; like a kind, an idle one is not claimed (a
// worker for it would only read nothing and take a free slot).
func testSubscriberClaimStreams(t *testing.T, s store.Store) {
	stream := func(name string) store.SubscriberDef {
		return store.SubscriberDef{Name: name, Kind: store.SubscriberStream, Source: store.SourceConfig, Config: []byte(`{}`), Enabled: true}
	}
	putSubscriber(t, s, stream("orders"), base)
	putSubscriber(t, s, stream("audit"), base)
	putSubscriber(t, s, webhookDef("orders-hook"), base)
	require.Empty(t, claim(t, s, store.ClaimSubscribersParams{Streams: []string{"orders", "audit"}, Now: base}),
		"idle streams are not claimed")

	withWork(t, s)
	got := claim(t, s, store.ClaimSubscribersParams{Streams: []string{"orders", "orders-hook"}, Now: base})
	require.Equal(t, []string{"orders"}, namesOf(got), "the named stream with work; a webhook is not a stream, and audit is not named")
}

// testSubscriberClaimByName: a tail reader claims its subscriber from the
// start, with nothing to read yet, so the cleanup does not take it for
// abandoned while it waits; a kind's subscribers still need work.
func testSubscriberClaimByName(t *testing.T, s store.Store) {
	putSubscriber(t, s, webhookDef("hook"), base)
	tail := putSubscriber(t, s, store.SubscriberDef{Name: "tail", Kind: store.SubscriberTail, Source: store.SourceAPI,
		Config: []byte(`{}`), Enabled: true}, base)
	off := putSubscriber(t, s, store.SubscriberDef{Name: "off", Kind: store.SubscriberTail, Source: store.SourceAPI,
		Config: []byte(`{}`)}, base)
	require.Zero(t, latestSeq(t, s), "no event at all")

	got := claim(t, s, store.ClaimSubscribersParams{Kinds: []string{store.SubscriberWebhook},
		Names: []string{"tail", "off"}, Now: base})
	require.Equal(t, []string{"tail"}, namesOf(got), "the named, enabled one without work; not the webhook without work")
	requireClaimed(t, s, got[0], agentID, base.Add(claimFor))
	require.Empty(t, claim(t, s, store.ClaimSubscribersParams{AgentID: otherAgent, Names: []string{"tail"}, Now: base}),
		"a held claim is not another agent's")
	require.Empty(t, getSubscriber(t, s, off.ID).ClaimedBy, "a disabled subscriber is not claimed by name")

	ack(t, s, store.AckEventsParams{Subscriber: tail.ID, ClaimToken: got[0].ClaimToken,
		State: store.SubscriberState{Cursor: tail.Cursor}, Extend: claimFor, Now: base.Add(claimFor / 2)})
	cleanupEvents(t, s, store.CleanupEventsParams{Retention: time.Hour, TailGrace: claimFor, Now: base.Add(2 * claimFor)})
	require.Equal(t, agentID, getSubscriber(t, s, tail.ID).ClaimedBy,
		"an idle tail renewing its claim outlives the cleanup's grace")

	withWork(t, s)
	again := claimOne(t, s, store.ClaimSubscribersParams{Names: []string{"tail"}, Now: base.Add(2 * claimFor)})
	require.Equal(t, tail.Cursor, again.Cursor, "its cursor from the start: the events since are all its own")
	recs, err := s.ReadEvents(t.Context(), store.ReadEventsParams{AfterSeq: again.Cursor})
	require.NoError(t, err, "read events")
	require.Len(t, recs, 1, "the event committed while it was idle")
}

func testSubscriberClaimOrder(t *testing.T, s store.Store) {
	for _, name := range []string{"c", "a", "b"} {
		putSubscriber(t, s, webhookDef(name), base)
	}
	withWork(t, s)
	kinds := []string{store.SubscriberWebhook}
	got := claim(t, s, store.ClaimSubscribersParams{Kinds: kinds, Limit: 2, Now: base})
	require.ElementsMatch(t, []string{"a", "b"}, namesOf(got), "by name up to Limit")
	got = claim(t, s, store.ClaimSubscribersParams{Kinds: kinds, Limit: 2, Now: base.Add(time.Second)})
	require.ElementsMatch(t, []string{"c", "a"}, namesOf(got), "never claimed first, then oldest claim, then name")
}

func testSubscriberClaimHolds(t *testing.T, s store.Store) {
	putSubscriber(t, s, webhookDef("hook"), base)
	withWork(t, s)
	p := store.ClaimSubscribersParams{Kinds: []string{store.SubscriberWebhook}}

	p.Now = base
	first := claimOne(t, s, p)
	requireClaimed(t, s, first, agentID, base.Add(claimFor))

	p.AgentID, p.Now = otherAgent, base.Add(claimFor/2)
	require.Empty(t, claim(t, s, p), "another agent's live claim holds")
	requireClaimed(t, s, first, agentID, base.Add(claimFor))

	p.AgentID = agentID
	again := claimOne(t, s, p)
	require.NotEqual(t, first.ClaimToken, again.ClaimToken, "a re-claim gets a fresh token")
	requireClaimed(t, s, again, agentID, base.Add(claimFor/2+claimFor))

	p.AgentID, p.Now = otherAgent, base.Add(claimFor/2+claimFor-time.Microsecond)
	require.Empty(t, claim(t, s, p), "held until claimed_until")
	p.Now = base.Add(claimFor/2 + claimFor)
	taken := claimOne(t, s, p)
	requireClaimed(t, s, taken, otherAgent, p.Now.Add(claimFor))
	require.Equal(t, int64(0), taken.Cursor, "taken over from the last acknowledged cursor")
}

func testSubscriberClaimRetryAt(t *testing.T, s store.Store) {
	putSubscriber(t, s, webhookDef("hook"), base)
	withWork(t, s)
	p := store.ClaimSubscribersParams{Kinds: []string{store.SubscriberWebhook}, Now: base}
	sub := claimOne(t, s, p)
	retryAt := base.Add(30 * time.Second)
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Release: true, Now: base,
		State: store.SubscriberState{RetrySeq: 1, RetryAttempts: 1, RetryAt: &retryAt, LastError: "HTTP 503"}})

	p.Now = retryAt.Add(-time.Microsecond)
	require.Empty(t, claim(t, s, p), "not before retry_at")
	p.Now = retryAt
	got := claimOne(t, s, p)
	require.Equal(t, int64(1), got.RetrySeq, "the retry state is durable")
	require.Equal(t, 1, got.RetryAttempts)
	requireTimePtr(t, retryAt, got.RetryAt, "retry_at")
	require.Equal(t, "HTTP 503", got.LastError)
}

func testSubscriberClaimConcurrent(t *testing.T, s store.Store) {
	const subscribers, agents = 8, 4
	for i := range subscribers {
		putSubscriber(t, s, webhookDef(fmt.Sprintf("hook-%d", i)), base)
	}
	withWork(t, s)

	var (
		mu       sync.Mutex
		owner    = map[string]string{}
		doubles  []string
		failures []error
		wg       sync.WaitGroup
	)
	for a := range agents {
		agent := fmt.Sprintf("agent-%d", a)
		wg.Go(func() {
			for range 3 {
				got, err := s.ClaimSubscribers(t.Context(), store.ClaimSubscribersParams{
					AgentID: agent, Kinds: []string{store.SubscriberWebhook}, Limit: subscribers, Duration: time.Hour, Now: base,
				})
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Errorf("%s: %w", agent, err))
					mu.Unlock()
					return
				}
				for _, sub := range got {
					if prev, ok := owner[sub.Name]; ok && prev != agent {
						doubles = append(doubles, fmt.Sprintf("%s claimed by %s and %s", sub.Name, prev, agent))
					}
					owner[sub.Name] = agent
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Empty(t, failures)
	require.Empty(t, doubles, "a live claim is never handed to a second agent")
	require.Len(t, owner, subscribers, "every subscriber was claimed")
	page, err := s.ListSubscribers(t.Context(), store.ListSubscribersParams{})
	require.NoError(t, err)
	for _, sub := range page.Subscribers {
		require.Equal(t, owner[sub.Name], sub.ClaimedBy, "the stored claim is the agent's that got it")
	}
}

func testSubscriberLags(t *testing.T, s store.Store) {
	behind := putSubscriber(t, s, webhookDef("behind"), base)
	caught := putSubscriber(t, s, webhookDef("caught"), base)
	off := webhookDef("off")
	off.Enabled = false
	putSubscriber(t, s, off, base)

	lags, err := s.SubscriberLags(t.Context())
	require.NoError(t, err)
	require.Len(t, lags, 2, "every enabled subscriber, the disabled one excluded")
	for _, l := range lags {
		require.Zero(t, l.Events, "%s has no events to catch up", l.Name)
		require.True(t, l.Oldest.IsZero(), "caught up: no oldest")
	}

	enqueue(t, s, base, newJob("q"), newJob("q"), newJob("q"))
	sequenceAll(t, s)
	all := readAfter(t, s, 0)
	require.Len(t, all, 3)
	sub := claimOne(t, s, store.ClaimSubscribersParams{Names: []string{"caught"}, Now: base})
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Release: true, Now: base,
		State: store.SubscriberState{Cursor: 3}})
	sub = claimOne(t, s, store.ClaimSubscribersParams{Names: []string{"behind"}, Now: base})
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Release: true, Now: base,
		State: store.SubscriberState{Cursor: 1}})

	lags, err = s.SubscriberLags(t.Context())
	require.NoError(t, err)
	byName := map[string]store.SubscriberLag{}
	for _, l := range lags {
		byName[l.Name] = l
	}
	require.Len(t, byName, 2)
	require.Equal(t, behind.ID, byName["behind"].ID)
	require.Equal(t, store.SubscriberWebhook, byName["behind"].Kind)
	require.Equal(t, int64(2), byName["behind"].Events, "the events after the cursor")
	requireTime(t, all[1].Time, byName["behind"].Oldest, "the time of the first event after the cursor")
	require.Equal(t, caught.ID, byName["caught"].ID)
	require.Zero(t, byName["caught"].Events)
	require.True(t, byName["caught"].Oldest.IsZero(), "caught up")
}

// delivered is a delivery of event r by agentID.
func delivered(t *testing.T, sub uuid.UUID, r store.EventRecord, at time.Time) store.Delivery {
	t.Helper()
	id, err := uuid.NewV7()
	require.NoError(t, err)
	return store.Delivery{
		ID: id, Subscriber: sub, EventID: r.ID, EventSeq: r.Seq, EventType: events.TypeOf(r), Attempt: 1,
		Outcome: store.DeliveryDelivered, StatusCode: 200, Response: `{"ok":true}`,
		Duration: 42 * time.Millisecond, AgentID: agentID, At: at,
	}
}

// requireDelivery checks a stored delivery against the one recorded.
func requireDelivery(t *testing.T, want store.Delivery, got *store.Delivery) {
	t.Helper()
	require.Equal(t, want.ID, got.ID)
	require.Equal(t, want.Subscriber, got.Subscriber)
	require.Equal(t, want.EventID, got.EventID)
	require.Equal(t, want.EventSeq, got.EventSeq)
	require.Equal(t, want.EventType, got.EventType)
	require.Equal(t, want.Attempt, got.Attempt)
	require.Equal(t, want.Outcome, got.Outcome)
	require.Equal(t, want.StatusCode, got.StatusCode)
	require.Equal(t, want.Error, got.Error)
	require.Equal(t, want.Response, got.Response)
	require.Equal(t, want.Duration.Milliseconds(), got.Duration.Milliseconds(), "duration at ms precision")
	require.Equal(t, want.AgentID, got.AgentID)
	requireTime(t, want.At, got.At, "attempted at")
}

func deliveryIDs(page *store.DeliveryPage) []uuid.UUID {
	out := make([]uuid.UUID, len(page.Deliveries))
	for i, d := range page.Deliveries {
		out[i] = d.ID
	}
	return out
}

// claimedWithEvents creates the subscriber "hook", writes n events and
// claims it at base.
func claimedWithEvents(t *testing.T, s store.Store, n int) (*store.Subscriber, []store.EventRecord) {
	t.Helper()
	putSubscriber(t, s, webhookDef("hook"), base)
	jobs := make([]store.NewJob, n)
	for i := range jobs {
		jobs[i] = newJob("q")
	}
	enqueue(t, s, base, jobs...)
	sequenceAll(t, s)
	recs := readAfter(t, s, 0)
	require.Len(t, recs, n)
	return claimOne(t, s, store.ClaimSubscribersParams{Names: []string{"hook"}, Now: base}), recs
}

func testDeliverAck(t *testing.T, s store.Store) {
	sub, recs := claimedWithEvents(t, s, 3)
	now := base.Add(time.Second)
	ds := make([]store.Delivery, 3)
	for i, id := range ascendingIDs(t, len(ds)) {
		ds[i] = delivered(t, sub.ID, recs[i], now)
		ds[i].ID = id
	}
	ds[1].Outcome, ds[1].StatusCode, ds[1].Error, ds[1].Attempt = store.DeliveryFailed, 400, "HTTP 400 Bad Request", 2
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Deliveries: ds, Extend: 2 * time.Minute, Now: now,
		State: store.SubscriberState{Cursor: 3, ConsecutiveFailures: 1, LastError: "HTTP 400 Bad Request"}})

	got := getSubscriber(t, s, sub.ID)
	require.Equal(t, int64(3), got.Cursor, "the cursor moved")
	require.Equal(t, 1, got.ConsecutiveFailures)
	require.Equal(t, "HTTP 400 Bad Request", got.LastError)
	require.True(t, got.Enabled)
	requireTimePtr(t, now, got.LastDeliveredAt, "last_delivered_at")
	require.Equal(t, agentID, got.ClaimedBy, "the claim is kept")
	require.Equal(t, sub.ClaimToken, got.ClaimToken)
	requireTimePtr(t, now.Add(2*time.Minute), got.ClaimedUntil, "the claim is extended")
	require.Empty(t, claim(t, s, store.ClaimSubscribersParams{AgentID: otherAgent, Names: []string{"hook"}, Now: now}),
		"caught up and claimed")

	for _, d := range ds {
		stored, err := s.GetDelivery(t.Context(), sub.ID, d.ID)
		require.NoError(t, err, "delivery %s", d.ID)
		requireDelivery(t, d, stored)
	}
	page, err := s.ListDeliveries(t.Context(), store.ListDeliveriesParams{Subscriber: sub.ID})
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{ds[2].ID, ds[1].ID, ds[0].ID}, deliveryIDs(page), "newest first")

	withWork(t, s)
	again := claimOne(t, s, store.ClaimSubscribersParams{Names: []string{"hook"}, Now: now})
	require.NotEqual(t, sub.ClaimToken, again.ClaimToken, "the same agent re-claims with a fresh token")
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: again.ClaimToken, Release: true, Now: now,
		State: store.SubscriberState{Cursor: 4}})
	require.Equal(t, int64(4), getSubscriber(t, s, sub.ID).Cursor)
}

func testDeliverAckDisables(t *testing.T, s store.Store) {
	sub, _ := claimedWithEvents(t, s, 1)
	now := base.Add(time.Second)
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Release: true, Now: now,
		State: store.SubscriberState{Cursor: 1, ConsecutiveFailures: 20, LastError: "HTTP 500",
			Disabled: true, DisabledReason: "20 consecutive failed events"}})
	got := getSubscriber(t, s, sub.ID)
	require.False(t, got.Enabled, "disabled")
	require.Equal(t, "20 consecutive failed events", got.DisabledReason)
	requireTimePtr(t, now, got.DisabledAt, "disabled_at")
	require.Equal(t, 20, got.ConsecutiveFailures)

	putSubscriber(t, s, webhookDef("other"), base)
	withWork(t, s)
	require.Empty(t, claim(t, s, store.ClaimSubscribersParams{Names: []string{"hook"}, Now: now}),
		"a disabled subscriber is not claimed, though events wait after its cursor")
	lags, err := s.SubscriberLags(t.Context())
	require.NoError(t, err)
	require.Len(t, lags, 1)
	require.Equal(t, "other", lags[0].Name, "a disabled subscriber has no lag")
}

// requireUnacked checks that a subscriber's cursor and delivery log are as
// they were before a refused ack.
func requireUnacked(t *testing.T, s store.Store, sub *store.Subscriber, cursor int64, deliveries int) {
	t.Helper()
	got := getSubscriber(t, s, sub.ID)
	require.Equal(t, cursor, got.Cursor, "the cursor did not move")
	require.Empty(t, got.LastError, "no state was written")
	page, err := s.ListDeliveries(t.Context(), store.ListDeliveriesParams{Subscriber: sub.ID})
	require.NoError(t, err)
	require.Len(t, page.Deliveries, deliveries, "no delivery was written")
}

func testDeliverAckStale(t *testing.T, s store.Store) {
	sub, recs := claimedWithEvents(t, s, 2)
	now := base.Add(time.Second)
	refused := func(p store.AckEventsParams) {
		t.Helper()
		p.Subscriber, p.Now = sub.ID, now
		p.State = store.SubscriberState{Cursor: 2, LastError: "should not be written"}
		p.Deliveries = []store.Delivery{delivered(t, sub.ID, recs[0], now), delivered(t, sub.ID, recs[1], now)}
		require.ErrorIs(t, s.AckEvents(t.Context(), p), store.ErrStaleLease)
		requireUnacked(t, s, sub, 0, 0)
	}
	refused(store.AckEventsParams{AgentID: agentID, ClaimToken: "not-the-token"})
	refused(store.AckEventsParams{AgentID: otherAgent, ClaimToken: sub.ClaimToken})

	takeover := base.Add(claimFor)
	other := claimOne(t, s, store.ClaimSubscribersParams{AgentID: otherAgent, Names: []string{"hook"}, Now: takeover})
	refused(store.AckEventsParams{AgentID: agentID, ClaimToken: sub.ClaimToken})
	requireClaimed(t, s, other, otherAgent, takeover.Add(claimFor))
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, AgentID: otherAgent, ClaimToken: other.ClaimToken, Release: true,
		Now: takeover, State: store.SubscriberState{Cursor: 2}})
	require.Equal(t, int64(2), getSubscriber(t, s, sub.ID).Cursor, "the new claim acks")
}

func testDeliverAckExpired(t *testing.T, s store.Store) {
	sub, _ := claimedWithEvents(t, s, 1)
	late := base.Add(2 * claimFor)
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Extend: claimFor, Now: late,
		State: store.SubscriberState{Cursor: 1}})
	got := getSubscriber(t, s, sub.ID)
	require.Equal(t, int64(1), got.Cursor, "nobody took the claim over: the ack stands")
	requireTimePtr(t, late.Add(claimFor), got.ClaimedUntil, "the claim is extended from now")
}

func testDeliverAckBack(t *testing.T, s store.Store) {
	sub, _ := claimedWithEvents(t, s, 3)
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Extend: claimFor, Now: base,
		State: store.SubscriberState{Cursor: 3}})
	err := s.AckEvents(t.Context(), store.AckEventsParams{Subscriber: sub.ID, AgentID: agentID, ClaimToken: sub.ClaimToken,
		Extend: claimFor, Now: base, State: store.SubscriberState{Cursor: 2, LastError: "back"}})
	require.ErrorIs(t, err, store.ErrInvalid, "the cursor never moves back")
	got := getSubscriber(t, s, sub.ID)
	require.Equal(t, int64(3), got.Cursor)
	require.Empty(t, got.LastError, "nothing written")
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Extend: claimFor, Now: base,
		State: store.SubscriberState{Cursor: 3}})
}

func testDeliverAckRelease(t *testing.T, s store.Store) {
	sub, _ := claimedWithEvents(t, s, 2)
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Release: true, Now: base,
		State: store.SubscriberState{Cursor: 1}})
	got := getSubscriber(t, s, sub.ID)
	require.Empty(t, got.ClaimedBy, "claimed_by cleared")
	require.Empty(t, got.ClaimToken, "claim_token cleared")
	require.Nil(t, got.ClaimedUntil, "claimed_until cleared")
	other := claimOne(t, s, store.ClaimSubscribersParams{AgentID: otherAgent, Names: []string{"hook"}, Now: base})
	require.Equal(t, int64(1), other.Cursor, "another agent continues from the cursor")
}

func testDeliverList(t *testing.T, s store.Store) {
	sub, recs := claimedWithEvents(t, s, 5)
	ds := make([]store.Delivery, len(recs))
	for i, id := range ascendingIDs(t, len(ds)) {
		ds[i] = delivered(t, sub.ID, recs[i], base.Add(time.Duration(i)*time.Second))
		ds[i].ID = id
	}
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Deliveries: ds, Release: true, Now: base,
		State: store.SubscriberState{Cursor: 5}})

	var all []uuid.UUID
	cursor := ""
	for range 10 {
		page, err := s.ListDeliveries(t.Context(), store.ListDeliveriesParams{Subscriber: sub.ID, Limit: 2, Cursor: cursor})
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Deliveries), 2)
		all = append(all, deliveryIDs(page)...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	require.Equal(t, []uuid.UUID{ds[4].ID, ds[3].ID, ds[2].ID, ds[1].ID, ds[0].ID}, all, "every delivery once, newest first")

	putSubscriber(t, s, webhookDef("other"), base)
	other, err := s.GetSubscriberByName(t.Context(), "other")
	require.NoError(t, err)
	page, err := s.ListDeliveries(t.Context(), store.ListDeliveriesParams{Subscriber: other.ID})
	require.NoError(t, err)
	require.NotNil(t, page.Deliveries, "never nil")
	require.Empty(t, page.Deliveries, "another subscriber's log is its own")
	_, err = s.GetDelivery(t.Context(), other.ID, ds[0].ID)
	requireNotFound(t, err, "a delivery of another subscriber")
	_, err = s.ListDeliveries(t.Context(), store.ListDeliveriesParams{Subscriber: sub.ID, Cursor: "not-an-id"})
	require.ErrorIs(t, err, store.ErrInvalid, "a malformed cursor")
}

func testDeliverRecord(t *testing.T, s store.Store) {
	sub, recs := claimedWithEvents(t, s, 1)
	d := delivered(t, sub.ID, recs[0], base.Add(time.Minute))
	d.Attempt, d.AgentID = 2, "api"
	require.NoError(t, s.RecordDelivery(t.Context(), d))
	stored, err := s.GetDelivery(t.Context(), sub.ID, d.ID)
	require.NoError(t, err)
	requireDelivery(t, d, stored)
	got := getSubscriber(t, s, sub.ID)
	require.Zero(t, got.Cursor, "a recorded delivery moves no cursor")
	require.Equal(t, sub.ClaimToken, got.ClaimToken, "nor touches the claim")
}

func testDeliverDeleteSubscriber(t *testing.T, s store.Store) {
	sub, recs := claimedWithEvents(t, s, 1)
	d := delivered(t, sub.ID, recs[0], base)
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Deliveries: []store.Delivery{d}, Release: true,
		Now: base, State: store.SubscriberState{Cursor: 1}})
	keep := putSubscriber(t, s, webhookDef("keep"), base)
	kept := delivered(t, keep.ID, recs[0], base)
	require.NoError(t, s.RecordDelivery(t.Context(), kept))

	require.NoError(t, s.DeleteSubscriber(t.Context(), sub.ID))
	_, err := s.GetDelivery(t.Context(), sub.ID, d.ID)
	requireNotFound(t, err, "a deleted subscriber's delivery")
	if page, err := s.ListDeliveries(t.Context(), store.ListDeliveriesParams{Subscriber: sub.ID}); err != nil {
		requireNotFound(t, err, "the log of a deleted subscriber")
	} else {
		require.Empty(t, page.Deliveries, "its log is gone")
	}
	_, err = s.GetDelivery(t.Context(), keep.ID, kept.ID)
	require.NoError(t, err, "another subscriber's log stays")
}
