package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

var traceStateTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"TraceStateRoundTripsOnEveryEnqueuePath", testTraceStateJobs},
	{"WorkflowJobsCarryTheWorkflowsTraceState", testTraceStateWorkflow},
}

// A caller's tracestate as vendors send it: several list members, the
// multi-tenant key form and punctuation inside a value.
const (
	traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceState  = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,tenant@vendor=a:b"
)

func traced(n store.NewJob) store.NewJob {
	n.SpanContext, n.TraceState = traceParent, traceState
	return n
}

// Every way a job is written keeps its tracestate: a single job, a batch
// large enough for a backend's bulk path, jobs naming parents, jobs
// claiming unique keys and tracked batches; Get, List and Lease read it.
func testTraceStateJobs(t *testing.T, s store.Store) {
	plain := enqueue(t, s, base, traced(newJob("plain")))[0]
	require.Equal(t, traceState, plain.TraceState, "enqueue returns the stored row")
	require.Equal(t, traceState, get(t, s, plain.ID).TraceState)

	bulk := make([]store.NewJob, 120)
	for i := range bulk {
		bulk[i] = traced(newJob("bulk"))
	}
	for _, j := range enqueue(t, s, base, bulk...) {
		require.Equal(t, traceState, get(t, s, j.ID).TraceState, "bulk job %s", j.ID)
	}

	child := traced(newJob("child"))
	child.DependsOn = append(child.DependsOn, plain.ID)
	unique := traced(newJob("unique"))
	unique.UniqueKey = "tracestate-unique"
	for _, j := range enqueue(t, s, base, child, unique) {
		require.Equal(t, traceState, get(t, s, j.ID).TraceState, "job %s of queue %s", j.ID, j.Queue)
	}

	batch := enqueueBatch(t, s, store.EnqueueBatchParams{Jobs: []store.NewJob{traced(newJob("batch")), traced(newJob("batch"))}})
	for _, j := range batch.Jobs {
		require.Equal(t, traceState, get(t, s, j.ID).TraceState, "batch job %s", j.ID)
	}

	untraced := enqueue(t, s, base, newJob("untraced"))[0]
	require.Empty(t, get(t, s, untraced.ID).TraceState, "no tracestate reads back empty")

	for _, j := range listAll(t, s, store.ListParams{Queue: "batch"}) {
		require.Equal(t, traceState, j.TraceState, "listed job %s", j.ID)
	}
	leased := lease(t, s, store.LeaseParams{Queues: []string{"plain", "unique"}, Limit: 2, Now: base})
	require.Len(t, leased, 2)
	for _, j := range leased {
		require.Equal(t, traceState, j.TraceState, "leased job %s: dispatch reads it from here", j.ID)
		require.Equal(t, traceParent, j.SpanContext)
	}
}

// A workflow's jobs, batch steps included, carry the tracestate of the
// context the workflow was created under, beside its traceparent.
func testTraceStateWorkflow(t *testing.T, s store.Store) {
	def := workflow.Workflow{
		Name:  "traced",
		Steps: []workflow.Step{step("extract"), step("load", "extract"), batchStep("fan", 2, "load")},
	}
	got, err := s.EnqueueWorkflow(t.Context(), store.EnqueueWorkflowParams{
		Workflow: def, SpanContext: traceParent, TraceState: traceState, Now: base})
	require.NoError(t, err)
	require.Len(t, got.Jobs, 4)
	for name, id := range got.Jobs {
		j := get(t, s, id)
		require.Equal(t, traceParent, j.SpanContext, "step %s", name)
		require.Equal(t, traceState, j.TraceState, "step %s", name)
	}
	j := leaseOne(t, s, base)
	require.Equal(t, got.Jobs["extract"], j.ID)
	require.Equal(t, traceState, j.TraceState)
	require.Equal(t, job.StatusRunning, j.Status)
}
