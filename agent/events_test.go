package agent

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// storedWebhook reads a webhook subscriber and its definition.
func storedWebhook(t *testing.T, s store.Store, name string) (*store.Subscriber, webhook.Def) {
	t.Helper()
	sub, err := s.GetSubscriberByName(t.Context(), name)
	require.NoError(t, err, "subscriber %q", name)
	var d webhook.Def
	require.NoError(t, json.Unmarshal(sub.Config, &d), "subscriber %q config %s", name, sub.Config)
	return sub, d
}

// The [[webhook]] entries are written at start-up as config subscribers:
// created (a disabled entry disabled), the config webhooks the file no
// longer names deleted, API webhooks kept. A restart with the same file
// changes nothing; a changed entry is rewritten, its cursor kept. No
// secret reaches the log.
func TestStartUpAppliesTheConfiguredWebhooks(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	ctx := t.Context()
	for _, def := range []store.SubscriberDef{
		{Name: "stale", Kind: store.SubscriberWebhook, Source: store.SourceConfig, Config: json.RawMessage(`{"name":"stale","url":"http://192.0.2.1/"}`), Enabled: true},
		{Name: "from-api", Kind: store.SubscriberWebhook, Source: store.SourceAPI, Config: json.RawMessage(`{"name":"from-api","url":"http://192.0.2.2/"}`), Enabled: true},
	} {
		_, _, err := s.PutSubscriber(ctx, store.PutSubscriberParams{Def: def})
		require.NoError(t, err)
	}

	off := false
	cfg := testConfig(t, nil)
	cfg.Webhooks = []webhook.Def{
		{Name: "orders", URL: "http://192.0.2.10/hooks", Secrets: []string{testSecret},
			Policy: events.Policy{Filter: events.Filter{Types: []string{"job.*"}}}, IncludePayload: true},
		{Name: "paused", URL: "http://192.0.2.11/hooks", Enabled: &off},
	}
	r := start(t, cfg, s)
	eventually(t, "the agent to start", func() bool { return strings.Contains(r.logs.String(), "agent started") })
	require.NoError(t, r.stop(t))
	logs := r.logs.String()
	requireLogLine(t, logs, `msg="webhook created from the configuration file"`, "webhook=orders", "enabled=true")
	requireLogLine(t, logs, `msg="webhook created from the configuration file"`, "webhook=paused", "enabled=false")
	requireLogLine(t, logs, `msg="webhook deleted: the configuration file no longer names it"`, "webhook=stale")
	require.NotContains(t, logs, testSecret)

	_, err := s.GetSubscriberByName(ctx, "stale")
	require.ErrorIs(t, err, store.ErrNotFound)
	api, _ := storedWebhook(t, s, "from-api")
	require.Equal(t, store.SourceAPI, api.Source)
	orders, def := storedWebhook(t, s, "orders")
	require.Equal(t, cfg.Webhooks[0], def, "the definition is stored as the file gives it")
	require.Equal(t, store.SubscriberWebhook, orders.Kind)
	require.Equal(t, store.SourceConfig, orders.Source)
	require.True(t, orders.Enabled)
	require.True(t, orders.IncludePayload)
	require.False(t, orders.IncludeResult)
	paused, _ := storedWebhook(t, s, "paused")
	require.False(t, paused.Enabled)

	r = start(t, cfg, s)
	eventually(t, "the agent to start", func() bool { return strings.Contains(r.logs.String(), "agent started") })
	require.NoError(t, r.stop(t))
	again, _ := storedWebhook(t, s, "orders")
	require.Equal(t, orders.UpdatedAt, again.UpdatedAt, "an unchanged entry is not rewritten")
	require.NotContains(t, r.logs.String(), "webhook created")
	requireLogLine(t, r.logs.String(), `msg="webhook unchanged"`, "webhook=orders")

	cfg.Webhooks[0].URL = "http://192.0.2.12/hooks"
	cfg.Webhooks = cfg.Webhooks[:1]
	r = start(t, cfg, s)
	eventually(t, "the agent to start", func() bool { return strings.Contains(r.logs.String(), "agent started") })
	require.NoError(t, r.stop(t))
	requireLogLine(t, r.logs.String(), `msg="webhook changed by the configuration file; its cursor is kept"`, "webhook=orders")
	requireLogLine(t, r.logs.String(), `msg="webhook deleted: the configuration file no longer names it"`, "webhook=paused")
	changed, def := storedWebhook(t, s, "orders")
	require.Equal(t, "http://192.0.2.12/hooks", def.URL)
	require.Equal(t, orders.ID, changed.ID)
	require.Equal(t, orders.Cursor, changed.Cursor)
}

