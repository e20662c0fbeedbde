package lease

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// setup opens a migrated SQLite store of the test's own and enqueues n
// jobs on queue "q".
func setup(t *testing.T, n int) (store.Store, []*job.Job) {
	t.Helper()
	s := testkit.SQLite(t)
	return s, testkit.EnqueueNoop(t, s, "q", n)
}

func TestAcquireLeasesNoMoreThanTheFreeSlots(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, 5)
	ctx := context.Background()
	a := Acquirer{Store: s, AgentID: "agent-1", Duration: time.Minute}

	jobs, err := a.Acquire(ctx, Selection{Queues: []string{"q"}}, 3)
	require.NoError(t, err)
	require.Len(t, jobs, 3)
	for _, j := range jobs {
		require.Equal(t, job.StatusRunning, j.Status)
		require.Equal(t, "agent-1", j.LeasedBy)
		require.Equal(t, 1, j.Attempts)
	}
	none, err := a.Acquire(ctx, Selection{Exclude: []string{"q"}}, 10)
	require.NoError(t, err)
	require.Empty(t, none, "an excluded queue is not leased")
	zero, err := a.Acquire(ctx, Selection{}, 0)
	require.NoError(t, err)
	require.Empty(t, zero)
}

func TestReleaseReturnsJobsWithoutSpendingTheAttempt(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, 2)
	ctx := context.Background()
	a := Acquirer{Store: s, AgentID: "agent-1", Duration: time.Minute}
	jobs, err := a.Acquire(ctx, Selection{}, 2)
	require.NoError(t, err)
	require.Len(t, jobs, 2)

	stale, err := a.Release(ctx, Refs(jobs))
	require.NoError(t, err)
	require.Empty(t, stale)
	for _, j := range jobs {
		got, err := s.Get(ctx, j.ID)
		require.NoError(t, err)
		require.Equal(t, job.StatusPending, got.Status)
		require.Equal(t, 0, got.Attempts)
		require.Empty(t, got.LeaseToken)
	}
	stale, err = a.Release(ctx, Refs(jobs))
	require.NoError(t, err)
	require.ElementsMatch(t, []uuid.UUID{jobs[0].ID, jobs[1].ID}, stale, "a released lease is no longer held")
}

func TestHeartbeatExtendsTrackedLeases(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, 1)
	ctx := context.Background()
	a := Acquirer{Store: s, AgentID: "agent-1", Duration: time.Minute}
	jobs, err := a.Acquire(ctx, Selection{}, 1)
	require.NoError(t, err)
	first := *jobs[0].LeaseExpiresAt

	h := NewHeartbeat(HeartbeatConfig{Store: s, Duration: time.Hour, Interval: 10 * time.Millisecond})
	beats := h.beats.Init()
	h.Track(Ref(jobs[0]), func() { t.Error("lease reported lost") })
	require.NoError(t, h.Start(ctx))
	t.Cleanup(h.Stop)
	require.Equal(t, 1, <-beats)

	got, err := s.Get(ctx, jobs[0].ID)
	require.NoError(t, err)
	require.True(t, got.LeaseExpiresAt.After(first.Add(50*time.Minute)), "extended to about now+1h, was %s now %s", first, got.LeaseExpiresAt)

	h.Forget(jobs[0].ID)
	require.Equal(t, 0, h.Len())
	// One beat may have taken its snapshot before Forget; the next cannot.
	if n := <-beats; n != 0 {
		require.Equal(t, 0, <-beats, "a forgotten lease is not extended")
	}
}

func TestHeartbeatReportsLostLeases(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, 2)
	ctx := context.Background()
	a := Acquirer{Store: s, AgentID: "agent-1", Duration: time.Minute}
	jobs, err := a.Acquire(ctx, Selection{}, 2)
	require.NoError(t, err)
	_, err = s.Cancel(ctx, store.CancelParams{ID: jobs[0].ID, Now: time.Now()})
	require.NoError(t, err)

	lost := make(chan uuid.UUID, 2)
	h := NewHeartbeat(HeartbeatConfig{Store: s, Duration: time.Minute, Interval: 10 * time.Millisecond})
	for _, j := range jobs {
		h.Track(Ref(j), func() { lost <- j.ID })
	}
	require.NoError(t, h.Start(ctx))
	t.Cleanup(h.Stop)

	require.Equal(t, jobs[0].ID, <-lost, "the cancelled job's lease is lost")
	require.Eventually(t, func() bool { return h.Len() == 1 }, 5*time.Second, 5*time.Millisecond)
	require.Empty(t, lost, "the held lease is not reported")
}

func TestHeartbeatStopsTwiceAndBeforeStart(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, 0)
	h := NewHeartbeat(HeartbeatConfig{Store: s, Duration: time.Minute})
	h.Stop()
	require.Error(t, h.Start(context.Background()), "a stopped loop stays stopped")

	h2 := NewHeartbeat(HeartbeatConfig{Store: s, Duration: time.Minute})
	require.NoError(t, h2.Start(context.Background()))
	require.Error(t, h2.Start(context.Background()))
	h2.Stop()
	h2.Stop()
}
