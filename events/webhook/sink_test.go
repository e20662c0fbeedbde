package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/job"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The Standard Webhooks specification's own test vector.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = "1614265330"
	specPayload   = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// verify is a receiver's check, written from the specification rather
// than with the sender's code: HMAC-SHA256 over id.timestamp.body under
// the base64 key after "whsec_", compared with each space-separated "v1,"
// signature.
func verify(secret, id, timestamp string, body []byte, header string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(header) {
		got, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sig, "v1,"))
		if strings.HasPrefix(sig, "v1,") && err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func TestVerifierAcceptsTheSpecificationsTestVector(t *testing.T) {
	t.Parallel()
	require.True(t, verify(specSecret, specMsgID, specTimestamp, []byte(specPayload), specSignature))
	require.True(t, verify(specSecret, specMsgID, specTimestamp, []byte(specPayload), "v1,bm9wZQ== "+specSignature))
	require.False(t, verify(specSecret, specMsgID, specTimestamp, []byte(`{"test": 2432232315}`), specSignature))
	require.False(t, verify(specSecret, specMsgID, "1614265331", []byte(specPayload), specSignature))
}

// received is one request a receiver saw.
type received struct {
	header http.Header
	body   []byte
	event  events.Event
}

// receiver is an httptest server that records what it got and answers
// with answer (nil: 200).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	answer func(w http.ResponseWriter, n int, e events.Event)
}

