package agent

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// backendsWithoutNotify are the backends where nothing but the agent's own
// wake-ups can end an idle producer's wait early.
var backendsWithoutNotify = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"sqlite", newSQLite},
	{"mysql", func(t *testing.T) store.Store { return testkit.MySQL(t) }},
}

// idleAgent starts an agent that polls once an hour, so that a job reaching
// its app after the first, empty lease proves a wake-up, and waits for that
// lease.
func idleAgent(t *testing.T, cfg Config, s store.Store) *running {
	t.Helper()
	cfg.Agent.PollInterval = job.Duration(time.Hour)
	r := start(t, cfg, s)
	eventually(t, "the agent's first, empty lease", func() bool {
		return strings.Contains(r.logs.String(), `msg="leased jobs"`)
	})
	return r
}

// TestWakeDeliversAJobEnqueuedWhileTheAgentIdles: what the API calls after
// an enqueue reaches the producers of the job's queue, on backends without
// LISTEN/NOTIFY.
func TestWakeDeliversAJobEnqueuedWhileTheAgentIdles(t *testing.T) {
	t.Parallel()
	for _, b := range backendsWithoutNotify {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := b.open(t)
			cfg := testConfig(t, newApp(t, ok))
			// "solo" has a producer of its own, which the wake-up must reach.
			cfg.Queues = []QueueConfig{{Name: "solo", Concurrency: 2}}
			r := idleAgent(t, cfg, s)

			jobs := enqueue(t, s, store.NewJob{Queue: "solo"}, store.NewJob{Queue: "other"})
			r.Wake("solo", "other")
			waitStatus(t, s, jobs, job.StatusCompleted)
		})
	}
}

// TestWorkflowChildIsDispatchedWhenItsParentCompletes: nothing but the
// completer's wake-up after writing a parent's completion can bring its
// child, in another producer's queue, to the app before the next poll.
func TestWorkflowChildIsDispatchedWhenItsParentCompletes(t *testing.T) {
	t.Parallel()
	for _, b := range backendsWithoutNotify {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := b.open(t)
			def, err := workflow.New("chain").
				Add(workflow.Step{Name: "first", Queue: "wf"}).
				Then(workflow.Step{Name: "second", Queue: "wf_solo"}).
				Then(workflow.Step{Name: "third", Queue: "wf"}).
				Build()
			require.NoError(t, err)
			res := enqueueWorkflow(t, s, def)
			cfg := testConfig(t, newApp(t, ok))
			cfg.Queues = []QueueConfig{{Name: "wf_solo", Concurrency: 1}}
			idleAgent(t, cfg, s)
			waitStatus(t, s, []*job.Job{{ID: res.Jobs["third"]}}, job.StatusCompleted)
		})
	}
}

// TestRetriedJobIsLeasedWhenItFallsDue: a failed attempt put back to
// pending wakes its queue's producers once written, so they wait for the
// retry's due time, not for the next poll.
func TestRetriedJobIsLeasedWhenItFallsDue(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		if c.attempt == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ok(w, r, c)
	})
	cfg := testConfig(t, a)
	cfg.Queues = []QueueConfig{{Name: "flaky", Retry: &job.RetryPolicy{Strategy: "fixed", Initial: job.Duration(10 * time.Millisecond)}}}
	jobs := enqueue(t, s, store.NewJob{Queue: "flaky", MaxAttempts: 3})
	idleAgent(t, cfg, s)
	waitStatus(t, s, jobs, job.StatusCompleted)
	require.Equal(t, 2, a.callsOf(jobs[0].ID))
}

// TestCompleteFlushIntervalDoesNotDelayAnOutcome: a lone outcome is written
// as soon as it is added, whatever the ignored flush interval says.
func TestCompleteFlushIntervalDoesNotDelayAnOutcome(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	cfg := testConfig(t, newApp(t, ok))
	cfg.Agent.CompleteFlushInterval = job.Duration(time.Hour)
	start(t, cfg, s)
	waitStatus(t, s, enqueue(t, s, store.NewJob{Queue: "q"}), job.StatusCompleted)
}

// TestGatherTakesWhatWaitsWithoutWaitingForMore: the outcomes that arrived
// during a write go together into the next, up to completeBatch, and
// gathering never waits for an outcome that has not arrived.
func TestGatherTakesWhatWaitsWithoutWaitingForMore(t *testing.T) {
	t.Parallel()
	c := newCompleter(nil, slog.New(slog.DiscardHandler))
	for range 3 {
		c.add(context.Background(), outcome{})
	}
	require.Len(t, c.gather([]outcome{{}}), 4)
	require.Empty(t, c.gather(nil))

	for range completeBatch {
		c.add(context.Background(), outcome{})
	}
	require.Len(t, c.gather([]outcome{{}}), completeBatch)
	require.Len(t, c.gather(nil), 1)
}
