package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestQueueControlsAcrossTwoAgents(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			testQueueControls(t, b.URL(t))
		})
	}
}

// queueView is the part of a GET /v1/queues entry the tests check.
type queueView struct {
	Name   string           `json:"name"`
	Paused bool             `json:"paused"`
	Depth  map[string]int64 `json:"depth"`
}

// testQueueControls runs two agent processes on one database: a pause
// through one agent's API holds for both, delayed jobs wait for their time,
// the CLI sees what the API sees, and a resume lets the jobs through.
func testQueueControls(t *testing.T, dbURL string) {
	migrate(t, dbURL)
	app := newFakeApp(t)
	env := func() map[string]string {
		return map[string]string{
			"HW_DATABASE_URL":        dbURL,
			"HW_APP_HANDLER_URL":     app.srv.URL + "/jobs/{queue}",
			"HW_API_LISTEN":          freeAddr(t),
			"HW_AGENT_POLL_INTERVAL": "100ms",
		}
	}
	a1, a2 := startAgent(t, env()), startAgent(t, env())

	status, body := a1.call(http.MethodPost, "/v1/queues/mail/pause", nil)
	require.Equal(t, http.StatusOK, status, "pause: %s", body)
	status, body = a1.call(http.MethodPost, "/v1/queues/bad%20name/pause", nil)
	require.Equal(t, http.StatusUnprocessableEntity, status, "pause of an invalid name: %s", body)

	var held []enqueued
	for i := range 4 {
		held = append(held, enqueue(t, a2, map[string]any{"queue": "mail", "payload": json.RawMessage(fmt.Sprintf(`{"kind": "ok", "n": %d}`, i))}))
	}
	// A job of another queue, enqueued after, completes: the agents lease,
	// just not the paused queue.
	other := enqueue(t, a2, map[string]any{"queue": "other", "payload": json.RawMessage(`{"kind": "ok"}`)})
	a1.waitStatus(other.id, "completed")
	delayed := enqueue(t, a1, map[string]any{"queue": "other", "delay": "700ms", "payload": json.RawMessage(`{"kind": "ok"}`)})
	a2.waitStatus(delayed.id, "completed")
	for _, j := range held {
		require.Empty(t, app.requests(j.id), "no agent delivers a job of a paused queue")
		require.Equal(t, "pending", a2.getJob(j.id).Status)
	}

	status, body = a2.call(http.MethodGet, "/v1/queues", nil)
	require.Equal(t, http.StatusOK, status, "GET /v1/queues: %s", body)
	var list struct {
		Queues []queueView `json:"queues"`
	}
	require.NoError(t, json.Unmarshal(body, &list), string(body))
	require.Len(t, list.Queues, 2, string(body))
	require.Equal(t, "mail", list.Queues[0].Name)
	require.True(t, list.Queues[0].Paused, "the pause made through one agent shows through the other")
	require.EqualValues(t, 4, list.Queues[0].Depth["pending"])
	require.EqualValues(t, 2, list.Queues[1].Depth["completed"])

	cli := runCLI(t, nil, "queue", "list", "--database-url", dbURL, "--output", "json")
	require.NoError(t, cli.err, cli.stderr)
	var fromCLI struct {
		Queues []queueView `json:"queues"`
	}
	require.NoError(t, json.Unmarshal([]byte(cli.stdout), &fromCLI), cli.stdout)
	require.Equal(t, list.Queues, fromCLI.Queues, "the CLI reads what the API shows")

	status, body = a2.call(http.MethodPost, "/v1/queues/mail/resume", nil)
	require.Equal(t, http.StatusOK, status, "resume: %s", body)
	for _, j := range held {
		a1.waitStatus(j.id, "completed")
	}

	// The delayed job reached the app no earlier than its scheduled time.
	status, body = a1.call(http.MethodGet, "/v1/jobs/"+delayed.id, nil)
	require.Equal(t, http.StatusOK, status, string(body))
	var stored struct {
		ScheduledAt time.Time `json:"scheduled_at"`
	}
	require.NoError(t, json.Unmarshal(body, &stored), string(body))
	reqs := app.requests(delayed.id)
	require.Len(t, reqs, 1)
	require.Falsef(t, reqs[0].At.Before(stored.ScheduledAt), "due at %s, delivered at %s", stored.ScheduledAt, reqs[0].At)
}
