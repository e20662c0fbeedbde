package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/maintenance"
	"github.com/hammerwork-go/hw-agent/store"
)

// slowDefault is a [retry] default no test waits for: a job that retries
// within a test's deadline was spaced by some other policy.
var slowDefault = job.RetryPolicy{Strategy: job.StrategyFixed, Initial: job.Duration(time.Hour), Max: job.Duration(2 * time.Hour)}

// arrivals records when each attempt of each job reached the app.
type arrivals struct {
	mu  sync.Mutex
	at  map[uuid.UUID][]time.Time
	hdr map[uuid.UUID][]http.Header
}

func (a *arrivals) add(id uuid.UUID, h http.Header) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.at == nil {
		a.at, a.hdr = map[uuid.UUID][]time.Time{}, map[uuid.UUID][]http.Header{}
	}
	a.at[id] = append(a.at[id], time.Now())
	a.hdr[id] = append(a.hdr[id], h.Clone())
}

func (a *arrivals) of(id uuid.UUID) ([]time.Time, []http.Header) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.at[id]...), append([]http.Header(nil), a.hdr[id]...)
}

// waitPendingAfter waits until j has failed attempts attempts and is pending
// again, and returns it as stored.
func waitPendingAfter(t *testing.T, s store.Store, j *job.Job, attempts int) *job.Job {
	t.Helper()
	var got *job.Job
	eventually(t, fmt.Sprintf("job %s pending after %d failed attempts", j.ID, attempts), func() bool {
		g, err := s.Get(t.Context(), j.ID)
		require.NoError(t, err)
		got = g
		return g.Status == job.StatusPending && len(g.Errors) == attempts
	})
	return got
}

func TestJobsOwnRetryPolicyIsStoredAndSpacesTheAgentsRetries(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	var seen arrivals
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		seen.add(c.id, r.Header)
		http.Error(w, "still broken", http.StatusInternalServerError)
	})
	own := &job.RetryPolicy{Strategy: job.StrategyFixed, Initial: job.Duration(100 * time.Millisecond)}
	jobs := enqueue(t, s, store.NewJob{Queue: "q", MaxAttempts: 3, RetryPolicy: own})

	stored, err := s.Get(t.Context(), jobs[0].ID)
	require.NoError(t, err)
	require.Equal(t, own, stored.RetryPolicy, "the job's policy is read back from the database")
	require.Equal(t, 3, stored.MaxAttempts)

	cfg := testConfig(t, a)
	cfg.Retry = slowDefault
	start(t, cfg, s)

	j := waitStatus(t, s, jobs, job.StatusFailed)[0]
	require.Equal(t, 3, j.Attempts, "max_attempts bounds the attempts")
	require.Len(t, j.Errors, 3, "every attempt's error is kept")
	for i, e := range j.Errors {
		require.Equal(t, i+1, e.Attempt)
		require.Equal(t, "http_500", e.Outcome)
		require.Contains(t, e.Message, "still broken")
		require.False(t, e.At.IsZero(), "each error has its time")
	}
	require.Contains(t, j.ErrorMessage, "500")
	at, _ := seen.of(j.ID)
	require.Len(t, at, 3)
	for i := 1; i < len(at); i++ {
		require.GreaterOrEqual(t, at[i].Sub(at[i-1]), 100*time.Millisecond,
			"attempt %d waited the job's fixed delay (the [retry] default would wait an hour)", i+1)
	}
}

