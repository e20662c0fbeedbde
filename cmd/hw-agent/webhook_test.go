package main

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

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/agent"
	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/store"
)

// hookSecret is the Standard Webhooks specification's test secret.
const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// hookReceiver is a webhook endpoint that keeps each event it got and
// whether its signature verified under hookSecret.
type hookReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	events   []events.Event
	verified []bool
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	r := &hookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
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
		r.events = append(r.events, e)
		r.verified = append(r.verified, signedWith(hookSecret, req.Header, body))
		r.mu.Unlock()
		fmt.Fprint(w, "thanks")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) got() ([]events.Event, []bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.events...), append([]bool(nil), r.verified...)
}

// signedWith checks a Standard Webhooks signature by hand, as the README
// shows receivers.
func signedWith(secret string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	ts, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	if err != nil {
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

func webhookCmd(t *testing.T, db string, args ...string) cliResult {
	t.Helper()
	return hw(t, nil, append(append([]string{"webhook"}, args...), "--database-url", db)...)
}

func webhookJSON(t *testing.T, db string, v any, args ...string) {
	t.Helper()
	r := webhookCmd(t, db, append(args, "--output", "json")...)
	requireOK(t, r)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), v), r.stdout)
}

func webhookList(t *testing.T, db string) []api.WebhookView {
	t.Helper()
	var list struct {
		Webhooks []api.WebhookView `json:"webhooks"`
	}
	webhookJSON(t, db, &list, "list")
	return list.Webhooks
}

func TestWebhookAddListShowTestDeliveriesRedeliverRemove(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	rcv := newHookReceiver(t)

	r := webhookCmd(t, db, "add", "--name", "billing", "--url", rcv.srv.URL+"/hooks", "--secret", hookSecret,
		"--event", "job.*", "--queue", "invoices", "--priority", "high", "--include-payload", "--max-failures", "5", "--timeout", "3s")
	requireOK(t, r)
	require.Regexp(t, `^webhook billing created \(id [0-9a-f-]{36}, http://127\.0\.0\.1:\d+/hooks, events job\.\*\)\n$`, r.stdout)

	table := webhookCmd(t, db, "list")
	requireOK(t, table)
	require.Regexp(t, `NAME\s+URL\s+EVENTS\s+ENABLED\s+CURSOR\s+FAILURES\s+LAST DELIVERED`, table.stdout)
	require.Regexp(t, `billing\s+http://127\.0\.0\.1:\d+/hooks\s+job\.\*\s+yes\s+0\s+0\s+-`, table.stdout)

	var shown struct {
		api.WebhookView
		Deliveries []api.DeliveryView `json:"deliveries"`
	}
	webhookJSON(t, db, &shown, "show", "billing")
	require.Equal(t, []string{"whsec_…LaSw"}, shown.Secrets)
	require.Equal(t, []int{3}, shown.Priorities)
	require.Equal(t, []string{"invoices"}, shown.Queues)
	require.True(t, shown.IncludePayload)
	require.Equal(t, 5, shown.MaxFailures)
	require.Equal(t, "3s", shown.Timeout.String())
	require.Empty(t, shown.Deliveries)
	text := webhookCmd(t, db, "show", shown.ID.String())
	requireOK(t, text)
	require.NotContains(t, text.stdout, hookSecret, "a secret is never printed")
	require.Contains(t, text.stdout, "secrets: whsec_…LaSw\n")
	require.Contains(t, text.stdout, "priorities: high\n")

	ping := webhookCmd(t, db, "test", "billing")
	requireOK(t, ping)
	require.Regexp(t, `^ping to webhook billing: delivered, status 200 in \S+\nresponse: thanks\n$`, ping.stdout)
	got, verified := rcv.got()
	require.Len(t, got, 1)
	require.Equal(t, events.Ping, got[0].Type)
	require.True(t, verified[0], "the ping is signed")

	deliveries := webhookCmd(t, db, "deliveries", "billing")
	requireOK(t, deliveries)
	require.Regexp(t, `ID\s+ATTEMPTED AT\s+EVENT\s+SEQ\s+ATTEMPT\s+OUTCOME\s+STATUS\s+DURATION\s+ERROR`, deliveries.stdout)
	require.Regexp(t, `[0-9a-f-]{36}\s+\S+Z\s+webhook\.ping\s+0\s+1\s+delivered\s+200\s+\S+\s+-`, deliveries.stdout)
	var log struct {
		Deliveries []api.DeliveryView `json:"deliveries"`
	}
	webhookJSON(t, db, &log, "deliveries", "billing")
	require.Len(t, log.Deliveries, 1)

	var again api.DeliveryView
	webhookJSON(t, db, &again, "redeliver", "billing", log.Deliveries[0].ID.String())
	require.Equal(t, store.DeliveryDelivered, again.Outcome)
	require.Equal(t, log.Deliveries[0].EventID, again.EventID, "the same event id")
	require.Equal(t, 2, again.Attempt)
	got, verified = rcv.got()
	require.Len(t, got, 2)
	require.Equal(t, got[0].ID, got[1].ID)
	require.True(t, verified[1])

	r = webhookCmd(t, db, "remove", "billing")
	requireOK(t, r)
	require.Equal(t, "webhook billing removed\n", r.stdout)
	require.Empty(t, webhookList(t, db))
	r = webhookCmd(t, db, "show", "billing")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "not found")
}

