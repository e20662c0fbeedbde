package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/store"
)

// testSecret is the Standard Webhooks specification's test secret.
const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// receiver is a webhook endpoint that checks every request's signature as
// the README tells receivers to, and answers with status.
type receiver struct {
	srv    *httptest.Server
	secret string
	status int

	mu       sync.Mutex
	received []receivedEvent
}

type receivedEvent struct {
	event    events.Event
	verified bool
	id       string
}

func newReceiver(t *testing.T, secret string, status int) *receiver {
	t.Helper()
	r := &receiver{secret: secret, status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.received = append(r.received, receivedEvent{event: e, verified: verify(r.secret, req.Header, body), id: req.Header.Get("webhook-id")})
	r.mu.Unlock()
	w.WriteHeader(r.status)
	fmt.Fprintf(w, "answered %d", r.status)
}

func (r *receiver) events() []receivedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedEvent(nil), r.received...)
}

// verify checks a Standard Webhooks signature: v1,base64(HMAC-SHA256 of
// "id.timestamp.body" under the secret's key), within five minutes.
func verify(secret string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	ts, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", h.Get("webhook-id"), ts)
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

func withSink() option {
	return func(p *api.Params) {
		p.Webhooks = webhook.New(webhook.Config{AgentID: "agent-under-test"})
		p.AgentID = "agent-under-test"
	}
}

func withSelf(addrs ...string) option { return func(p *api.Params) { p.Self = addrs } }

func (r response) webhook(t *testing.T, status int) api.WebhookView {
	t.Helper()
	require.Equal(t, status, r.status, string(r.body))
	var v api.WebhookView
	require.NoError(t, json.Unmarshal(r.body, &v), string(r.body))
	return v
}

func (r response) delivery(t *testing.T) api.DeliveryView {
	t.Helper()
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var v api.DeliveryView
	require.NoError(t, json.Unmarshal(r.body, &v), string(r.body))
	return v
}

type webhookList struct {
	Webhooks   []api.WebhookView `json:"webhooks"`
	NextCursor string            `json:"next_cursor"`
}

func (e *env) webhooks(t *testing.T, query string) webhookList {
	t.Helper()
	r := e.get(t, "/v1/webhooks"+query)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var l webhookList
	require.NoError(t, json.Unmarshal(r.body, &l), string(r.body))
	return l
}

type deliveryList struct {
	Deliveries []api.DeliveryView `json:"deliveries"`
	NextCursor string             `json:"next_cursor"`
}

func (e *env) deliveries(t *testing.T, id uuid.UUID, query string) deliveryList {
	t.Helper()
	r := e.get(t, "/v1/webhooks/"+id.String()+"/deliveries"+query)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var l deliveryList
	require.NoError(t, json.Unmarshal(r.body, &l), string(r.body))
	return l
}

func billing(url string) string {
	return fmt.Sprintf(`{"name": "billing", "url": %q, "secrets": [%q], "events": ["job.failed", "workflow.*"],
		"queues": ["invoices"], "include_payload": true}`, url, testSecret)
}

func TestWebhookCreateGetListPutDelete(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)

		r := e.post(t, "/v1/webhooks", billing("https://billing.example.com/hooks"))
		created := r.webhook(t, http.StatusCreated)
		require.Equal(t, "/v1/webhooks/"+created.ID.String(), r.header.Get("Location"))
		require.NotContains(t, string(r.body), testSecret, "a secret is never returned")
		require.Equal(t, []string{"whsec_…LaSw"}, created.Secrets)
		require.Equal(t, "billing", created.Name)
		require.Equal(t, "https://billing.example.com/hooks", created.URL)
		require.Equal(t, []string{"job.failed", "workflow.*"}, created.Events)
		require.Equal(t, []string{"invoices"}, created.Queues)
		require.True(t, created.IncludePayload)
		require.False(t, created.IncludeResult)
		require.True(t, created.Enabled)
		require.Equal(t, store.SourceAPI, created.Source)
		require.Equal(t, events.DefaultMaxAttempts, created.MaxAttempts, "defaults are shown")
		require.Equal(t, events.DefaultMaxFailures, created.MaxFailures)
		require.Equal(t, webhook.DefaultTimeout, created.Timeout.D())
		require.Equal(t, webhook.DefaultConcurrency, created.Concurrency)
		require.Equal(t, events.DefaultRetryMax, created.RetryMax.D())

		got := e.get(t, "/v1/webhooks/"+created.ID.String()).webhook(t, http.StatusOK)
		require.Equal(t, created, got)
		list := e.webhooks(t, "")
		require.Len(t, list.Webhooks, 1)
		require.Equal(t, created, list.Webhooks[0])

		r = e.put(t, "/v1/webhooks/"+created.ID.String(), `{"url": "https://billing.example.com/v2", "events": ["job.*"], "enabled": false}`)
		replaced := r.webhook(t, http.StatusOK)
		require.Equal(t, created.ID, replaced.ID)
		require.Equal(t, "billing", replaced.Name, "PUT keeps the name")
		require.Equal(t, "https://billing.example.com/v2", replaced.URL)
		require.Equal(t, []string{"job.*"}, replaced.Events)
		require.Empty(t, replaced.Queues, "PUT replaces the whole definition")
		require.Empty(t, replaced.Secrets)
		require.False(t, replaced.Enabled)
		require.Equal(t, created.Cursor, replaced.Cursor)

		r = e.put(t, "/v1/webhooks/"+created.ID.String(), `{"name": "payments", "url": "https://billing.example.com/v3"}`)
		_, fields := r.requireInvalid(t)
		require.Contains(t, fields, "name")
		require.Equal(t, "https://billing.example.com/v2", e.get(t, "/v1/webhooks/"+created.ID.String()).webhook(t, http.StatusOK).URL,
			"a rejected PUT changes nothing")

		require.Equal(t, http.StatusNoContent, e.do(t, http.MethodDelete, "/v1/webhooks/"+created.ID.String(), nil).status)
		require.Equal(t, http.StatusNotFound, e.get(t, "/v1/webhooks/"+created.ID.String()).status)
		require.Empty(t, e.webhooks(t, "").Webhooks)
		require.Equal(t, http.StatusBadRequest, e.get(t, "/v1/webhooks/billing").status, "the path takes the id")
	})
}

