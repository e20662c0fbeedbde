package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// The store's workflow calls already name what they did and to which
// workflow ("cancel workflow <id>: state conflict: ..."), so the commands
// return their errors as they are rather than wrapping them a second time.

// watchEvery paces `workflow status --watch`: quick enough to feel live,
// slow enough that a watching operator costs the database nothing.
const watchEvery = 500 * time.Millisecond

func (c *cli) workflowCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workflow",
		Short: "Create, inspect, cancel and retry workflows directly in the database",
	}
	cmd.AddCommand(c.workflowListCommand(), c.workflowShowCommand(), c.workflowCreateCommand(),
		c.workflowDependenciesCommand(), c.workflowGraphCommand(), c.workflowCancelCommand(),
		c.workflowRetryCommand(), c.workflowStatusCommand())
	return cmd
}

// withStore opens the configured, migrated database for one command.
func (c *cli) withStore(ctx context.Context, fn func(st store.Store) error) error {
	st, err := c.openMigratedStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

type workflowListFlags struct {
	status string
	page   pageFlags
}

func (f workflowListFlags) params() (store.ListWorkflowsParams, error) {
	p := store.ListWorkflowsParams{Limit: f.page.limit, Cursor: f.page.cursor}
	if f.status != "" {
		s, err := parseWorkflowStatus(f.status)
		if err != nil {
			return p, fmt.Errorf("--status: %w", err)
		}
		p.Status = s
	}
	return p, f.page.validate()
}

func parseWorkflowStatus(s string) (workflow.Status, error) {
	switch st := workflow.Status(s); st {
	case workflow.StatusRunning, workflow.StatusCompleted, workflow.StatusFailed, workflow.StatusCancelled, workflow.StatusPaused:
		return st, nil
	}
	return "", fmt.Errorf("unknown workflow status %q (want running, completed, failed, cancelled or paused)", s)
}

func (c *cli) workflowListCommand() *cobra.Command {
	var f workflowListFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List workflows, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := f.params()
			if err != nil {
				return err
			}
			return c.withStore(cmd.Context(), func(st store.Store) error {
				page, err := st.ListWorkflows(cmd.Context(), p)
				if err != nil {
					return err
				}
				if c.jsonOutput() {
					wfs := page.Workflows
					if wfs == nil {
						wfs = []*workflow.Record{}
					}
					return c.printJSON(map[string]any{"workflows": wfs, "next_cursor": page.NextCursor})
				}
				return c.printWorkflowTable(page)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.status, "status", "", "only this status: running, completed, failed, cancelled or paused")
	f.page.register(cmd, "workflows")
	return cmd
}

func (c *cli) printWorkflowTable(page *store.WorkflowPage) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tPOLICY\tPROGRESS\tCREATED")
	for _, w := range page.Workflows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", w.ID, w.Name, w.Status, w.FailurePolicy,
			progress(w.Stats), formatTime(w.CreatedAt))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if page.NextCursor != "" {
		fmt.Fprintf(c.stdout, "more workflows: add --cursor %s\n", page.NextCursor)
	}
	return nil
}

// progress is "done/total (pct%)", where done counts completed and skipped
// jobs: both let the workflow finish.
func progress(s workflow.Stats) string {
	return fmt.Sprintf("%d/%d (%.1f%%)", s.CompletedJobs+s.SkippedJobs, s.TotalJobs, s.CompletionPercentage)
}

// workflowWithJobs is `workflow show --output json`: the same shape as the
// API's GET /v1/workflows/{id}.
type workflowWithJobs struct {
	*workflow.Record
	Jobs []*job.Job `json:"jobs"`
}

func (c *cli) workflowShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one workflow: its fields, counters and jobs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseWorkflowID(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				wf, jobs, err := readWorkflow(ctx, st, id)
				if err != nil {
					return err
				}
				if c.jsonOutput() {
					return c.printJSON(workflowWithJobs{Record: wf, Jobs: jobs})
				}
				return c.printWorkflow(wf, jobs)
			})
		},
	}
}

