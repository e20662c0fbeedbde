package agent

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/lease"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/mysql"
	"github.com/hammerwork-go/hw-agent/store/postgres"
)

// skew is how far each agent's host clock is off: one is half an hour
// behind, the other half an hour ahead, an hour apart.
const skew = 30 * time.Minute

// startWithClock is start with the agent's host clock replaced.
func startWithClock(t *testing.T, cfg Config, s store.Store, clock func() time.Time) *running {
	t.Helper()
	logs := &testkit.Buffer{}
	a, err := New(Params{Config: cfg, Store: s, Clock: clock,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
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

func offBy(d time.Duration) func() time.Time {
	return func() time.Time { return time.Now().Add(d) }
}

// dbClock reads the database's time through a store.
func dbClock(t *testing.T, s store.Store) func() (time.Time, error) {
	t.Helper()
	c, ok := s.(store.DatabaseClock)
	require.True(t, ok, "the store reads its database's clock")
	return func() (time.Time, error) { return c.DatabaseNow(context.Background()) }
}

// arrivalLog records, by the database's clock, when each job reached the app.
type arrivalLog struct {
	mu  sync.Mutex
	at  map[uuid.UUID][]time.Time
	err error // a failed reading of the database's clock
}

func (l *arrivalLog) add(id uuid.UUID, at time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.err = err
		return
	}
	l.at[id] = append(l.at[id], at)
}

func (l *arrivalLog) of(t *testing.T, id uuid.UUID) []time.Time {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	require.NoError(t, l.err, "read the database's clock at arrival")
	return append([]time.Time(nil), l.at[id]...)
}

// runSkewedAgents runs two agents on one database whose host clocks are an
// hour apart. If any due, expiry or retry decision still read an agent's
// clock, one of the checks fails: the agent behind would write leases and
// heartbeats already expired and retries already due, the agent ahead would
// rescue live leases, deliver delayed jobs half an hour early and park
// retries for half an hour.
func runSkewedAgents(t *testing.T, behindStore, aheadStore store.Store) {
	t.Helper()
	// The slow app answers after more than one heartbeat interval (a third
	// of lease_duration), so its job lives on an extended lease. The lease
	// stays long enough that a loaded machine writes every outcome in time.
	const leaseFor, hold = 6 * time.Second, 4 * time.Second
	dbNow := dbClock(t, behindStore)
	arrivals := &arrivalLog{at: map[uuid.UUID][]time.Time{}}
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		at, err := dbNow()
		arrivals.add(c.id, at, err)
		switch c.queue {
		case "slow":
			select {
			case <-time.After(hold):
			case <-r.Context().Done():
				return
			}
		case "retry-behind", "retry-ahead":
			if c.attempt == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		ok(w, r, c)
	})
	config := func(queues ...string) Config {
		cfg := testConfig(t, a)
		cfg.Agent.Queues = queues
		cfg.Agent.LeaseDuration = job.Duration(leaseFor)
		cfg.App.RequestTimeout = job.Duration(hold + time.Second)
		cfg.Agent.RescueInterval = job.Duration(200 * time.Millisecond)
		return cfg
	}
	startWithClock(t, config("slow", "retry-behind"), behindStore, offBy(-skew))
	startWithClock(t, config("delayed", "retry-ahead"), aheadStore, offBy(skew))

	now, err := dbNow()
	require.NoError(t, err)
	slow := enqueue(t, behindStore, store.NewJob{Queue: "slow"})[0]
	retries := enqueue(t, behindStore, store.NewJob{Queue: "retry-behind"}, store.NewJob{Queue: "retry-ahead"})
	var delayedNews []store.NewJob
	for i := range 3 {
		delayedNews = append(delayedNews, store.NewJob{Queue: "delayed", ScheduledAt: now.Add(time.Second + time.Duration(i)*300*time.Millisecond)})
	}
	delayed := enqueue(t, behindStore, delayedNews...)

	all := append(append([]*job.Job{slow}, retries...), delayed...)
	done := waitStatus(t, behindStore, all, job.StatusCompleted)

	// The slow job kept its lease through its heartbeats: delivered once,
	// never rescued, and its answer was recorded, not refused as stale.
	got := done[0]
	require.Equal(t, 1, a.callsOf(slow.ID), "the live lease was never rescued")
	require.Equal(t, 1, got.Attempts)
	require.Empty(t, got.Errors, "no lease_expired attempt")
	require.JSONEq(t, `{"attempt": 1}`, string(got.Result), "the holder's result was recorded")

	// Retry-After: 1 waits a second by the database's clock on either agent.
	for _, r := range retries {
		at := arrivals.of(t, r.ID)
		require.Len(t, at, 2, "job %s of %s: one 503, one retry", r.ID, r.Queue)
		gap := at[1].Sub(at[0])
		require.GreaterOrEqual(t, gap, 900*time.Millisecond, "the retry of %s came %s after the 503", r.Queue, gap)
		require.Less(t, gap, waitFor, "the retry of %s came %s after the 503", r.Queue, gap)
	}

	// No delayed job reached the app before its scheduled_at.
	for _, d := range delayed {
		at := arrivals.of(t, d.ID)
		require.Len(t, at, 1)
		require.False(t, at[0].Before(d.ScheduledAt), "job due at %s was delivered at %s by the database's clock", d.ScheduledAt, at[0])
	}
}

func TestAgentsWithSkewedClocksOnPostgresNeitherRescueLiveLeasesNorDeliverEarly(t *testing.T) {
	t.Parallel()
	url := testkit.PostgresURL(t)
	open := func() store.Store {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: url, MaxConns: 4})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	behind, ahead := open(), open()
	_, err := behind.Migrate(t.Context())
	require.NoError(t, err)
	runSkewedAgents(t, behind, ahead)
}

