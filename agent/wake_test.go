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
// wake-ups and its short polls after busy leases end an idle producer's wait
// early.
var backendsWithoutNotify = []struct {
	name string
	open func(t *testing.T) store.Store
}{
	{"sqlite", newSQLite},
	{"mysql", func(t *testing.T) store.Store { return testkit.MySQL(t) }},
}

// noBusyPoll turns off the short polls after busy leases, so that only
// wake-ups end a wait of poll_interval.
func noBusyPoll(a *Agent) {
	for _, p := range a.producers {
		p.cfg.busyPoll = 0
	}
}

// idleAgent starts an agent that polls once an hour, so that a job reaching
// its app after the first, empty lease proves a wake-up, and waits for that
// lease.
func idleAgent(t *testing.T, cfg Config, s store.Store, tweaks ...func(a *Agent)) *running {
	t.Helper()
	cfg.Agent.PollInterval = job.Duration(time.Hour)
	r := start(t, cfg, s, tweaks...)
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

// TestWorkflowChildIsDispatchedWhenItsParentCompletes: on SQLite, with the
// short polls off, nothing but the completer's wake-up after writing a
// parent's completion can bring its child, in another producer's queue, to
// the app before the next poll. On MariaDB the agent runs as in production:
// producers woken together lease together, and one can come back without a
// child the other's scan held locked for a moment, which the short poll
// after a wake-up then finds.
func TestWorkflowChildIsDispatchedWhenItsParentCompletes(t *testing.T) {
	t.Parallel()
	for _, b := range backendsWithoutNotify {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			s := b.open(t)
			var tweaks []func(*Agent)
			if b.name == "sqlite" {
				tweaks = append(tweaks, noBusyPoll)
			}
			def, err := workflow.New("chain").
				Add(workflow.Step{Name: "first", Queue: "wf"}).
				Then(workflow.Step{Name: "second", Queue: "wf_solo"}).
				Then(workflow.Step{Name: "third", Queue: "wf"}).
				Build()
			require.NoError(t, err)
			res := enqueueWorkflow(t, s, def)
			cfg := testConfig(t, newApp(t, ok))
			cfg.Queues = []QueueConfig{{Name: "wf_solo", Concurrency: 1}}
			idleAgent(t, cfg, s, tweaks...)
			waitStatus(t, s, []*job.Job{{ID: res.Jobs["third"]}}, job.StatusCompleted)
		})
	}
}

// TestRetriedJobIsLeasedWhenItFallsDue: a failed attempt put back to
// pending wakes its queue's producers once written, so they wait for the
// retry's due time, not for the next poll (the short polls are off, so only
// that wake-up can end the wait).
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
	idleAgent(t, cfg, s, noBusyPoll)
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

// TestBusyQueueFindsJobsOtherAgentsEnqueue: on MariaDB, which announces no
// enqueue, a job another agent enqueues (here: the store, without a wake-up)
// into a queue that was busy a moment ago is found by the short poll that
// follows a lease that found jobs, not at the next poll_interval (an hour).
func TestBusyQueueFindsJobsOtherAgentsEnqueue(t *testing.T) {
	t.Parallel()
	s := testkit.MySQL(t)
	first := enqueue(t, s, store.NewJob{Queue: "q"})
	cfg := testConfig(t, newApp(t, ok))
	cfg.Agent.PollInterval = job.Duration(time.Hour)
	start(t, cfg, s)
	waitStatus(t, s, first, job.StatusCompleted)
	waitStatus(t, s, enqueue(t, s, store.NewJob{Queue: "q"}), job.StatusCompleted)
}

func TestPollWaitDropsWhileBusyAndBacksOffToPollInterval(t *testing.T) {
	t.Parallel()
	const poll = time.Second
	p := &producer{cfg: producerConfig{poll: poll, busyPoll: 50 * time.Millisecond}, wait: poll}
	var got []time.Duration
	for _, found := range []bool{false, true, false, false, false, false, false, true} {
		got = append(got, p.pollWait(found))
	}
	ms := time.Millisecond
	require.Equal(t, []time.Duration{poll, 50 * ms, 100 * ms, 200 * ms, 400 * ms, 800 * ms, poll, 50 * ms}, got)

	always := &producer{cfg: producerConfig{poll: poll}, wait: poll}
	require.Equal(t, poll, always.pollWait(true), "without busyPoll (stores that announce enqueues)")
}
