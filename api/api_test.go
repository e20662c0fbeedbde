package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// backends lists every store the API is tested on: the same requests must
// mean the same thing on each.
var backends = []testkit.Backend{testkit.SQLiteBackend, testkit.PostgresBackend}

// forEachBackend runs test once per backend, in parallel.
func forEachBackend(t *testing.T, test func(t *testing.T, st store.Store)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			test(t, b.Store(t))
		})
	}
}

// now is the fixed clock of every server under test, so times in responses
// can be compared exactly.
var now = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

const retryDelay = time.Minute

type env struct {
	st   store.Store
	srv  *httptest.Server
	logs *testkit.Buffer
}

type option func(*api.Params)

func setup(t *testing.T, st store.Store, opts ...option) *env {
	t.Helper()
	logs := &testkit.Buffer{}
	p := api.Params{
		Store:         st,
		LeaseDuration: 30 * time.Second,
		RetryDelay:    func(*job.Job) time.Duration { return retryDelay },
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:           func() time.Time { return now },
	}
	for _, o := range opts {
		o(&p)
	}
	srv := httptest.NewServer(api.New(p))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &env{st: st, srv: srv, logs: logs}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(t *testing.T, method, path string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *env) post(t *testing.T, path, body string, header ...string) response {
	t.Helper()
	return e.do(t, http.MethodPost, path, strings.NewReader(body), header...)
}

func (e *env) get(t *testing.T, path string, header ...string) response {
	t.Helper()
	return e.do(t, http.MethodGet, path, nil, header...)
}

func (r response) job(t *testing.T) *job.Job {
	t.Helper()
	var j job.Job
	require.NoError(t, json.Unmarshal(r.body, &j), string(r.body))
	return &j
}

type apiError struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

// requireError checks the status and the error envelope, and returns it.
func (r response) requireError(t *testing.T, status int, code string) apiError {
	t.Helper()
	require.Equal(t, status, r.status, string(r.body))
	require.Equal(t, "application/json", strings.Split(r.header.Get("Content-Type"), ";")[0])
	var body struct {
		Error apiError `json:"error"`
	}
	require.NoError(t, json.Unmarshal(r.body, &body), string(r.body))
	require.Equal(t, code, body.Error.Code, string(r.body))
	require.NotEmpty(t, body.Error.Message)
	return body.Error
}

// enqueue posts a valid job and returns it as stored.
func (e *env) enqueue(t *testing.T, body string) *job.Job {
	t.Helper()
	r := e.post(t, "/v1/jobs", body)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	return r.job(t)
}

// lease takes the job the way an agent does, returning its lease token.
func (e *env) lease(t *testing.T, id uuid.UUID, queue string) string {
	t.Helper()
	jobs, err := e.st.Lease(context.Background(), store.LeaseParams{
		AgentID: "test-agent", Queues: []string{queue}, Limit: 1, Duration: 10 * time.Second, Now: now,
	})
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	require.Equal(t, id, jobs[0].ID)
	require.NotEmpty(t, jobs[0].LeaseToken)
	return jobs[0].LeaseToken
}

func (e *env) stored(t *testing.T, id uuid.UUID) *job.Job {
	t.Helper()
	j, err := e.st.Get(context.Background(), id)
	require.NoError(t, err)
	return j
}

func (e *env) requireJobCount(t *testing.T, want int) {
	t.Helper()
	page, err := e.st.List(context.Background(), store.ListParams{Limit: store.MaxListLimit})
	require.NoError(t, err)
	require.Len(t, page.Jobs, want)
}

func TestEnqueueStoresEveryField(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		r := e.post(t, "/v1/jobs", `{
			"queue": "emails", "payload": {"to": "a@example.com", "n": [1, 2]},
			"priority": "high", "delay": "30s", "max_attempts": 5, "timeout": "10s",
			"retry": {"strategy": "fixed", "initial": "2s", "max": "1m"},
			"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "correlation_id": "order-17",
			"result_ttl": "1h"}`)
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		j := r.job(t)
		require.Equal(t, "/v1/jobs/"+j.ID.String(), r.header.Get("Location"))
		require.Equal(t, "emails", j.Queue)
		require.JSONEq(t, `{"to": "a@example.com", "n": [1, 2]}`, string(j.Payload))
		require.Equal(t, job.StatusPending, j.Status)
		require.Equal(t, job.PriorityHigh, j.Priority)
		require.Equal(t, 5, j.MaxAttempts)
		require.Equal(t, 10*time.Second, j.Timeout.D())
		require.Equal(t, time.Hour, j.ResultTTL.D())
		require.Equal(t, &job.RetryPolicy{Strategy: "fixed", Initial: job.Duration(2 * time.Second), Max: job.Duration(time.Minute)}, j.RetryPolicy)
		require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", j.TraceID)
		require.Equal(t, "order-17", j.CorrelationID)
		require.True(t, now.Add(30*time.Second).Equal(j.ScheduledAt), j.ScheduledAt)
		require.True(t, now.Equal(j.CreatedAt), j.CreatedAt)

		got := e.get(t, "/v1/jobs/"+j.ID.String())
		require.Equal(t, http.StatusOK, got.status, string(got.body))
		require.Equal(t, j.ID, got.job(t).ID)
		require.Equal(t, job.PriorityHigh, got.job(t).Priority)
	})
}