func TestWebhookListPagesByName(t *testing.T) {
	t.Parallel()
	e := setup(t, testkit.SQLite(t))
	for _, name := range []string{"c", "a", "b"} {
		e.post(t, "/v1/webhooks", fmt.Sprintf(`{"name": %q, "url": "https://example.com/%s"}`, name, name)).webhook(t, http.StatusCreated)
	}
	first := e.webhooks(t, "?limit=2")
	require.Equal(t, []string{"a", "b"}, []string{first.Webhooks[0].Name, first.Webhooks[1].Name})
	require.NotEmpty(t, first.NextCursor)
	second := e.webhooks(t, "?limit=2&cursor="+first.NextCursor)
	require.Len(t, second.Webhooks, 1)
	require.Equal(t, "c", second.Webhooks[0].Name)
	require.Empty(t, second.NextCursor)
}

// TestWebhookBadInputIsA422NamingTheField checks each way a definition can
// be wrong: a 422 whose details name the field, and nothing written.
func TestWebhookBadInputIsA422NamingTheField(t *testing.T) {
	t.Parallel()
	const self = "127.0.0.1:9090"
	for _, tc := range []struct {
		name, body, field string
	}{
		{"malformed url", `{"name": "a", "url": "http://[::1"}`, "url"},
		{"not http", `{"name": "a", "url": "ftp://files.example.com/in"}`, "url"},
		{"no url", `{"name": "a"}`, "url"},
		{"no name", `{"url": "http://127.0.0.1:8080/hook"}`, "name"},
		{"unknown event type", `{"name": "a", "url": "http://127.0.0.1:8080/hook", "events": ["job.exploded"]}`, "events[0]"},
		{"unknown key", `{"name": "a", "url": "http://127.0.0.1:8080/hook", "evnts": ["job.failed"]}`, "evnts"},
		{"mistyped value", `{"name": "a", "url": "http://127.0.0.1:8080/hook", "events": "job.failed"}`, "events"},
		{"bad duration", `{"name": "a", "url": "http://127.0.0.1:8080/hook", "timeout": "soon"}`, "timeout"},
		{"bad priority", `{"name": "a", "url": "http://127.0.0.1:8080/hook", "priorities": [7]}`, "priorities[0]"},
		{"secret without prefix", `{"name": "a", "url": "http://127.0.0.1:8080/hook", "secrets": ["hunter2"]}`, "secrets[0]"},
		{"secret not base64", `{"name": "a", "url": "http://127.0.0.1:8080/hook", "secrets": ["whsec_!!!"]}`, "secrets[0]"},
		{"own listener", `{"name": "a", "url": "http://localhost:9090/v1/jobs"}`, "url"},
		{"own listener by ip", `{"name": "a", "url": "http://127.0.0.1:9090/hook"}`, "url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, testkit.SQLite(t), withSelf(self))
			msg, fields := e.post(t, "/v1/webhooks", tc.body).requireInvalid(t)
			require.Contains(t, fields, tc.field, msg)
			require.Contains(t, msg, tc.field)
			require.Empty(t, e.webhooks(t, "").Webhooks, "nothing is written")
		})
	}

	t.Run("duplicate name", func(t *testing.T) {
		t.Parallel()
		e := setup(t, testkit.SQLite(t))
		first := e.post(t, "/v1/webhooks", billing("https://billing.example.com/hooks")).webhook(t, http.StatusCreated)
		msg, fields := e.post(t, "/v1/webhooks", billing("https://other.example.com/hooks")).requireInvalid(t)
		require.Contains(t, fields, "name", msg)
		list := e.webhooks(t, "")
		require.Len(t, list.Webhooks, 1, "nothing is written")
		require.Equal(t, first.URL, list.Webhooks[0].URL)
	})

	t.Run("malformed JSON", func(t *testing.T) {
		t.Parallel()
		e := setup(t, testkit.SQLite(t))
		for _, body := range []string{`{"name": "a", `, `[{"name": "a"}]`, `{"name": "a"} {"name": "b"}`, ``} {
			r := e.post(t, "/v1/webhooks", body)
			require.Equal(t, http.StatusBadRequest, r.status, "%s: %s", body, r.body)
		}
		require.Empty(t, e.webhooks(t, "").Webhooks)
	})
}

