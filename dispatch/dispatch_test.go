package dispatch

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/tracing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixedNow is the wall clock pinned in tests that assert exact header values.
var fixedNow = time.Date(2026, 11, 29, 19, 30, 0, 0, time.UTC)

const jobSpanContext = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// received is what the app saw of one request.
type received struct {
	method string
	path   string
	header http.Header
	body   []byte
}

// app is a test app: it records each request and answers with respond.
type app struct {
	srv      *httptest.Server
	d        *Dispatcher
	requests chan received
}

// setup starts an app answering with respond and a Dispatcher whose clock is
// pinned to fixedNow; both are closed at cleanup.
func setup(t *testing.T, respond http.HandlerFunc) *app {
	t.Helper()
	a := &app{requests: make(chan received, 100)}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.requests <- received{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body}
		respond(w, r)
	}))
	a.d = New(nil)
	a.d.now = func() time.Time { return fixedNow }
	t.Cleanup(func() {
		a.d.CloseIdleConnections()
		a.srv.Close()
	})
	return a
}

func (a *app) target() Target {
	return Target{URL: a.srv.URL + "/jobs/emails", Timeout: 30 * time.Second, MaxResultBytes: 1 << 20}
}

func (a *app) last(t *testing.T) received {
	t.Helper()
	select {
	case r := <-a.requests:
		return r
	default:
		t.Fatal("the app received no request")
		return received{}
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// minimalJob has only the fields every job has.
func minimalJob() *job.Job {
	return &job.Job{
		ID:          uuid.MustParse("0191f5a6-7b3c-7d4e-8f90-123456789abc"),
		Queue:       "emails",
		Payload:     []byte(`{"to":"a@example.com"}`),
		Status:      job.StatusRunning,
		Priority:    job.PriorityHigh,
		Attempts:    2,
		MaxAttempts: 5,
		LeaseToken:  "lease-token-1",
	}
}

// fullJob sets every field that becomes a header.
func fullJob() *job.Job {
	j := minimalJob()
	wf := uuid.MustParse("0191f5a6-0000-7000-8000-00000000000a")
	batch := uuid.MustParse("0191f5a6-0000-7000-8000-00000000000b")
	j.WorkflowID = &wf
	j.WorkflowName = "onboarding"
	j.StepName = "send_welcome"
	j.DependsOn = []uuid.UUID{
		uuid.MustParse("0191f5a6-0000-7000-8000-000000000001"),
		uuid.MustParse("0191f5a6-0000-7000-8000-000000000002"),
	}
	j.BatchID = &batch
	j.CorrelationID = "order-42"
	j.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	j.SpanContext = jobSpanContext
	return j
}

func TestDispatchSendsEveryHeader(t *testing.T) {
	t.Parallel()
	a := setup(t, status(http.StatusOK))
	res := a.d.Dispatch(context.Background(), fullJob(), a.target())
	require.Equal(t, OutcomeCompleted, res.Outcome)

	r := a.last(t)
	require.Equal(t, http.MethodPost, r.method)
	require.Equal(t, "/jobs/emails", r.path)
	want := map[string]string{
		"Content-Type":              "application/json",
		"User-Agent":                "hw-agent",
		"Hammerwork-Job-Id":         "0191f5a6-7b3c-7d4e-8f90-123456789abc",
		"Hammerwork-Queue":          "emails",
		"Hammerwork-Attempt":        "2",
		"Hammerwork-Max-Attempts":   "5",
		"Hammerwork-Priority":       "high",
		"Hammerwork-Deadline":       "2026-11-29T19:30:30.000Z",
		"Hammerwork-Lease-Token":    "lease-token-1",
		"Hammerwork-Workflow-Id":    "0191f5a6-0000-7000-8000-00000000000a",
		"Hammerwork-Workflow-Name":  "onboarding",
		"Hammerwork-Step":           "send_welcome",
		"Hammerwork-Parent-Ids":     "0191f5a6-0000-7000-8000-000000000001,0191f5a6-0000-7000-8000-000000000002",
		"Hammerwork-Batch-Id":       "0191f5a6-0000-7000-8000-00000000000b",
		"Hammerwork-Correlation-Id": "order-42",
	}
	for k, v := range want {
		require.Equal(t, []string{v}, r.header.Values(k), "header %s", k)
	}
	for _, k := range []string{HeaderWebhookID, HeaderWebhookTimestamp, HeaderWebhookSignature, "Tracestate"} {
		require.Empty(t, r.header.Values(k), "header %s must not be sent", k)
	}

	// traceparent is a child of the job's context: the agent's dispatch span.
	sent := r.header.Get("traceparent")
	require.Equal(t, res.TraceParent, sent)
	child, err := tracing.ParseTraceparent(sent)
	require.NoError(t, err)
	parent, err := tracing.ParseTraceparent(jobSpanContext)
	require.NoError(t, err)
	require.Equal(t, parent.TraceID, child.TraceID)
	require.Equal(t, parent.Flags, child.Flags)
	require.NotEqual(t, parent.SpanID, child.SpanID)
}

func TestDispatchOmitsOptionalHeadersTheJobLacks(t *testing.T) {
	t.Parallel()
	for name, spanContext := range map[string]string{"no span context": "", "invalid span context": "00-not-a-trace"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := setup(t, status(http.StatusOK))
			j := minimalJob()
			j.SpanContext = spanContext
			res := a.d.Dispatch(context.Background(), j, a.target())
			require.Equal(t, OutcomeCompleted, res.Outcome)
			require.Empty(t, res.TraceParent)
			r := a.last(t)
			for _, k := range []string{HeaderWorkflowID, HeaderWorkflowName, HeaderStep, HeaderParentIDs,
				HeaderBatchID, HeaderCorrelationID, HeaderTraceparent, HeaderWebhookSignature} {
				require.Empty(t, r.header.Values(k), "header %s must not be sent", k)
			}
			require.Equal(t, "2", r.header.Get(HeaderAttempt))
			require.Equal(t, "lease-token-1", r.header.Get(HeaderLeaseToken))
		})
	}
}

