package agent

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/postgres"
)

// runMany runs one agent per store against one shared app until every job
// is completed, then checks that each job reached the app exactly once.
func runMany(t *testing.T, stores []store.Store, n int) {
	t.Helper()
	a := newApp(t, ok)
	queues := []string{"alpha", "beta", "gamma"}
	news := make([]store.NewJob, n)
	for i := range news {
		news[i] = store.NewJob{Queue: queues[i%len(queues)]}
	}
	jobs := enqueue(t, stores[0], news...)

	began := time.Now()
	for i, s := range stores {
		cfg := testConfig(t, a)
		cfg.Agent.Concurrency = 32
		// Half the agents give "alpha" a producer of its own.
		if i%2 == 1 {
			cfg.Queues = []QueueConfig{{Name: "alpha", Concurrency: 8}}
		}
		start(t, cfg, s)
	}
	// Thousands of jobs under -race on a loaded CI machine: give the
	// exactly-once check room; a lost or stuck job still fails it.
	testkit.Eventually(t, 4*waitFor, "every job completed", func() bool {
		return countStatus(t, stores[0], job.StatusCompleted) == int64(len(jobs))
	})
	elapsed := time.Since(began)
	t.Logf("%d agents completed %d jobs in %s (%.0f jobs/s)", len(stores), len(jobs), elapsed, float64(len(jobs))/elapsed.Seconds())

	a.mu.Lock()
	defer a.mu.Unlock()
	require.Len(t, a.calls, len(jobs))
	for _, j := range jobs {
		require.Equal(t, 1, a.calls[j.ID], "job %s", j.ID)
	}
}

func TestManyAgentsOnPostgresCompleteEveryJobOnce(t *testing.T) {
	t.Parallel()
	url := testkit.PostgresURL(t)
	var stores []store.Store
	for range 4 {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: url, MaxConns: 8})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	_, err := stores[0].Migrate(t.Context())
	require.NoError(t, err)
	n := 2000
	if testing.Short() {
		n = 200
	}
	runMany(t, stores, n)
}

func TestTwoAgentsSharingASQLiteFileCompleteEveryJobOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	stores := []store.Store{openSQLite(t, path), openSQLite(t, path)}
	n := 2000
	if testing.Short() {
		n = 200
	}
	runMany(t, stores, n)
}
