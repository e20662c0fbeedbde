package tests

import (
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
)

// backends are the databases the agent runs against; each test makes a
// fresh, empty (unmigrated) database with URL.
var backends = []testkit.Backend{testkit.SQLiteBackend, testkit.PostgresBackend, testkit.MySQLBackend}

// Settings every dispatch test gives the agent. The request timeout is short
// so the Hammerwork-Deadline header can be checked against it.
const (
	requestTimeout = 15 * time.Second
	drainTimeout   = 10 * time.Second
)

// enqueued is a job the test put in and what the app must see of it.
type enqueued struct {
	id          string
	queue       string
	payload     string
	priority    job.Priority
	maxAttempts int
}

func TestAgentDispatchesJobsToTheApp(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			testDispatch(t, b.URL(t))
		})
	}
}

// testDispatch runs the whole life of an agent on one database: migrate,
// start, enqueue through the API, let the app answer each way the dispatch
// contract distinguishes, and stop with SIGTERM.
func testDispatch(t *testing.T, dbURL string) {
	migrate(t, dbURL)
	migrate(t, dbURL) // idempotent: a second run applies nothing and succeeds

	app := newFakeApp(t)
	token := uuid.NewString()
	agent := startAgent(t, map[string]string{
		"HW_DATABASE_URL":        dbURL,
		"HW_APP_HANDLER_URL":     app.srv.URL + "/jobs/{queue}",
		"HW_APP_REQUEST_TIMEOUT": requestTimeout.String(),
		"HW_API_LISTEN":          freeAddr(t),
		"HW_API_TOKEN":           token,
		"HW_AGENT_POLL_INTERVAL": "100ms",
		"HW_AGENT_DRAIN_TIMEOUT": drainTimeout.String(),
	})

	status, body := agent.callAs("", http.MethodGet, "/v1/jobs/"+uuid.NewString(), nil)
	require.Equal(t, http.StatusUnauthorized, status, "a /v1 route without the token: %s", body)

	fixedRetry := map[string]any{"strategy": "fixed", "initial": "200ms"}
	ok := enqueue(t, agent, map[string]any{"queue": "emails", "priority": "high", "max_attempts": 4,
		"payload": json.RawMessage(`{"kind": "ok", "order": {"id": 42, "items": ["a", "b"]}, "note": "héllo"}`)})
	flaky := enqueue(t, agent, map[string]any{"queue": "emails", "retry": fixedRetry,
		"payload": json.RawMessage(`{"kind": "flaky"}`)})
	missing := enqueue(t, agent, map[string]any{"queue": "emails", "retry": fixedRetry,
		"payload": json.RawMessage(`{"kind": "missing"}`)})
	async := enqueue(t, agent, map[string]any{"queue": "emails", "priority": "low",
		"payload": json.RawMessage(`{"kind": "async", "report": "weekly"}`)})
	batch := enqueueBatch(t, agent, []map[string]any{
		{"queue": "reports", "payload": json.RawMessage(`{"kind": "ok", "n": 1}`)},
		{"queue": "reports", "payload": json.RawMessage(`{"kind": "ok", "n": 2}`), "priority": "critical"},
		{"queue": "reports", "payload": json.RawMessage(`{"kind": "ok", "n": 3}`), "max_attempts": 7},
	})

	// 202 Accepted: the job stays running until the app completes it through
	// the API with the lease token it was given.
	var accepted appRequest
	select {
	case accepted = <-app.accepted:
	case <-time.After(waitLimit):
		t.Fatalf("the app was not called for the async job within %s", waitLimit)
	}
	require.Equal(t, async.id, accepted.Header.Get("Hammerwork-Job-Id"))
	require.Equal(t, "running", agent.getJob(async.id).Status, "a 202 answer leaves the job running")
	asyncResult := `{"rows": 1200, "file": "weekly.csv"}`
	status, body = agent.call(http.MethodPost, "/v1/jobs/"+async.id+"/complete", map[string]any{
		"lease_token": accepted.Header.Get("Hammerwork-Lease-Token"),
		"result":      json.RawMessage(asyncResult),
	})
	require.Equal(t, http.StatusOK, status, "POST /v1/jobs/{id}/complete: %s", body)

	for _, e := range append([]enqueued{ok}, batch...) {
		j := agent.waitStatus(e.id, "completed")
		reqs := app.requests(e.id)
		require.Len(t, reqs, 1, "job %s", e.id)
		checkDispatch(t, reqs[0], e, 1)
		require.Equal(t, 1, j.Attempts)
		require.JSONEq(t, string(reqs[0].Response), string(j.Result), "the stored result is the app's JSON answer")
	}

	j := agent.waitStatus(flaky.id, "completed")
	reqs := app.requests(flaky.id)
	require.Len(t, reqs, 2, "500 then 200: two deliveries")
	checkDispatch(t, reqs[0], flaky, 1)
	checkDispatch(t, reqs[1], flaky, 2)
	require.NotEqual(t, reqs[0].Header.Get("Hammerwork-Lease-Token"), reqs[1].Header.Get("Hammerwork-Lease-Token"),
		"each lease has its own fencing token")
	require.Equal(t, 2, j.Attempts)
	require.Len(t, j.Errors, 1, "the 500 is kept in the error history: %s", j.Errors)
	require.JSONEq(t, string(reqs[1].Response), string(j.Result))

	j = agent.waitStatus(missing.id, "failed")
	reqs = app.requests(missing.id)
	require.Len(t, reqs, 1, "a 404 is not retried")
	checkDispatch(t, reqs[0], missing, 1)
	require.Equal(t, 1, j.Attempts)
	require.Contains(t, j.ErrorMessage, "404 Not Found")
	require.Contains(t, j.ErrorMessage, "no handler for this job", "the error keeps the start of the body")

	j = agent.waitStatus(async.id, "completed")
	reqs = app.requests(async.id)
	require.Len(t, reqs, 1)
	checkDispatch(t, reqs[0], async, 1)
	require.JSONEq(t, asyncResult, string(j.Result))

	start := time.Now()
	err := agent.stop(drainTimeout)
	require.NoError(t, err, "SIGTERM is a normal shutdown: exit status 0")
	t.Logf("hw-agent exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))

	// The agent is gone, so no delivery can still arrive: every job the app
	// saw is one the test enqueued, and each was delivered as counted above.
	want := map[string]bool{ok.id: true, flaky.id: true, missing.id: true, async.id: true}
	for _, e := range batch {
		want[e.id] = true
	}
	for _, id := range app.jobIDs() {
		require.True(t, want[id], "the app was called for job %q, which the test never enqueued", id)
	}
	require.Len(t, app.jobIDs(), len(want))
	require.Len(t, app.requests(ok.id), 1, "no second delivery after completion")
	require.Len(t, app.requests(async.id), 1, "no second delivery after async completion")
}

// enqueue posts one job to /v1/jobs and returns what the app must see of it.
func enqueue(t *testing.T, a *agentProc, req map[string]any) enqueued {
	t.Helper()
	status, body := a.call(http.MethodPost, "/v1/jobs", req)
	require.Equal(t, http.StatusCreated, status, "POST /v1/jobs: %s", body)
	var resp struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	require.NoError(t, json.Unmarshal(body, &resp), "POST /v1/jobs: %s", body)
	require.Equal(t, "pending", resp.Status, "POST /v1/jobs: %s", body)
	return expectation(t, resp.ID, req)
}

// enqueueBatch posts jobs to /v1/jobs/batch and returns them in input order.
func enqueueBatch(t *testing.T, a *agentProc, reqs []map[string]any) []enqueued {
	t.Helper()
	status, body := a.call(http.MethodPost, "/v1/jobs/batch", map[string]any{"jobs": reqs})
	require.Equal(t, http.StatusCreated, status, "POST /v1/jobs/batch: %s", body)
	var resp struct {
		IDs []string `json:"ids"`
	}
	require.NoError(t, json.Unmarshal(body, &resp), "POST /v1/jobs/batch: %s", body)
	require.Len(t, resp.IDs, len(reqs), "POST /v1/jobs/batch: %s", body)
	out := make([]enqueued, len(reqs))
	for i, r := range reqs {
		out[i] = expectation(t, resp.IDs[i], r)
	}
	return out
}

// expectation applies the API's defaults (priority normal, max_attempts 3)
// to an enqueue request.
func expectation(t *testing.T, id string, req map[string]any) enqueued {
	t.Helper()
	_, err := uuid.Parse(id)
	require.NoError(t, err, "job id %q", id)
	e := enqueued{id: id, queue: req["queue"].(string), priority: job.PriorityNormal, maxAttempts: job.DefaultMaxAttempts}
	e.payload = string(req["payload"].(json.RawMessage))
	if p, ok := req["priority"].(string); ok {
		e.priority, err = job.ParsePriority(p)
		require.NoError(t, err)
	}
	if n, ok := req["max_attempts"].(int); ok {
		e.maxAttempts = n
	}
	return e
}

// checkDispatch checks one request against the dispatch contract of
// the README ("The app contract"): path, headers and body.
func checkDispatch(t *testing.T, r appRequest, e enqueued, attempt int) {
	t.Helper()
	h := r.Header
	require.Equal(t, "/jobs/"+e.queue, r.Path, "{queue} in handler_url is the job's queue")
	require.Equal(t, e.id, h.Get("Hammerwork-Job-Id"))
	require.Equal(t, e.queue, h.Get("Hammerwork-Queue"))
	require.Equal(t, strconv.Itoa(attempt), h.Get("Hammerwork-Attempt"), "job %s", e.id)
	require.Equal(t, strconv.Itoa(e.maxAttempts), h.Get("Hammerwork-Max-Attempts"), "job %s", e.id)

	prio, err := job.ParsePriority(h.Get("Hammerwork-Priority"))
	require.NoError(t, err, "Hammerwork-Priority")
	require.Equal(t, e.priority, prio, "job %s", e.id)

	deadline, err := time.Parse(time.RFC3339, h.Get("Hammerwork-Deadline"))
	require.NoError(t, err, "Hammerwork-Deadline must be RFC 3339")
	// The deadline is when the agent gives up on this request: about
	// request_timeout after it was sent (whole seconds may be cut off).
	require.WithinRange(t, deadline, r.At.Add(-time.Second), r.At.Add(requestTimeout+time.Second),
		"Hammerwork-Deadline %s for a request received at %s", deadline, r.At)

	require.NotEmpty(t, h.Get("Hammerwork-Lease-Token"))

	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	require.NoError(t, err, "Content-Type")
	require.Equal(t, "application/json", mt)
	require.JSONEq(t, e.payload, string(r.Body), "the body is the payload as enqueued")
}

func TestRunRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			res := runCLI(t, map[string]string{
				"HW_DATABASE_URL": b.URL(t),
				"HW_API_LISTEN":   freeAddr(t),
			}, "run")
			code := exitCode(res.err)
			require.Greater(t, code, 0, "hw-agent run on an unmigrated database must exit non-zero (err: %v)\nstderr:\n%s", res.err, res.stderr)
			require.Contains(t, res.stderr, "migrate", "the message tells the user to run migrate")
			t.Logf("exit %d, stderr: %s", code, res.stderr)
		})
	}
}