func TestEnqueueDefaultsAndAlternativeForms(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)

		j := e.enqueue(t, `{"queue": "q", "payload": {}}`)
		require.Equal(t, job.PriorityNormal, j.Priority)
		require.Equal(t, job.DefaultMaxAttempts, j.MaxAttempts)
		require.True(t, now.Equal(j.ScheduledAt), j.ScheduledAt)
		require.Equal(t, job.DependencyNone, j.DependencyStatus)

		j = e.enqueue(t, `{"queue": "q", "payload": [1], "priority": 4, "scheduled_at": "2026-12-01T08:30:00+01:00"}`)
		require.Equal(t, job.PriorityCritical, j.Priority)
		require.True(t, time.Date(2026, 12, 1, 7, 30, 0, 0, time.UTC).Equal(j.ScheduledAt), j.ScheduledAt)

		// Empty depends_on and unique_key ask for nothing, so they are accepted.
		e.enqueue(t, `{"queue": "q", "payload": null, "depends_on": [], "unique_key": ""}`)
		e.requireJobCount(t, 3)
	})
}

func TestEnqueueRejectsBadRequestsAndWritesNothing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body string
		status     int
		code       string
		message    string // substring of the error message
		field      string // details.field, when the error names one
	}{
		{"malformed JSON", `{"queue": "q",`, 400, "bad_request", "malformed JSON", ""},
		{"not JSON", `queue=q`, 400, "bad_request", "malformed JSON", ""},
		{"empty body", ``, 400, "bad_request", "empty", ""},
		{"array body", `[{"queue": "q"}]`, 400, "bad_request", "request body must be an object", ""},
		{"trailing data", `{"queue": "q"} {"queue": "r"}`, 400, "bad_request", "single JSON object", ""},
		{"unknown field", `{"queue": "q", "max_attempt": 3}`, 400, "bad_request", `"max_attempt"`, "max_attempt"},
		{"unknown retry field", `{"queue": "q", "retry": {"kind": "fixed"}}`, 400, "bad_request", `"retry.kind"`, "retry.kind"},
		{"wrong type", `{"queue": 5}`, 400, "bad_request", "queue must be a string", "queue"},
		{"duration as number", `{"queue": "q", "timeout": 10}`, 400, "bad_request", "timeout must be a string", "timeout"},
		{"missing queue", `{"payload": {}}`, 422, "invalid", "queue is required", ""},
		{"bad queue name", `{"queue": "a b"}`, 422, "invalid", "queue", ""},
		{"unknown priority", `{"queue": "q", "priority": "urgent"}`, 422, "invalid", "priority", ""},
		{"priority out of range", `{"queue": "q", "priority": 7}`, 422, "invalid", "priority", ""},
		{"delay and scheduled_at", `{"queue": "q", "delay": "1s", "scheduled_at": "2026-12-01T00:00:00Z"}`, 422, "invalid", "not both", ""},
		{"bad delay", `{"queue": "q", "delay": "soon"}`, 422, "invalid", "delay", ""},
		{"negative delay", `{"queue": "q", "delay": "-1s"}`, 422, "invalid", "delay", ""},
		{"bad timeout", `{"queue": "q", "timeout": "10"}`, 422, "invalid", "timeout", ""},
		{"bad result_ttl", `{"queue": "q", "result_ttl": "forever"}`, 422, "invalid", "result_ttl", ""},
		{"bad scheduled_at", `{"queue": "q", "scheduled_at": "tomorrow"}`, 422, "invalid", "scheduled_at", ""},
		{"zero max_attempts", `{"queue": "q", "max_attempts": 0}`, 422, "invalid", "max_attempts", ""},
		{"bad retry strategy", `{"queue": "q", "retry": {"strategy": "random"}}`, 422, "invalid", "retry.strategy", ""},
		{"bad retry duration", `{"queue": "q", "retry": {"initial": "fast"}}`, 422, "invalid", "retry", ""},
		{"uppercase trace_id", `{"queue": "q", "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736"}`, 422, "invalid", "trace_id", ""},
		{"short trace_id", `{"queue": "q", "trace_id": "4bf92f35"}`, 422, "invalid", "trace_id", ""},
		{"zero trace_id", `{"queue": "q", "trace_id": "00000000000000000000000000000000"}`, 422, "invalid", "trace_id", ""},
		{"unknown depends_on", `{"queue": "q", "depends_on": ["0190d6f4-8b7a-7cc1-a000-000000000001"]}`, 422, "invalid", "0190d6f4-8b7a-7cc1-a000-000000000001", ""},
		{"depends_on not an id", `{"queue": "q", "depends_on": ["x"]}`, 422, "invalid", `depends_on[0] "x"`, ""},
		{"depends_on not an array", `{"queue": "q", "depends_on": "x"}`, 422, "invalid", "depends_on must be an array", ""},
		{"unique_key not a string", `{"queue": "q", "unique_key": 17}`, 400, "bad_request", "unique_key must be a string", "unique_key"},
	}
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		for _, tc := range cases {
			r := e.post(t, "/v1/jobs", tc.body)
			er := r.requireError(t, tc.status, tc.code)
			require.Contains(t, er.Message, tc.message, tc.name)
			if tc.field != "" {
				require.Equal(t, tc.field, er.Details["field"], tc.name)
			}
			e.requireJobCount(t, 0)
		}
	})
}