func readWorkflow(ctx context.Context, st store.Workflows, id uuid.UUID) (*workflow.Record, []*job.Job, error) {
	wf, err := st.GetWorkflow(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	jobs, err := st.WorkflowJobs(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if jobs == nil {
		jobs = []*job.Job{}
	}
	return wf, jobs, nil
}

func (c *cli) printWorkflow(wf *workflow.Record, jobs []*job.Job) error {
	line := c.fieldPrinter()
	line("id", wf.ID.String())
	line("name", wf.Name)
	line("description", wf.Description)
	line("status", string(wf.Status))
	line("failure_policy", string(wf.FailurePolicy))
	line("priority", wf.Priority.String())
	if wf.Timeout > 0 {
		line("timeout", wf.Timeout.String())
	}
	line("deadline", optTime(wf.Deadline))
	line("trace_id", wf.TraceID)
	line("correlation_id", wf.CorrelationID)
	line("created_at", formatTime(wf.CreatedAt))
	line("completed_at", optTime(wf.CompletedAt))
	line("failed_at", optTime(wf.FailedAt))
	line("error", wf.ErrorMessage)
	line("progress", progress(wf.Stats))
	line("jobs", counters(wf.Stats))
	fmt.Fprintln(c.stdout)

	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tQUEUE\tSTATUS\tDEPENDENCY_STATUS\tATTEMPTS\tJOB ID\tERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", stepName(j), j.Queue, j.Status, j.DependencyStatus,
			j.Attempts, j.MaxAttempts, j.ID, truncate(j.ErrorMessage, errorColumnWidth))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// counters lists every job counter of a workflow on one line.
func counters(s workflow.Stats) string {
	return fmt.Sprintf("total %d, pending %d, running %d, completed %d, failed %d, cancelled %d, skipped %d",
		s.TotalJobs, s.PendingJobs, s.RunningJobs, s.CompletedJobs, s.FailedJobs, s.CancelledJobs, s.SkippedJobs)
}

func stepName(j *job.Job) string {
	if j.StepName == "" {
		return "-"
	}
	return j.StepName
}

func (c *cli) workflowCreateCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "create --file PATH",
		Short: "Enqueue a workflow from a definition file (JSON or YAML)",
		Long: `Enqueue every job of a workflow definition in one transaction. The file has
the shape of hammerwork's workflow guide and of the body of POST /v1/workflows;
a .yaml or .yml file is read as YAML, anything else as JSON. An invalid
definition (a cycle, an unknown dependency, a duplicate step) writes nothing.`,
		Example: `  hw-agent workflow create --file pipeline.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("--file is required")
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("--file: %w", err)
			}
			def, err := workflow.ParseFile(file, b)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				res, err := st.EnqueueWorkflow(ctx, store.EnqueueWorkflowParams{Workflow: def})
				if err != nil {
					return err
				}
				return c.printCreated(def, res)
			})
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "workflow definition: .json, .yaml or .yml (required)")
	return cmd
}

func (c *cli) printCreated(def workflow.Workflow, res *store.WorkflowEnqueued) error {
	wf := res.Workflow
	if c.jsonOutput() {
		return c.printJSON(map[string]any{"id": wf.ID, "status": wf.Status, "jobs": res.Jobs})
	}
	fmt.Fprintf(c.stdout, "created workflow %s (%s, %d jobs, %s)\n\n", wf.ID, wf.Name, len(res.Jobs), wf.Status)
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tQUEUE\tJOB ID")
	for _, s := range def.Steps {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Queue, res.Jobs[s.Name])
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// dependencies is `workflow dependencies --output json`.
type dependencies struct {
	Job        *job.Job   `json:"job"`
	Parents    []*job.Job `json:"parents"`
	Dependents []*job.Job `json:"dependents"`
}

func (c *cli) workflowDependenciesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "dependencies JOB_ID",
		Short: "Show a job's parents and dependents with their status",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				d, err := readDependencies(ctx, st, id)
				if err != nil {
					return err
				}
				if c.jsonOutput() {
					return c.printJSON(d)
				}
				return c.printDependencies(d)
			})
		},
	}
}

func readDependencies(ctx context.Context, st store.Reader, id uuid.UUID) (*dependencies, error) {
	j, err := st.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	d := &dependencies{Job: j, Parents: []*job.Job{}, Dependents: []*job.Job{}}
	for _, rel := range []struct {
		ids []uuid.UUID
		out *[]*job.Job
	}{{j.DependsOn, &d.Parents}, {j.Dependents, &d.Dependents}} {
		for _, rid := range rel.ids {
			r, err := st.Get(ctx, rid)
			if err != nil {
				return nil, fmt.Errorf("get job %s related to %s: %w", rid, id, err)
			}
			*rel.out = append(*rel.out, r)
		}
	}
	return d, nil
}

func (c *cli) printDependencies(d *dependencies) error {
	j := d.Job
	fmt.Fprintf(c.stdout, "job %s (step %s, queue %s): %s, dependency_status %s, %d pending parents\n\n",
		j.ID, stepName(j), j.Queue, j.Status, j.DependencyStatus, j.PendingDependencies)
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RELATION\tSTEP\tQUEUE\tSTATUS\tDEPENDENCY_STATUS\tJOB ID")
	for _, rel := range []struct {
		name string
		jobs []*job.Job
	}{{"parent", d.Parents}, {"dependent", d.Dependents}} {
		for _, r := range rel.jobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", rel.name, stepName(r), r.Queue, r.Status, r.DependencyStatus, r.ID)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if len(d.Parents)+len(d.Dependents) == 0 {
		fmt.Fprintln(c.stdout, "(no parents and no dependents)")
	}
	return nil
}

func (c *cli) workflowGraphCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "graph ID",
		Short: "Export a workflow's graph as DOT, Mermaid or JSON, with each job's status and level",
		Example: `  hw-agent workflow graph 0191f5a6-... --format dot | dot -Tsvg > workflow.svg
  hw-agent workflow graph 0191f5a6-... --format mermaid`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "dot", "mermaid", "json":
			default:
				return fmt.Errorf("--format %q must be dot, mermaid or json", format)
			}
			id, err := parseWorkflowID(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				_, jobs, err := readWorkflow(ctx, st, id)
				if err != nil {
					return err
				}
				return writeGraph(c.stdout, workflow.NewGraph(jobs), format)
			})
		},
	}
	cmd.Flags().StringVar(&format, "format", "dot", "dot, mermaid or json")
	return cmd
}

func writeGraph(w io.Writer, g workflow.Graph, format string) error {
	var out string
	switch format {
	case "dot":
		out = g.DOT()
	case "mermaid":
		out = g.Mermaid()
	default:
		b, err := g.JSON()
		if err != nil {
			return fmt.Errorf("export graph: %w", err)
		}
		out = string(b)
	}
	if len(out) == 0 || out[len(out)-1] != '\n' {
		out += "\n"
	}
	if _, err := io.WriteString(w, out); err != nil {
		return fmt.Errorf("write graph: %w", err)
	}
	return nil
}

func (c *cli) workflowCancelCommand() *cobra.Command {
	return c.workflowTransitionCommand("cancel", "Cancel every unfinished job of a workflow and mark it cancelled",
		func(ctx context.Context, st store.Workflows, p store.WorkflowParams) (*workflow.Record, error) {
			return st.CancelWorkflow(ctx, p)
		})
}

func (c *cli) workflowRetryCommand() *cobra.Command {
	return c.workflowTransitionCommand("retry", "Re-run a workflow's failed and cancelled jobs; its dependencies are recomputed",
		func(ctx context.Context, st store.Workflows, p store.WorkflowParams) (*workflow.Record, error) {
			return st.RetryWorkflow(ctx, p)
		})
}

// workflowTransitionCommand builds the commands that move one workflow to a new state.
func (c *cli) workflowTransitionCommand(verb, short string,
	apply func(context.Context, store.Workflows, store.WorkflowParams) (*workflow.Record, error)) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseWorkflowID(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				wf, err := apply(ctx, st, store.WorkflowParams{ID: id})
				if err != nil {
					return err
				}
				if c.jsonOutput() {
					return c.printJSON(wf)
				}
				fmt.Fprintf(c.stdout, "workflow %s is now %s (%s)\n", wf.ID, wf.Status, counters(wf.Stats))
				return nil
			})
		},
	}
}

func (c *cli) workflowStatusCommand() *cobra.Command {
	var watch bool
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Print a workflow's progress; --watch follows it until it finishes",
		Long: `Print one progress line: status, finished/total jobs, percentage and counters.
With --watch, print a new line whenever it changes until the workflow is
completed, failed, cancelled or paused, then exit 0.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseWorkflowID(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				return c.workflowStatus(ctx, st, id, watch)
			})
		},
	}
	cmd.Flags().BoolVar(&watch, "watch", false, "follow the workflow until it is completed, failed, cancelled or paused")
	return cmd
}

// workflowStatus prints the progress line, and with watch a new one at each
// change until the workflow stops moving on its own: terminal, or paused
// waiting for an operator.
func (c *cli) workflowStatus(ctx context.Context, st store.Workflows, id uuid.UUID, watch bool) error {
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	last := ""
	for {
		wf, err := st.GetWorkflow(ctx, id)
		if err != nil {
			return err
		}
		if line := statusLine(wf); line != last {
			last = line
			if c.jsonOutput() {
				if err := c.printJSON(wf); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(c.stdout, line)
			}
		}
		if !watch || wf.Status.Terminal() || wf.Status == workflow.StatusPaused {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func statusLine(wf *workflow.Record) string {
	s := wf.Stats
	return fmt.Sprintf("%-9s %s  pending %d  running %d  completed %d  failed %d  cancelled %d  skipped %d",
		wf.Status, progress(s), s.PendingJobs, s.RunningJobs, s.CompletedJobs, s.FailedJobs, s.CancelledJobs, s.SkippedJobs)
}

func parseWorkflowID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("workflow ID %q is not a UUID", s)
	}
	return id, nil
}
