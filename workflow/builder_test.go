package workflow_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/workflow"
)

func step(name string, deps ...string) workflow.Step {
	return workflow.Step{Name: name, Queue: "q", DependsOn: deps}
}

// edges lists every edge of a workflow as "parent->child", in step order.
func edges(w workflow.Workflow) []string {
	var out []string
	for _, s := range w.Steps {
		for _, d := range s.DependsOn {
			out = append(out, d+"->"+s.Name)
		}
	}
	return out
}

func TestBuilderStages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		build func() *workflow.Builder
		edges []string
	}{
		{
			name:  "ChainOfThreeHasTwoEdges",
			build: func() *workflow.Builder { return workflow.New("w").Add(step("a")).Then(step("b")).Then(step("c")) },
			edges: []string{"a->b", "b->c"},
		},
		{
			name: "ChainOfFiveHasFourEdges",
			build: func() *workflow.Builder {
				return workflow.New("w").Add(step("a")).Then(step("b")).Then(step("c")).Then(step("d")).Then(step("e"))
			},
			edges: []string{"a->b", "b->c", "c->d", "d->e"},
		},
		{
			name: "BarrierWaitsForEveryParallelStep",
			build: func() *workflow.Builder {
				return workflow.New("w").AddParallel(step("r1"), step("r2"), step("r3"), step("r4")).Then(step("summary"))
			},
			edges: []string{"r1->summary", "r2->summary", "r3->summary", "r4->summary"},
		},
		{
			name: "AddAfterThenJoinsTheNewStage",
			build: func() *workflow.Builder {
				return workflow.New("w").Add(step("a")).Then(step("b")).Add(step("c")).Then(step("d"))
			},
			edges: []string{"a->b", "b->d", "c->d"},
		},
		{
			name: "FanOutFanIn",
			build: func() *workflow.Builder {
				return workflow.New("w").Add(step("split")).
					AddParallel(step("p1", "split"), step("p2", "split")).Then(step("aggregate"))
			},
			edges: []string{"split->p1", "split->p2", "split->aggregate", "p1->aggregate", "p2->aggregate"},
		},
		{
			name:  "ThenOnEmptyBuilderIsARoot",
			build: func() *workflow.Builder { return workflow.New("w").Then(step("a")).Then(step("b")) },
			edges: []string{"a->b"},
		},
		{
			name: "ExplicitDependsOnAddsToStageEdges",
			build: func() *workflow.Builder {
				return workflow.New("w").Add(step("a")).Add(step("x")).Then(step("b")).DependsOn("b", "a", "x").DependsOn("x", "a")
			},
			edges: []string{"a->x", "a->b", "x->b"},
		},
		{
			name: "DependsOnMayPrecedeAdd",
			build: func() *workflow.Builder {
				return workflow.New("w").DependsOn("b", "a").Add(step("a")).Add(step("b"))
			},
			edges: []string{"a->b"},
		},
		{
			name:  "ThenKeepsTheStepsOwnDependencies",
			build: func() *workflow.Builder { return workflow.New("w").Add(step("a")).Add(step("x")).Then(step("b", "a")) },
			edges: []string{"a->b", "x->b"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, err := tc.build().Build()
			require.NoError(t, err)
			require.Equal(t, tc.edges, edges(w))
		})
	}
}

func TestBuilderSetsWorkflowFields(t *testing.T) {
	t.Parallel()
	trace := "4bf92f3577b34da6a3ce929d0e0e4736"
	w, err := workflow.New("daily_report_generation").
		WithDescription("Generate daily sales and analytics reports").
		WithTimeout(2 * time.Hour).
		WithPriority(job.PriorityHigh).
		WithFailurePolicy(workflow.ContinueOnFailure).
		WithTraceID(trace).
		WithCorrelationID("daily-report-001").
		WithMetadata(map[string]any{"team": "data"}).
		Add(step("extract")).Then(step("report")).
		Build()
	require.NoError(t, err)
	require.Equal(t, "daily_report_generation", w.Name)
	require.Equal(t, "Generate daily sales and analytics reports", w.Description)
	require.Equal(t, 2*time.Hour, w.Timeout.D())
	require.Equal(t, job.PriorityHigh, *w.Priority)
	require.Equal(t, workflow.ContinueOnFailure, w.FailurePolicy)
	require.Equal(t, trace, w.TraceID)
	require.Equal(t, "daily-report-001", w.CorrelationID)
	require.JSONEq(t, `{"team":"data"}`, string(w.Metadata))

	raw, err := workflow.New("w").WithMetadata(json.RawMessage(`{"a":1}`)).Add(step("a")).Build()
	require.NoError(t, err)
	require.JSONEq(t, `{"a":1}`, string(raw.Metadata))
}

func TestBuilderReportsProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		build   *workflow.Builder
		is      error
		message string
	}{
		{"DependsOnStepNeverAdded", workflow.New("w").Add(step("a")).DependsOn("ghost", "a"), workflow.ErrUnknownDependency, `DependsOn("ghost", ...): no step named "ghost" was added`},
		{"DependsOnUnknownParent", workflow.New("w").Add(step("a")).DependsOn("a", "lod"), workflow.ErrUnknownDependency, `jobs[0].depends_on[0]: unknown step "lod" (a dependency of "a")`},
		{"DuplicateStep", workflow.New("w").Add(step("a")).Then(step("a")), workflow.ErrDuplicateStep, `jobs[1].name: duplicate step name "a" (also jobs[0])`},
		{"MetadataThatDoesNotEncode", workflow.New("w").WithMetadata(make(chan int)).Add(step("a")), workflow.ErrInvalid, "metadata: cannot encode as JSON"},
		{"Empty", workflow.New("w"), workflow.ErrEmpty, "jobs: a workflow needs at least one job"},
		{"ExplicitEdgeMakesACycle", workflow.New("w").Add(step("a")).Then(step("b")).DependsOn("a", "b"), workflow.ErrCycle, "cycle: a -> b -> a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, err := tc.build.Build()
			require.ErrorIs(t, err, tc.is)
			require.ErrorIs(t, err, workflow.ErrInvalid)
			require.ErrorContains(t, err, tc.message)
			require.Empty(t, w.Steps)
		})
	}
}

func TestBuildReturnsACopy(t *testing.T) {
	t.Parallel()
	s := step("b")
	b := workflow.New("w").Add(step("a")).Then(s)
	first, err := b.Build()
	require.NoError(t, err)
	first.Steps[1].DependsOn[0] = "mutated"
	second, err := b.Build()
	require.NoError(t, err)
	require.Equal(t, []string{"a->b"}, edges(second))
	require.Nil(t, s.DependsOn, "Then must not write into the caller's step")
}