func TestBatchEnqueueIsAtomic(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)

		r := e.post(t, "/v1/jobs/batch", `{"jobs": [
			{"queue": "a", "payload": {"n": 1}},
			{"queue": "b", "payload": {"n": 2}, "priority": "low"},
			{"queue": "a", "payload": {"n": 3}, "delay": "1m"}]}`)
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		var resp struct {
			IDs []uuid.UUID `json:"ids"`
		}
		require.NoError(t, json.Unmarshal(r.body, &resp))
		require.Len(t, resp.IDs, 3)
		for i, id := range resp.IDs {
			j := e.stored(t, id)
			require.JSONEq(t, fmt.Sprintf(`{"n": %d}`, i+1), string(j.Payload))
		}
		require.Equal(t, job.PriorityLow, e.stored(t, resp.IDs[1]).Priority)
		require.True(t, now.Add(time.Minute).Equal(e.stored(t, resp.IDs[2]).ScheduledAt))

		rejected := []struct {
			body, code, message string
			status              int
		}{
			{`{"jobs": [{"queue": "a"}, {"payload": {}}, {"queue": "c"}]}`, "invalid", "jobs[1]: queue is required", 422},
			{`{"jobs": [{"queue": "a"}, {"queue": "b", "depends_on": ["x"]}]}`, "invalid", "jobs[1]: depends_on[0]", 422},
			{`{"jobs": [{"queue": "a", "retry": {"bogus": 1}}]}`, "bad_request", `jobs[0]: unknown field "retry.bogus"`, 400},
			{`{"jobs": []}`, "invalid", "non-empty", 422},
			{`{}`, "invalid", "non-empty", 422},
			{`{"jobs": [{"queue": "a"}], "extra": true}`, "bad_request", `"extra"`, 400},
			{`{"jobs": {"queue": "a"}}`, "bad_request", "jobs must be an array", 400},
		}
		for _, tc := range rejected {
			er := e.post(t, "/v1/jobs/batch", tc.body).requireError(t, tc.status, tc.code)
			require.Contains(t, er.Message, tc.message)
			e.requireJobCount(t, 3)
		}
	})
}

