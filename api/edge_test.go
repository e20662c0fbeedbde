package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// forEveryBackend is forEachBackend with MariaDB too, for the rules about
// what a backend can store: each backend refuses different values, and the
// API must answer the same on all of them.
func forEveryBackend(t *testing.T, test func(t *testing.T, st store.Store)) {
	t.Helper()
	forEachBackend(t, test)
	t.Run("mysql", func(t *testing.T) {
		t.Parallel()
		test(t, testkit.MySQL(t))
	})
}

// deep nests a value in n arrays: MariaDB refuses 32 levels or more.
func deep(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }

func TestEnqueueRejectsPayloadsABackendCannotStoreWith422(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body string
		mention    []string
	}{
		{"lone surrogate", `{"queue": "q", "payload": {"x": "\ud800"}}`, []string{"payload", `lone UTF-16 surrogate escape \ud800`, "MariaDB"}},
		{"32 levels", `{"queue": "q", "payload": ` + deep(32) + `}`, []string{"payload", "32 levels deep"}},
		{"NUL escape", `{"queue": "q", "payload": {"x": "a\u0000"}}`, []string{"payload", `\u0000`, "PostgreSQL"}},
		{"numeric overflow", `{"queue": "q", "payload": [1e200000]}`, []string{"payload", "digits before the point"}},
		{"batch job", `{"jobs": [{"queue": "q", "payload": 1}, {"queue": "q", "payload": "\udc00"}]}`, []string{"jobs[1]", "payload", "surrogate"}},
		{"workflow step", `{"name": "w", "jobs": [{"name": "extract", "queue": "q", "payload": {"x": "\ud83d"}}]}`, []string{"extract", "payload", "surrogate"}},
		{"workflow batch step", `{"name": "w", "jobs": [{"name": "resize", "queue": "q", "batch": [1, ` + deep(40) + `]}]}`, []string{"resize[1]", "payload", "levels deep"}},
	}
	forEveryBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		for _, tc := range cases {
			path := "/v1/jobs"
			switch {
			case strings.HasPrefix(tc.body, `{"jobs"`):
				path = "/v1/jobs/batch"
			case strings.HasPrefix(tc.body, `{"name"`):
				path = "/v1/workflows"
			}
			er := e.post(t, path, tc.body).requireError(t, http.StatusUnprocessableEntity, "invalid")
			for _, m := range tc.mention {
				require.Contains(t, er.Message, m, tc.name)
			}
		}
		e.requireJobCount(t, 0)

		stored := e.enqueue(t, `{"queue": "q", "payload": {"emoji": "\ud83d\ude00", "deep": `+deep(30)+`}}`)
		require.JSONEq(t, `{"emoji": "😀", "deep": `+deep(30)+`}`, string(e.stored(t, stored.ID).Payload), "the limits themselves are storable")
	})
}

func TestEnqueueRejectsControlCharactersInHeaderBoundFieldsWith422(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, path, body string
		mention          []string
	}{
		{"correlation_id CRLF", "/v1/jobs", `{"queue": "q", "correlation_id": "abc\r\nX-Injected: 1"}`, []string{"correlation_id", "U+000D"}},
		{"correlation_id tab", "/v1/jobs", `{"queue": "q", "correlation_id": "a\tb"}`, []string{"correlation_id", "U+0009"}},
		{"queue LF", "/v1/jobs", `{"queue": "emails\n"}`, []string{"queue", "not a valid name"}},
		{"batch job correlation_id", "/v1/jobs/batch", `{"jobs": [{"queue": "q"}, {"queue": "q", "correlation_id": "x\u0000"}]}`, []string{"jobs[1]", "correlation_id"}},
		{"batch name", "/v1/jobs/batch", `{"name": "nightly\nimport", "jobs": [{"queue": "q"}]}`, []string{"name", "U+000A"}},
		{"workflow name", "/v1/workflows", `{"name": "etl\r\n", "jobs": [{"name": "a", "queue": "q"}]}`, []string{"name", "Hammerwork-Workflow-Name"}},
		{"step name", "/v1/workflows", `{"name": "etl", "jobs": [{"name": "ex\ntract", "queue": "q"}]}`, []string{"jobs[0].name", "Hammerwork-Step"}},
		{"workflow correlation_id", "/v1/workflows", `{"name": "etl", "correlation_id": "c\u007f", "jobs": [{"name": "a", "queue": "q"}]}`, []string{"correlation_id", "Hammerwork-Correlation-Id"}},
		{"step queue", "/v1/workflows", `{"name": "etl", "jobs": [{"name": "a", "queue": "q\r"}]}`, []string{"queue", "not a valid name"}},
	}
	forEveryBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		for _, tc := range cases {
			r := e.post(t, tc.path, tc.body)
			// A workflow's details are a list of problems, a job's a map:
			// the body is read as text, every mention in message or details.
			require.Equal(t, http.StatusUnprocessableEntity, r.status, tc.name)
			msg := string(r.body)
			require.Contains(t, msg, `"code":"invalid"`, tc.name)
			for _, m := range tc.mention {
				require.Contains(t, msg, m, tc.name)
			}
		}
		e.requireJobCount(t, 0)
		r := e.get(t, "/v1/workflows")
		require.JSONEq(t, `{"workflows": [], "next_cursor": ""}`, string(r.body), "a rejected definition writes nothing")
	})
}

