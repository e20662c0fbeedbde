package workflow_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/workflow"
)

func wf(steps ...workflow.Step) workflow.Workflow {
	return workflow.Workflow{Name: "w", Steps: steps}
}

func TestValidateRejects(t *testing.T) {
	t.Parallel()
	prio := job.Priority(7)
	neg := job.Duration(-1)
	withStep := func(s workflow.Step, mod func(*workflow.Step)) workflow.Step { mod(&s); return s }
	tests := []struct {
		name    string
		w       workflow.Workflow
		is      error
		problem workflow.Problem // Path and Message of the first problem
	}{
		{"Empty", wf(), workflow.ErrEmpty, workflow.Problem{Path: "jobs", Message: "a workflow needs at least one job"}},
		{"NoName", workflow.Workflow{Steps: []workflow.Step{step("a")}}, workflow.ErrInvalid, workflow.Problem{Path: "name", Message: "is required"}},
		{"StepWithoutName", wf(step("a"), workflow.Step{Queue: "q"}), workflow.ErrInvalid, workflow.Problem{Path: "jobs[1].name", Message: "is required"}},
		{"StepWithoutQueue", wf(step("a"), workflow.Step{Name: "b"}), workflow.ErrInvalid, workflow.Problem{Path: "jobs[1].queue", Message: "is required"}},
		{"DuplicateStep", wf(step("a"), step("b"), step("a")), workflow.ErrDuplicateStep,
			workflow.Problem{Path: "jobs[2].name", Message: `duplicate step name "a" (also jobs[0])`}},
		{"UnknownDependency", wf(step("extract"), step("transform", "lod")), workflow.ErrUnknownDependency,
			workflow.Problem{Path: "jobs[1].depends_on[0]", Message: `unknown step "lod" (a dependency of "transform")`}},
		{"SelfDependency", wf(step("a", "a")), workflow.ErrCycle, workflow.Problem{Path: "jobs[0].depends_on[0]", Message: "cycle: a -> a"}},
		{"ThreeCycleFromTheGuide", wf(step("a", "c"), step("b", "a"), step("c", "b")), workflow.ErrCycle,
			workflow.Problem{Path: "jobs[0].depends_on[0]", Message: "cycle: a -> b -> c -> a"}},
		{"CycleNamedFromItsFirstDefinedStep", wf(step("root"), step("c", "b"), step("b", "root", "a"), step("a", "c")), workflow.ErrCycle,
			workflow.Problem{Path: "jobs[1].depends_on[0]", Message: "cycle: c -> a -> b -> c"}},
		{"BadFailurePolicy", workflow.Workflow{Name: "w", FailurePolicy: "sometimes", Steps: []workflow.Step{step("a")}}, workflow.ErrInvalid,
			workflow.Problem{Path: "failure_policy", Message: `unknown failure_policy "sometimes" (want fail_fast, continue_on_failure or manual)`}},
		{"BadRetry", wf(withStep(step("a"), func(s *workflow.Step) { s.Retry = &job.RetryPolicy{Strategy: "random"} })), workflow.ErrInvalid,
			workflow.Problem{Path: "jobs[0].retry", Message: `retry.strategy "random" is unknown (want exponential, fixed, linear or fibonacci)`}},
		{"ConditionSyntax", wf(step("a"), withStep(step("b", "a"), func(s *workflow.Step) { s.Condition = "rows >" })), workflow.ErrInvalid,
			workflow.Problem{Path: "jobs[1].condition"}},
		{"ConditionNotBool", wf(step("a"), withStep(step("b", "a"), func(s *workflow.Step) { s.Condition = "'yes'" })), workflow.ErrInvalid,
			workflow.Problem{Path: "jobs[1].condition", Message: "condition must be a boolean expression, it has type string"}},
		{"ConditionOnRoot", wf(withStep(step("a"), func(s *workflow.Step) { s.Condition = "true" })), workflow.ErrInvalid,
			workflow.Problem{Path: "jobs[0].condition"}},
		{"TraceIDUppercase", workflow.Workflow{Name: "w", TraceID: "4BF92F3577B34DA6A3CE929D0E0E4736", Steps: []workflow.Step{step("a")}}, workflow.ErrInvalid,
			workflow.Problem{Path: "trace_id"}},
		{"TraceIDAllZero", workflow.Workflow{Name: "w", TraceID: strings.Repeat("0", 32), Steps: []workflow.Step{step("a")}}, workflow.ErrInvalid,
			workflow.Problem{Path: "trace_id"}},
		{"PriorityOutOfRange", workflow.Workflow{Name: "w", Priority: &prio, Steps: []workflow.Step{step("a")}}, workflow.ErrInvalid,
			workflow.Problem{Path: "priority", Message: "7 is out of range 0..4"}},
		{"NegativeTimeout", wf(withStep(step("a"), func(s *workflow.Step) { s.Timeout = neg })), workflow.ErrInvalid,
			workflow.Problem{Path: "jobs[0].timeout", Message: "must not be negative"}},
		{"PayloadNotJSON", wf(withStep(step("a"), func(s *workflow.Step) { s.Payload = json.RawMessage("{") })), workflow.ErrInvalid,
			workflow.Problem{Path: "jobs[0].payload", Message: "is not valid JSON"}},
		{"DependencyListedTwice", wf(step("a"), step("b", "a", "a")), workflow.ErrInvalid,
			workflow.Problem{Path: "jobs[1].depends_on[1]", Message: `step "a" is listed twice`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := workflow.Validate(tc.w)
			require.ErrorIs(t, err, tc.is)
			require.ErrorIs(t, err, workflow.ErrInvalid)
			var ve *workflow.ValidationError
			require.ErrorAs(t, err, &ve)
			require.NotEmpty(t, ve.Problems)
			got := ve.Problems[0]
			require.Equal(t, tc.problem.Path, got.Path, err.Error())
			if tc.problem.Message != "" {
				require.Equal(t, tc.problem.Message, got.Message)
			}
			require.Contains(t, err.Error(), got.Path+": "+got.Message)
		})
	}
}