func TestListJobsFiltersAndPages(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		var ids []uuid.UUID
		for i := range 5 {
			q := "even"
			if i%2 == 1 {
				q = "odd"
			}
			ids = append(ids, e.enqueue(t, fmt.Sprintf(`{"queue": %q, "payload": {"i": %d}}`, q, i)).ID)
		}
		e.lease(t, ids[1], "odd")

		list := func(query string) ([]uuid.UUID, string) {
			t.Helper()
			r := e.get(t, "/v1/jobs"+query)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			var page struct {
				Jobs       []job.Job `json:"jobs"`
				NextCursor *string   `json:"next_cursor"`
			}
			require.NoError(t, json.Unmarshal(r.body, &page))
			require.NotNil(t, page.Jobs, "jobs is an array, never null")
			require.NotNil(t, page.NextCursor, "next_cursor is always present")
			got := make([]uuid.UUID, len(page.Jobs))
			for i, j := range page.Jobs {
				got[i] = j.ID
			}
			return got, *page.NextCursor
		}

		all, next := list("")
		require.Equal(t, []uuid.UUID{ids[4], ids[3], ids[2], ids[1], ids[0]}, all, "newest first")
		require.Empty(t, next)

		got, _ := list("?queue=even")
		require.Equal(t, []uuid.UUID{ids[4], ids[2], ids[0]}, got)
		got, _ = list("?status=running")
		require.Equal(t, []uuid.UUID{ids[1]}, got)
		got, _ = list("?queue=odd&status=pending")
		require.Equal(t, []uuid.UUID{ids[3]}, got)
		got, _ = list("?dependency_status=none&limit=1000")
		require.Len(t, got, 5)
		got, _ = list("?workflow_id=" + uuid.NewString())
		require.Empty(t, got)

		var paged []uuid.UUID
		cursor := ""
		for range 10 {
			page, next := list("?limit=2&cursor=" + cursor)
			paged = append(paged, page...)
			if next == "" {
				break
			}
			cursor = next
		}
		require.Equal(t, all, paged)

		for _, q := range []string{
			"?status=done", "?dependency_status=blocked", "?workflow_id=42", "?limit=0", "?limit=1001",
			"?limit=ten", "?cursor=page-2", "?stauts=pending",
		} {
			er := e.get(t, "/v1/jobs"+q).requireError(t, http.StatusBadRequest, "bad_request")
			require.NotEmpty(t, er.Message, q)
		}
	})
}

func TestRouteAndIDErrors(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		er := e.get(t, "/v1/jobs/not-a-uuid").requireError(t, http.StatusBadRequest, "bad_request")
		require.Contains(t, er.Message, "not-a-uuid")
		e.get(t, "/v1/jobs/"+uuid.NewString()).requireError(t, http.StatusNotFound, "not_found")
		e.get(t, "/v1/nothing-here").requireError(t, http.StatusNotFound, "not_found")
		e.get(t, "/elsewhere").requireError(t, http.StatusNotFound, "not_found")
		e.do(t, http.MethodDelete, "/v1/jobs/"+uuid.NewString(), nil).requireError(t, http.StatusMethodNotAllowed, "method_not_allowed")
		for _, action := range []string{"cancel", "retry", "complete", "fail", "heartbeat"} {
			e.post(t, "/v1/jobs/nope/"+action, `{}`).requireError(t, http.StatusBadRequest, "bad_request")
		}
	})
}

