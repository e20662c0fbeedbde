package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/store"
)

func subDef(name string) store.SubscriberDef {
	return store.SubscriberDef{Name: name, Kind: store.SubscriberWebhook, Source: store.SourceConfig,
		Config: json.RawMessage(`{"url":"https://example.com/hook"}`), Enabled: true}
}

func TestSubscriberDefValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, subDef(strings.Repeat("n", store.MaxSubscriberNameLength)).Validate(), "a name of the longest length")
	for _, tc := range []struct {
		field string
		edit  func(*store.SubscriberDef)
	}{
		{"name", func(d *store.SubscriberDef) { d.Name = "" }},
		{"name", func(d *store.SubscriberDef) { d.Name = strings.Repeat("n", store.MaxSubscriberNameLength+1) }},
		{"kind", func(d *store.SubscriberDef) { d.Kind = "" }},
		{"kind", func(d *store.SubscriberDef) { d.Kind = "email" }},
		{"source", func(d *store.SubscriberDef) { d.Source = "file" }},
	} {
		d := subDef("hook")
		tc.edit(&d)
		err := d.Validate()
		require.ErrorIs(t, err, store.ErrInvalid, "%+v", d)
		require.Contains(t, err.Error(), tc.field+":", "the error names the field")
	}
}

var putAt = time.Date(2099, time.May, 6, 7, 8, 9, 123456000, time.UTC)

// storedSub is a subscriber as read back: failing, retrying, claimed.
func storedSub(enabled bool) *store.Subscriber {
	retry := putAt.Add(-time.Minute)
	sub := &store.Subscriber{ID: uuid.New(), SubscriberDef: subDef("hook"),
		SubscriberState: store.SubscriberState{Cursor: 42, ConsecutiveFailures: 3, RetrySeq: 43, RetryAttempts: 2,
			RetryAt: &retry, LastError: "502 Bad Gateway"},
		ClaimedBy: "agent", ClaimToken: "token", CreatedAt: putAt.Add(-time.Hour), UpdatedAt: putAt.Add(-time.Hour)}
	sub.Enabled = enabled
	if !enabled {
		at := putAt.Add(-time.Hour)
		sub.DisabledReason, sub.DisabledAt = "20 consecutive failed events", &at
		sub.Disabled, sub.SubscriberState.DisabledReason = true, sub.DisabledReason
	}
	return sub
}

func TestPlanSubscriberPutNew(t *testing.T) {
	t.Parallel()
	next, write, err := store.PlanSubscriberPut(nil, store.PutSubscriberParams{Def: subDef("hook")}, putAt)
	require.NoError(t, err)
	require.True(t, write)
	require.Equal(t, uuid.Version(7), next.ID.Version(), "a new subscriber's id is a UUIDv7")
	require.Equal(t, subDef("hook"), next.SubscriberDef)
	require.Nil(t, next.DisabledAt, "created enabled")
	require.Equal(t, putAt, next.CreatedAt)

	off := subDef("hook")
	off.Enabled = false
	next, write, err = store.PlanSubscriberPut(nil, store.PutSubscriberParams{Def: off, CreateOnly: true}, putAt)
	require.NoError(t, err)
	require.True(t, write)
	require.Equal(t, &putAt, next.DisabledAt, "created disabled: disabled_at is now")
}

func TestPlanSubscriberPutExisting(t *testing.T) {
	t.Parallel()
	_, _, err := store.PlanSubscriberPut(storedSub(true), store.PutSubscriberParams{Def: subDef("hook"), CreateOnly: true}, putAt)
	require.ErrorIs(t, err, store.ErrConflict, "CreateOnly on an existing name")

	for _, enabled := range []bool{true, false} {
		old := storedSub(enabled)
		def := old.SubscriberDef
		next, write, err := store.PlanSubscriberPut(old, store.PutSubscriberParams{Def: def}, putAt)
		require.NoError(t, err)
		require.False(t, write, "an unchanged definition (enabled %v) writes nothing", enabled)
		require.Same(t, old, next)
	}

	for _, change := range []func(*store.SubscriberDef){
		func(d *store.SubscriberDef) { d.Kind = store.SubscriberStream },
		func(d *store.SubscriberDef) { d.Source = store.SourceAPI },
		func(d *store.SubscriberDef) { d.Config = json.RawMessage(`{"url": "https://example.com/hook"}`) },
		func(d *store.SubscriberDef) { d.IncludePayload = true },
		func(d *store.SubscriberDef) { d.IncludeResult = true },
	} {
		old := storedSub(true)
		def := old.SubscriberDef
		change(&def)
		next, write, err := store.PlanSubscriberPut(old, store.PutSubscriberParams{Def: def}, putAt)
		require.NoError(t, err)
		require.True(t, write, "%+v is a change", def)
		require.Equal(t, def, next.SubscriberDef, "the definition is taken")
		want := *old
		want.SubscriberDef, want.UpdatedAt = def, putAt
		require.Equal(t, &want, next, "the state is kept")
		require.Equal(t, subDef("hook"), old.SubscriberDef, "existing is left as read")
	}
}

