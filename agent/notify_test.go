package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// TestPostgresEnqueueWakesAnIdleAgent: with an hour between polls, only a
// LISTEN/NOTIFY wake-up can deliver a job enqueued while the agent idles;
// a delayed one is then awaited until its time, not polled for.
func TestPostgresEnqueueWakesAnIdleAgent(t *testing.T) {
	t.Parallel()
	s := testkit.Postgres(t)
	rec, a := newRecorder(t)
	cfg := testConfig(t, a)
	cfg.Agent.PollInterval = job.Duration(time.Hour)
	r := start(t, cfg, s)
	eventually(t, "the agent's first, empty lease", func() bool {
		return strings.Contains(r.logs.String(), `msg="leased jobs"`)
	})

	now := enqueue(t, s, store.NewJob{Queue: "q"})
	waitStatus(t, s, now, job.StatusCompleted)

	later := enqueue(t, s, store.NewJob{Queue: "q", ScheduledAt: time.Now().Add(300 * time.Millisecond)})
	done := waitStatus(t, s, later, job.StatusCompleted)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	at := rec.byJob[done[0].ID.String()]
	require.Falsef(t, at.Before(later[0].ScheduledAt), "due at %s, delivered at %s", later[0].ScheduledAt, at)
}