func TestCancelAndRetryFollowTheStateMachine(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		j := e.enqueue(t, `{"queue": "q", "payload": {}}`)
		path := "/v1/jobs/" + j.ID.String()

		er := e.post(t, path+"/retry", "").requireError(t, http.StatusConflict, "conflict")
		require.Equal(t, "pending", er.Details["status"])

		r := e.post(t, path+"/cancel", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, job.StatusCancelled, r.job(t).Status)

		er = e.post(t, path+"/cancel", "").requireError(t, http.StatusConflict, "conflict")
		require.Equal(t, "cancelled", er.Details["status"])

		r = e.post(t, path+"/retry", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, job.StatusPending, r.job(t).Status)
		require.Equal(t, 0, r.job(t).Attempts)

		// A running job can be cancelled; its lease is then stale.
		token := e.lease(t, j.ID, "q")
		r = e.post(t, path+"/cancel", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, job.StatusCancelled, r.job(t).Status)
		e.post(t, path+"/complete", fmt.Sprintf(`{"lease_token": %q}`, token)).requireError(t, http.StatusConflict, "stale_lease")
		require.Equal(t, job.StatusCancelled, e.stored(t, j.ID).Status)

		e.post(t, "/v1/jobs/"+uuid.NewString()+"/cancel", "").requireError(t, http.StatusNotFound, "not_found")
		e.post(t, "/v1/jobs/"+uuid.NewString()+"/retry", "").requireError(t, http.StatusNotFound, "not_found")
	})
}

func TestCompleteWithLeaseTokenOnce(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		j := e.enqueue(t, `{"queue": "async", "payload": {}}`)
		path := "/v1/jobs/" + j.ID.String() + "/complete"

		e.post(t, path, `{"lease_token": "x"}`).requireError(t, http.StatusConflict, "stale_lease")
		token := e.lease(t, j.ID, "async")

		e.post(t, path, `{"result": {}}`).requireError(t, http.StatusUnprocessableEntity, "invalid")
		e.post(t, path, `{"lease_token": "wrong"}`).requireError(t, http.StatusConflict, "stale_lease")
		e.post(t, path, `{"lease_token": "x", "status": "ok"}`).requireError(t, http.StatusBadRequest, "bad_request")
		require.Equal(t, job.StatusRunning, e.stored(t, j.ID).Status)

		r := e.post(t, path, fmt.Sprintf(`{"lease_token": %q, "result": {"sent": true}}`, token))
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		done := r.job(t)
		require.Equal(t, job.StatusCompleted, done.Status)
		require.JSONEq(t, `{"sent": true}`, string(done.Result))
		require.True(t, now.Equal(*done.CompletedAt))

		er := e.post(t, path, fmt.Sprintf(`{"lease_token": %q}`, token)).requireError(t, http.StatusConflict, "stale_lease")
		require.Contains(t, er.Message, "completed")
		require.JSONEq(t, `{"sent": true}`, string(e.stored(t, j.ID).Result))

		e.post(t, "/v1/jobs/"+uuid.NewString()+"/complete", `{"lease_token": "x"}`).requireError(t, http.StatusNotFound, "not_found")
	})
}

func TestFailRetriesOrFails(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)

		j := e.enqueue(t, `{"queue": "a", "payload": {}}`)
		path := "/v1/jobs/" + j.ID.String() + "/fail"
		token := e.lease(t, j.ID, "a")

		e.post(t, path, fmt.Sprintf(`{"lease_token": %q}`, token)).requireError(t, http.StatusUnprocessableEntity, "invalid")
		e.post(t, path, `{"error": "boom"}`).requireError(t, http.StatusUnprocessableEntity, "invalid")
		e.post(t, path, `{"lease_token": "wrong", "error": "boom"}`).requireError(t, http.StatusConflict, "stale_lease")
		require.Equal(t, job.StatusRunning, e.stored(t, j.ID).Status)

		r := e.post(t, path, fmt.Sprintf(`{"lease_token": %q, "error": "smtp down"}`, token))
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		retried := r.job(t)
		require.Equal(t, job.StatusPending, retried.Status, "retry defaults to true")
		require.True(t, now.Add(retryDelay).Equal(retried.ScheduledAt), retried.ScheduledAt)
		require.Equal(t, "smtp down", retried.ErrorMessage)
		require.Len(t, retried.Errors, 1)
		require.Equal(t, "smtp down", retried.Errors[0].Message)
		e.post(t, path, fmt.Sprintf(`{"lease_token": %q, "error": "again"}`, token)).requireError(t, http.StatusConflict, "stale_lease")

		j = e.enqueue(t, `{"queue": "b", "payload": {}}`)
		token = e.lease(t, j.ID, "b")
		r = e.post(t, "/v1/jobs/"+j.ID.String()+"/fail", fmt.Sprintf(`{"lease_token": %q, "error": "bad input", "retry": false}`, token))
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, job.StatusFailed, r.job(t).Status)
		require.True(t, now.Equal(*r.job(t).FailedAt))

		j = e.enqueue(t, `{"queue": "c", "payload": {}, "max_attempts": 1}`)
		token = e.lease(t, j.ID, "c")
		r = e.post(t, "/v1/jobs/"+j.ID.String()+"/fail", fmt.Sprintf(`{"lease_token": %q, "error": "last try", "retry": true}`, token))
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, job.StatusFailed, r.job(t).Status, "no attempts left")

		e.post(t, "/v1/jobs/"+uuid.NewString()+"/fail", `{"lease_token": "x", "error": "e"}`).requireError(t, http.StatusNotFound, "not_found")
	})
}