func TestWebhookTestPingIsSignedAndLogged(t *testing.T) {
	t.Parallel()
	e := setup(t, testkit.SQLite(t), withSink())
	rcv := newReceiver(t, testSecret, http.StatusOK)
	hook := e.post(t, "/v1/webhooks", billing(rcv.srv.URL+"/hooks")).webhook(t, http.StatusCreated)

	d := e.post(t, "/v1/webhooks/"+hook.ID.String()+"/test", "").delivery(t)
	require.Equal(t, store.DeliveryDelivered, d.Outcome)
	require.Equal(t, http.StatusOK, d.StatusCode)
	require.Equal(t, events.Ping, d.EventType)
	require.Equal(t, "answered 200", d.Response)
	require.Equal(t, "agent-under-test", d.AgentID)
	require.Equal(t, hook.ID, d.Webhook)

	got := rcv.events()
	require.Len(t, got, 1)
	require.True(t, got[0].verified, "the ping is signed with the webhook's secret")
	require.Equal(t, events.Ping, got[0].event.Type)
	require.Equal(t, d.EventID, got[0].event.ID)
	require.Equal(t, d.EventID.String(), got[0].id)

	log := e.deliveries(t, hook.ID, "")
	require.Len(t, log.Deliveries, 1)
	require.Equal(t, d.ID, log.Deliveries[0].ID)
	one := e.get(t, "/v1/webhooks/"+hook.ID.String()+"/deliveries/"+d.ID.String()).delivery(t)
	require.Equal(t, d.ID, one.ID)
	require.Equal(t, d.EventID, one.EventID)
	require.Equal(t, http.StatusNotFound, e.get(t, "/v1/webhooks/"+hook.ID.String()+"/deliveries/"+uuid.New().String()).status)
}

func TestWebhookTestAgainstAFailingReceiverRecordsTheAnswer(t *testing.T) {
	t.Parallel()
	e := setup(t, testkit.SQLite(t), withSink())
	rcv := newReceiver(t, testSecret, http.StatusServiceUnavailable)
	hook := e.post(t, "/v1/webhooks", billing(rcv.srv.URL)).webhook(t, http.StatusCreated)

	d := e.post(t, "/v1/webhooks/"+hook.ID.String()+"/test", "").delivery(t)
	require.Equal(t, store.DeliveryFailed, d.Outcome)
	require.Equal(t, http.StatusServiceUnavailable, d.StatusCode)
	require.Equal(t, "answered 503", d.Response)
	require.Len(t, e.deliveries(t, hook.ID, "").Deliveries, 1)
}

func TestWebhookTestWithoutASinkIsNotSupported(t *testing.T) {
	t.Parallel()
	e := setup(t, testkit.SQLite(t))
	hook := e.post(t, "/v1/webhooks", billing("https://billing.example.com/hooks")).webhook(t, http.StatusCreated)
	r := e.post(t, "/v1/webhooks/"+hook.ID.String()+"/test", "")
	require.Equal(t, http.StatusUnprocessableEntity, r.status, string(r.body))
	require.Contains(t, string(r.body), "not_supported")
}