func newReceiver(t *testing.T, answer func(w http.ResponseWriter, n int, e events.Event)) *receiver {
	t.Helper()
	r := &receiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var e events.Event
		_ = json.Unmarshal(body, &e)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body, event: e})
		n := len(r.got)
		r.mu.Unlock()
		if r.answer != nil {
			r.answer(w, n, e)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func subscription(t *testing.T, def webhook.Def) events.Subscription {
	t.Helper()
	raw, err := json.Marshal(def)
	require.NoError(t, err)
	return events.Subscription{ID: uuid.New(), Name: def.Name, Kind: "webhook", Config: raw, Attempt: 1}
}

func jobEvent(seq int64, jobID uuid.UUID) events.Event {
	p := 2
	return events.Event{Seq: seq, ID: uuid.New(), Type: events.JobCompleted, Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		JobID: &jobID, Queue: "emails", Priority: &p, Status: "completed",
		Payload: json.RawMessage(`{"to":"a@example.com"}`), Result: json.RawMessage(`{"sent":true}`)}
}

func newSink(t *testing.T, now time.Time) *webhook.Sink {
	t.Helper()
	s := webhook.New(webhook.Config{AgentID: "agent-1", Now: func() time.Time { return now }})
	t.Cleanup(s.CloseIdleConnections)
	return s
}

// Every delivery is a JSON POST signed with each secret, the event id as
// the message id; payload and result go only where the definition asks.
func TestDeliverPostsSignedJSONWithEverySecret(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	second := "whsec_" + base64.StdEncoding.EncodeToString([]byte("another key of the rotation"))
	now := time.Unix(1614265330, 0)
	sink := newSink(t, now)
	jobID := uuid.New()
	e := jobEvent(7, jobID)

	res := sink.Deliver(context.Background(), subscription(t, webhook.Def{Name: "hook", URL: rcv.URL,
		Secrets: []string{specSecret, second}, IncludeResult: true}), []events.Event{e})
	require.Len(t, res, 1)
	require.Equal(t, events.Delivered, res[0].Outcome)
	require.Equal(t, 200, res[0].StatusCode)
	require.Equal(t, now, res[0].At)

	got := rcv.requests()
	require.Len(t, got, 1)
	h := got[0].header
	require.Equal(t, "application/json", h.Get("Content-Type"))
	require.True(t, strings.HasPrefix(h.Get("User-Agent"), "hw-agent"), h.Get("User-Agent"))
	require.Equal(t, e.ID.String(), h.Get("webhook-id"))
	require.Equal(t, "1614265330", h.Get("webhook-timestamp"))
	sigs := strings.Fields(h.Get("webhook-signature"))
	require.Len(t, sigs, 2)
	for _, secret := range []string{specSecret, second} {
		require.True(t, verify(secret, h.Get("webhook-id"), h.Get("webhook-timestamp"), got[0].body, h.Get("webhook-signature")),
			"a receiver knowing %s verifies", secret)
	}
	require.False(t, verify(specSecret, h.Get("webhook-id"), h.Get("webhook-timestamp"), append(got[0].body, ' '), h.Get("webhook-signature")))

	require.Equal(t, e.ID, got[0].event.ID)
	require.Equal(t, events.JobCompleted, got[0].event.Type)
	require.Equal(t, &jobID, got[0].event.JobID)
	require.Nil(t, got[0].event.Payload, "include_payload is off")
	require.JSONEq(t, `{"sent":true}`, string(got[0].event.Result))
}

func TestDeliverUnsignedWithoutSecrets(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	sink := newSink(t, time.Now())
	res := sink.Deliver(context.Background(), subscription(t, webhook.Def{Name: "hook", URL: rcv.URL, IncludePayload: true}),
		[]events.Event{jobEvent(1, uuid.New())})
	require.Equal(t, events.Delivered, res[0].Outcome)
	got := rcv.requests()
	require.Empty(t, got[0].header.Get("webhook-signature"))
	require.JSONEq(t, `{"to":"a@example.com"}`, string(got[0].event.Payload))
	require.Nil(t, got[0].event.Result)
}

// Each answer is classified as the delivery rules say, the first 4 KiB of
// it kept, and a redirect is the receiver's answer, not followed.
func TestDeliverClassifiesAnswers(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	elsewhere := newReceiver(t, nil)
	tests := []struct {
		status     int
		header     map[string]string
		body       string
		outcome    events.Outcome
		retryAfter time.Duration
	}{
		{status: 200, outcome: events.Delivered},
		{status: 204, outcome: events.Delivered},
		{status: 202, outcome: events.Delivered},
		{status: 410, body: "gone", outcome: events.Gone},
		{status: 408, outcome: events.Retry},
		{status: 409, outcome: events.Retry},
		{status: 425, outcome: events.Retry},
		{status: 429, header: map[string]string{"Retry-After": "7"}, outcome: events.Retry, retryAfter: 7 * time.Second},
		{status: 503, header: map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, outcome: events.Retry, retryAfter: 90 * time.Second},
		{status: 500, header: map[string]string{"Retry-After": "soon"}, body: "boom", outcome: events.Retry},
		{status: 400, body: strings.Repeat("x", 5000), outcome: events.Rejected},
		{status: 404, outcome: events.Rejected},
		{status: 302, header: map[string]string{"Location": elsewhere.URL}, outcome: events.Rejected},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, func(w http.ResponseWriter, _ int, _ events.Event) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			res := newSink(t, now).Send(context.Background(), subscription(t, webhook.Def{Name: "hook", URL: rcv.URL}), jobEvent(1, uuid.New()))
			require.Equal(t, tt.outcome, res.Outcome)
			require.Equal(t, tt.status, res.StatusCode)
			require.Equal(t, tt.retryAfter, res.RetryAfter)
			require.Equal(t, tt.body[:min(len(tt.body), 4096)], res.Response)
			if tt.outcome != events.Delivered {
				require.Contains(t, res.Error, strconv.Itoa(tt.status))
			}
			require.Positive(t, res.Duration)
		})
	}
	require.Empty(t, elsewhere.requests(), "the redirect was not followed")
}