func TestValidateListsEveryProblemInDetails(t *testing.T) {
	t.Parallel()
	err := wf(workflow.Step{Name: "a"}, step("b", "lod"), step("b")).Validate()
	var ve *workflow.ValidationError
	require.ErrorAs(t, err, &ve)
	require.ErrorIs(t, err, workflow.ErrDuplicateStep)
	require.ErrorIs(t, err, workflow.ErrUnknownDependency)
	require.NotErrorIs(t, err, workflow.ErrCycle)
	b, jerr := json.Marshal(ve.Details())
	require.NoError(t, jerr)
	require.JSONEq(t, `[
		{"path": "jobs[2].name", "message": "duplicate step name \"b\" (also jobs[1])"},
		{"path": "jobs[0].queue", "message": "is required"},
		{"path": "jobs[1].depends_on[0]", "message": "unknown step \"lod\" (a dependency of \"b\")"}
	]`, string(b))
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	jitter := 0.1
	tests := []struct {
		name string
		w    workflow.Workflow
	}{
		{"SingleStep", wf(step("a"))},
		{"Diamond", wf(step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c"))},
		{"ParentDefinedAfterChild", wf(step("b", "a"), step("a"))},
		{"Everything", workflow.Workflow{
			Name: "w", FailurePolicy: workflow.Manual, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
			Metadata: json.RawMessage(`{"k":"v"}`),
			Steps: []workflow.Step{
				step("a"),
				{Name: "b", Queue: "q", DependsOn: []string{"a"}, Condition: "validation_status == 'valid'", MaxAttempts: 5,
					Retry: &job.RetryPolicy{Strategy: job.StrategyExponential, Multiplier: 2, Jitter: &jitter}},
			},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, tc.w.Validate())
		})
	}
}

// TestValidateLargeGraphs proves validation is linear enough for big
// definitions: a 10,000-step chain, a 10,000-wide fan-out with a barrier,
// and a 10,000-step cycle (named by its ends).
func TestValidateLargeGraphs(t *testing.T) {
	t.Parallel()
	const n = 10_000
	name := func(i int) string { return fmt.Sprintf("s%05d", i) }

	chain := make([]workflow.Step, n)
	chain[0] = step(name(0))
	for i := 1; i < n; i++ {
		chain[i] = step(name(i), name(i-1))
	}
	require.NoError(t, wf(chain...).Validate())

	b := workflow.New("fan").Add(step("root"))
	wide := make([]workflow.Step, n)
	for i := range wide {
		wide[i] = step(name(i), "root")
	}
	fan, err := b.AddParallel(wide...).Then(step("barrier")).Build()
	require.NoError(t, err)
	require.Len(t, fan.Steps[len(fan.Steps)-1].DependsOn, n+1)

	cyclic := append([]workflow.Step(nil), chain...)
	cyclic[0] = step(name(0), name(n-1))
	err = wf(cyclic...).Validate()
	require.ErrorIs(t, err, workflow.ErrCycle)
	require.ErrorContains(t, err, "jobs[0].depends_on[0]: cycle: s00000 -> s00001 -> ")
	require.ErrorContains(t, err, "... 9981 more ...")
	require.ErrorContains(t, err, "-> s09999 -> s00000")
}

func TestValidTraceID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id string
		ok bool
	}{
		{"4bf92f3577b34da6a3ce929d0e0e4736", true},
		{"00000000000000000000000000000001", true},
		{strings.Repeat("0", 32), false},
		{"4bf92f3577b34da6a3ce929d0e0e473", false},
		{"4bf92f3577b34da6a3ce929d0e0e47360", false},
		{"4BF92F3577B34DA6A3CE929D0E0E4736", false},
		{"4bf92f3577b34da6a3ce929d0e0e473g", false},
		{"", false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.ok, workflow.ValidTraceID(tc.id), tc.id)
	}
}

func TestStatsPercentage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		stats workflow.Stats
		want  float64
	}{
		{"Empty", workflow.Stats{}, 0},
		{"NoneDone", workflow.Stats{TotalJobs: 4, PendingJobs: 4}, 0},
		{"SkippedCountsAsDone", workflow.Stats{TotalJobs: 4, CompletedJobs: 2, SkippedJobs: 1, FailedJobs: 1}, 75},
		{"AllDone", workflow.Stats{TotalJobs: 3, CompletedJobs: 3}, 100},
	}
	for _, tc := range tests {
		require.InDelta(t, tc.want, tc.stats.Percentage(), 1e-9, tc.name)
	}
}
