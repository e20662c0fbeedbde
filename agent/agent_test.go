package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor bounds every wait on the agent's asynchronous work.
const waitFor = 30 * time.Second

// openSQLite opens (and migrates) a SQLite file; two calls with one path
// are two agents sharing a database.
func openSQLite(t *testing.T, path string) store.Store {
	t.Helper()
	return testkit.SQLiteAt(t, "sqlite://"+path)
}

func newSQLite(t *testing.T) store.Store {
	return testkit.SQLite(t)
}

// app is the test's stand-in for the user's app: it records every request
// and answers with handle.
type app struct {
	srv    *httptest.Server
	handle func(w http.ResponseWriter, r *http.Request, c call)

	mu          sync.Mutex
	calls       map[uuid.UUID]int
	inFlight    map[string]int
	maxInFlight map[string]int
	total       int
	maxTotal    int
	arrived     chan call // every request, when set
}

type call struct {
	id      uuid.UUID
	queue   string
	attempt int
}

func newApp(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, c call)) *app {
	t.Helper()
	a := &app{handle: handle, calls: map[uuid.UUID]int{}, inFlight: map[string]int{}, maxInFlight: map[string]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) serve(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(r.Header.Get("Hammerwork-Job-Id"))
	if err != nil {
		http.Error(w, "no job id", http.StatusBadRequest)
		return
	}
	// Reading the whole body lets the server notice the agent hang up,
	// which cancels r.Context().
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	attempt, _ := strconv.Atoi(r.Header.Get("Hammerwork-Attempt"))
	c := call{id: id, queue: r.Header.Get("Hammerwork-Queue"), attempt: attempt}
	a.mu.Lock()
	a.calls[id]++
	a.inFlight[c.queue]++
	a.maxInFlight[c.queue] = max(a.maxInFlight[c.queue], a.inFlight[c.queue])
	a.total++
	a.maxTotal = max(a.maxTotal, a.total)
	arrived := a.arrived
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.inFlight[c.queue]--
		a.total--
		a.mu.Unlock()
	}()
	if arrived != nil {
		arrived <- c
	}
	a.handle(w, r, c)
}

func (a *app) callsOf(id uuid.UUID) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[id]
}

func (a *app) requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.calls {
		n += c
	}
	return n
}

// ok answers 200 with a small JSON result.
func ok(w http.ResponseWriter, _ *http.Request, c call) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"attempt": %d}`, c.attempt)
}

// testConfig is a fast configuration that dispatches to a.
func testConfig(t *testing.T, a *app) Config {
	cfg := DefaultConfig()
	cfg.Agent.ID = "agent-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + uuid.NewString()[:8]
	cfg.Agent.Concurrency = 8
	cfg.Agent.LeaseDuration = job.Duration(10 * time.Second)
	cfg.Agent.PollInterval = job.Duration(20 * time.Millisecond)
	cfg.Agent.DrainTimeout = job.Duration(5 * time.Second)
	cfg.Agent.RescueInterval = job.Duration(time.Second)
	cfg.App.RequestTimeout = job.Duration(5 * time.Second)
	cfg.App.HealthInterval = job.Duration(20 * time.Millisecond)
	if a != nil {
		cfg.App.HandlerURL = a.srv.URL + "/jobs/{queue}"
	}
	return cfg
}

// running is an agent started by start.
type running struct {
	*Agent
	logs   *testkit.Buffer
	cancel context.CancelFunc
	done   chan error
}

// stop cancels the agent's context, as SIGTERM does, and returns Run's result.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(waitFor):
		t.Fatal("agent did not stop")
		return nil
	}
}

// start runs an agent on s; tweaks change it before it runs.
func start(t *testing.T, cfg Config, s store.Store, tweaks ...func(a *Agent)) *running {
	t.Helper()
	logs := &testkit.Buffer{}
	a, err := New(Params{Config: cfg, Store: s, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	for _, tweak := range tweaks {
		tweak(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Agent: a, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		require.NoError(t, r.stop(t))
		if t.Failed() {
			t.Logf("logs of %s:\n%s", cfg.Agent.ID, logs)
		}
	})
	return r
}

func enqueue(t *testing.T, s store.Store, jobs ...store.NewJob) []*job.Job {
	t.Helper()
	for i := range jobs {
		if jobs[i].Payload == nil {
			jobs[i].Payload = []byte(fmt.Sprintf(`{"n": %d}`, i))
		}
	}
	out, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: jobs, Now: time.Now()})
	require.NoError(t, err)
	return out
}

func many(n int, queue string) []store.NewJob {
	jobs := make([]store.NewJob, n)
	for i := range jobs {
		jobs[i] = store.NewJob{Queue: queue}
	}
	return jobs
}

// eventually polls cond on the test's goroutine (so cond may use require)
// until it holds, failing after waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, waitFor, what, cond)
}

// waitStatus waits until every job is in status and returns them as stored.
func waitStatus(t *testing.T, s store.Store, jobs []*job.Job, status job.Status) []*job.Job {
	t.Helper()
	got := make([]*job.Job, len(jobs))
	eventually(t, fmt.Sprintf("jobs did not all reach %s", status), func() bool {
		for i, j := range jobs {
			g, err := s.Get(t.Context(), j.ID)
			require.NoError(t, err)
			if g.Status != status {
				return false
			}
			got[i] = g
		}
		return true
	})
	return got
}

// countStatus is the number of jobs in status, all queues together.
func countStatus(t *testing.T, s store.Store, status job.Status) int64 {
	t.Helper()
	stats, err := s.QueueStats(t.Context())
	require.NoError(t, err)
	var n int64
	for _, c := range stats {
		if c.Status == status {
			n += c.Count
		}
	}
	return n
}

func TestJobsAreDispatchedAndCompleted(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		var in struct{ N int }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"doubled": %d}`, 2*in.N)
	})
	jobs := enqueue(t, s, append(many(20, "emails"), many(20, "reports")...)...)
	ag := start(t, testConfig(t, a), s)

	done := waitStatus(t, s, jobs, job.StatusCompleted)
	for i, j := range done {
		require.Equal(t, 1, j.Attempts)
		require.JSONEq(t, fmt.Sprintf(`{"doubled": %d}`, 2*i), string(j.Result))
		require.Empty(t, j.LeaseToken)
		require.Equal(t, 1, a.callsOf(j.ID))
	}
	require.True(t, ag.AppHealthy(), "without health_url the app counts as healthy")
	require.NoError(t, ag.stop(t))
}

