package agent

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// largeWorkflowSizes gives the sizes issue 3 names for workflows run
// through the agent: a 10,000-job fan-out/fan-in and a 1,000-job chain.
// Under -race they shrink so the race suite stays fast; .ci/run runs them at
// full size in a plain `go test` step. How long they take is logged, never
// asserted.
func largeWorkflowSizes() (fanOut, chain int) {
	if raceEnabled {
		return 500, 100
	}
	return 10_000, 1_000
}

// largeWorkflowWait bounds one large workflow's run: a correctness bound,
// not a speed target, so a lost or stuck job still fails the test.
const largeWorkflowWait = 10 * time.Minute

// orderApp answers every request 200 `{}` at once and records, on one
// sequence, when each job's request arrived and when its answer was
// written. The answer is recorded before the handler returns, that is
// before the response reaches the agent, so a child arriving after its
// parents' answers proves the agent waited for them.
type orderApp struct {
	srv  *httptest.Server
	last uuid.UUID     // the job whose answer ends the workflow
	done chan struct{} // closed when last has been answered

	mu       sync.Mutex
	seq      int
	calls    map[uuid.UUID]int
	arrived  map[uuid.UUID]int // first arrival's sequence number
	answered map[uuid.UUID]int // latest answer's sequence number
}

func newOrderApp(t *testing.T, last uuid.UUID) *orderApp {
	t.Helper()
	a := &orderApp{
		last: last, done: make(chan struct{}),
		calls: map[uuid.UUID]int{}, arrived: map[uuid.UUID]int{}, answered: map[uuid.UUID]int{},
	}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *orderApp) serve(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(r.Header.Get("Hammerwork-Job-Id"))
	if err != nil {
		http.Error(w, "no job id", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.seq++
	a.calls[id]++
	if _, ok := a.arrived[id]; !ok {
		a.arrived[id] = a.seq
	}
	a.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{}`))

	a.mu.Lock()
	a.seq++
	a.answered[id] = a.seq
	first := id == a.last && a.calls[id] == 1
	a.mu.Unlock()
	if first {
		close(a.done)
	}
}

// largeFanOutFanIn is root -> n parallel chunks -> merge.
func largeFanOutFanIn(n int) workflow.Workflow {
	steps := make([]workflow.Step, 0, n+2)
	steps = append(steps, workflow.Step{Name: "root", Queue: "large"})
	chunks := make([]string, n)
	for i := range chunks {
		chunks[i] = fmt.Sprintf("chunk%05d", i)
		steps = append(steps, workflow.Step{Name: chunks[i], Queue: "large", DependsOn: []string{"root"}})
	}
	steps = append(steps, workflow.Step{Name: "merge", Queue: "large", DependsOn: chunks})
	return workflow.Workflow{Name: "large_fan_out_fan_in", Steps: steps}
}

// largeChain is c0000 -> c0001 -> ... -> c(m-1).
func largeChain(m int) workflow.Workflow {
	steps := make([]workflow.Step, m)
	for i := range steps {
		steps[i] = workflow.Step{Name: fmt.Sprintf("c%04d", i), Queue: "large"}
		if i > 0 {
			steps[i].DependsOn = []string{fmt.Sprintf("c%04d", i-1)}
		}
	}
	return workflow.Workflow{Name: "large_chain", Steps: steps}
}

// runLargeWorkflow enqueues def, whose last step is last, runs one agent
// until the workflow completes, and checks that every job reached the app
// exactly once and never before all its parents had been answered.
func runLargeWorkflow(t *testing.T, s store.Store, def workflow.Workflow, last string) {
	t.Helper()
	began := time.Now()
	res := enqueueWorkflow(t, s, def)
	require.Len(t, res.Jobs, len(def.Steps))
	enqueued := time.Since(began)

	a := newOrderApp(t, res.Jobs[last])
	cfg := testConfig(t, nil)
	cfg.App.HandlerURL = a.srv.URL + "/jobs/{queue}"
	cfg.Agent.Concurrency = 50
	cfg.Agent.PollInterval = job.Duration(20 * time.Millisecond)
	began = time.Now()
	start(t, cfg, s)

	select {
	case <-a.done:
	case <-time.After(largeWorkflowWait):
		t.Fatalf("timed out after %s waiting for step %q to be answered", largeWorkflowWait, last)
	}
	testkit.Eventually(t, waitFor, "workflow completed", func() bool {
		w, err := s.GetWorkflow(t.Context(), res.Workflow.ID)
		require.NoError(t, err)
		return w.Status == workflow.StatusCompleted
	})
	elapsed := time.Since(began)
	t.Logf("%s: %d jobs enqueued in %s, run through the agent in %s (%.0f jobs/s)",
		def.Name, len(def.Steps), enqueued, elapsed, float64(len(def.Steps))/elapsed.Seconds())

	w, err := s.GetWorkflow(t.Context(), res.Workflow.ID)
	require.NoError(t, err)
	total := len(def.Steps)
	require.Equal(t, workflow.Stats{
		TotalJobs: total, CompletedJobs: total, CompletionPercentage: 100,
	}, w.Stats)

	a.mu.Lock()
	defer a.mu.Unlock()
	require.Len(t, a.calls, total, "jobs that reached the app")
	for _, st := range def.Steps {
		id := res.Jobs[st.Name]
		require.Equal(t, 1, a.calls[id], "deliveries of step %q", st.Name)
		for _, p := range st.DependsOn {
			require.Greater(t, a.arrived[id], a.answered[res.Jobs[p]],
				"step %q arrived before its parent %q was answered", st.Name, p)
		}
	}
}

func TestLargeWorkflowsThroughTheAgent(t *testing.T) {
	t.Parallel()
	fanOut, chain := largeWorkflowSizes()
	backends := []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"sqlite", newSQLite},
		{"postgres", func(t *testing.T) store.Store { return testkit.Postgres(t) }},
		{"mysql", func(t *testing.T) store.Store { return testkit.MySQL(t) }},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			t.Run("fan-out-fan-in", func(t *testing.T) {
				t.Parallel()
				runLargeWorkflow(t, b.open(t), largeFanOutFanIn(fanOut), "merge")
			})
			t.Run("chain", func(t *testing.T) {
				t.Parallel()
				runLargeWorkflow(t, b.open(t), largeChain(chain), fmt.Sprintf("c%04d", chain-1))
			})
		})
	}
}