func TestAgentsWithSkewedClocksOnMySQLNeitherRescueLiveLeasesNorDeliverEarly(t *testing.T) {
	t.Parallel()
	url := testkit.MySQLURL(t)
	open := func() store.Store {
		s, err := mysql.Open(t.Context(), mysql.Config{URL: url, MaxConns: 4})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	behind, ahead := open(), open()
	_, err := behind.Migrate(t.Context())
	require.NoError(t, err)
	runSkewedAgents(t, behind, ahead)
}

func TestAgentsWithSkewedClocksOnSQLiteNeitherRescueLiveLeasesNorDeliverEarly(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	runSkewedAgents(t, openSQLite(t, path), openSQLite(t, path))
}

// A cleaner whose host runs 30 days ahead of the database, with the agent's
// clock 30 days further ahead still, counts retention by the database's
// clock: a job completed just now by that clock stays, one completed past
// retention by it goes. MariaDB's session timestamp sets the database's
// clock apart from the host's (and freezes it, which a cleaner's pass never
// notices); counting from the host's clock would delete both jobs.
func TestCleanerOnAHostAheadOfTheDatabaseDeletesOnlyWhatIsPastRetentionByTheDatabasesClock(t *testing.T) {
	t.Parallel()
	const ahead = 30 * 24 * time.Hour
	u := testkit.MySQLURL(t)
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	u += sep + "timestamp=" + strconv.FormatInt(time.Now().Add(-ahead).Unix(), 10)
	s, err := mysql.Open(t.Context(), mysql.Config{URL: u, MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	_, err = s.Migrate(t.Context())
	require.NoError(t, err)
	dbNow, err := s.DatabaseNow(t.Context())
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(-ahead), dbNow, time.Hour, "the database's clock is 30 days behind the host's")

	// Now zero: due by the database's clock (the enqueue helper names the
	// host's, 30 days in the database's future).
	jobs, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: []store.NewJob{
		{Queue: "q", Payload: []byte(`{}`)}, {Queue: "q", Payload: []byte(`{}`)}}})
	require.NoError(t, err)
	leased, err := s.Lease(t.Context(), store.LeaseParams{AgentID: "test", Limit: 2, Duration: time.Minute})
	require.NoError(t, err)
	require.Len(t, leased, 2)
	byID := map[uuid.UUID]*job.Job{leased[0].ID: leased[0], leased[1].ID: leased[1]}
	fresh, old := byID[jobs[0].ID], byID[jobs[1].ID]
	_, err = s.Complete(t.Context(), store.CompleteParams{Completions: []store.Completion{{LeaseRef: lease.Ref(fresh)}}})
	require.NoError(t, err)
	_, err = s.Complete(t.Context(), store.CompleteParams{Completions: []store.Completion{{LeaseRef: lease.Ref(old)}},
		Now: dbNow.Add(-8 * 24 * time.Hour)})
	require.NoError(t, err)

	cfg := testConfig(t, nil)
	cfg.App.HandlerURL = "http://127.0.0.1:1/jobs/{queue}"
	cfg.Agent.Queues = []string{"none"}
	cfg.Retention.Interval = job.Duration(10 * time.Millisecond)
	require.Equal(t, 7*24*time.Hour, cfg.Retention.For(job.StatusCompleted))
	passes := startCleaning(t, cfg, s, offBy(ahead))
	deleted := 0
	for range 3 {
		select {
		case p := <-passes:
			deleted += p.Deleted[job.StatusCompleted]
		case <-time.After(waitFor):
			t.Fatal("no cleaner pass")
		}
	}
	require.Equal(t, 1, deleted, "only the job past retention by the database's clock is deleted")
	_, err = s.Get(t.Context(), old.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "the job completed 8 days ago by the database's clock went")
	got, err := s.Get(t.Context(), fresh.ID)
	require.NoError(t, err, "the job completed just now by the database's clock stays")
	require.Equal(t, job.StatusCompleted, got.Status)
}