func TestHeartbeatExtendsLease(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st, func(p *api.Params) { p.LeaseDuration = 2 * time.Minute })
		j := e.enqueue(t, `{"queue": "q", "payload": {}}`)
		path := "/v1/jobs/" + j.ID.String() + "/heartbeat"
		token := e.lease(t, j.ID, "q")
		require.True(t, now.Add(10*time.Second).Equal(*e.stored(t, j.ID).LeaseExpiresAt))

		expiry := func(r response) time.Time {
			t.Helper()
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			var body struct {
				LeaseExpiresAt time.Time `json:"lease_expires_at"`
			}
			require.NoError(t, json.Unmarshal(r.body, &body))
			return body.LeaseExpiresAt
		}

		got := expiry(e.post(t, path, fmt.Sprintf(`{"lease_token": %q, "extend": "5m"}`, token)))
		require.True(t, now.Add(5*time.Minute).Equal(got), got)
		require.True(t, got.Equal(*e.stored(t, j.ID).LeaseExpiresAt))

		got = expiry(e.post(t, path, fmt.Sprintf(`{"lease_token": %q}`, token)))
		require.True(t, now.Add(2*time.Minute).Equal(got), "default is Params.LeaseDuration: %v", got)

		for _, bad := range []string{`"0s"`, `"-5s"`, `"soon"`} {
			e.post(t, path, fmt.Sprintf(`{"lease_token": %q, "extend": %s}`, token, bad)).requireError(t, http.StatusUnprocessableEntity, "invalid")
		}
		e.post(t, path, `{"extend": "1m"}`).requireError(t, http.StatusUnprocessableEntity, "invalid")
		e.post(t, path, `{"lease_token": "wrong"}`).requireError(t, http.StatusConflict, "stale_lease")
		e.post(t, "/v1/jobs/"+uuid.NewString()+"/heartbeat", `{"lease_token": "x"}`).requireError(t, http.StatusNotFound, "not_found")
		require.True(t, now.Add(2*time.Minute).Equal(*e.stored(t, j.ID).LeaseExpiresAt), "rejected heartbeats change nothing")

		r := e.post(t, "/v1/jobs/"+j.ID.String()+"/complete", fmt.Sprintf(`{"lease_token": %q}`, token))
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		e.post(t, path, fmt.Sprintf(`{"lease_token": %q}`, token)).requireError(t, http.StatusConflict, "stale_lease")
	})
}

