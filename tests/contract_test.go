package tests

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/tracing"
)

// scriptedAnswer is one answer of the scripted app, chosen by the job's
// payload: request n of a job gets answers[min(n, len-1)].
type scriptedAnswer struct {
	Code   int               `json:"code"`
	Header map[string]string `json:"header,omitempty"`
	Body   string            `json:"body,omitempty"`
	// Mode "hang" holds the request until the agent gives up on it;
	// "drop" closes the connection without an answer.
	Mode string `json:"mode,omitempty"`
}

// scriptedApp is a local app whose every answer the test writes into the
// job's payload, so each row of the response table is one job.
type scriptedApp struct {
	srv   *httptest.Server
	moved atomic.Int32 // requests that followed a redirect

	mu     sync.Mutex
	byJob  map[string][]appRequest
	hangOn chan string // job ids of requests being held
}

func newScriptedApp(t *testing.T) *scriptedApp {
	t.Helper()
	app := &scriptedApp{byJob: map[string][]appRequest{}, hangOn: make(chan string, 16)}
	app.srv = httptest.NewServer(http.HandlerFunc(app.serve))
	t.Cleanup(app.srv.Close)
	return app
}

func (app *scriptedApp) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/moved" {
		app.moved.Add(1)
		return
	}
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get("Hammerwork-Job-Id")
	var p struct {
		Answers []scriptedAnswer `json:"answers"`
	}
	_ = json.Unmarshal(body, &p)

	app.mu.Lock()
	n := len(app.byJob[id])
	app.byJob[id] = append(app.byJob[id], appRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()})
	app.mu.Unlock()

	an := scriptedAnswer{Code: http.StatusOK}
	if len(p.Answers) > 0 {
		an = p.Answers[min(n, len(p.Answers)-1)]
	}
	switch an.Mode {
	case "hang":
		app.hangOn <- id
		<-r.Context().Done()
		return
	case "drop":
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
		return
	}
	for k, v := range an.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(an.Code)
	_, _ = io.WriteString(w, an.Body)
}

func (app *scriptedApp) requests(id string) []appRequest {
	app.mu.Lock()
	defer app.mu.Unlock()
	return append([]appRequest(nil), app.byJob[id]...)
}

// TestResponseTableAndHeadersEndToEnd runs every row of the README's
// response -> outcome table, the optional headers (batch, correlation,
// traceparent, Standard Webhooks signature) and a SIGTERM drain that
// releases a request still in flight, through the real binary on every
// backend.
func TestResponseTableAndHeadersEndToEnd(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			testResponseTable(t, b.URL(t))
		})
	}
}