func TestRetryableFailureIsRetriedThenCompleted(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		if c.attempt == 1 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		ok(w, r, c)
	})
	fast := &job.RetryPolicy{Strategy: job.StrategyFixed, Initial: job.Duration(10 * time.Millisecond)}
	jobs := enqueue(t, s, store.NewJob{Queue: "q", MaxAttempts: 3, RetryPolicy: fast})
	start(t, testConfig(t, a), s)

	j := waitStatus(t, s, jobs, job.StatusCompleted)[0]
	require.Equal(t, 2, j.Attempts)
	require.JSONEq(t, `{"attempt": 2}`, string(j.Result))
	require.Len(t, j.Errors, 1)
	require.Equal(t, 1, j.Errors[0].Attempt)
	require.Equal(t, "http_503", j.Errors[0].Outcome)
	require.Contains(t, j.Errors[0].Message, "warming up")
}

func TestPermanentFailureFailsWithoutRetry(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		http.Error(w, "bad payload", http.StatusUnprocessableEntity)
	})
	jobs := enqueue(t, s, store.NewJob{Queue: "q", MaxAttempts: 5})
	start(t, testConfig(t, a), s)

	j := waitStatus(t, s, jobs, job.StatusFailed)[0]
	require.Equal(t, 1, j.Attempts)
	require.NotNil(t, j.FailedAt)
	require.Contains(t, j.ErrorMessage, "422")
	require.Equal(t, 1, a.callsOf(j.ID))
}

func TestRetriesStopWhenAttemptsRunOut(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		http.Error(w, "down", http.StatusInternalServerError)
	})
	fast := &job.RetryPolicy{Strategy: job.StrategyFixed, Initial: job.Duration(time.Millisecond)}
	jobs := enqueue(t, s, store.NewJob{Queue: "q", MaxAttempts: 2, RetryPolicy: fast})
	start(t, testConfig(t, a), s)

	j := waitStatus(t, s, jobs, job.StatusFailed)[0]
	require.Equal(t, 2, j.Attempts)
	require.Len(t, j.Errors, 2)
	require.Equal(t, 2, a.callsOf(j.ID))
}