func TestTokenGuardsV1RoutesOnly(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st, func(p *api.Params) { p.Token = "s3cret" })
		body := `{"queue": "q", "payload": {}}`

		for _, header := range [][]string{
			nil,
			{"Authorization", "Bearer wrong"},
			{"Authorization", "Bearer s3cret2"},
			{"Authorization", "Basic czNjcmV0"},
			{"Authorization", "s3cret"},
			{"Authorization", "Bearer "},
		} {
			r := e.post(t, "/v1/jobs", body, header...)
			r.requireError(t, http.StatusUnauthorized, "unauthorized")
			require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer", header)
		}
		e.get(t, "/v1/jobs").requireError(t, http.StatusUnauthorized, "unauthorized")
		e.get(t, "/v1/unknown").requireError(t, http.StatusUnauthorized, "unauthorized")
		e.requireJobCount(t, 0)

		r := e.post(t, "/v1/jobs", body, "Authorization", "Bearer s3cret")
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		r = e.get(t, "/v1/jobs", "Authorization", "bearer s3cret")
		require.Equal(t, http.StatusOK, r.status, string(r.body))

		require.Equal(t, http.StatusOK, e.get(t, "/healthz").status)
		require.Equal(t, http.StatusOK, e.get(t, "/readyz").status)

		open := setup(t, st)
		r = open.post(t, "/v1/jobs", body)
		require.Equal(t, http.StatusCreated, r.status, "no token configured: no auth")
	})
}

func TestBodyOverLimitIs413(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		const limit = 1024
		e := setup(t, st, func(p *api.Params) { p.MaxBodyBytes = limit })
		big := fmt.Sprintf(`{"queue": "q", "payload": {"blob": %q}}`, strings.Repeat("x", 2*limit))

		// Content-Length announces the size.
		er := e.post(t, "/v1/jobs", big).requireError(t, http.StatusRequestEntityTooLarge, "payload_too_large")
		require.Contains(t, er.Message, "1024")
		e.post(t, "/v1/jobs/batch", `{"jobs": [`+big+`]}`).requireError(t, http.StatusRequestEntityTooLarge, "payload_too_large")

		// Chunked: the size is only found while reading.
		r := e.do(t, http.MethodPost, "/v1/jobs", io.MultiReader(strings.NewReader(big)))
		r.requireError(t, http.StatusRequestEntityTooLarge, "payload_too_large")
		// A complete object followed by padding past the limit.
		r = e.do(t, http.MethodPost, "/v1/jobs", io.MultiReader(strings.NewReader(`{"queue": "q"}`+strings.Repeat(" ", 2*limit))))
		r.requireError(t, http.StatusRequestEntityTooLarge, "payload_too_large")
		e.requireJobCount(t, 0)

		small := `{"queue": "q", "payload": {"blob": "` + strings.Repeat("x", limit/2) + `"}}`
		require.Equal(t, http.StatusCreated, e.post(t, "/v1/jobs", small).status)
		e.requireJobCount(t, 1)
	})
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		r := e.get(t, "/healthz")
		require.Equal(t, http.StatusOK, r.status)
		require.JSONEq(t, `{"status": "ok"}`, string(r.body))
		r = e.get(t, "/readyz")
		require.Equal(t, http.StatusOK, r.status, "no Ready func: the store's ping decides")
		require.JSONEq(t, `{"status": "ready"}`, string(r.body))

		var appDown atomic.Bool
		gated := setup(t, st, func(p *api.Params) {
			p.Ready = func(ctx context.Context) error {
				if appDown.Load() {
					return errors.New("app health check failed: connection refused")
				}
				return st.Ping(ctx)
			}
		})
		require.Equal(t, http.StatusOK, gated.get(t, "/readyz").status)
		appDown.Store(true)
		er := gated.get(t, "/readyz").requireError(t, http.StatusServiceUnavailable, "not_ready")
		require.Contains(t, er.Message, "connection refused")
		require.Equal(t, http.StatusOK, gated.get(t, "/healthz").status, "alive even when not ready")
	})
}

func TestStoreFailureIs500WithoutInternals(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		j := e.enqueue(t, `{"queue": "q", "payload": {}}`)
		require.NoError(t, st.Close())

		r := e.get(t, "/v1/jobs/"+j.ID.String())
		er := r.requireError(t, http.StatusInternalServerError, "internal")
		require.NotContains(t, strings.ToLower(er.Message), "closed")
		require.Contains(t, e.logs.String(), "api request failed")
		require.Contains(t, e.logs.String(), j.ID.String())

		e.get(t, "/readyz").requireError(t, http.StatusServiceUnavailable, "not_ready")
		require.Equal(t, http.StatusOK, e.get(t, "/healthz").status)
	})
}
