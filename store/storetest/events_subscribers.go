package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/store"
)

// Subscribers: their definitions are put, read, listed, deleted and pruned
// as store/events.go documents; their delivery state (cursor, failures,
// retry, disabling) is the relay's and survives an unchanged Put.

var subscriberTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"SubscriberPutCreatesAndReadsBackByIDAndName", testSubscriberPut},
	{"SubscriberPutUnchangedChangesNothing", testSubscriberPutUnchanged},
	{"SubscriberPutChangedKeepsTheCursor", testSubscriberPutChanged},
	{"SubscriberReEnableClearsTheDisabledStateButKeepsTheCursor", testSubscriberReEnable},
	{"SubscriberCursorStartsAtLatestSeq", testSubscriberCursorStart},
	{"SubscriberCreateOnlyOnAnExistingNameIsConflict", testSubscriberCreateOnly},
	{"SubscriberInvalidDefinitionIsErrInvalidAndWritesNothing", testSubscriberInvalid},
	{"SubscriberUnknownIsNotFound", testSubscriberNotFound},
	{"SubscriberListPagesByNameAndFiltersByKind", testSubscriberList},
	{"SubscriberDeleteRemovesIt", testSubscriberDelete},
	{"SubscriberPruneDeletesTheUnkeptOfOneKindAndSource", testSubscriberPrune},
}

// requireDef checks that a stored subscriber holds def, Config byte for
// byte.
func requireDef(t *testing.T, def store.SubscriberDef, sub *store.Subscriber) {
	t.Helper()
	require.Equal(t, def.Name, sub.Name)
	require.Equal(t, def.Kind, sub.Kind)
	require.Equal(t, def.Source, sub.Source)
	require.Equal(t, string(def.Config), string(sub.Config), "config is returned as given")
	require.Equal(t, def.IncludePayload, sub.IncludePayload, "include_payload")
	require.Equal(t, def.IncludeResult, sub.IncludeResult, "include_result")
	require.Equal(t, def.Enabled, sub.Enabled, "enabled")
}

func testSubscriberPut(t *testing.T, s store.Store) {
	def := webhookDef("orders")
	def.Config = json.RawMessage(`{"url": "https://example.test/hook",  "secrets":["whsec_a"], "filter":{"types":["job.*"]}}`)
	def.IncludePayload = true
	sub, created, err := s.PutSubscriber(t.Context(), store.PutSubscriberParams{Def: def, Now: base})
	require.NoError(t, err)
	require.True(t, created, "a new name is created")
	require.NotEqual(t, uuid.Nil, sub.ID)
	requireDef(t, def, sub)
	requireTime(t, base, sub.CreatedAt, "created_at")
	requireTime(t, base, sub.UpdatedAt, "updated_at")
	require.Zero(t, sub.Cursor)
	require.Zero(t, sub.ConsecutiveFailures)
	require.Nil(t, sub.RetryAt)
	require.Empty(t, sub.DisabledReason)
	require.Nil(t, sub.DisabledAt)
	require.Nil(t, sub.LastDeliveredAt)
	require.Empty(t, sub.ClaimedBy, "a new subscriber is unclaimed")
	require.Empty(t, sub.ClaimToken)
	require.Nil(t, sub.ClaimedUntil)

	byID := getSubscriber(t, s, sub.ID)
	requireDef(t, def, byID)
	requireTime(t, base, byID.CreatedAt, "created_at")
	byName, err := s.GetSubscriberByName(t.Context(), "orders")
	require.NoError(t, err)
	require.Equal(t, sub.ID, byName.ID)
	requireDef(t, def, byName)

	stream := store.SubscriberDef{Name: "kafka", Kind: store.SubscriberStream, Source: store.SourceConfig,
		Config: json.RawMessage(`{}`), IncludeResult: true, Enabled: true}
	got := putSubscriber(t, s, stream, base)
	requireDef(t, stream, getSubscriber(t, s, got.ID))
}

