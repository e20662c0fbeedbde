package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/store"
)

// withDatabaseClock runs the server as production does: no injected clock.
func withDatabaseClock(p *api.Params) { p.Now = nil }

// requireWithin checks that got lies in [from, to].
func requireWithin(t *testing.T, got, from, to time.Time, what string) {
	t.Helper()
	require.False(t, got.Before(from), "%s %s is before %s", what, got, from)
	require.False(t, got.After(to), "%s %s is after %s", what, got, to)
}

func TestServerWithoutInjectedClockCountsFromTheDatabasesClock(t *testing.T) {
	t.Parallel()
	forEveryBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st, withDatabaseClock)
		dbNow := func() time.Time {
			at, err := st.DatabaseNow(t.Context())
			require.NoError(t, err)
			return at
		}

		before := dbNow()
		delayed := e.enqueue(t, `{"queue": "later", "delay": "1h"}`)
		after := dbNow()
		requireWithin(t, delayed.CreatedAt, before, after, "created_at")
		requireWithin(t, delayed.ScheduledAt, before.Add(time.Hour), after.Add(time.Hour), "scheduled_at of a 1h delay")

		j := e.enqueue(t, `{"queue": "now"}`)
		leased, err := st.Lease(t.Context(), store.LeaseParams{AgentID: "a", Queues: []string{"now"}, Limit: 1, Duration: 10 * time.Second})
		require.NoError(t, err)
		require.Len(t, leased, 1, "a job without a delay is due at once by the database's clock")
		require.Equal(t, j.ID, leased[0].ID)
		token := leased[0].LeaseToken

		before = dbNow()
		r := e.post(t, "/v1/jobs/"+j.ID.String()+"/heartbeat", fmt.Sprintf(`{"lease_token": %q, "extend": "5m"}`, token))
		after = dbNow()
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var hb struct {
			LeaseExpiresAt time.Time `json:"lease_expires_at"`
		}
		require.NoError(t, json.Unmarshal(r.body, &hb))
		stored := *e.stored(t, j.ID).LeaseExpiresAt
		requireWithin(t, stored, before.Add(5*time.Minute), after.Add(5*time.Minute), "stored lease_expires_at")
		requireWithin(t, hb.LeaseExpiresAt, before.Add(5*time.Minute), stored, "answered lease_expires_at")

		before = dbNow()
		r = e.post(t, "/v1/jobs/"+j.ID.String()+"/fail", fmt.Sprintf(`{"lease_token": %q, "error": "busy"}`, token))
		after = dbNow()
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		retried := e.stored(t, j.ID)
		require.Equal(t, "pending", string(retried.Status))
		requireWithin(t, retried.ScheduledAt, before.Add(retryDelay), after.Add(retryDelay), "scheduled_at of the retry")
	})
}
