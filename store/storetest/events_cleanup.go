package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/store"
)

// Cleanup of the outbox: an event goes once every enabled subscriber is
// past it and it is older than the retention; deliveries go by age; tail
// subscribers go once their claim has lapsed for the grace. Events carry the
// database's time, so these tests run on the database's clock.

var cleanupEventTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"OutboxCleanupDeletesOnlyEventsEveryEnabledCursorPassed", testOutboxCleanupCursors},
	{"OutboxCleanupWithoutEnabledSubscriberDeletesEveryOldEvent", testOutboxCleanupNoSubscriber},
	{"OutboxCleanupRespectsLimit", testOutboxCleanupLimit},
	{"OutboxCleanupDeletesOldDeliveries", testOutboxCleanupDeliveries},
	{"OutboxCleanupDeletesTailsWhoseClaimLapsed", testOutboxCleanupTails},
}

func cleanupEvents(t *testing.T, s store.Store, p store.CleanupEventsParams) int {
	t.Helper()
	n, err := s.CleanupEvents(t.Context(), p)
	require.NoError(t, err, "clean up events")
	return n
}

// ackTo claims the subscriber name at now and acknowledges up to cursor,
// releasing the claim.
func ackTo(t *testing.T, s store.Store, name string, cursor int64, now time.Time) {
	t.Helper()
	sub := claimOne(t, s, store.ClaimSubscribersParams{Names: []string{name}, Now: now})
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Release: true, Now: now,
		State: store.SubscriberState{Cursor: cursor}})
}

func testOutboxCleanupCursors(t *testing.T, s store.Store) {
	putSubscriber(t, s, webhookDef("fast"), base)
	putSubscriber(t, s, webhookDef("slow"), base)
	off := webhookDef("off")
	off.Enabled = false
	putSubscriber(t, s, off, base)
	enqueue(t, s, base, newJob("q"), newJob("q"), newJob("q"), newJob("q"))
	require.Equal(t, 4, sequenceAll(t, s))
	first := readAfter(t, s, 0)[0]
	now := dbNow(t, s)
	ackTo(t, s, "fast", 4, now)
	ackTo(t, s, "slow", 2, now)

	p := store.CleanupEventsParams{Retention: time.Hour, Now: now}
	require.Zero(t, cleanupEvents(t, s, p), "events younger than the retention stay")
	require.Len(t, readAfter(t, s, 0), 4)

	p.Now = now.Add(2 * time.Hour)
	require.Equal(t, 2, cleanupEvents(t, s, p), "only the events the slow cursor passed; the disabled one holds nothing back")
	require.Equal(t, []int64{3, 4}, seqsOf(readAfter(t, s, 0)), "the lagging subscriber's events stay")
	_, err := s.GetEvent(t.Context(), first.ID)
	requireNotFound(t, err, "a cleaned up event")
	require.Zero(t, cleanupEvents(t, s, p), "nothing more to delete")

	ackTo(t, s, "slow", 4, now)
	require.Equal(t, 2, cleanupEvents(t, s, p))
	require.Empty(t, readAfter(t, s, 0))
	require.Equal(t, int64(4), latestSeq(t, s), "cleanup does not reset the sequence")
	withWork(t, s)
	require.Equal(t, []int64{5}, seqsOf(readAfter(t, s, 0)), "seq goes on after a cleanup")
}

func testOutboxCleanupNoSubscriber(t *testing.T, s store.Store) {
	def := webhookDef("hook")
	putSubscriber(t, s, def, base)
	enqueue(t, s, base, newJob("q"), newJob("q"), newJob("q"))
	require.Equal(t, 3, sequenceAll(t, s))
	def.Enabled = false
	putSubscriber(t, s, def, base)
	now := dbNow(t, s)
	require.Zero(t, cleanupEvents(t, s, store.CleanupEventsParams{Retention: time.Hour, Now: now}), "too young")
	require.Equal(t, 3, cleanupEvents(t, s, store.CleanupEventsParams{Retention: time.Hour, Now: now.Add(2 * time.Hour)}),
		"with no enabled subscriber every old event goes")
	require.Empty(t, readAfter(t, s, 0))
}

