package agent

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/mysql"
	"github.com/hammerwork-go/hw-agent/workflow"
)

func TestManyAgentsOnMySQLCompleteEveryJobOnce(t *testing.T) {
	t.Parallel()
	url := testkit.MySQLURL(t)
	var stores []store.Store
	for range 4 {
		s, err := mysql.Open(t.Context(), mysql.Config{URL: url, MaxConns: 8})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	_, err := stores[0].Migrate(t.Context())
	require.NoError(t, err)
	n := 5000
	if testing.Short() {
		n = 200
	}
	runMany(t, stores, n)
}

// TestManyAgentsOnMySQLResolveWorkflows runs fan-in workflows through four
// agents at once: parents of one join complete in different agents'
// batches, so resolution contends for the same workflow and child rows.
// Every workflow must end completed with true counters, and every job must
// reach the app once.
func TestManyAgentsOnMySQLResolveWorkflows(t *testing.T) {
	t.Parallel()
	url := testkit.MySQLURL(t)
	var stores []store.Store
	for range 4 {
		s, err := mysql.Open(t.Context(), mysql.Config{URL: url, MaxConns: 8})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	_, err := stores[0].Migrate(t.Context())
	require.NoError(t, err)
	a := newApp(t, ok)
	n := 200
	if testing.Short() {
		n = 20
	}
	var ids []uuid.UUID
	for i := range n {
		def, err := workflow.New(fmt.Sprintf("fan_in_%d", i)).
			AddParallel(workflow.Step{Name: "a", Queue: "wf"}, workflow.Step{Name: "b", Queue: "wf"}, workflow.Step{Name: "c", Queue: "wf"}).
			Then(workflow.Step{Name: "join", Queue: "wf"}).
			Build()
		require.NoError(t, err)
		ids = append(ids, enqueueWorkflow(t, stores[0], def).Workflow.ID)
	}
	for _, s := range stores {
		cfg := testConfig(t, a)
		cfg.Agent.Concurrency = 16
		start(t, cfg, s)
	}
	eventually(t, "every job completed", func() bool {
		return countStatus(t, stores[0], job.StatusCompleted) == int64(4*n)
	})
	for _, id := range ids {
		w, err := stores[0].GetWorkflow(t.Context(), id)
		require.NoError(t, err)
		require.Equal(t, workflow.StatusCompleted, w.Status, "workflow %s", id)
		require.Equal(t, 4, w.Stats.CompletedJobs, "workflow %s", id)
	}
	var retried int64
	for _, s := range stores {
		retried += s.(*mysql.Store).RetriedTransactions()
	}
	t.Logf("%d workflows completed; %d transactions retried after a deadlock or lock wait timeout", n, retried)
	a.mu.Lock()
	defer a.mu.Unlock()
	require.Len(t, a.calls, 4*n)
	for id, calls := range a.calls {
		require.Equal(t, 1, calls, "job %s", id)
	}
}