func testSubscriberPutUnchanged(t *testing.T, s store.Store) {
	def := webhookDef("orders")
	first := putSubscriber(t, s, def, base)
	again, created, err := s.PutSubscriber(t.Context(), store.PutSubscriberParams{Def: def, Now: base.Add(time.Hour)})
	require.NoError(t, err)
	require.False(t, created, "an existing name is not created again")
	require.Equal(t, first.ID, again.ID)
	requireTime(t, base, again.UpdatedAt, "an unchanged Put keeps updated_at")
	requireTime(t, base, getSubscriber(t, s, first.ID).UpdatedAt, "stored updated_at")

	off := webhookDef("off")
	off.Enabled = false
	putSubscriber(t, s, off, base)
	got := putSubscriber(t, s, off, base.Add(time.Hour))
	require.False(t, got.Enabled, "a disabled subscriber stays disabled")
	requireTime(t, base, got.UpdatedAt, "updated_at")

	// A subscriber the relay disabled keeps its reason through a Put of
	// its stored definition.
	withWork(t, s)
	sub := claimOne(t, s, store.ClaimSubscribersParams{Names: []string{"orders"}, Now: base})
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Release: true, Now: base,
		State: store.SubscriberState{Cursor: 1, Disabled: true, DisabledReason: "410 Gone from https://example.test/orders"}})
	stored := getSubscriber(t, s, sub.ID)
	require.False(t, stored.Enabled)
	got = putSubscriber(t, s, stored.SubscriberDef, base.Add(2*time.Hour))
	require.False(t, got.Enabled, "still disabled")
	require.Equal(t, "410 Gone from https://example.test/orders", got.DisabledReason, "the reason is kept")
	require.Equal(t, int64(1), got.Cursor)
}

func testSubscriberPutChanged(t *testing.T, s store.Store) {
	first := putSubscriber(t, s, webhookDef("orders"), base)
	withWork(t, s)
	sub := claimOne(t, s, store.ClaimSubscribersParams{Names: []string{"orders"}, Now: base})
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Release: true, Now: base,
		State: store.SubscriberState{Cursor: 1}})

	changed := webhookDef("orders")
	changed.Config = json.RawMessage(`{"url":"https://example.test/v2"}`)
	changed.IncludePayload = true
	got, created, err := s.PutSubscriber(t.Context(), store.PutSubscriberParams{Def: changed, Now: base.Add(time.Hour)})
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.ID, got.ID, "the same subscriber")
	requireDef(t, changed, got)
	requireTime(t, base.Add(time.Hour), got.UpdatedAt, "updated_at")
	requireTime(t, base, got.CreatedAt, "created_at is kept")
	require.Equal(t, int64(1), got.Cursor, "a changed definition keeps the cursor")
	requireDef(t, changed, getSubscriber(t, s, first.ID))
}

func testSubscriberReEnable(t *testing.T, s store.Store) {
	putSubscriber(t, s, webhookDef("orders"), base)
	withWork(t, s)
	withWork(t, s)
	sub := claimOne(t, s, store.ClaimSubscribersParams{Names: []string{"orders"}, Now: base})
	retryAt := base.Add(time.Minute)
	ack(t, s, store.AckEventsParams{Subscriber: sub.ID, ClaimToken: sub.ClaimToken, Release: true, Now: base,
		State: store.SubscriberState{
			Cursor: 1, ConsecutiveFailures: 20, RetrySeq: 2, RetryAttempts: 3, RetryAt: &retryAt, LastError: "HTTP 500",
			Disabled: true, DisabledReason: "20 consecutive failed events",
		}})
	off := getSubscriber(t, s, sub.ID)
	require.False(t, off.Enabled)
	require.Equal(t, "20 consecutive failed events", off.DisabledReason)
	requireTimePtr(t, base, off.DisabledAt, "disabled_at")
	require.Equal(t, 20, off.ConsecutiveFailures)
	require.Equal(t, int64(2), off.RetrySeq)

	on := webhookDef("orders")
	got := putSubscriber(t, s, on, base.Add(time.Hour))
	for _, sub := range []*store.Subscriber{got, getSubscriber(t, s, sub.ID)} {
		require.True(t, sub.Enabled, "enabled again")
		require.Empty(t, sub.DisabledReason, "the reason is cleared")
		require.Nil(t, sub.DisabledAt, "disabled_at is cleared")
		require.Zero(t, sub.ConsecutiveFailures, "the failure count is cleared")
		require.Zero(t, sub.RetrySeq, "the retry is cleared")
		require.Zero(t, sub.RetryAttempts)
		require.Nil(t, sub.RetryAt)
		require.Equal(t, int64(1), sub.Cursor, "the cursor is kept")
	}
}

