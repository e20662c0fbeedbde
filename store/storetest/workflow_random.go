package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// randomDAGSeeds fix the random workflows, so a failure names a seed that
// reproduces it on every run and every backend.
var randomDAGSeeds = []uint64{1, 2, 3, 5, 8, 13}

// testRandomDAGs runs random workflows under continue_on_failure with a
// random set of steps answered as failures, leasing everything leasable
// round after round as an agent would. Each round it checks the properties
// DESIGN.md's "Workflows" promises: exactly the steps whose parents have
// all completed are leasable (so no job runs before a parent), the
// workflow's counters equal its jobs' states, and at the end exactly the
// descendants of a failed step are cancelled with dependency_status
// 'failed' while every other step ran.
func testRandomDAGs(t *testing.T, s store.Store) {
	var failed, cancelled int
	for _, seed := range randomDAGSeeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			f, c := runRandomDAG(t, s, rand.New(rand.NewPCG(seed, seed)))
			failed += f
			cancelled += c
		})
	}
	require.NotZero(t, failed, "the seeds fail some steps")
	require.NotZero(t, cancelled, "the seeds cancel some descendants")
}

// runRandomDAG runs one random workflow and returns how many of its steps
// failed and how many were cancelled.
func runRandomDAG(t *testing.T, s store.Store, rng *rand.Rand) (failed, cancelledN int) {
	n := 6 + rng.IntN(14)
	names := make([]string, n)
	parents := make([][]int, n)
	steps := make([]workflow.Step, n)
	failing := map[int]bool{}
	for i := range n {
		names[i] = fmt.Sprintf("s%02d", i)
		var ps []string
		for p := range i {
			if rng.IntN(4) == 0 {
				parents[i] = append(parents[i], p)
				ps = append(ps, names[p])
			}
		}
		steps[i] = step(names[i], ps...)
		failing[i] = rng.IntN(6) == 0
	}
	// A step is cancelled exactly when one of its ancestors is answered as
	// a failure: that ancestor either ran and failed or was itself
	// cancelled by a failed ancestor of its own.
	cancelled := make([]bool, n)
	for i := range n {
		for _, p := range parents[i] {
			if cancelled[p] || failing[p] {
				cancelled[i] = true
			}
		}
	}

	now := base
	w := enqueueWorkflow(t, s, definition(workflow.ContinueOnFailure, steps...), now)
	done := map[int]bool{}
	for round := 0; ; round++ {
		require.Less(t, round, n+1, "the workflow makes progress every round")
		var want []string
		for i := range n {
			if done[i] || cancelled[i] {
				continue
			}
			ready := true
			for _, p := range parents[i] {
				ready = ready && done[p] && !failing[p]
			}
			if ready {
				want = append(want, names[i])
			}
		}
		now = now.Add(time.Second)
		leased := w.leaseSteps(now, want...)
		if len(leased) == 0 {
			break
		}
		// Completions go in one batch, so children with several parents
		// finishing together are resolved within one transaction.
		var ok []*job.Job
		for _, name := range want {
			i := slices.Index(names, name)
			done[i] = true
			if !failing[i] {
				ok = append(ok, leased[name])
			}
		}
		now = now.Add(time.Second)
		if len(ok) > 0 {
			w.complete(now, ok...)
		}
		for _, name := range want {
			if failing[slices.Index(names, name)] {
				w.fail(now, leased[name])
			}
		}
	}

	for i := range n {
		switch {
		case cancelled[i]:
			cancelledN++
			w.requireStatus(names[i], job.StatusCancelled, job.DependencyFailed)
		case failing[i]:
			failed++
			require.Equal(t, job.StatusFailed, w.job(names[i]).Status, "status of %s", names[i])
		default:
			require.Equal(t, job.StatusCompleted, w.job(names[i]).Status, "status of %s", names[i])
		}
	}
	if failed > 0 {
		w.requireWorkflowStatus(workflow.StatusFailed)
	} else {
		w.requireWorkflowStatus(workflow.StatusCompleted)
	}
	return failed, cancelledN
}
