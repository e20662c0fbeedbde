package main

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRunDeliversAnAPIEnqueueWithoutWaitingForThePoll: with an hour between
// polls and SQLite (no LISTEN/NOTIFY), only the API's wake-up of the agent it
// runs in can bring a job enqueued after the first, empty lease to the app.
func TestRunDeliversAnAPIEnqueueWithoutWaitingForThePoll(t *testing.T) {
	t.Parallel()
	hit := make(chan string, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case hit <- r.URL.Path:
		default:
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(app.Close)

	db := newDB(t, false)
	env := []string{
		"HW_APP_HANDLER_URL=" + app.URL + "/jobs/{queue}",
		"HW_AGENT_POLL_INTERVAL=1h",
		"HW_API_LISTEN=127.0.0.1:0",
		"HW_LOG_LEVEL=debug",
	}
	run := startRun(t, db, env)
	stderr := &run.stderr

	addr := regexp.MustCompile(`msg="api listening" addr=(\S+)`)
	var base string
	require.Eventually(t, func() bool {
		logs := stderr.String()
		m := addr.FindStringSubmatch(logs)
		if m == nil || !strings.Contains(logs, `msg="leased jobs"`) {
			return false
		}
		base = "http://" + m[1]
		return true
	}, 10*time.Second, 20*time.Millisecond, "stderr: %s", stderr.String())

	resp, err := http.Post(base+"/v1/jobs", "application/json", strings.NewReader(`{"queue": "emails"}`))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	select {
	case path := <-hit:
		require.Equal(t, "/jobs/emails", path)
	case <-time.After(10 * time.Second):
		t.Fatalf("the job did not reach the app; stderr: %s", stderr.String())
	}

	run.stop(t)
}
