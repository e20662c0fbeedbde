package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// loneSurrogate is what JavaScript's JSON.stringify emits for an emoji cut
// in half: Go accepts it, MariaDB's JSON_VALID does not.
const loneSurrogate = `{"x":"\ud800"}`

// TestUnstorableResultCompletesWithoutItAndTheOthersKeepTheirs: an app
// answering one job of a batch with a result MariaDB refuses must not
// stall the others. Every job completes; the good results are stored; the
// bad one is completed without its result, and the job says why.
func TestUnstorableResultCompletesWithoutItAndTheOthersKeepTheirs(t *testing.T) {
	t.Parallel()
	backends := []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"mysql", func(t *testing.T) store.Store { return testkit.MySQL(t) }},
		{"postgres", func(t *testing.T) store.Store { return testkit.Postgres(t) }},
		{"sqlite", newSQLite},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := b.open(t)
			jobs := enqueue(t, s, many(20, "poison")...)
			bad := jobs[7].ID
			a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
				w.Header().Set("Content-Type", "application/json")
				if c.id == bad {
					fmt.Fprint(w, loneSurrogate)
					return
				}
				fmt.Fprintf(w, `{"id":%q}`, c.id)
			})
			cfg := testConfig(t, a)
			start(t, cfg, s)

			for _, j := range waitStatus(t, s, jobs, job.StatusCompleted) {
				if j.ID == bad {
					require.Nil(t, j.Result)
					require.Contains(t, j.ErrorMessage, "result not stored")
					require.Contains(t, j.ErrorMessage, `lone UTF-16 surrogate escape \ud800`)
					continue
				}
				require.JSONEq(t, fmt.Sprintf(`{"id":%q}`, j.ID), string(j.Result))
				require.Empty(t, j.ErrorMessage)
			}
			require.Equal(t, 1, a.callsOf(bad), "the bad answer is recorded, not retried")
		})
	}
}

// leaseAll leases every pending job of queue, as a producer would.
func leaseAll(t *testing.T, s store.Store, queue string, n int) []*job.Job {
	t.Helper()
	leased, err := s.Lease(t.Context(), store.LeaseParams{AgentID: "completer-test", Queues: []string{queue}, Limit: n, Duration: time.Minute, Now: time.Now()})
	require.NoError(t, err)
	require.Len(t, leased, n)
	return leased
}

// stoppedCompleter builds a completer the test starts once it has added
// its outcomes, so that all of them land in the first write as one batch.
func stoppedCompleter(t *testing.T, s store.Store) (*completer, *testkit.Buffer) {
	t.Helper()
	logs := &testkit.Buffer{}
	c := newCompleter(s, slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("completer logs:\n%s", logs)
		}
	})
	return c, logs
}

// TestCompleterWritesCompletionsOneByOneWhenMariaDBRefusesTheBatch: a
// result MariaDB's JSON check refuses reaching the store (the edge check
// bypassed) fails the batch write; the completer then writes the rows one
// by one, so every other completion is stored, and the refused one is
// logged and left running for rescue.
func TestCompleterWritesCompletionsOneByOneWhenMariaDBRefusesTheBatch(t *testing.T) {
	t.Parallel()
	s := testkit.MySQL(t)
	enqueue(t, s, many(10, "refused")...)
	leased := leaseAll(t, s, "refused", 10)
	c, logs := stoppedCompleter(t, s)
	bad := leased[3]
	for _, j := range leased {
		result := fmt.Appendf(nil, `{"id":%q}`, j.ID)
		if j.ID == bad.ID {
			result = []byte(loneSurrogate)
		}
		c.add(t.Context(), outcome{job: j, res: dispatch.Result{StatusCode: 200},
			completion: &store.Completion{LeaseRef: store.LeaseRef{ID: j.ID, Token: j.LeaseToken}, Result: result}})
	}
	require.NoError(t, c.Start(context.Background()))
	var good []*job.Job
	for _, j := range leased {
		if j.ID != bad.ID {
			good = append(good, j)
		}
	}
	for _, j := range waitStatus(t, s, good, job.StatusCompleted) {
		require.JSONEq(t, fmt.Sprintf(`{"id":%q}`, j.ID), string(j.Result))
	}
	eventually(t, "the refused outcome is logged", func() bool {
		return containsAll(logs.String(), "outcome not recorded", bad.ID.String())
	})
	got, err := s.Get(t.Context(), bad.ID)
	require.NoError(t, err)
	require.Equal(t, job.StatusRunning, got.Status, "left for rescue")
	require.Equal(t, bad.LeaseToken, got.LeaseToken)
}

// TestCompleterWritesFailuresOneByOneWhenPostgreSQLRefusesTheBatch: the
// same for failures: an error text PostgreSQL cannot hold (a NUL the
// sanitizer did not see) must not keep the other failures from being
// recorded.
func TestCompleterWritesFailuresOneByOneWhenPostgreSQLRefusesTheBatch(t *testing.T) {
	t.Parallel()
	s := testkit.Postgres(t)
	enqueue(t, s, many(6, "refused")...)
	leased := leaseAll(t, s, "refused", 6)
	c, logs := stoppedCompleter(t, s)
	bad := leased[2]
	for _, j := range leased {
		msg := "500 Internal Server Error: boom"
		if j.ID == bad.ID {
			msg = "500 Internal Server Error: bo\x00om"
		}
		c.add(t.Context(), outcome{job: j, res: dispatch.Result{StatusCode: 500},
			failure: &store.Failure{LeaseRef: store.LeaseRef{ID: j.ID, Token: j.LeaseToken}, Error: msg, Outcome: "http_500"}})
	}
	require.NoError(t, c.Start(context.Background()))
	var good []*job.Job
	for _, j := range leased {
		if j.ID != bad.ID {
			good = append(good, j)
		}
	}
	for _, j := range waitStatus(t, s, good, job.StatusFailed) {
		require.Equal(t, "500 Internal Server Error: boom", j.ErrorMessage)
	}
	eventually(t, "the refused outcome is logged", func() bool {
		return containsAll(logs.String(), "outcome not recorded", bad.ID.String())
	})
	got, err := s.Get(t.Context(), bad.ID)
	require.NoError(t, err)
	require.Equal(t, job.StatusRunning, got.Status, "left for rescue")
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