func TestDispatchSendsPayloadVerbatim(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{"object with whitespace kept", "{ \"to\" :  \"a@example.com\" }\n", "{ \"to\" :  \"a@example.com\" }\n"},
		{"array", `[1,2,3]`, `[1,2,3]`},
		{"empty payload is null", "", "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t, status(http.StatusNoContent))
			j := minimalJob()
			j.Payload = []byte(tt.payload)
			require.Equal(t, OutcomeCompleted, a.d.Dispatch(context.Background(), j, a.target()).Outcome)
			r := a.last(t)
			require.Equal(t, tt.want, string(r.body))
			require.Equal(t, strconv.Itoa(len(tt.want)), r.header.Get("Content-Length"))
		})
	}
}

func TestDispatchWrapsPayloadInEnvelope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{"payload", `{"to":"a@example.com"}`,
			`{"id":"0191f5a6-7b3c-7d4e-8f90-123456789abc","queue":"emails","attempt":2,"payload":{"to":"a@example.com"},"parents":{}}`},
		{"empty payload", "",
			`{"id":"0191f5a6-7b3c-7d4e-8f90-123456789abc","queue":"emails","attempt":2,"payload":null,"parents":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t, status(http.StatusOK))
			j := minimalJob()
			j.Payload = []byte(tt.payload)
			tg := a.target()
			tg.Envelope = true
			require.Equal(t, OutcomeCompleted, a.d.Dispatch(context.Background(), j, tg).Outcome)
			r := a.last(t)
			require.Equal(t, tt.want, string(r.body))
			require.Equal(t, "application/json", r.header.Get("Content-Type"))
		})
	}
}

func TestSignatureMatchesStandardWebhooksTestVector(t *testing.T) {
	t.Parallel()
	// The vector published with the Standard Webhooks reference libraries:
	// matching it is what lets an app verify us with any of them.
	key, err := SigningKey("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	got := Signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", got)
}

func TestSigningKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		secret  string
		want    []byte
		wantErr bool
	}{
		{secret: "whsec_aGVsbG8=", want: []byte("hello")},
		{secret: "plain-secret", want: []byte("plain-secret")},
		{secret: "whsec_not base64!", wantErr: true},
		{secret: "whsec_", wantErr: true},
		{secret: "", wantErr: true},
	}
	for _, tt := range tests {
		key, err := SigningKey(tt.secret)
		if tt.wantErr {
			require.Error(t, err, "SigningKey(%q)", tt.secret)
			continue
		}
		require.NoError(t, err, "SigningKey(%q)", tt.secret)
		require.Equal(t, tt.want, key)
	}
}

func TestDispatchSignsWithStandardWebhooks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret string
		key    []byte
	}{
		{"whsec base64 secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", mustDecode(t, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")},
		{"raw secret", "correct horse battery staple", []byte("correct horse battery staple")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := setup(t, status(http.StatusOK))
			tg := a.target()
			tg.SigningSecret = tt.secret
			tg.Envelope = true
			require.Equal(t, OutcomeCompleted, a.d.Dispatch(context.Background(), fullJob(), tg).Outcome)
			r := a.last(t)

			id := r.header.Get(HeaderWebhookID)
			ts := r.header.Get(HeaderWebhookTimestamp)
			require.Equal(t, "0191f5a6-7b3c-7d4e-8f90-123456789abc", id)
			require.Equal(t, strconv.FormatInt(fixedNow.Unix(), 10), ts)

			// Computed here independently of the package, over the bytes the app received.
			mac := hmac.New(sha256.New, tt.key)
			mac.Write([]byte(id + "." + ts + "." + string(r.body)))
			want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
			require.Equal(t, want, r.header.Get(HeaderWebhookSignature))
		})
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	require.NoError(t, err)
	return b
}

func TestDispatchWithBadConfigurationSendsNothing(t *testing.T) {
	t.Parallel()
	a := setup(t, status(http.StatusOK))
	bad := a.target()
	bad.SigningSecret = "whsec_%%%"
	res := a.d.Dispatch(context.Background(), minimalJob(), bad)
	require.Equal(t, OutcomeRetry, res.Outcome)
	require.Equal(t, LabelInvalidRequest, res.Label)
	require.Contains(t, res.Error, "base64")

	res = a.d.Dispatch(context.Background(), minimalJob(), Target{URL: "://no-scheme", Timeout: time.Second})
	require.Equal(t, OutcomeRetry, res.Outcome)
	require.Equal(t, LabelInvalidRequest, res.Label)
	require.Zero(t, res.StatusCode)
	require.Empty(t, a.requests)
}

func TestDispatchTimesOut(t *testing.T) {
	t.Parallel()
	a := setup(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	tg := a.target()
	tg.Timeout = 100 * time.Millisecond
	res := a.d.Dispatch(context.Background(), minimalJob(), tg)
	require.Equal(t, OutcomeRetry, res.Outcome)
	require.Equal(t, LabelTimeout, res.Label)
	require.Equal(t, "timeout: no response within 100ms", res.Error)
	require.Zero(t, res.StatusCode)
	require.False(t, res.ConnRefused)
	require.GreaterOrEqual(t, res.Duration, tg.Timeout)
}

func TestDispatchCancelledByAgentIsNotATimeout(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	a := setup(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Result, 1)
	go func() { done <- a.d.Dispatch(ctx, minimalJob(), a.target()) }()
	<-arrived
	cancel()
	res := <-done
	require.Equal(t, OutcomeRetry, res.Outcome)
	require.Equal(t, LabelCancelled, res.Label)
	require.Zero(t, res.StatusCode)
}

func TestDispatchConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	d := New(nil)
	t.Cleanup(d.CloseIdleConnections)
	res := d.Dispatch(context.Background(), minimalJob(), Target{URL: "http://" + addr + "/jobs/emails", Timeout: 5 * time.Second})
	require.Equal(t, OutcomeRetry, res.Outcome)
	require.Equal(t, LabelConnectionRefused, res.Label)
	require.True(t, res.ConnRefused)
	require.Zero(t, res.StatusCode)
	require.Contains(t, res.Error, "connection refused")
}

func TestDispatchConnectionDroppedIsConnectionError(t *testing.T) {
	t.Parallel()
	a := setup(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	res := a.d.Dispatch(context.Background(), minimalJob(), a.target())
	require.Equal(t, OutcomeRetry, res.Outcome)
	require.Equal(t, LabelConnectionError, res.Label)
	require.False(t, res.ConnRefused)
	require.NotEmpty(t, res.Error)
}

func TestNewNeverFollowsRedirectsEvenWithCallersClient(t *testing.T) {
	t.Parallel()
	var followed atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			followed.Add(1)
			return
		}
		http.Redirect(w, r, "/moved", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)

	res := New(client).Dispatch(context.Background(), minimalJob(), Target{URL: srv.URL + "/jobs", Timeout: 5 * time.Second})
	require.Equal(t, OutcomeFailed, res.Outcome)
	require.Equal(t, "redirect_307", res.Label)
	require.Zero(t, followed.Load())
	require.Nil(t, client.CheckRedirect, "the caller's client is not modified")
}

// TestConcurrentDispatchesReuseConnections holds 60 requests in the app at
// once, twice: the second wave must dial nothing new, which proves the
// default pool keeps at least 60 idle connections to one app.
func TestConcurrentDispatchesReuseConnections(t *testing.T) {
	t.Parallel()
	const n = 60
	var (
		mu      sync.Mutex
		release chan struct{}
		dials   atomic.Int32
	)
	arrived := make(chan struct{}, n)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		wait := release
		mu.Unlock()
		arrived <- struct{}{}
		select {
		case <-wait:
		case <-r.Context().Done():
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	d := New(nil)
	t.Cleanup(func() {
		d.CloseIdleConnections()
		srv.Close()
	})

	wave := func() {
		mu.Lock()
		release = make(chan struct{})
		mu.Unlock()
		results := make(chan Result, n)
		for range n {
			go func() {
				results <- d.Dispatch(context.Background(), minimalJob(), Target{URL: srv.URL, Timeout: time.Minute})
			}()
		}
		for range n {
			<-arrived
		}
		mu.Lock()
		close(release)
		mu.Unlock()
		for range n {
			require.Equal(t, OutcomeCompleted, (<-results).Outcome)
		}
	}
	wave()
	require.EqualValues(t, n, dials.Load())
	wave()
	require.EqualValues(t, n, dials.Load(), "the second wave reuses the first wave's connections")
}

// TestFailureBodiesAreDrainedSoConnectionsAreReused sends answers whose
// bodies the dispatcher reads only partly; one connection serves them all.
func TestFailureBodiesAreDrainedSoConnectionsAreReused(t *testing.T) {
	t.Parallel()
	var dials atomic.Int32
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = 'x'
	}
	codes := []int{http.StatusInternalServerError, http.StatusOK, http.StatusBadRequest, http.StatusAccepted, http.StatusFound}
	var next atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(codes[int(next.Add(1)-1)%len(codes)])
		_, _ = w.Write(big)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	d := New(nil)
	t.Cleanup(func() {
		d.CloseIdleConnections()
		srv.Close()
	})
	for range 2 * len(codes) {
		d.Dispatch(context.Background(), minimalJob(), Target{URL: srv.URL, Timeout: time.Minute, MaxResultBytes: 1024})
	}
	require.EqualValues(t, 1, dials.Load())
}