func TestCompleteWithAnUnstorableResultCompletesWithoutItAndSaysWhy(t *testing.T) {
	t.Parallel()
	forEveryBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		j := e.enqueue(t, `{"queue": "async", "payload": {}}`)
		token := e.lease(t, j.ID, "async")
		r := e.post(t, "/v1/jobs/"+j.ID.String()+"/complete", fmt.Sprintf(`{"lease_token": %q, "result": {"x": "\ud800"}}`, token))
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		done := e.stored(t, j.ID)
		require.Equal(t, job.StatusCompleted, done.Status)
		require.Nil(t, done.Result)
		require.Contains(t, done.ErrorMessage, `result not stored: result holds a lone UTF-16 surrogate escape \ud800`)
		require.Equal(t, done.ErrorMessage, r.job(t).ErrorMessage, "the answer shows the note")

		j = e.enqueue(t, `{"queue": "async", "payload": {}}`)
		token = e.lease(t, j.ID, "async")
		r = e.post(t, "/v1/jobs/"+j.ID.String()+"/complete", fmt.Sprintf(`{"lease_token": %q, "result": %s}`, token, deep(32)))
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		done = e.stored(t, j.ID)
		require.Equal(t, job.StatusCompleted, done.Status)
		require.Nil(t, done.Result)
		require.Contains(t, done.ErrorMessage, "result not stored: result nests arrays and objects 32 levels deep")
	})
}

func TestFailWithNULInTheErrorIsSanitizedNotA500(t *testing.T) {
	t.Parallel()
	forEveryBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		j := e.enqueue(t, `{"queue": "async", "payload": {}}`)
		token := e.lease(t, j.ID, "async")
		r := e.post(t, "/v1/jobs/"+j.ID.String()+"/fail", fmt.Sprintf(`{"lease_token": %q, "error": "bo\u0000om", "retry": false}`, token))
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		failed := e.stored(t, j.ID)
		require.Equal(t, job.StatusFailed, failed.Status)
		require.Equal(t, "bo\uFFFDom", failed.ErrorMessage)
		require.Len(t, failed.Errors, 1)
		require.Equal(t, "bo\uFFFDom", failed.Errors[0].Message)
	})
}

func TestHeartbeatExtensionIsCappedByMaxLeaseExtension(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		j := e.enqueue(t, `{"queue": "q", "payload": {}}`)
		path := "/v1/jobs/" + j.ID.String() + "/heartbeat"
		token := e.lease(t, j.ID, "q")
		before := *e.stored(t, j.ID).LeaseExpiresAt

		er := e.post(t, path, fmt.Sprintf(`{"lease_token": %q, "extend": "100000h"}`, token)).requireError(t, http.StatusUnprocessableEntity, "invalid")
		require.Contains(t, er.Message, `extend "100000h"`)
		require.Contains(t, er.Message, "max_lease_extension (1h0m0s)")
		require.True(t, before.Equal(*e.stored(t, j.ID).LeaseExpiresAt), "a refused heartbeat changes nothing")

		r := e.post(t, path, fmt.Sprintf(`{"lease_token": %q, "extend": "1h"}`, token))
		require.Equal(t, http.StatusOK, r.status, "the cap itself is allowed: %s", r.body)
		require.True(t, now.Add(time.Hour).Equal(*e.stored(t, j.ID).LeaseExpiresAt))

		capped := setup(t, st, func(p *api.Params) { p.MaxLeaseExtension = 10 * time.Minute })
		er = capped.post(t, path, fmt.Sprintf(`{"lease_token": %q, "extend": "11m"}`, token)).requireError(t, http.StatusUnprocessableEntity, "invalid")
		require.Contains(t, er.Message, "max_lease_extension (10m0s)")
	})
}