func TestConcurrencyCapsAreNeverExceeded(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		// The app works a little, so requests overlap.
		select {
		case <-time.After(5 * time.Millisecond):
		case <-r.Context().Done():
		}
		ok(w, r, c)
	})
	cfg := testConfig(t, a)
	cfg.Agent.Concurrency = 4
	cfg.Queues = []QueueConfig{{Name: "a", Concurrency: 2}, {Name: "b", Concurrency: 3}}
	var news []store.NewJob
	for _, q := range []string{"a", "b", "c", "d"} {
		news = append(news, many(40, q)...)
	}
	jobs := enqueue(t, s, news...)
	start(t, cfg, s)

	waitStatus(t, s, jobs, job.StatusCompleted)
	a.mu.Lock()
	defer a.mu.Unlock()
	require.LessOrEqual(t, a.maxInFlight["a"], 2, "queue a's cap")
	require.LessOrEqual(t, a.maxInFlight["b"], 3, "queue b's cap")
	require.LessOrEqual(t, a.maxTotal, 4, "agent.concurrency")
	require.Greater(t, a.maxTotal, 1, "requests ran in parallel")
	for _, j := range jobs {
		require.Equal(t, 1, a.calls[j.ID])
	}
}

// blockingApp holds every request until release is closed (or the agent
// gives up on it) and reports each arrival.
func blockingApp(t *testing.T) (*app, chan struct{}) {
	release := make(chan struct{})
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		select {
		case <-release:
			ok(w, r, c)
		case <-r.Context().Done():
		}
	})
	a.arrived = make(chan call, 100)
	return a, release
}

func TestDrainLetsQuickRequestsFinish(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a, release := blockingApp(t)
	cfg := testConfig(t, a)
	cfg.Agent.Concurrency = 4
	jobs := enqueue(t, s, many(8, "q")...)
	ag := start(t, cfg, s)
	for range 4 {
		<-a.arrived
	}

	ag.cancel()
	close(release)
	require.NoError(t, ag.stop(t))

	var completed, pending int
	for _, j := range jobs {
		g, err := s.Get(t.Context(), j.ID)
		require.NoError(t, err)
		switch g.Status {
		case job.StatusCompleted:
			completed++
			require.Equal(t, 1, a.callsOf(j.ID))
		case job.StatusPending:
			pending++
			require.Equal(t, 0, g.Attempts, "a job leased during shutdown is released unspent")
			require.Equal(t, 0, a.callsOf(j.ID))
		default:
			t.Fatalf("job %s is %s", j.ID, g.Status)
		}
	}
	require.Equal(t, 4, completed, "requests in flight finish during the drain")
	require.Equal(t, 4, pending, "nothing new is dispatched once the drain began")
}

func TestDrainReleasesRequestsSlowerThanDrainTimeout(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a, _ := blockingApp(t)
	cfg := testConfig(t, a)
	cfg.Agent.Concurrency = 3
	cfg.Agent.DrainTimeout = job.Duration(100 * time.Millisecond)
	jobs := enqueue(t, s, many(3, "q")...)
	ag := start(t, cfg, s)
	for range 3 {
		<-a.arrived
	}

	require.NoError(t, ag.stop(t), "Run returns nil after a drain that released jobs")
	for _, j := range jobs {
		g, err := s.Get(t.Context(), j.ID)
		require.NoError(t, err)
		require.Equal(t, job.StatusPending, g.Status)
		require.Equal(t, 0, g.Attempts, "a released job keeps its attempt")
		require.Empty(t, g.Errors)
		require.Empty(t, g.LeaseToken)
	}
	require.Contains(t, ag.logs.String(), "job released")
}

// healthApp serves /health with a status the test sets and counts probes.
type healthApp struct {
	srv    *httptest.Server
	status atomic.Int32
	probes atomic.Int32
}