// TestWebhookRedeliverSendsTheSameEventAgain delivers an outbox event (a
// job's enqueue) as the relay would record it, redelivers it, and checks
// the receiver got the same event id, signed; an event cleaned up since is
// a 409.
func TestWebhookRedeliverSendsTheSameEventAgain(t *testing.T) {
	t.Parallel()
	for _, b := range []testkit.Backend{testkit.SQLiteBackend, testkit.PostgresBackend, testkit.MySQLBackend} {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			st := b.Store(t)
			e := setup(t, st, withSink())
			rcv := newReceiver(t, testSecret, http.StatusOK)
			hook := e.post(t, "/v1/webhooks", fmt.Sprintf(`{"name": "all", "url": %q, "secrets": [%q]}`, rcv.srv.URL, testSecret)).
				webhook(t, http.StatusCreated)
			j := e.enqueue(t, `{"queue": "invoices", "payload": {"n": 1}}`)

			ctx := context.Background()
			_, err := st.SequenceEvents(ctx, store.SequenceEventsParams{})
			require.NoError(t, err)
			recs, err := st.ReadEvents(ctx, store.ReadEventsParams{AfterSeq: hook.Cursor})
			require.NoError(t, err)
			require.Len(t, recs, 1)
			ev := recs[0]
			require.Equal(t, events.JobEnqueued, events.TypeOf(ev))
			first := store.Delivery{ID: uuid.Must(uuid.NewV7()), Subscriber: hook.ID, EventID: ev.ID, EventSeq: ev.Seq,
				EventType: events.JobEnqueued, Attempt: 1, Outcome: store.DeliveryFailed, StatusCode: 500, AgentID: "relay"}
			require.NoError(t, st.RecordDelivery(ctx, first))

			d := e.post(t, "/v1/webhooks/"+hook.ID.String()+"/deliveries/"+first.ID.String()+"/redeliver", "").delivery(t)
			require.Equal(t, store.DeliveryDelivered, d.Outcome)
			require.Equal(t, ev.ID, d.EventID, "a redelivery carries the same event id")
			require.Equal(t, ev.Seq, d.EventSeq)
			require.Equal(t, 2, d.Attempt)
			require.NotEqual(t, first.ID, d.ID)

			got := rcv.events()
			require.Len(t, got, 1)
			require.True(t, got[0].verified)
			require.Equal(t, ev.ID, got[0].event.ID)
			require.Equal(t, events.JobEnqueued, got[0].event.Type)
			require.Equal(t, j.ID, *got[0].event.JobID)
			require.Equal(t, "invoices", got[0].event.Queue)

			log := e.deliveries(t, hook.ID, "")
			require.Len(t, log.Deliveries, 2)
			require.Equal(t, d.ID, log.Deliveries[0].ID, "newest first")

			gone := store.Delivery{ID: uuid.Must(uuid.NewV7()), Subscriber: hook.ID, EventID: uuid.New(), EventSeq: ev.Seq + 100,
				EventType: events.JobFailed, Attempt: 1, Outcome: store.DeliveryFailed, AgentID: "relay"}
			require.NoError(t, st.RecordDelivery(ctx, gone))
			r := e.post(t, "/v1/webhooks/"+hook.ID.String()+"/deliveries/"+gone.ID.String()+"/redeliver", "")
			require.Equal(t, http.StatusConflict, r.status, string(r.body))
			require.Contains(t, string(r.body), "no longer retained")
			require.Len(t, rcv.events(), 1, "nothing is sent")
		})
	}
}

// TestWebhookPutOfAConfigWebhookKeepsItsSource: a [[webhook]] entry may be
// changed through the API, and the view says it came from the
// configuration, whose next start-up puts the file's definition back.
func TestWebhookPutOfAConfigWebhookKeepsItsSource(t *testing.T) {
	t.Parallel()
	st := testkit.SQLite(t)
	e := setup(t, st)
	def, err := api.WebhookSubscriber(webhook.Def{Name: "ops", URL: "https://ops.example.com/hooks"}, store.SourceConfig)
	require.NoError(t, err)
	sub, _, err := st.PutSubscriber(context.Background(), store.PutSubscriberParams{Def: def})
	require.NoError(t, err)

	v := e.put(t, "/v1/webhooks/"+sub.ID.String(), `{"url": "https://ops.example.com/v2", "events": ["job.failed"]}`).webhook(t, http.StatusOK)
	require.Equal(t, store.SourceConfig, v.Source)
	require.Equal(t, "https://ops.example.com/v2", v.URL)
	require.Equal(t, []string{"job.failed"}, v.Events)
	require.Contains(t, e.logs.String(), "the next start-up puts the file's definition back")

	_, fields := e.put(t, "/v1/webhooks/"+sub.ID.String(), `{"url": "https://ops.example.com/v3", "max_attempt": 3}`).requireInvalid(t)
	require.Contains(t, fields, "max_attempt")
	require.Equal(t, "https://ops.example.com/v2", e.get(t, "/v1/webhooks/"+sub.ID.String()).webhook(t, http.StatusOK).URL)
}