// TestWebhookRedeliverSendsAnOutboxEventAgain redelivers a job's event the
// relay had recorded, on every backend.
func TestWebhookRedeliverSendsAnOutboxEventAgain(t *testing.T) {
	t.Parallel()
	for _, b := range []testkit.Backend{testkit.SQLiteBackend, testkit.PostgresBackend, testkit.MySQLBackend} {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			db := b.URL(t)
			requireOK(t, hw(t, nil, "migrate", "--database-url", db))
			rcv := newHookReceiver(t)
			var hook api.WebhookView
			webhookJSON(t, db, &hook, "add", "--name", "all", "--url", rcv.srv.URL, "--secret", hookSecret)
			j := enqueueJSON(t, db, "--queue", "invoices")

			st, err := openStore(context.Background(), agent.DatabaseConfig{URL: db})
			require.NoError(t, err)
			defer st.Close()
			ctx := context.Background()
			_, err = st.SequenceEvents(ctx, store.SequenceEventsParams{})
			require.NoError(t, err)
			recs, err := st.ReadEvents(ctx, store.ReadEventsParams{AfterSeq: hook.Cursor})
			require.NoError(t, err)
			require.Len(t, recs, 1)
			first := store.Delivery{ID: uuid.Must(uuid.NewV7()), Subscriber: hook.ID, EventID: recs[0].ID, EventSeq: recs[0].Seq,
				EventType: events.JobEnqueued, Attempt: 1, Outcome: store.DeliveryFailed, StatusCode: 503, AgentID: "relay"}
			require.NoError(t, st.RecordDelivery(ctx, first))

			r := webhookCmd(t, db, "redeliver", "all", first.ID.String())
			requireOK(t, r)
			require.Contains(t, r.stdout, "event job.enqueued "+recs[0].ID.String()+" redelivered to webhook all: delivered, status 200")
			got, verified := rcv.got()
			require.Len(t, got, 1)
			require.True(t, verified[0])
			require.Equal(t, recs[0].ID, got[0].ID)
			require.Equal(t, j.ID, *got[0].JobID)

			gone := first
			gone.ID, gone.EventID = uuid.Must(uuid.NewV7()), uuid.New()
			require.NoError(t, st.RecordDelivery(ctx, gone))
			r = webhookCmd(t, db, "redeliver", "all", gone.ID.String())
			require.Equal(t, 1, r.code)
			require.Contains(t, r.stderr, "no longer retained")
		})
	}
}

// TestWebhookAddRefusesBadInputNamingTheFlag checks each bad definition
// exits 1 naming the flag or key, and writes nothing.
func TestWebhookAddRefusesBadInputNamingTheFlag(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "a", "--url", "ftp://files.example.com"}, "--url (url)"},
		{[]string{"--name", "a", "--url", "http://[::1"}, "--url (url)"},
		{[]string{"--name", "a", "--url", "http://127.0.0.1:8080", "--event", "job.exploded"}, "--event (events[0])"},
		{[]string{"--name", "a", "--url", "http://127.0.0.1:8080", "--secret", "hunter2"}, "--secret (secrets[0])"},
		{[]string{"--name", "a", "--url", "http://localhost:9090/v1/jobs"}, "own API listener"},
		{[]string{"--url", "http://127.0.0.1:8080"}, "--name (name)"},
		{[]string{"--name", "a", "--url", "http://127.0.0.1:8080", "--priority", "urgent"}, "--priority"},
		{[]string{"--file", writeFile(t, "def.json", `{"name": "a", "url": "http://127.0.0.1:8080", "evnts": ["job.failed"]}`)}, "evnts"},
		{[]string{"--file", writeFile(t, "def2.json", `{"name": "a", "url": "http://127.0.0.1:8080"}`), "--url", "http://x"}, "--url goes in the --file"},
	} {
		r := webhookCmd(t, db, append([]string{"add"}, tc.args...)...)
		require.Equal(t, 1, r.code, "%v: %s", tc.args, r.stdout)
		require.Contains(t, r.stderr, tc.want, tc.args)
	}
	require.Empty(t, webhookList(t, db), "nothing is written")

	file := writeFile(t, "billing.json", `{"name": "billing", "url": "http://127.0.0.1:8080/hooks", "events": ["job.failed"]}`)
	requireOK(t, webhookCmd(t, db, "add", "--file", file))
	r := webhookCmd(t, db, "add", "--name", "billing", "--url", "http://127.0.0.1:8081")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `invalid webhook "billing": --name (name)`)
	list := webhookList(t, db)
	require.Len(t, list, 1)
	require.Equal(t, "http://127.0.0.1:8080/hooks", list[0].URL, "a duplicate changes nothing")
	require.Equal(t, []string{"job.failed"}, list[0].Events)
}
