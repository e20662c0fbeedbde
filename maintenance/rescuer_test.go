package maintenance

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// setup opens a migrated SQLite store of the test's own and enqueues n
// jobs on queue "q".
func setup(t *testing.T, n int) (store.Store, []*job.Job) {
	t.Helper()
	s := testkit.SQLite(t)
	return s, testkit.EnqueueNoop(t, s, "q", n)
}

func TestRescuerRequeuesExpiredLeases(t *testing.T) {
	t.Parallel()
	s, jobs := setup(t, 3)
	ctx := context.Background()
	leased, err := s.Lease(ctx, store.LeaseParams{AgentID: "dead", Limit: 2, Duration: time.Millisecond, Now: time.Now()})
	require.NoError(t, err)
	require.Len(t, leased, 2)

	r := NewRescuer(RescuerConfig{Store: s, Interval: 10 * time.Millisecond, Limit: 1})
	passes := r.Passed.Init()
	require.NoError(t, r.Start(ctx))
	t.Cleanup(r.Stop)

	// A limit of 1 makes a pass of two full batches and a short one.
	var requeued []uuid.UUID
	for len(requeued) < 2 {
		res := <-passes
		require.Empty(t, res.Failed)
		requeued = append(requeued, res.Requeued...)
	}
	require.ElementsMatch(t, []uuid.UUID{leased[0].ID, leased[1].ID}, requeued)
	for _, j := range jobs {
		got, err := s.Get(ctx, j.ID)
		require.NoError(t, err)
		require.Equal(t, job.StatusPending, got.Status)
	}
}

func TestRescuerStopsTwiceAndBeforeStart(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, 0)
	r := NewRescuer(RescuerConfig{Store: s, Interval: time.Minute})
	r.Stop()
	require.Error(t, r.Start(context.Background()), "a stopped loop stays stopped")

	r2 := NewRescuer(RescuerConfig{Store: s, Interval: time.Minute})
	require.NoError(t, r2.Start(context.Background()))
	require.Error(t, r2.Start(context.Background()))
	r2.Stop()
	r2.Stop()
}