// No answer is a retry: a receiver that does not listen, or one slower
// than the definition's timeout. A relay that stops waiting did not try.
func TestDeliverRetriesWithoutAnAnswerAndSkipsOnCancel(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + l.Addr().String()
	require.NoError(t, l.Close())

	release := make(chan struct{})
	slow := newReceiver(t, func(http.ResponseWriter, int, events.Event) { <-release })
	t.Cleanup(func() { close(release) })
	sink := newSink(t, time.Now())

	res := sink.Send(context.Background(), subscription(t, webhook.Def{Name: "hook", URL: closed}), jobEvent(1, uuid.New()))
	require.Equal(t, events.Retry, res.Outcome)
	require.Zero(t, res.StatusCode)
	require.NotEmpty(t, res.Error)

	res = sink.Send(context.Background(), subscription(t, webhook.Def{Name: "hook", URL: slow.URL, Timeout: job.Duration(50 * time.Millisecond)}), jobEvent(1, uuid.New()))
	require.Equal(t, events.Retry, res.Outcome)
	require.Contains(t, res.Error, "timeout")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	out := sink.Deliver(ctx, subscription(t, webhook.Def{Name: "hook", URL: slow.URL}),
		[]events.Event{jobEvent(1, uuid.New()), jobEvent(2, uuid.New())})
	require.Equal(t, []events.Outcome{events.NotTried, events.NotTried}, []events.Outcome{out[0].Outcome, out[1].Outcome})
}

// A job's events go in order, and one that fails leaves the job's later
// events untried; other jobs go on, concurrently within the bound.
func TestDeliverKeepsEachJobsOrderAndBoundsConcurrency(t *testing.T) {
	t.Parallel()
	var inFlight, most atomic.Int32
	failing := uuid.New()
	var mu sync.Mutex
	perJob := map[uuid.UUID][]int64{}
	rcv := newReceiver(t, func(w http.ResponseWriter, _ int, e events.Event) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		mu.Lock()
		perJob[*e.JobID] = append(perJob[*e.JobID], e.Seq)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond) // hold the request so requests overlap
		if *e.JobID == failing && e.Seq == 7 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	jobs := []uuid.UUID{failing, uuid.New(), uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	var batch []events.Event
	for round := range 4 {
		for i, j := range jobs {
			batch = append(batch, jobEvent(int64(round*len(jobs)+i+1), j))
		}
	}
	// The failing job's events are seqs 1, 7, 13 and 19; its second fails.
	res := newSink(t, time.Now()).Deliver(context.Background(),
		subscription(t, webhook.Def{Name: "hook", URL: rcv.URL, Concurrency: 3}), batch)

	for i, e := range batch {
		want := events.Delivered
		switch {
		case *e.JobID == failing && i == len(jobs):
			want = events.Retry
		case *e.JobID == failing && i > len(jobs):
			want = events.NotTried
		}
		require.Equal(t, want, res[i].Outcome, "event %d of job %s", i, e.JobID)
	}
	require.LessOrEqual(t, most.Load(), int32(3))
	require.Greater(t, most.Load(), int32(1), "different jobs went concurrently")
	for j, seqs := range perJob {
		var want []int64
		for _, e := range batch {
			if *e.JobID == j && (j != failing || len(want) < 2) {
				want = append(want, e.Seq)
			}
		}
		require.Equal(t, want, seqs, "job %s in order", j)
	}
}

// A receiver that fails the first N times gets each attempt as a retry,
// then the event: the same id and a valid signature every time.
func TestSendToAReceiverThatFailsTheFirstAttempts(t *testing.T) {
	t.Parallel()
	const failures = 3
	rcv := newReceiver(t, func(w http.ResponseWriter, n int, _ events.Event) {
		if n <= failures {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = fmt.Fprintf(w, "attempt %d failed", n)
		}
	})
	sink := newSink(t, time.Now())
	sub := subscription(t, webhook.Def{Name: "hook", URL: rcv.URL, Secrets: []string{specSecret}})
	e := jobEvent(1, uuid.New())
	for n := 1; n <= failures; n++ {
		res := sink.Send(context.Background(), sub, e)
		require.Equal(t, events.Retry, res.Outcome)
		require.Equal(t, fmt.Sprintf("attempt %d failed", n), res.Response)
	}
	require.Equal(t, events.Delivered, sink.Send(context.Background(), sub, e).Outcome)
	for _, r := range rcv.requests() {
		require.Equal(t, e.ID.String(), r.header.Get("webhook-id"))
		require.True(t, verify(specSecret, r.header.Get("webhook-id"), r.header.Get("webhook-timestamp"), r.body, r.header.Get("webhook-signature")))
	}
}