func TestQueueRetryDefaultAppliesToJobsWithoutTheirOwn(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		http.Error(w, "down", http.StatusBadGateway)
	})
	cfg := testConfig(t, a)
	cfg.Retry = slowDefault
	cfg.Queues = []QueueConfig{{Name: "fast", Retry: &job.RetryPolicy{Strategy: job.StrategyFixed, Initial: job.Duration(20 * time.Millisecond)}}}
	jobs := enqueue(t, s, store.NewJob{Queue: "fast", MaxAttempts: 3}, store.NewJob{Queue: "other", MaxAttempts: 3})
	start(t, cfg, s)

	fast := waitStatus(t, s, jobs[:1], job.StatusFailed)[0]
	require.Nil(t, fast.RetryPolicy, "the job carries no policy of its own")
	require.Len(t, fast.Errors, 3, "the queue's 20ms policy spaced its retries")

	other := waitPendingAfter(t, s, jobs[1], 1)
	wait := other.ScheduledAt.Sub(other.Errors[0].At)
	require.Greater(t, wait, 50*time.Minute, "a queue without its own policy uses [retry]")
	require.LessOrEqual(t, wait, time.Hour)
}

func TestRetryAfterOverridesTheDelayAndIsCappedByMax(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		var in struct{ RetryAfter string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		w.Header().Set("Retry-After", in.RetryAfter)
		http.Error(w, "slow down", http.StatusTooManyRequests)
	})
	hour := &job.RetryPolicy{Strategy: job.StrategyFixed, Initial: job.Duration(time.Hour), Max: job.Duration(2 * time.Hour)}
	capped := &job.RetryPolicy{Strategy: job.StrategyFixed, Initial: job.Duration(time.Second), Max: job.Duration(3 * time.Second)}
	jobs := enqueue(t, s,
		store.NewJob{Queue: "q", MaxAttempts: 2, RetryPolicy: hour, Payload: []byte(`{"RetryAfter":"2"}`)},
		store.NewJob{Queue: "q", MaxAttempts: 2, RetryPolicy: capped, Payload: []byte(`{"RetryAfter":"3600"}`)},
	)
	cfg := testConfig(t, a)
	cfg.Retry = slowDefault
	start(t, cfg, s)

	sooner := waitPendingAfter(t, s, jobs[0], 1)
	require.Equal(t, "http_429", sooner.Errors[0].Outcome)
	require.WithinDuration(t, sooner.Errors[0].At.Add(2*time.Second), sooner.ScheduledAt, time.Second,
		"Retry-After: 2 replaces the policy's hour")

	later := waitPendingAfter(t, s, jobs[1], 1)
	require.WithinDuration(t, later.Errors[0].At.Add(3*time.Second), later.ScheduledAt, time.Second,
		"Retry-After: 3600 is capped by the policy's max of 3s")
}

func TestTimeoutCancelsTheRequestRecordsATimeoutAndRetries(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	var seen arrivals
	var mu sync.Mutex
	cancelled := 0
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		seen.add(c.id, r.Header)
		<-r.Context().Done() // hangs until the agent gives up
		mu.Lock()
		cancelled++
		mu.Unlock()
	})
	cfg := testConfig(t, a)
	cfg.Retry = job.RetryPolicy{Strategy: job.StrategyFixed, Initial: job.Duration(10 * time.Millisecond)}
	cfg.Queues = []QueueConfig{{Name: "slowq", RequestTimeout: job.Duration(300 * time.Millisecond)}}
	jobs := enqueue(t, s,
		store.NewJob{Queue: "q", MaxAttempts: 2, Timeout: 200 * time.Millisecond},
		store.NewJob{Queue: "slowq", MaxAttempts: 2},
	)
	start(t, cfg, s)

	done := waitStatus(t, s, jobs, job.StatusFailed)
	for i, want := range []time.Duration{200 * time.Millisecond, 300 * time.Millisecond} {
		j := done[i]
		require.Equal(t, 2, j.Attempts, "the timed-out attempt was retried under the policy")
		require.Len(t, j.Errors, 2)
		for _, e := range j.Errors {
			require.Equal(t, "timeout", e.Outcome, "job %d", i)
			require.Contains(t, e.Message, want.String())
		}
		at, hdr := seen.of(j.ID)
		require.Len(t, at, 2)
		for k := range at {
			deadline, err := time.Parse(time.RFC3339Nano, hdr[k].Get("Hammerwork-Deadline"))
			require.NoError(t, err, "Hammerwork-Deadline is RFC 3339")
			require.WithinDuration(t, at[k].Add(want), deadline, 150*time.Millisecond,
				"job %d attempt %d: the deadline header is when the agent gives up", i, k+1)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 4, cancelled, "every timed-out request was cancelled at the app")
}