// A [[webhook]] whose name an API webhook holds stops start-up naming the
// entry, instead of replacing the API's definition.
func TestWebhookEntryDoesNotTakeOverAnAPIWebhook(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	_, _, err := s.PutSubscriber(t.Context(), store.PutSubscriberParams{Def: store.SubscriberDef{Name: "orders",
		Kind: store.SubscriberWebhook, Source: store.SourceAPI, Config: json.RawMessage(`{"name":"orders","url":"http://192.0.2.2/"}`), Enabled: true}})
	require.NoError(t, err)
	cfg := testConfig(t, nil)
	cfg.Webhooks = []webhook.Def{{Name: "orders", URL: "http://192.0.2.10/hooks"}}
	a, err := New(Params{Config: cfg, Store: s})
	require.NoError(t, err)
	err = a.Run(t.Context())
	require.ErrorContains(t, err, `apply the configuration's webhooks: webhook[0] "orders": the name is taken by a webhook subscriber created through the api`)
	sub, _ := storedWebhook(t, s, "orders")
	require.Equal(t, store.SourceAPI, sub.Source)
}

// signedEvent is one event a receiver verified.
type signedEvent struct {
	events.Event
	msgID string
}

// receiver is a webhook endpoint that verifies each delivery's Standard
// Webhooks signature and records the events it accepted.
type receiver struct {
	srv *httptest.Server
	key []byte

	mu     sync.Mutex
	got    []signedEvent
	forged int
}

func newReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	key, err := dispatch.SigningKey(secret)
	require.NoError(t, err)
	rc := &receiver{key: key}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	id, ts := r.Header.Get(dispatch.HeaderWebhookID), r.Header.Get(dispatch.HeaderWebhookTimestamp)
	sec, err := strconv.ParseInt(ts, 10, 64)
	want := dispatch.Signature(rc.key, id, sec, body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err != nil || !slices.Contains(strings.Fields(r.Header.Get(dispatch.HeaderWebhookSignature)), want) {
		rc.forged++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.got = append(rc.got, signedEvent{Event: e, msgID: id})
}

// types returns the types received for a job, in arrival order.
func (rc *receiver) types(jobID string) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, e := range rc.got {
		if e.JobID != nil && e.JobID.String() == jobID {
			out = append(out, e.Type)
		}
	}
	return out
}

// A job run by an agent with a [[webhook]] reaches the receiver as its
// enqueued, started and completed events, in order, signed, the webhook-id
// being the event's id, and the result included as the entry asks.
func TestConfiguredWebhookReceivesAJobsEvents(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	rc := newReceiver(t, testSecret)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"done": true}`)
	})
	cfg := testConfig(t, a)
	cfg.Events.Interval = job.Duration(20 * time.Millisecond)
	cfg.Webhooks = []webhook.Def{{Name: "all", URL: rc.srv.URL + "/hooks", Secrets: []string{testSecret},
		Policy: events.Policy{Filter: events.Filter{Types: []string{"job.*"}}}, IncludeResult: true}}
	r := start(t, cfg, s)
	eventually(t, "the agent to start", func() bool { return strings.Contains(r.logs.String(), "agent started") })

	jobs := enqueue(t, s, store.NewJob{Queue: "hooked"})
	r.Wake("hooked")
	id := jobs[0].ID.String()
	want := []string{events.JobEnqueued, events.JobStarted, events.JobCompleted}
	eventually(t, "the job's three events at the receiver", func() bool { return len(rc.types(id)) >= len(want) })
	require.Equal(t, want, rc.types(id))

	rc.mu.Lock()
	defer rc.mu.Unlock()
	require.Zero(t, rc.forged)
	for _, e := range rc.got {
		require.Equal(t, e.ID.String(), e.msgID, "the webhook-id is the event's id")
		if e.Type == events.JobCompleted {
			require.JSONEq(t, `{"done": true}`, string(e.Result))
		}
	}
}