func testOutboxCleanupLimit(t *testing.T, s store.Store) {
	putSubscriber(t, s, webhookDef("hook"), base)
	enqueue(t, s, base, newJob("q"), newJob("q"), newJob("q"), newJob("q"), newJob("q"))
	require.Equal(t, 5, sequenceAll(t, s))
	now := dbNow(t, s)
	ackTo(t, s, "hook", 5, now)
	p := store.CleanupEventsParams{Retention: time.Hour, Limit: 2, Now: now.Add(2 * time.Hour)}
	left := 5
	for _, want := range []int{2, 2, 1, 0} {
		require.Equal(t, want, cleanupEvents(t, s, p), "at most Limit per call")
		left -= want
		require.Len(t, readAfter(t, s, 0), left)
	}
}

func testOutboxCleanupDeliveries(t *testing.T, s store.Store) {
	sub, recs := claimedWithEvents(t, s, 1)
	now := dbNow(t, s)
	ids := ascendingIDs(t, 2)
	old := delivered(t, sub.ID, recs[0], now.Add(-3*time.Hour))
	old.ID = ids[0]
	fresh := delivered(t, sub.ID, recs[0], now)
	fresh.ID = ids[1]
	require.NoError(t, s.RecordDelivery(t.Context(), old))
	require.NoError(t, s.RecordDelivery(t.Context(), fresh))

	require.Zero(t, cleanupEvents(t, s, store.CleanupEventsParams{Retention: time.Hour, Now: now}), "the event is not delivered yet")
	_, err := s.GetDelivery(t.Context(), sub.ID, old.ID)
	requireNotFound(t, err, "a delivery older than the retention")
	_, err = s.GetDelivery(t.Context(), sub.ID, fresh.ID)
	require.NoError(t, err, "a delivery within the retention stays")
	require.Len(t, readAfter(t, s, 0), 1, "an event the cursor has not passed stays")
}

func testOutboxCleanupTails(t *testing.T, s store.Store) {
	tail := func(name string) store.SubscriberDef {
		return store.SubscriberDef{Name: name, Kind: store.SubscriberTail, Source: store.SourceAPI, Config: []byte(`{}`), Enabled: true}
	}
	putSubscriber(t, s, tail("tail-grace"), base)
	putSubscriber(t, s, tail("tail-two"), base)
	hook := putSubscriber(t, s, webhookDef("hook"), base)
	withWork(t, s)
	now := dbNow(t, s)
	claimed := claim(t, s, store.ClaimSubscribersParams{Names: []string{"tail-grace", "tail-two", "hook"}, Now: now})
	require.Len(t, claimed, 3)
	byName := map[string]*store.Subscriber{}
	for _, sub := range claimed {
		byName[sub.Name] = sub
	}
	lapsed := now.Add(claimFor)
	const grace = 5 * time.Minute

	p := store.CleanupEventsParams{Retention: 24 * time.Hour, TailGrace: grace, Now: lapsed.Add(grace - time.Second)}
	require.Zero(t, cleanupEvents(t, s, p), "no event is old enough")
	getSubscriber(t, s, byName["tail-grace"].ID)

	p.Now = lapsed.Add(grace + time.Second)
	cleanupEvents(t, s, p)
	_, err := s.GetSubscriber(t.Context(), byName["tail-grace"].ID)
	requireNotFound(t, err, "a tail whose claim lapsed more than TailGrace ago")
	_, err = s.GetSubscriber(t.Context(), byName["tail-two"].ID)
	requireNotFound(t, err, "the other tail lapsed too")
	getSubscriber(t, s, hook.ID)

	putSubscriber(t, s, tail("tail-zero"), base)
	withWork(t, s)
	zero := claimOne(t, s, store.ClaimSubscribersParams{Names: []string{"tail-zero"}, Now: now})
	p = store.CleanupEventsParams{Retention: 24 * time.Hour, Now: lapsed.Add(time.Minute - time.Second)}
	cleanupEvents(t, s, p)
	getSubscriber(t, s, zero.ID)
	p.Now = lapsed.Add(time.Minute + time.Second)
	cleanupEvents(t, s, p)
	_, err = s.GetSubscriber(t.Context(), zero.ID)
	requireNotFound(t, err, "zero TailGrace is one minute")
	require.Equal(t, hook.ID, getSubscriber(t, s, hook.ID).ID, "a webhook's lapsed claim deletes nothing")
}
