package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// The large cases check correctness at the sizes issue 3 names: a
// 10,000-job fan-out/fan-in and a 1,000-job chain. How long they take is
// never asserted. Under -race they shrink to a few hundred jobs, as the race
// detector slows the pure-Go SQLite driver past any useful test time; the
// plain `go test ./store/...` run (a step of .ci/run) runs them at full size.
var largeFanOut, largeChain, largeLeaseCap = largeSizes()

// largeSizes gives the fan-out, the chain length and how many chunks are
// leased and completed per transaction (several per fan-out either way).
func largeSizes() (fanOut, chain, leaseCap int) {
	if raceDetector {
		return 200, 20, 50
	}
	return 10_000, 1_000, 1_000
}

// testWorkflowLargeFanOutFanIn runs root -> 10,000 chunks -> merge,
// completing the chunks largeLeaseCap at a time, so the merge's
// pending_dependencies falls by that many per transaction and reaches zero
// exactly once.
func testWorkflowLargeFanOutFanIn(t *testing.T, s store.Store) {
	steps := make([]workflow.Step, 0, largeFanOut+2)
	steps = append(steps, step("root"))
	chunks := make([]string, largeFanOut)
	for i := range chunks {
		chunks[i] = fmt.Sprintf("chunk%05d", i)
		steps = append(steps, step(chunks[i], "root"))
	}
	steps = append(steps, step("merge", chunks...))
	now := base
	w := enqueueWorkflow(t, s, definition("", steps...), now)

	root := w.leaseSteps(now, "root")["root"]
	now = now.Add(time.Second)
	w.complete(now, root)
	for done := 0; done < largeFanOut; {
		now = now.Add(time.Second)
		got := lease(t, s, store.LeaseParams{Limit: largeLeaseCap, Now: now})
		require.Len(t, got, largeLeaseCap, "after %d chunks", done)
		for _, j := range got {
			require.NotEqual(t, "merge", j.StepName, "merge leased after only %d chunks", done)
		}
		completeAll(t, s, now, got)
		done += len(got)
		require.Equal(t, largeFanOut-done, w.job("merge").PendingDependencies)
	}
	w.requireStatus("merge", job.StatusPending, job.DependencySatisfied)
	now = now.Add(time.Second)
	merge := w.leaseSteps(now, "merge")["merge"]
	now = now.Add(time.Second)
	w.complete(now, merge)
	r := w.requireWorkflowStatus(workflow.StatusCompleted)
	require.Equal(t, largeFanOut+2, r.Stats.CompletedJobs)
}

// testWorkflowLargeChain runs a chain of 1,000 steps: each round exactly
// the next step is leasable.
func testWorkflowLargeChain(t *testing.T, s store.Store) {
	steps := make([]workflow.Step, largeChain)
	for i := range steps {
		if i == 0 {
			steps[i] = step("c0000")
			continue
		}
		steps[i] = step(fmt.Sprintf("c%04d", i), fmt.Sprintf("c%04d", i-1))
	}
	now := base
	w := enqueueWorkflow(t, s, definition("", steps...), now)
	for i := range largeChain {
		now = now.Add(time.Second)
		got := lease(t, s, store.LeaseParams{Limit: 10, Now: now})
		require.Len(t, got, 1, "round %d", i)
		require.Equal(t, fmt.Sprintf("c%04d", i), got[0].StepName)
		completeAll(t, s, now, got)
	}
	r := w.requireWorkflowStatus(workflow.StatusCompleted)
	require.Equal(t, largeChain, r.Stats.CompletedJobs)
}

func completeAll(t *testing.T, s store.Store, now time.Time, jobs []*job.Job) {
	t.Helper()
	cs := make([]store.Completion, len(jobs))
	for i, j := range jobs {
		cs[i] = store.Completion{LeaseRef: ref(j)}
	}
	require.Empty(t, complete(t, s, now, cs...), "no completion is stale")
}