func TestOversizedResultCompletesTheJobAndSaysWhyItWasDropped(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		fmt.Fprintf(w, `{"blob":%q}`, strings.Repeat("x", 100))
	})
	cfg := testConfig(t, a)
	cfg.App.MaxResultBytes = 16
	jobs := enqueue(t, s, store.NewJob{Queue: "q"})
	start(t, cfg, s)

	j := waitStatus(t, s, jobs, job.StatusCompleted)[0]
	require.Empty(t, j.Result)
	require.Contains(t, j.ErrorMessage, "result not stored")
	require.Contains(t, j.ErrorMessage, "exceeds max_result_bytes (16)")
	require.Empty(t, j.Errors, "a dropped result is not a failed attempt")
}

// startCleaning runs an agent whose cleaner reports each pass on the
// returned channel; clock, when set, is the agent's host clock.
func startCleaning(t *testing.T, cfg Config, s store.Store, clock func() time.Time) <-chan maintenance.CleanResult {
	t.Helper()
	logs := &testkit.Buffer{}
	ag, err := New(Params{Config: cfg, Store: s, Clock: clock, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	passes := ag.cleaner.Passed.Init()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Agent: ag, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- ag.Run(ctx) }()
	t.Cleanup(func() {
		require.NoError(t, r.stop(t))
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})
	return passes
}

func TestCleanerExpiresResultsAndDeletesJobsPastTheirRetention(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		if c.queue == "bad" {
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		ok(w, r, c)
	})
	cfg := testConfig(t, a)
	cfg.Retention.Interval = job.Duration(10 * time.Millisecond)
	cfg.Retention.Completed = job.Duration(time.Millisecond)
	cfg.Retention.Failed = 0 // dead letters kept forever
	cfg.Retention.BatchSize = 2
	jobs := enqueue(t, s, store.NewJob{Queue: "q"}, store.NewJob{Queue: "q"}, store.NewJob{Queue: "q"},
		store.NewJob{Queue: "bad", MaxAttempts: 1})
	passes := startCleaning(t, cfg, s, nil)

	deleted := 0
	deadline := time.After(waitFor)
	for deleted < 3 {
		select {
		case p := <-passes:
			deleted += p.Deleted[job.StatusCompleted]
			require.Zero(t, p.Deleted[job.StatusFailed], "retention 0 keeps failed jobs")
		case <-deadline:
			t.Fatalf("the cleaner deleted %d of 3 completed jobs", deleted)
		}
	}
	for _, j := range jobs[:3] {
		_, err := s.Get(t.Context(), j.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	require.Equal(t, job.StatusFailed, waitStatus(t, s, jobs[3:], job.StatusFailed)[0].Status)
}

func TestCleanerClearsExpiredResults(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a := newApp(t, ok)
	cfg := testConfig(t, a)
	cfg.Retention.Interval = job.Duration(10 * time.Millisecond)
	cfg.Retention.Completed = 0
	jobs := enqueue(t, s, store.NewJob{Queue: "q", ResultTTL: time.Millisecond}, store.NewJob{Queue: "q"})
	passes := startCleaning(t, cfg, s, nil)

	expired := 0
	deadline := time.After(waitFor)
	for expired < 1 {
		select {
		case p := <-passes:
			expired += p.Expired
		case <-deadline:
			t.Fatal("the cleaner cleared no expired result")
		}
	}
	done := waitStatus(t, s, jobs, job.StatusCompleted)
	require.Empty(t, done[0].Result, "the expired result is gone")
	require.NotNil(t, done[0].ResultExpiresAt)
	require.JSONEq(t, `{"attempt": 1}`, string(done[1].Result), "a result without TTL stays")
}