func newHealthApp(t *testing.T, status int) *healthApp {
	h := &healthApp{}
	h.status.Store(int32(status))
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.probes.Add(1)
		w.WriteHeader(int(h.status.Load()))
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func TestUnhealthyAppGetsNoJobsUntilHealthy(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a := newApp(t, ok)
	h := newHealthApp(t, http.StatusServiceUnavailable)
	cfg := testConfig(t, a)
	cfg.App.HealthURL = h.srv.URL + "/health"
	jobs := enqueue(t, s, many(5, "q")...)
	ag := start(t, cfg, s)

	eventually(t, "three health probes", func() bool { return h.probes.Load() >= 3 })
	require.False(t, ag.AppHealthy())
	require.Equal(t, 0, a.requests(), "nothing is dispatched while the app is unhealthy")
	require.EqualValues(t, len(jobs), countStatus(t, s, job.StatusPending), "nothing is leased while the app is unhealthy")

	h.status.Store(http.StatusOK)
	waitStatus(t, s, jobs, job.StatusCompleted)
	require.True(t, ag.AppHealthy())
}

func TestConnectionRefusedWhileAppDownReleasesWithoutSpendingAnAttempt(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	// Healthy at start-up, down from the next probe on: the app crashed.
	h := &healthApp{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.probes.Add(1) == 1 {
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(h.srv.Close)
	cfg := testConfig(t, nil)
	cfg.App.HandlerURL = downURL + "/jobs/{queue}"
	cfg.App.HealthURL = h.srv.URL + "/health"
	cfg.App.HealthInterval = job.Duration(time.Hour) // only the refusal probes again
	jobs := enqueue(t, s, store.NewJob{Queue: "q", MaxAttempts: 1})
	ag := start(t, cfg, s)

	eventually(t, "the refused job is released", func() bool {
		if h.probes.Load() < 2 {
			return false // not yet leased, refused and re-probed
		}
		g, err := s.Get(t.Context(), jobs[0].ID)
		require.NoError(t, err)
		return g.Status == job.StatusPending
	})
	g, err := s.Get(t.Context(), jobs[0].ID)
	require.NoError(t, err)
	require.Equal(t, 0, g.Attempts, "the refused attempt is not spent")
	require.Empty(t, g.Errors)
	require.False(t, ag.AppHealthy(), "the gate is closed")
	require.Contains(t, ag.logs.String(), "job released")
}

func TestConnectionRefusedWithHealthyAppIsRetried(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	h := newHealthApp(t, http.StatusOK)
	cfg := testConfig(t, nil)
	cfg.App.HandlerURL = downURL + "/jobs/{queue}"
	cfg.App.HealthURL = h.srv.URL + "/health"
	jobs := enqueue(t, s, store.NewJob{Queue: "q", MaxAttempts: 1})
	start(t, cfg, s)

	j := waitStatus(t, s, jobs, job.StatusFailed)[0]
	require.Equal(t, 1, j.Attempts)
	require.Equal(t, "connection_refused", j.Errors[0].Outcome)
}

func TestExpiredLeaseIsRescuedAndTheLateAnswerRejected(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	unblockA := make(chan struct{})
	appA := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		<-unblockA
		fmt.Fprint(w, `{"by": "A"}`)
	})
	appA.arrived = make(chan call, 1)
	appB := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		fmt.Fprint(w, `{"by": "B"}`)
	})

	cfgA := testConfig(t, appA)
	cfgA.Agent.Concurrency = 1
	cfgA.Agent.LeaseDuration = job.Duration(600 * time.Millisecond)
	cfgA.App.RequestTimeout = job.Duration(500 * time.Millisecond)
	cfgA.Agent.RescueInterval = job.Duration(time.Hour)
	// The job's own timeout outlasts A's lease: only heartbeats kept it.
	jobs := enqueue(t, s, store.NewJob{Queue: "q", Timeout: 30 * time.Second})
	agentA := start(t, cfgA, s)
	<-appA.arrived
	// A freezes: its lease is no longer extended.
	agentA.heartbeat.Stop()

	cfgB := testConfig(t, appB)
	cfgB.Agent.RescueInterval = job.Duration(50 * time.Millisecond)
	start(t, cfgB, s)
	j := waitStatus(t, s, jobs, job.StatusCompleted)[0]
	require.JSONEq(t, `{"by": "B"}`, string(j.Result))
	require.Equal(t, 2, j.Attempts)
	require.Equal(t, "lease_expired", j.Errors[0].Outcome)

	// A wakes up and answers; its token no longer matches.
	close(unblockA)
	require.NoError(t, agentA.stop(t))
	require.Contains(t, agentA.logs.String(), "late answer rejected")
	g, err := s.Get(t.Context(), j.ID)
	require.NoError(t, err)
	require.Equal(t, job.StatusCompleted, g.Status)
	require.JSONEq(t, `{"by": "B"}`, string(g.Result))
	require.Equal(t, 1, appA.callsOf(j.ID))
	require.Equal(t, 1, appB.callsOf(j.ID))
}

