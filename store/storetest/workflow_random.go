package storetest

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// randomDAGMaxSteps bounds each drawn workflow. rapid runs 100 checks by
// default (-rapid.checks), each a new workflow; under -race the workflows
// stay smaller, like the large cases (see largeSizes).
var randomDAGMaxSteps = randomDAGSize()

func randomDAGSize() int {
	if raceDetector {
		return 12
	}
	return 20
}

// randomDAGRaceChecks replaces rapid's default of 100 checks under -race.
// There every check costs tens of milliseconds on SQLite whatever the
// workflow's size (the pure-Go driver runs under checkptr), and 100 of them
// would add some 20 seconds to the SQLite package's test time. rapid takes
// the number only from -rapid.checks or RAPID_CHECKS, once per test binary,
// so the suite sets the flag at init; either one given explicitly still
// wins, as the test binary parses its flags after init. Only the backends'
// test binaries import this package, and this is their only rapid test.
const randomDAGRaceChecks = 30

func init() {
	if !raceDetector {
		return
	}
	if _, set := os.LookupEnv("RAPID_CHECKS"); set {
		return
	}
	if err := flag.Set("rapid.checks", strconv.Itoa(randomDAGRaceChecks)); err != nil {
		panic(fmt.Sprintf("storetest: lower rapid's default checks under -race: %v", err))
	}
}

// testRandomDAGs is a property test: rapid draws workflows run under
// continue_on_failure with some steps answered as failures, and each one is
// leased round after round as an agent would. Each round checks the
// properties package store's Workflows promises: exactly the steps whose
// parents have all completed are leasable (so no job runs before a parent)
// and the workflow's counters equal its jobs' states; at the end exactly
// the descendants of a failed step are cancelled with dependency_status
// 'failed' while every other step ran. On a failure rapid shrinks the
// workflow to a minimal one and prints the seed that reproduces it.
//
// Every check enqueues into a queue of its own and leases only from it, so
// a check that stopped halfway (while rapid shrinks) leaves nothing the
// next one could lease, and all checks can share the suite's one store.
func testRandomDAGs(t *testing.T, s store.Store) {
	var checks, failed, cancelled int
	rapid.Check(t, func(rt *rapid.T) {
		checks++
		d := drawDAG(rt)
		runRandomDAG(rt, s, d, fmt.Sprintf("wf-random-%d", checks))
		for i := range d.names {
			switch {
			case d.cancelled[i]:
				cancelled++
			case d.failing[i]:
				failed++
			}
		}
	})
	// The generator, not the store, is under test here: a run of checks
	// that never failed or cancelled a step would prove nothing. Over a
	// third of the drawn workflows cancel some step, so 30 checks draw none
	// less than once in 500,000 runs; a run asked for fewer checks
	// (-rapid.checks, -short) may well draw none.
	if checks >= randomDAGRaceChecks {
		require.NotZero(t, failed, "the drawn workflows fail some steps")
		require.NotZero(t, cancelled, "the drawn workflows cancel some descendants")
	}
}

// randomDAG is a drawn workflow: step i may depend only on steps before it,
// so the graph is acyclic by construction.
type randomDAG struct {
	names   []string
	parents [][]int
	// failing steps are answered as permanent failures when they run.
	failing []bool
	// cancelled is the expected outcome: a step is cancelled exactly when
	// one of its ancestors is answered as a failure, as that ancestor
	// either ran and failed or was itself cancelled by a failed ancestor.
	cancelled []bool
}

// String lists the steps with their parents and failures, as a failed
// check logs the workflow rapid shrank it to.
func (d randomDAG) String() string {
	var b strings.Builder
	for i, name := range d.names {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(name)
		for k, p := range d.parents[i] {
			if k == 0 {
				b.WriteString(" after ")
			} else {
				b.WriteString(",")
			}
			b.WriteString(d.names[p])
		}
		if d.failing[i] {
			b.WriteString(" fails")
		}
	}
	return b.String()
}

// drawnStep is one step as rapid draws it: its parents as distances back
// to earlier steps, so that dropping a step while shrinking leaves the
// edges of the others meaningful.
type drawnStep struct {
	Back  []int
	Fails bool
}

// drawDAG draws a workflow of 2..randomDAGMaxSteps steps, each with up to
// four parents among the earlier steps and failing one time in four. Every
// draw shrinks towards fewer steps, fewer edges and fewer failures.
func drawDAG(rt *rapid.T) randomDAG {
	stepGen := rapid.Custom(func(rt *rapid.T) drawnStep {
		return drawnStep{
			Back:  rapid.SliceOfNDistinct(rapid.IntRange(1, randomDAGMaxSteps-1), 0, 4, rapid.ID[int]).Draw(rt, "back"),
			Fails: rapid.IntRange(0, 3).Draw(rt, "fails") == 3,
		}
	})
	drawn := rapid.SliceOfN(stepGen, 2, randomDAGMaxSteps).Draw(rt, "steps")
	n := len(drawn)
	d := randomDAG{
		names: make([]string, n), parents: make([][]int, n),
		failing: make([]bool, n), cancelled: make([]bool, n),
	}
	for i, st := range drawn {
		d.names[i] = fmt.Sprintf("s%02d", i)
		for _, b := range st.Back {
			if i-b >= 0 {
				d.parents[i] = append(d.parents[i], i-b)
			}
		}
		d.failing[i] = st.Fails
	}
	rt.Logf("workflow: %s", d)
	for i := range n {
		for _, p := range d.parents[i] {
			if d.cancelled[p] || d.failing[p] {
				d.cancelled[i] = true
			}
		}
	}
	return d
}