func TestPlanSubscriberPutEnableDisable(t *testing.T) {
	t.Parallel()
	old := storedSub(false)
	next, write, err := store.PlanSubscriberPut(old, store.PutSubscriberParams{Def: subDef("hook")}, putAt)
	require.NoError(t, err)
	require.True(t, write)
	require.True(t, next.Enabled)
	require.Empty(t, next.DisabledReason, "enabling clears the reason")
	require.Nil(t, next.DisabledAt, "and disabled_at")
	require.Equal(t, store.SubscriberState{Cursor: 42, LastError: "502 Bad Gateway"}, next.SubscriberState,
		"and the failure count and retry state; the cursor stays")

	off := subDef("hook")
	off.Enabled = false
	next, write, err = store.PlanSubscriberPut(storedSub(true), store.PutSubscriberParams{Def: off}, putAt)
	require.NoError(t, err)
	require.True(t, write)
	require.Equal(t, &putAt, next.DisabledAt, "disabling stamps disabled_at")
	require.Equal(t, 3, next.ConsecutiveFailures, "and keeps the state")
}

func ackParams() store.AckEventsParams {
	return store.AckEventsParams{Subscriber: uuid.New(), AgentID: "agent", ClaimToken: "token",
		State: store.SubscriberState{Cursor: 10}, Extend: time.Minute}
}

func TestPlanAckEventsGuard(t *testing.T) {
	t.Parallel()
	held := &store.AckRow{Cursor: 10, ClaimedBy: "agent", ClaimToken: "token"}
	for _, tc := range []struct {
		name string
		row  *store.AckRow
		edit func(*store.AckEventsParams)
		want error
	}{
		{"no row", nil, nil, store.ErrNotFound},
		{"another agent", &store.AckRow{Cursor: 10, ClaimedBy: "other", ClaimToken: "token"}, nil, store.ErrStaleLease},
		{"another token", &store.AckRow{Cursor: 10, ClaimedBy: "agent", ClaimToken: "new"}, nil, store.ErrStaleLease},
		{"released", &store.AckRow{Cursor: 10}, nil, store.ErrStaleLease},
		{"no token", &store.AckRow{Cursor: 10, ClaimedBy: "agent"}, func(p *store.AckEventsParams) { p.ClaimToken = "" }, store.ErrStaleLease},
		{"cursor back", held, func(p *store.AckEventsParams) { p.State.Cursor = 9 }, store.ErrInvalid},
	} {
		p := ackParams()
		if tc.edit != nil {
			tc.edit(&p)
		}
		plan, err := store.PlanAckEvents(tc.row, p, putAt)
		require.ErrorIs(t, err, tc.want, tc.name)
		require.Nil(t, plan, tc.name)
	}
	plan, err := store.PlanAckEvents(held, ackParams(), putAt)
	require.NoError(t, err, "the same cursor again")
	require.Equal(t, putAt.Add(time.Minute), *plan.ClaimedUntil, "the claim is extended")
	require.Nil(t, plan.LastDeliveredAt, "nothing delivered keeps last_delivered_at")

	p := ackParams()
	p.Release, p.State.Cursor = true, 12
	p.State.LastError, p.State.Disabled, p.State.DisabledReason = "bad \x00 byte", true, "410 \xff Gone"
	plan, err = store.PlanAckEvents(held, p, putAt)
	require.NoError(t, err)
	require.Nil(t, plan.ClaimedUntil, "released")
	require.Equal(t, int64(12), plan.State.Cursor)
	require.Equal(t, "bad \uFFFD byte", plan.State.LastError, "texts made storable")
	require.Equal(t, "410 \uFFFD Gone", plan.State.DisabledReason)
}

