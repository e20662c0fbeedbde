package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRetentionAndDeadLetters runs the cleaner and the dead-letter commands
// on the real binary against every backend: completed jobs past their
// retention disappear, failed ones (kept forever here) stay until an
// operator retries them in bulk and then purges them.
func TestRetentionAndDeadLetters(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			testRetention(t, b.URL(t))
		})
	}
}

func testRetention(t *testing.T, dbURL string) {
	migrate(t, dbURL)
	app := newFakeApp(t)
	agent := startAgent(t, map[string]string{
		"HW_DATABASE_URL":          dbURL,
		"HW_APP_HANDLER_URL":       app.srv.URL + "/jobs/{queue}",
		"HW_API_LISTEN":            freeAddr(t),
		"HW_AGENT_POLL_INTERVAL":   "50ms",
		"HW_RETENTION_INTERVAL":    "100ms",
		"HW_RETENTION_COMPLETED":   "1ms",
		"HW_RETENTION_FAILED":      "0s",
		"HW_RETENTION_BATCH_SIZE":  "2",
		"HW_AGENT_DRAIN_TIMEOUT":   drainTimeout.String(),
		"HW_APP_REQUEST_TIMEOUT":   requestTimeout.String(),
		"HW_AGENT_RESCUE_INTERVAL": "1s",
	})

	var done []enqueued
	for i := range 3 {
		done = append(done, enqueue(t, agent, map[string]any{"queue": "emails",
			"payload": json.RawMessage(fmt.Sprintf(`{"kind": "ok", "n": %d}`, i))}))
	}
	dead := enqueue(t, agent, map[string]any{"queue": "emails", "payload": json.RawMessage(`{"kind": "missing"}`)})

	for _, e := range done {
		poll(t, "completed job "+e.id+" deleted by the cleaner", func() (bool, string) {
			status, body := agent.call(http.MethodGet, "/v1/jobs/"+e.id, nil)
			return status == http.StatusNotFound, fmt.Sprintf("%d %s", status, body)
		})
		require.Len(t, app.requests(e.id), 1, "the job ran before it was deleted")
	}
	j := agent.waitStatus(dead.id, "failed")
	require.Len(t, j.Errors, 1)

	env := map[string]string{"HW_DATABASE_URL": dbURL}
	res := runCLI(t, env, "job", "list", "--status", "failed", "--output", "json")
	require.NoError(t, res.err, res.stderr)
	require.Contains(t, res.stdout, dead.id, "job list --status failed shows the dead letter")

	res = runCLI(t, env, "job", "retry", "--status", "failed", "--queue", "emails")
	require.NoError(t, res.err, res.stderr)
	require.Equal(t, "1 failed jobs on queue emails would be retried; add --yes to retry them\n", res.stdout)
	res = runCLI(t, env, "job", "retry", "--status", "failed", "--queue", "emails", "--yes")
	require.NoError(t, res.err, res.stderr)
	require.Equal(t, "retried 1 failed jobs on queue emails\n", res.stdout)
	poll(t, "the retried dead letter to fail again", func() (bool, string) {
		j = agent.getJob(dead.id)
		return j.Status == "failed" && len(j.Errors) == 2, fmt.Sprintf("%+v", j)
	})
	require.Len(t, app.requests(dead.id), 2, "the bulk retry delivered it again")

	res = runCLI(t, env, "job", "purge", "--status", "failed", "--older-than", "0s", "--yes")
	require.NoError(t, res.err, res.stderr)
	require.Equal(t, "deleted 1 failed jobs older than 0s\n", res.stdout)
	status, body := agent.call(http.MethodGet, "/v1/jobs/"+dead.id, nil)
	require.Equal(t, http.StatusNotFound, status, "%s", body)
	require.NoError(t, agent.stop(drainTimeout))
}