// runRandomDAG enqueues d into queue and runs it to the end. It calls the
// store directly rather than through the wf helpers: those fail through
// *testing.T, which would end the test instead of letting rapid shrink.
func runRandomDAG(rt *rapid.T, s store.Store, d randomDAG, queue string) {
	ctx := rt.Context()
	n := len(d.names)
	steps := make([]workflow.Step, n)
	index := make(map[string]int, n)
	for i, name := range d.names {
		index[name] = i
		var ps []string
		for _, p := range d.parents[i] {
			ps = append(ps, d.names[p])
		}
		steps[i] = workflow.Step{Name: name, Queue: queue, Payload: json.RawMessage(`{"step":"` + name + `"}`), DependsOn: ps}
	}
	now := base
	enq, err := s.EnqueueWorkflow(ctx, store.EnqueueWorkflowParams{
		Workflow: definition(workflow.ContinueOnFailure, steps...), Now: now,
	})
	require.NoError(rt, err, "enqueue workflow")
	id := enq.Workflow.ID
	requireRandomDAGCounters(rt, s, id)

	done := make([]bool, n)
	for round := 0; ; round++ {
		require.Less(rt, round, n+1, "the workflow makes progress every round")
		var want []string
		for i := range n {
			if done[i] || d.cancelled[i] {
				continue
			}
			ready := true
			for _, p := range d.parents[i] {
				ready = ready && done[p] && !d.failing[p]
			}
			if ready {
				want = append(want, d.names[i])
			}
		}
		now = now.Add(time.Second)
		leased, err := s.Lease(ctx, store.LeaseParams{
			AgentID: agentID, Queues: []string{queue}, Limit: n, Duration: leaseFor, Now: now,
		})
		require.NoError(rt, err, "lease round %d", round)
		got := make([]string, len(leased))
		for k, j := range leased {
			got[k] = j.StepName
		}
		require.ElementsMatch(rt, want, got, "leasable steps in round %d", round)
		requireRandomDAGCounters(rt, s, id)
		if len(leased) == 0 {
			break
		}
		// The answers go in two batches, as the agent's completer sends
		// them, so children with several parents finishing together are
		// resolved within one transaction, and so are the descendants of
		// failed siblings.
		var ok []store.Completion
		var failures []store.Failure
		var failed []uuid.UUID
		for _, j := range leased {
			i := index[j.StepName]
			done[i] = true
			if d.failing[i] {
				failures = append(failures, store.Failure{LeaseRef: ref(j), Error: "boom", Outcome: "http_500"})
				failed = append(failed, j.ID)
			} else {
				ok = append(ok, store.Completion{LeaseRef: ref(j), Result: json.RawMessage(`{"from":"` + j.StepName + `"}`)})
			}
		}
		now = now.Add(time.Second)
		if len(ok) > 0 {
			stale, err := s.Complete(ctx, store.CompleteParams{Completions: ok, Now: now})
			require.NoError(rt, err, "complete round %d", round)
			require.Empty(rt, stale, "no completion is stale")
			requireRandomDAGCounters(rt, s, id)
		}
		if len(failures) > 0 {
			res, err := s.Fail(ctx, store.FailParams{Failures: failures, Now: now})
			require.NoError(rt, err, "fail round %d", round)
			require.ElementsMatch(rt, failed, res.Failed, "every failure is permanent")
			requireRandomDAGCounters(rt, s, id)
		}
	}

	jobs, err := s.WorkflowJobs(ctx, id)
	require.NoError(rt, err, "workflow jobs")
	require.Len(rt, jobs, n)
	anyFailed := false
	for _, j := range jobs {
		i, ok := index[j.StepName]
		require.Truef(rt, ok, "step %q is one of the workflow's", j.StepName)
		switch {
		case d.cancelled[i]:
			require.Equal(rt, job.StatusCancelled, j.Status, "status of %s", j.StepName)
			require.Equal(rt, job.DependencyFailed, j.DependencyStatus, "dependency_status of %s", j.StepName)
		case d.failing[i]:
			anyFailed = true
			require.Equal(rt, job.StatusFailed, j.Status, "status of %s", j.StepName)
		default:
			require.Equal(rt, job.StatusCompleted, j.Status, "status of %s", j.StepName)
		}
	}
	r := requireRandomDAGCounters(rt, s, id)
	if anyFailed {
		require.Equal(rt, workflow.StatusFailed, r.Status, "workflow status")
	} else {
		require.Equal(rt, workflow.StatusCompleted, r.Status, "workflow status")
	}
}

// requireRandomDAGCounters checks the workflow's counters against its jobs,
// as (*wf).requireCounters does, failing through rapid.
func requireRandomDAGCounters(rt *rapid.T, s store.Store, id uuid.UUID) *workflow.Record {
	rt.Helper()
	r, err := s.GetWorkflow(rt.Context(), id)
	require.NoError(rt, err, "get workflow")
	jobs, err := s.WorkflowJobs(rt.Context(), id)
	require.NoError(rt, err, "workflow jobs")
	counts := map[job.Status]int{}
	for _, j := range jobs {
		counts[j.Status]++
		require.Equal(rt, &id, j.WorkflowID, "workflow of %s", j.StepName)
	}
	want := workflow.Stats{
		TotalJobs: len(jobs), CompletedJobs: counts[job.StatusCompleted], FailedJobs: counts[job.StatusFailed],
		CancelledJobs: counts[job.StatusCancelled], SkippedJobs: counts[job.StatusSkipped],
		PendingJobs: counts[job.StatusPending], RunningJobs: counts[job.StatusRunning],
	}
	if len(jobs) > 0 {
		want.CompletionPercentage = float64(want.CompletedJobs+want.SkippedJobs) / float64(len(jobs)) * 100
	}
	require.Equal(rt, want, r.Stats, "counters of workflow %s match its jobs", id)
	return r
}