func testResponseTable(t *testing.T, dbURL string) {
	migrate(t, dbURL)
	app := newScriptedApp(t)
	key := []byte("e2e signing key, 32 bytes long!!")
	agent := startAgent(t, map[string]string{
		"HW_DATABASE_URL":         dbURL,
		"HW_APP_HANDLER_URL":      app.srv.URL + "/jobs/{queue}",
		"HW_APP_SIGNING_SECRET":   "whsec_" + base64.StdEncoding.EncodeToString(key),
		"HW_APP_MAX_RESULT_BYTES": "64",
		"HW_API_LISTEN":           freeAddr(t),
		"HW_AGENT_POLL_INTERVAL":  "50ms",
		"HW_AGENT_DRAIN_TIMEOUT":  "1s",
	})

	ok := scriptedAnswer{Code: http.StatusOK, Header: map[string]string{"Content-Type": "application/json"}, Body: `{"done":true}`}
	retryAfter := map[string]string{"Retry-After": "1"}
	rows := []struct {
		name     string
		answers  []scriptedAnswer
		extra    map[string]any
		status   string
		requests int
		error    string // in error_message (failed) or the error history (completed)
	}{
		{"408 retries", []scriptedAnswer{{Code: 408, Body: "slow"}, ok}, nil, "completed", 2, "408 Request Timeout: slow"},
		{"409 retries", []scriptedAnswer{{Code: 409}, ok}, nil, "completed", 2, "409 Conflict"},
		{"425 retries", []scriptedAnswer{{Code: 425}, ok}, nil, "completed", 2, "425 Too Early"},
		{"502 retries", []scriptedAnswer{{Code: 502}, ok}, nil, "completed", 2, "502 Bad Gateway"},
		{"429 waits for Retry-After", []scriptedAnswer{{Code: 429, Header: retryAfter}, ok}, nil, "completed", 2, "429 Too Many Requests"},
		{"503 waits for Retry-After", []scriptedAnswer{{Code: 503, Header: retryAfter}, ok}, nil, "completed", 2, "503 Service Unavailable"},
		{"timeout retries", []scriptedAnswer{{Mode: "hang"}, ok}, map[string]any{"timeout": "300ms"}, "completed", 2, "timeout"},
		{"connection error retries", []scriptedAnswer{{Mode: "drop"}, ok}, nil, "completed", 2, ""},
		{"retries stop when attempts run out", []scriptedAnswer{{Code: 500, Body: "still broken"}}, map[string]any{"max_attempts": 2}, "failed", 2, "500 Internal Server Error: still broken"},
		{"400 fails at once", []scriptedAnswer{{Code: 400, Body: "bad input"}}, nil, "failed", 1, "400 Bad Request: bad input"},
		{"302 fails without following", []scriptedAnswer{{Code: 302, Header: map[string]string{"Location": "/moved"}}}, nil, "failed", 1, "302 Found"},
		{"No-Retry fails a 500 at once", []scriptedAnswer{{Code: 500, Header: map[string]string{"Hammerwork-No-Retry": "true"}, Body: "corrupt"}}, nil, "failed", 1, "500 Internal Server Error: corrupt"},
		{"result over max_result_bytes is dropped", []scriptedAnswer{{Code: 200, Header: map[string]string{"Content-Type": "application/json"}, Body: `"` + strings.Repeat("r", 100) + `"`}}, nil, "completed", 1, ""},
	}
	ids := make([]string, len(rows))
	for i, row := range rows {
		req := map[string]any{"queue": "contract", "max_attempts": 5,
			"retry":   map[string]any{"strategy": "fixed", "initial": "100ms"},
			"payload": script(t, row.answers...)}
		for k, v := range row.extra {
			req[k] = v
		}
		ids[i] = enqueue(t, agent, req).id
	}

	// Optional headers: a tracked batch, a correlation id, and the trace
	// context the producer sent with its enqueue request.
	status, body := agent.call(http.MethodPost, "/v1/jobs/batch", map[string]any{"name": "e2e", "jobs": []map[string]any{
		{"queue": "contract", "correlation_id": "order-7", "payload": map[string]any{}},
	}})
	require.Equal(t, http.StatusCreated, status, "POST /v1/jobs/batch: %s", body)
	var batch struct {
		BatchID string   `json:"batch_id"`
		IDs     []string `json:"ids"`
	}
	require.NoError(t, json.Unmarshal(body, &batch), string(body))
	require.Len(t, batch.IDs, 1, string(body))
	const producer = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	traced := enqueueWithHeader(t, agent, `{"queue": "contract", "payload": {}}`, map[string]string{"traceparent": producer})

	for i, row := range rows {
		j := agent.waitStatus(ids[i], row.status)
		reqs := app.requests(ids[i])
		require.Len(t, reqs, row.requests, row.name)
		require.Equal(t, row.requests, j.Attempts, row.name)
		switch {
		case row.status == "failed":
			require.Contains(t, j.ErrorMessage, row.error, row.name)
		case row.error != "":
			require.Len(t, j.Errors, 1, row.name)
			require.Contains(t, string(j.Errors[0]), row.error, row.name)
		}
	}
	require.Zero(t, app.moved.Load(), "redirects are never followed")
	for _, row := range []int{4, 5} {
		reqs := app.requests(ids[row])
		require.GreaterOrEqual(t, reqs[1].At.Sub(reqs[0].At), 900*time.Millisecond,
			"%s: the retry waits for Retry-After: 1, not the policy's 100ms", rows[row].name)
	}
	big := agent.getJob(ids[12])
	require.True(t, len(big.Result) == 0 || string(big.Result) == "null", "an oversized result is not stored: %s", big.Result)

	agent.waitStatus(batch.IDs[0], "completed")
	h := app.requests(batch.IDs[0])[0].Header
	require.Equal(t, batch.BatchID, h.Get("Hammerwork-Batch-Id"))
	require.Equal(t, "order-7", h.Get("Hammerwork-Correlation-Id"))
	agent.waitStatus(traced, "completed")
	tp, err := tracing.ParseTraceparent(app.requests(traced)[0].Header.Get("traceparent"))
	require.NoError(t, err, "a job enqueued in a trace is dispatched with a traceparent")
	require.Equal(t, "0af7651916cd43dd8448eb211c80319c", tp.TraceIDString(), "the app's request is in the producer's trace")

	// Every request was signed the Standard Webhooks way over the bytes the
	// app received.
	for _, id := range append(append([]string{traced}, batch.IDs...), ids...) {
		for _, r := range app.requests(id) {
			msgID, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
			require.NotEmpty(t, msgID)
			require.NotEmpty(t, ts)
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte(msgID + "." + ts + "." + string(r.Body)))
			require.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), r.Header.Get("webhook-signature"))
		}
	}

	// SIGTERM with a request still in flight past drain_timeout: exit 0 and
	// the job is back to pending without having spent its attempt.
	held := enqueue(t, agent, map[string]any{"queue": "contract",
		"payload": script(t, scriptedAnswer{Mode: "hang"})}).id
	deadline := time.After(waitLimit)
	for got := ""; got != held; {
		select {
		case got = <-app.hangOn: // earlier holds (the timeout row) come first
		case <-deadline:
			t.Fatalf("the held job was not dispatched within %s", waitLimit)
		}
	}
	require.NoError(t, agent.stop(waitLimit), "SIGTERM with work in flight still exits 0")
	require.Contains(t, agent.stderr.String(), "job released")
	res := runCLI(t, nil, "job", "show", held, "--database-url", dbURL, "--output", "json")
	require.NoError(t, res.err, res.stderr)
	var j jobView
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &j), res.stdout)
	require.Equal(t, "pending", j.Status, "the drained job is released")
	require.Equal(t, 0, j.Attempts, "a released job keeps its attempt")
}

// script is the payload that makes the scripted app give answers.
func script(t *testing.T, answers ...scriptedAnswer) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(map[string]any{"answers": answers})
	require.NoError(t, err)
	return b
}

// enqueueWithHeader posts body to /v1/jobs with extra request headers and
// returns the new job's id.
func enqueueWithHeader(t *testing.T, a *agentProc, body string, header map[string]string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.base+"/v1/jobs", bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := a.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "POST /v1/jobs: %s", out)
	var created struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(out, &created), string(out))
	_, err = uuid.Parse(created.ID)
	require.NoError(t, err)
	return created.ID
}