func TestPlanDeliveries(t *testing.T) {
	t.Parallel()
	sub, given := uuid.New(), uuid.New()
	older := time.Date(2099, time.May, 6, 7, 0, 0, 0, time.FixedZone("CET", 3600))
	ds := []store.Delivery{
		{Outcome: store.DeliveryDelivered, At: older, Error: "a\x00b"},
		{ID: given, Subscriber: uuid.New(), AgentID: "pinger", Outcome: store.DeliveryRetrying, Response: "\xff"},
		{Outcome: store.DeliveryFailed},
	}
	out, delivered, err := store.PlanDeliveries(sub, "agent", ds, putAt)
	require.NoError(t, err)
	require.Len(t, out, 3)
	for i, d := range out {
		require.Equal(t, sub, d.Subscriber, "delivery %d is the subscriber's", i)
	}
	require.Equal(t, uuid.Version(7), out[0].ID.Version(), "a missing id is a UUIDv7")
	require.Equal(t, given, out[1].ID, "a given id is kept")
	require.NotEqual(t, out[0].ID, out[2].ID)
	require.Equal(t, []string{"agent", "pinger", "agent"}, []string{out[0].AgentID, out[1].AgentID, out[2].AgentID})
	require.Equal(t, older.UTC(), out[0].At, "a given time in UTC")
	require.Equal(t, putAt, out[1].At, "a zero time is now")
	require.Equal(t, "a\uFFFDb", out[0].Error)
	require.Equal(t, "\uFFFD", out[1].Response)
	require.Equal(t, older.UTC(), *delivered, "the delivered attempt's time, not now")
	require.Empty(t, ds[0].ID, "the caller's deliveries are left as given")

	newer := []store.Delivery{{Outcome: store.DeliveryDelivered, At: older}, {Outcome: store.DeliveryDelivered, At: older.Add(time.Second)},
		{Outcome: store.DeliveryFailed, At: older.Add(time.Hour)}}
	_, delivered, err = store.PlanDeliveries(sub, "agent", newer, putAt)
	require.NoError(t, err)
	require.Equal(t, older.Add(time.Second).UTC(), *delivered, "the newest delivered attempt")

	_, delivered, err = store.PlanDeliveries(sub, "agent", ds[1:], putAt)
	require.NoError(t, err)
	require.Nil(t, delivered, "none delivered")
}

func TestOutboxDefaults(t *testing.T) {
	t.Parallel()
	require.Equal(t, store.DefaultSequenceLimit, store.SequenceEventsParams{}.BatchLimit())
	require.Equal(t, 7, store.SequenceEventsParams{Limit: 7}.BatchLimit())
	require.Equal(t, store.DefaultReadLimit, store.ReadEventsParams{}.ReadLimit())
	require.Equal(t, 7, store.ReadEventsParams{Limit: 7}.ReadLimit())
	require.Equal(t, store.DefaultCleanupLimit, store.CleanupEventsParams{}.DeleteLimit())
	require.Equal(t, 7, store.CleanupEventsParams{Limit: 7}.DeleteLimit())
	require.Equal(t, putAt.Add(-store.DefaultTailGrace), store.CleanupEventsParams{}.TailCutoff(putAt))
	require.Equal(t, putAt.Add(-time.Hour), store.CleanupEventsParams{TailGrace: time.Hour}.TailCutoff(putAt))

	require.True(t, store.ClaimSubscribersParams{Kinds: []string{store.SubscriberWebhook}}.ClaimsNothing(), "no limit")
	require.True(t, store.ClaimSubscribersParams{Limit: 3}.ClaimsNothing(), "no kinds nor names")
	require.False(t, store.ClaimSubscribersParams{Limit: 1, Names: []string{"tail"}}.ClaimsNothing())
}