func testSubscriberCursorStart(t *testing.T, s store.Store) {
	early := putSubscriber(t, s, webhookDef("early"), base)
	enqueue(t, s, base, newJob("q"), newJob("q"), newJob("q"))
	require.Equal(t, 3, sequenceAll(t, s))
	late := putSubscriber(t, s, webhookDef("late"), base)
	require.Equal(t, int64(3), late.Cursor, "a new subscriber starts at LatestSeq")
	require.Equal(t, int64(3), getSubscriber(t, s, late.ID).Cursor)
	require.Zero(t, getSubscriber(t, s, early.ID).Cursor)

	got := claim(t, s, store.ClaimSubscribersParams{Kinds: []string{store.SubscriberWebhook}, Now: base})
	require.Equal(t, []string{"early"}, namesOf(got), "the late subscriber has no old events to deliver")
}

func testSubscriberCreateOnly(t *testing.T, s store.Store) {
	first := putSubscriber(t, s, webhookDef("orders"), base)
	changed := webhookDef("orders")
	changed.Config = json.RawMessage(`{"url":"https://example.test/other"}`)
	_, _, err := s.PutSubscriber(t.Context(), store.PutSubscriberParams{Def: changed, CreateOnly: true, Now: base.Add(time.Hour)})
	require.ErrorIs(t, err, store.ErrConflict)
	got := getSubscriber(t, s, first.ID)
	requireDef(t, webhookDef("orders"), got)
	requireTime(t, base, got.UpdatedAt, "updated_at")

	_, created, err := s.PutSubscriber(t.Context(), store.PutSubscriberParams{Def: webhookDef("fresh"), CreateOnly: true, Now: base})
	require.NoError(t, err)
	require.True(t, created)
}

func testSubscriberInvalid(t *testing.T, s store.Store) {
	for _, tc := range []struct {
		name   string
		change func(*store.SubscriberDef)
	}{
		{"empty name", func(d *store.SubscriberDef) { d.Name = "" }},
		{"unknown kind", func(d *store.SubscriberDef) { d.Kind = "pager" }},
		{"empty kind", func(d *store.SubscriberDef) { d.Kind = "" }},
		{"unknown source", func(d *store.SubscriberDef) { d.Source = "file" }},
		{"empty source", func(d *store.SubscriberDef) { d.Source = "" }},
	} {
		def := webhookDef("bad")
		tc.change(&def)
		_, _, err := s.PutSubscriber(t.Context(), store.PutSubscriberParams{Def: def, Now: base})
		require.ErrorIsf(t, err, store.ErrInvalid, "%s", tc.name)
	}
	page, err := s.ListSubscribers(t.Context(), store.ListSubscribersParams{})
	require.NoError(t, err)
	require.Empty(t, page.Subscribers, "nothing was written")
	_, err = s.GetSubscriberByName(t.Context(), "bad")
	requireNotFound(t, err, "an invalid subscriber")
}

func testSubscriberNotFound(t *testing.T, s store.Store) {
	putSubscriber(t, s, webhookDef("orders"), base)
	_, err := s.GetSubscriber(t.Context(), uuid.New())
	requireNotFound(t, err, "get an unknown id")
	_, err = s.GetSubscriberByName(t.Context(), "nobody")
	requireNotFound(t, err, "get an unknown name")
	requireNotFound(t, s.DeleteSubscriber(t.Context(), uuid.New()), "delete an unknown id")
	_, err = s.GetDelivery(t.Context(), uuid.New(), uuid.New())
	requireNotFound(t, err, "a delivery of an unknown subscriber")
}

func namesOf(subs []*store.Subscriber) []string {
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.Name
	}
	return out
}

