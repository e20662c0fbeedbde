package workflow_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/workflow"
)

func id(n int) uuid.UUID { return uuid.MustParse(fmt.Sprintf("00000000-0000-7000-8000-%012d", n)) }

func graphJob(n int, step string, st job.Status, parents ...uuid.UUID) *job.Job {
	return &job.Job{ID: id(n), StepName: step, Queue: "etl", Status: st, DependsOn: parents}
}

// diamond is extract -> (transform_a, transform_b) -> load, listed out of
// order, plus "audit", whose parent is not in the set.
func diamond() []*job.Job {
	return []*job.Job{
		graphJob(4, "load", job.StatusPending, id(3), id(2)),
		graphJob(2, "transform_b", job.StatusRunning, id(1)),
		graphJob(1, "extract", job.StatusCompleted),
		graphJob(3, "transform_a", job.StatusFailed, id(1)),
		graphJob(5, "audit", job.StatusSkipped, id(9)),
	}
}

func TestGraphLevels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		jobs   []*job.Job
		levels map[string]int
		order  []string
		edges  int
	}{
		{
			name:   "Diamond",
			jobs:   diamond(),
			levels: map[string]int{"extract": 0, "audit": 0, "transform_a": 1, "transform_b": 1, "load": 2},
			order:  []string{"audit", "extract", "transform_a", "transform_b", "load"},
			edges:  4,
		},
		{
			name: "LevelIsOnePlusHighestParent",
			jobs: []*job.Job{
				graphJob(1, "a", job.StatusCompleted),
				graphJob(2, "b", job.StatusCompleted, id(1)),
				graphJob(3, "c", job.StatusPending, id(1), id(2)),
			},
			levels: map[string]int{"a": 0, "b": 1, "c": 2},
			order:  []string{"a", "b", "c"},
			edges:  3,
		},
		{
			name: "DuplicateJobsAndParentsCountOnce",
			jobs: []*job.Job{
				graphJob(1, "a", job.StatusCompleted),
				graphJob(2, "b", job.StatusPending, id(1), id(1)),
				graphJob(2, "b", job.StatusPending, id(1)),
				nil,
			},
			levels: map[string]int{"a": 0, "b": 1},
			order:  []string{"a", "b"},
			edges:  1,
		},
		{name: "Empty", levels: map[string]int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := workflow.NewGraph(tc.jobs)
			levels := map[string]int{}
			var order []string
			for _, n := range g.Nodes {
				levels[n.Step] = n.Level
				order = append(order, n.Step)
			}
			require.Equal(t, tc.levels, levels)
			require.Equal(t, tc.order, order)
			require.Len(t, g.Edges, tc.edges)
		})
	}
}

func TestGraphDOT(t *testing.T) {
	t.Parallel()
	require.Equal(t, `digraph workflow {
  rankdir=TB;
  node [shape=box, style="rounded,filled", fillcolor="#ffffff"];
  "00000000-0000-7000-8000-000000000005" [label="audit\netl (skipped)", fillcolor="#fff9c4"];
  "00000000-0000-7000-8000-000000000001" [label="extract\netl (completed)", fillcolor="#c8e6c9"];
  "00000000-0000-7000-8000-000000000003" [label="transform_a\netl (failed)", fillcolor="#ffcdd2"];
  "00000000-0000-7000-8000-000000000002" [label="transform_b\netl (running)", fillcolor="#bbdefb"];
  "00000000-0000-7000-8000-000000000004" [label="load\netl (pending)", fillcolor="#eeeeee"];
  "00000000-0000-7000-8000-000000000001" -> "00000000-0000-7000-8000-000000000003";
  "00000000-0000-7000-8000-000000000001" -> "00000000-0000-7000-8000-000000000002";
  "00000000-0000-7000-8000-000000000003" -> "00000000-0000-7000-8000-000000000004";
  "00000000-0000-7000-8000-000000000002" -> "00000000-0000-7000-8000-000000000004";
}
`, workflow.NewGraph(diamond()).DOT())
}

func TestGraphMermaid(t *testing.T) {
	t.Parallel()
	require.Equal(t, `flowchart TD
  n0["audit<br/>etl (skipped)"]
  n1["extract<br/>etl (completed)"]
  n2["transform_a<br/>etl (failed)"]
  n3["transform_b<br/>etl (running)"]
  n4["load<br/>etl (pending)"]
  n1 --> n2
  n1 --> n3
  n2 --> n4
  n3 --> n4
  classDef pending fill:#eeeeee
  class n4 pending
  classDef running fill:#bbdefb
  class n3 running
  classDef completed fill:#c8e6c9
  class n1 completed
  classDef failed fill:#ffcdd2
  class n2 failed
  classDef skipped fill:#fff9c4
  class n0 skipped
`, workflow.NewGraph(diamond()).Mermaid())
}

func TestGraphJSON(t *testing.T) {
	t.Parallel()
	b, err := workflow.NewGraph(diamond()).JSON()
	require.NoError(t, err)
	require.JSONEq(t, `{
	"nodes": [
		{"id": "00000000-0000-7000-8000-000000000005", "step": "audit", "queue": "etl", "status": "skipped", "level": 0},
		{"id": "00000000-0000-7000-8000-000000000001", "step": "extract", "queue": "etl", "status": "completed", "level": 0},
		{"id": "00000000-0000-7000-8000-000000000003", "step": "transform_a", "queue": "etl", "status": "failed", "level": 1},
		{"id": "00000000-0000-7000-8000-000000000002", "step": "transform_b", "queue": "etl", "status": "running", "level": 1},
		{"id": "00000000-0000-7000-8000-000000000004", "step": "load", "queue": "etl", "status": "pending", "level": 2}
	],
	"edges": [
		{"from": "00000000-0000-7000-8000-000000000001", "to": "00000000-0000-7000-8000-000000000003"},
		{"from": "00000000-0000-7000-8000-000000000001", "to": "00000000-0000-7000-8000-000000000002"},
		{"from": "00000000-0000-7000-8000-000000000003", "to": "00000000-0000-7000-8000-000000000004"},
		{"from": "00000000-0000-7000-8000-000000000002", "to": "00000000-0000-7000-8000-000000000004"}
	]}`, string(b))

	empty, err := workflow.NewGraph(nil).JSON()
	require.NoError(t, err)
	require.Equal(t, `{"nodes":[],"edges":[]}`, string(empty))
}

func TestGraphEscapesNames(t *testing.T) {
	t.Parallel()
	g := workflow.NewGraph([]*job.Job{
		{ID: id(1), StepName: "evil\" -> x [color=red]\\\n#1", Queue: "q<b>&`", Status: job.StatusPending},
		{ID: id(2), Queue: "plain", Status: job.StatusPending, DependsOn: []uuid.UUID{id(1)}},
	})
	require.Contains(t, g.DOT(), `[label="evil\" -> x [color=red]\\\n#1\nq<b>&`+"`"+` (pending)"`)
	require.Contains(t, g.DOT(), `[label="00000000\nplain (pending)"`, "a job without a step name shows its short id")
	require.Contains(t, g.Mermaid(), `n0["evil#quot; -#gt; x [color=red]\ #35;1<br/>q#lt;b#gt;#amp;#96; (pending)"]`)
}