func TestSubscriberPaging(t *testing.T) {
	t.Parallel()
	pg := store.ListSubscribersParams{Limit: 2, Cursor: "b"}.Paging()
	require.Equal(t, store.NamePaging{Limit: 2, After: "b"}, pg)
	require.Equal(t, store.DefaultListLimit, store.ListSubscribersParams{}.Paging().Limit)
	require.Equal(t, store.MaxListLimit, store.ListSubscribersParams{Limit: store.MaxListLimit + 1}.Paging().Limit)

	subs := func(names ...string) []*store.Subscriber {
		out := make([]*store.Subscriber, len(names))
		for i, n := range names {
			out[i] = &store.Subscriber{SubscriberDef: store.SubscriberDef{Name: n}}
		}
		return out
	}
	page := pg.SubscriberPage(subs("c", "d", "e"))
	require.Len(t, page.Subscribers, 2)
	require.Equal(t, "d", page.NextCursor, "a full page with more: its last name")
	page = pg.SubscriberPage(subs("c", "d"))
	require.Len(t, page.Subscribers, 2)
	require.Empty(t, page.NextCursor, "the last page")
	page = pg.SubscriberPage(nil)
	require.NotNil(t, page.Subscribers)
	require.Empty(t, page.Subscribers)
}

func TestDeliveryPaging(t *testing.T) {
	t.Parallel()
	_, err := store.ListDeliveriesParams{Cursor: "nope"}.Paging()
	require.ErrorIs(t, err, store.ErrInvalid)
	require.Contains(t, err.Error(), "delivery id")

	ids := make([]uuid.UUID, 3)
	ds := make([]*store.Delivery, 3)
	for i := range ids {
		ids[i] = uuid.New()
		ds[i] = &store.Delivery{ID: ids[i]}
	}
	pg, err := store.ListDeliveriesParams{Limit: 2, Cursor: ids[0].String()}.Paging()
	require.NoError(t, err)
	require.Equal(t, ids[0], *pg.Before)
	require.Equal(t, 3, pg.Fetch())
	page := pg.DeliveryPage(ds)
	require.Equal(t, ds[:2], page.Deliveries)
	require.Equal(t, ids[1].String(), page.NextCursor)
	page = pg.DeliveryPage(ds[:2])
	require.Empty(t, page.NextCursor)
	page = pg.DeliveryPage(nil)
	require.NotNil(t, page.Deliveries)
	require.Empty(t, page.Deliveries, "an empty page")
}

// scanned is a row of AckRow's columns as a driver hands them over.
type scanned struct {
	cursor           int64
	claimedBy, token *string
	err              error
}

func (r scanned) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	*dest[0].(*int64), *dest[1].(**string), *dest[2].(**string) = r.cursor, r.claimedBy, r.token
	return nil
}

func TestScanAckRow(t *testing.T) {
	t.Parallel()
	noRows := errors.New("no rows")
	row, err := store.ScanAckRow(scanned{err: fmt.Errorf("driver: %w", noRows)}, noRows)
	require.NoError(t, err)
	require.Nil(t, row, "no row: no subscriber")
	_, err = store.ScanAckRow(scanned{err: errors.New("connection reset")}, noRows)
	require.ErrorContains(t, err, "connection reset")
	row, err = store.ScanAckRow(scanned{cursor: 7}, noRows)
	require.NoError(t, err)
	require.Equal(t, &store.AckRow{Cursor: 7}, row, "a released claim reads as empty")
	by, token := "agent", "token"
	row, err = store.ScanAckRow(scanned{cursor: 7, claimedBy: &by, token: &token}, noRows)
	require.NoError(t, err)
	require.Equal(t, &store.AckRow{Cursor: 7, ClaimedBy: "agent", ClaimToken: "token"}, row)
}

func TestOutboxColumns(t *testing.T) {
	t.Parallel()
	for _, cols := range []string{store.SubscriberColumns, store.DeliveryColumns, store.EventColumns} {
		seen := map[string]bool{}
		for _, c := range strings.Split(cols, ", ") {
			require.Regexp(t, `^[a-z_]+$`, c, "one column between separators in %q", cols)
			require.False(t, seen[c], "%s listed once", c)
			seen[c] = true
		}
	}
	require.Len(t, strings.Split(store.DeliveryColumns, ", "), 13)
}

func TestSubscriberFillState(t *testing.T) {
	t.Parallel()
	sub := storedSub(false)
	sub.Disabled, sub.SubscriberState.DisabledReason = false, ""
	sub.FillState()
	require.True(t, sub.Disabled, "a disabled row's state is disabled")
	require.Equal(t, "20 consecutive failed events", sub.SubscriberState.DisabledReason, "with the row's reason")
	on := storedSub(true)
	on.FillState()
	require.False(t, on.Disabled)
}
