package workflow

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/job"
)

// Node is one job in an exported graph.
type Node struct {
	ID     uuid.UUID  `json:"id"`
	Step   string     `json:"step"`
	Queue  string     `json:"queue"`
	Status job.Status `json:"status"`
	// Level is 1 + the highest level of the node's parents; roots are 0.
	Level int `json:"level"`
}

// Edge runs from a parent to a child: To waits for From.
type Edge struct {
	From uuid.UUID `json:"from"`
	To   uuid.UUID `json:"to"`
}

// Graph is a workflow's jobs and edges, ordered by level, then step name
// (then id), so every export of the same jobs is byte-for-byte the same.
type Graph struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// NewGraph builds the graph of a set of jobs, typically one workflow's.
// Edges come from each job's DependsOn, keeping only parents in the set, so
// the graph of a subset is still well-formed. Levels come from Kahn's
// algorithm, O(V+E); nodes on a cycle (which validation keeps out of
// workflows) keep the level their other parents gave them.
func NewGraph(jobs []*job.Job) Graph {
	index := make(map[uuid.UUID]int, len(jobs))
	uniq := make([]*job.Job, 0, len(jobs))
	var g Graph
	for _, j := range jobs {
		if j == nil {
			continue
		}
		if _, dup := index[j.ID]; dup {
			continue
		}
		index[j.ID] = len(uniq)
		uniq = append(uniq, j)
		g.Nodes = append(g.Nodes, Node{ID: j.ID, Step: j.StepName, Queue: j.Queue, Status: j.Status})
	}
	children := make([][]int, len(g.Nodes))
	indegree := make([]int, len(g.Nodes))
	for c, j := range uniq {
		seen := make(map[uuid.UUID]bool, len(j.DependsOn))
		for _, parent := range j.DependsOn {
			p, ok := index[parent]
			if !ok || seen[parent] {
				continue
			}
			seen[parent] = true
			children[p] = append(children[p], c)
			indegree[c]++
			g.Edges = append(g.Edges, Edge{From: parent, To: j.ID})
		}
	}
	queue := make([]int, 0, len(g.Nodes))
	for i, d := range indegree {
		if d == 0 {
			queue = append(queue, i)
		}
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, c := range children[n] {
			g.Nodes[c].Level = max(g.Nodes[c].Level, g.Nodes[n].Level+1)
			if indegree[c]--; indegree[c] == 0 {
				queue = append(queue, c)
			}
		}
	}
	slices.SortFunc(g.Nodes, func(a, b Node) int {
		return cmp.Or(cmp.Compare(a.Level, b.Level), cmp.Compare(a.Step, b.Step), cmp.Compare(a.ID.String(), b.ID.String()))
	})
	order := make(map[uuid.UUID]int, len(g.Nodes))
	for i, n := range g.Nodes {
		order[n.ID] = i
	}
	slices.SortFunc(g.Edges, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(order[a.From], order[b.From]), cmp.Compare(order[a.To], order[b.To]))
	})
	return g
}

// JSON is the graph as {"nodes": [...], "edges": [...]}; empty lists are
// [] rather than null.
func (g Graph) JSON() ([]byte, error) {
	out := Graph{Nodes: g.Nodes, Edges: g.Edges}
	if out.Nodes == nil {
		out.Nodes = []Node{}
	}
	if out.Edges == nil {
		out.Edges = []Edge{}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode graph: %w", err)
	}
	return b, nil
}

// statusColours fill nodes by status in both DOT and Mermaid.
var statusColours = map[job.Status]string{
	job.StatusPending:   "#eeeeee",
	job.StatusRunning:   "#bbdefb",
	job.StatusCompleted: "#c8e6c9",
	job.StatusFailed:    "#ffcdd2",
	job.StatusCancelled: "#d7ccc8",
	job.StatusSkipped:   "#fff9c4",
}

// label is what a node shows: its step name (a short id for a job without
// one) and where it runs.
func (n Node) label() (title, detail string) {
	title = n.Step
	if title == "" {
		title = n.ID.String()[:8]
	}
	return title, fmt.Sprintf("%s (%s)", n.Queue, n.Status)
}

// DOT renders the graph for Graphviz, top to bottom, nodes filled by
// status. Node ids are the job ids; every string is quoted and escaped.
func (g Graph) DOT() string {
	var b strings.Builder
	b.WriteString("digraph workflow {\n")
	b.WriteString("  rankdir=TB;\n")
	b.WriteString("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\"];\n")
	for _, n := range g.Nodes {
		title, detail := n.label()
		fmt.Fprintf(&b, "  %s [label=%s", dotQuote(n.ID.String()), dotQuote(title+"\n"+detail))
		if c, ok := statusColours[n.Status]; ok {
			fmt.Fprintf(&b, ", fillcolor=%s", dotQuote(c))
		}
		b.WriteString("];\n")
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "  %s -> %s;\n", dotQuote(e.From.String()), dotQuote(e.To.String()))
	}
	b.WriteString("}\n")
	return b.String()
}

// dotQuote makes a DOT quoted string: backslashes and quotes escaped, a
// newline as DOT's \n line break, other control characters as spaces.
func dotQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Mermaid renders the graph as a Mermaid flowchart. Node ids are n0, n1,
// ... in graph order, since job ids contain dashes Mermaid reads as edges;
// labels are quoted with Mermaid's entity codes for the characters its
// parser would otherwise interpret.
func (g Graph) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	ids := make(map[uuid.UUID]string, len(g.Nodes))
	byStatus := make(map[job.Status][]string)
	for i, n := range g.Nodes {
		id := fmt.Sprintf("n%d", i)
		ids[n.ID] = id
		title, detail := n.label()
		fmt.Fprintf(&b, "  %s[\"%s<br/>%s\"]\n", id, mermaidEscape(title), mermaidEscape(detail))
		byStatus[n.Status] = append(byStatus[n.Status], id)
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "  %s --> %s\n", ids[e.From], ids[e.To])
	}
	for _, st := range job.Statuses {
		if nodes := byStatus[st]; len(nodes) > 0 {
			fmt.Fprintf(&b, "  classDef %s fill:%s\n", st, statusColours[st])
			fmt.Fprintf(&b, "  class %s %s\n", strings.Join(nodes, ","), st)
		}
	}
	return b.String()
}

var mermaidReplacer = strings.NewReplacer(
	"#", "#35;",
	`"`, "#quot;",
	"<", "#lt;",
	">", "#gt;",
	"&", "#amp;",
	"`", "#96;",
	"\n", " ",
	"\r", " ",
)

func mermaidEscape(s string) string { return mermaidReplacer.Replace(s) }