func TestLostLeaseCancelsTheRequest(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	cancelled := make(chan struct{})
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		<-r.Context().Done()
		close(cancelled)
	})
	a.arrived = make(chan call, 1)
	cfg := testConfig(t, a)
	cfg.Agent.LeaseDuration = job.Duration(300 * time.Millisecond)
	cfg.App.RequestTimeout = job.Duration(200 * time.Millisecond)
	jobs := enqueue(t, s, store.NewJob{Queue: "q", Timeout: 30 * time.Second})
	ag := start(t, cfg, s)
	<-a.arrived

	_, err := s.Cancel(t.Context(), store.CancelParams{ID: jobs[0].ID, Now: time.Now()})
	require.NoError(t, err)
	select {
	case <-cancelled:
	case <-time.After(waitFor):
		t.Fatal("the request of a cancelled job was not abandoned")
	}
	require.NoError(t, ag.stop(t))
	g, err := s.Get(t.Context(), jobs[0].ID)
	require.NoError(t, err)
	require.Equal(t, job.StatusCancelled, g.Status)
	require.Contains(t, ag.logs.String(), "lease lost")
}

func TestAcceptedJobStaysRunningUntilTheAppCompletesIt(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		w.WriteHeader(http.StatusAccepted)
	})
	jobs := enqueue(t, s, store.NewJob{Queue: "q"})
	ag := start(t, testConfig(t, a), s)

	eventually(t, "the 202 is logged", func() bool { return strings.Contains(ag.logs.String(), "job accepted") })
	require.Zero(t, ag.heartbeat.Len(), "an accepted job's lease is no longer extended")
	g, err := s.Get(t.Context(), jobs[0].ID)
	require.NoError(t, err)
	require.Equal(t, job.StatusRunning, g.Status)
	stale, err := s.Complete(t.Context(), store.CompleteParams{
		Completions: []store.Completion{{LeaseRef: store.LeaseRef{ID: g.ID, Token: g.LeaseToken}, Result: []byte(`{"async": true}`)}},
		Now:         time.Now(),
	})
	require.NoError(t, err)
	require.Empty(t, stale)
	require.NoError(t, ag.stop(t))
}

func TestRunRefusesAnUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.Context(), sqlite.Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "fresh.db")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ag, err := New(Params{Config: testConfig(t, nil), Store: s})
	require.NoError(t, err)
	err = ag.Run(t.Context())
	require.True(t, errors.Is(err, store.ErrNotMigrated), "got %v", err)
	require.Error(t, ag.Run(t.Context()), "Run runs once")
}

func TestHeartbeatsKeepASlowRequestsLease(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	a, release := blockingApp(t)
	cfg := testConfig(t, a)
	// A lease long enough that a heartbeat delayed by a loaded -race run
	// still lands in time, short enough to expire within the test.
	const leaseFor = 1500 * time.Millisecond
	cfg.Agent.LeaseDuration = job.Duration(leaseFor)
	cfg.App.RequestTimeout = job.Duration(time.Second)
	cfg.Agent.RescueInterval = job.Duration(20 * time.Millisecond)
	jobs := enqueue(t, s, store.NewJob{Queue: "q", Timeout: 30 * time.Second})
	start(t, cfg, s)
	<-a.arrived

	// Watch the lease outlive its first expiry while the rescuer runs.
	g, err := s.Get(t.Context(), jobs[0].ID)
	require.NoError(t, err)
	firstExpiry := *g.LeaseExpiresAt
	eventually(t, "the lease outlives its first expiry", func() bool {
		g, err := s.Get(t.Context(), jobs[0].ID)
		require.NoError(t, err)
		require.Equal(t, job.StatusRunning, g.Status, "the lease was not extended")
		return g.LeaseExpiresAt.After(firstExpiry.Add(leaseFor))
	})
	close(release)

	j := waitStatus(t, s, jobs, job.StatusCompleted)[0]
	require.Equal(t, 1, j.Attempts)
	require.Empty(t, j.Errors)
}

func TestRunStoppedBeforeItStartsReturnsNil(t *testing.T) {
	t.Parallel()
	ag, err := New(Params{Config: testConfig(t, nil), Store: newSQLite(t)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, ag.Run(ctx))
}

func TestStartedOnlyOnceConfigurationIsAppliedAndServicesRun(t *testing.T) {
	t.Parallel()
	s := testkit.SQLite(t)
	cfg := testConfig(t, newApp(t, ok))
	a, err := New(Params{Config: cfg, Store: s, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.False(t, a.Started(), "an agent that has not run is not started")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	testkit.Eventually(t, waitFor, "the agent to report started", a.Started)
	cancel()
	require.NoError(t, <-done)
}