func testSubscriberList(t *testing.T, s store.Store) {
	for _, name := range []string{"e", "a", "d", "c", "b"} {
		putSubscriber(t, s, webhookDef(name), base)
	}
	putSubscriber(t, s, store.SubscriberDef{Name: "bb-stream", Kind: store.SubscriberStream, Source: store.SourceConfig,
		Config: json.RawMessage(`{}`), Enabled: true}, base)
	putSubscriber(t, s, store.SubscriberDef{Name: "cc-tail", Kind: store.SubscriberTail, Source: store.SourceAPI,
		Config: json.RawMessage(`{}`), Enabled: true}, base)

	list := func(p store.ListSubscribersParams) ([]string, string) {
		t.Helper()
		page, err := s.ListSubscribers(t.Context(), p)
		require.NoError(t, err)
		require.NotNil(t, page.Subscribers, "never nil")
		return namesOf(page.Subscribers), page.NextCursor
	}
	var all []string
	cursor := ""
	for range 10 {
		names, next := list(store.ListSubscribersParams{Limit: 3, Cursor: cursor})
		require.LessOrEqual(t, len(names), 3)
		all = append(all, names...)
		if next == "" {
			break
		}
		require.Equal(t, names[len(names)-1], next, "the cursor is the page's last name")
		cursor = next
	}
	require.Equal(t, []string{"a", "b", "bb-stream", "c", "cc-tail", "d", "e"}, all, "every subscriber once, by name")

	names, next := list(store.ListSubscribersParams{Kind: store.SubscriberWebhook, Limit: 2})
	require.Equal(t, []string{"a", "b"}, names)
	require.Equal(t, "b", next)
	names, next = list(store.ListSubscribersParams{Kind: store.SubscriberWebhook, Limit: 2, Cursor: next})
	require.Equal(t, []string{"c", "d"}, names)
	names, next = list(store.ListSubscribersParams{Kind: store.SubscriberWebhook, Limit: 2, Cursor: next})
	require.Equal(t, []string{"e"}, names)
	require.Empty(t, next, "the last page has no cursor")
	names, next = list(store.ListSubscribersParams{Kind: store.SubscriberWebhook, Limit: 5})
	require.Len(t, names, 5)
	require.Empty(t, next, "a full last page has no cursor")

	names, _ = list(store.ListSubscribersParams{Kind: store.SubscriberStream})
	require.Equal(t, []string{"bb-stream"}, names)
	names, _ = list(store.ListSubscribersParams{Kind: store.SubscriberTail})
	require.Equal(t, []string{"cc-tail"}, names)
}

func testSubscriberDelete(t *testing.T, s store.Store) {
	sub := putSubscriber(t, s, webhookDef("orders"), base)
	keep := putSubscriber(t, s, webhookDef("keep"), base)
	require.NoError(t, s.DeleteSubscriber(t.Context(), sub.ID))
	_, err := s.GetSubscriber(t.Context(), sub.ID)
	requireNotFound(t, err, "a deleted subscriber")
	_, err = s.GetSubscriberByName(t.Context(), "orders")
	requireNotFound(t, err, "a deleted subscriber by name")
	requireNotFound(t, s.DeleteSubscriber(t.Context(), sub.ID), "delete twice")
	getSubscriber(t, s, keep.ID)

	again, created, err := s.PutSubscriber(t.Context(), store.PutSubscriberParams{Def: webhookDef("orders"), CreateOnly: true, Now: base})
	require.NoError(t, err, "a deleted name is free again")
	require.True(t, created)
	require.NotEqual(t, sub.ID, again.ID)
}

func testSubscriberPrune(t *testing.T, s store.Store) {
	config := func(name, kind string) store.SubscriberDef {
		d := webhookDef(name)
		d.Kind, d.Source = kind, store.SourceConfig
		return d
	}
	for _, d := range []store.SubscriberDef{
		config("c", store.SubscriberWebhook), config("a", store.SubscriberWebhook), config("b", store.SubscriberWebhook),
		webhookDef("api-hook"), config("stream", store.SubscriberStream),
	} {
		putSubscriber(t, s, d, base)
	}
	gone, err := s.PruneSubscribers(t.Context(), store.PruneSubscribersParams{
		Kind: store.SubscriberWebhook, Source: store.SourceConfig, Keep: []string{"b", "api-hook", "stream"},
	})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "c"}, gone, "the unkept config webhooks, sorted")
	page, err := s.ListSubscribers(t.Context(), store.ListSubscribersParams{})
	require.NoError(t, err)
	require.Equal(t, []string{"api-hook", "b", "stream"}, namesOf(page.Subscribers),
		"other sources and kinds are not pruned")

	gone, err = s.PruneSubscribers(t.Context(), store.PruneSubscribersParams{
		Kind: store.SubscriberWebhook, Source: store.SourceConfig, Keep: []string{"b"},
	})
	require.NoError(t, err)
	require.Empty(t, gone, "nothing left to prune")
	gone, err = s.PruneSubscribers(t.Context(), store.PruneSubscribersParams{Kind: store.SubscriberWebhook, Source: store.SourceConfig})
	require.NoError(t, err)
	require.Equal(t, []string{"b"}, gone, "no names kept prunes all of that kind and source")
}
