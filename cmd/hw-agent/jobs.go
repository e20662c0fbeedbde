package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// errorColumnWidth truncates the ERROR column so a long app response does not
// wrap every row of the table.
const errorColumnWidth = 48

func (c *cli) jobCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Enqueue, list, show, retry, cancel and purge jobs directly in the database",
	}
	cmd.AddCommand(c.jobEnqueueCommand(), c.jobListCommand(), c.jobShowCommand(),
		c.jobRetryCommand(), c.jobCancelCommand(), c.jobPurgeCommand())
	return cmd
}

type enqueueFlags struct {
	queue       string
	payload     string
	priority    string
	delay       time.Duration
	maxAttempts int
	timeout     time.Duration
	uniqueKey   string
}

// newJob checks every flag before anything touches the database, so bad input
// writes nothing and the error names the flag to fix. A --delay is applied by
// the caller, from the database's now.
func (f enqueueFlags) newJob() (store.NewJob, error) {
	if f.queue == "" {
		return store.NewJob{}, errors.New("--queue is required")
	}
	if !store.ValidQueueName(f.queue) {
		return store.NewJob{}, fmt.Errorf("--queue %q is not a valid queue name (letters, digits, '_', '.', ':', '-'; at most 128)", f.queue)
	}
	var payload any
	if err := json.Unmarshal([]byte(f.payload), &payload); err != nil {
		return store.NewJob{}, fmt.Errorf("--payload is not valid JSON: %v", err)
	}
	prio, err := job.ParsePriority(f.priority)
	if err != nil {
		return store.NewJob{}, fmt.Errorf("--priority: %w", err)
	}
	if f.delay < 0 {
		return store.NewJob{}, fmt.Errorf("--delay %s must not be negative", f.delay)
	}
	if f.maxAttempts < 0 {
		return store.NewJob{}, fmt.Errorf("--max-attempts %d must be at least 1", f.maxAttempts)
	}
	if f.timeout < 0 {
		return store.NewJob{}, fmt.Errorf("--timeout %s must not be negative", f.timeout)
	}
	nj := store.NewJob{
		Queue:       f.queue,
		Payload:     []byte(f.payload),
		Priority:    prio,
		MaxAttempts: f.maxAttempts,
		Timeout:     f.timeout,
		UniqueKey:   f.uniqueKey,
	}
	return nj, nil
}

func (c *cli) jobEnqueueCommand() *cobra.Command {
	var f enqueueFlags
	cmd := &cobra.Command{
		Use:     "enqueue --queue Q [--payload JSON]",
		Short:   "Enqueue one job",
		Example: `  hw-agent job enqueue --queue emails --payload '{"to":"ada@example.com"}' --priority high`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nj, err := f.newJob()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := c.openMigratedStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if f.delay > 0 {
				// Counted from the database's now: its clock decides when
				// the job is due.
				now, err := st.DatabaseNow(ctx)
				if err != nil {
					return fmt.Errorf("--delay: %w", err)
				}
				nj.ScheduledAt = now.Add(f.delay)
			}
			jobs, err := st.Enqueue(ctx, store.EnqueueParams{Jobs: []store.NewJob{nj}})
			if err != nil {
				return fmt.Errorf("enqueue on queue %q: %w", f.queue, err)
			}
			j := jobs[0]
			if c.jsonOutput() {
				return c.printJSON(j)
			}
			if j.Duplicate {
				fmt.Fprintf(c.stdout, "duplicate: %s on queue %s already holds unique key %q (%s)\n",
					j.ID, j.Queue, j.UniqueKey, j.Status)
				return nil
			}
			fmt.Fprintf(c.stdout, "enqueued %s on queue %s (%s, priority %s, scheduled %s)\n",
				j.ID, j.Queue, j.Status, j.Priority, formatTime(j.ScheduledAt))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.queue, "queue", "", "queue name (required)")
	fl.StringVar(&f.payload, "payload", "{}", "JSON payload POSTed to the app")
	fl.StringVar(&f.priority, "priority", "normal", "background, low, normal, high or critical")
	fl.DurationVar(&f.delay, "delay", 0, "run no earlier than this long from now (e.g. 10s)")
	fl.IntVar(&f.maxAttempts, "max-attempts", 0, fmt.Sprintf("attempts before the job fails (default %d)", job.DefaultMaxAttempts))
	fl.DurationVar(&f.timeout, "timeout", 0, "request timeout for this job (default: the queue's or app.request_timeout)")
	fl.StringVar(&f.uniqueKey, "unique-key", "", "while a pending or running job holds this key, return it instead of enqueueing another")
	return cmd
}

type listFlags struct {
	queue            string
	status           string
	dependencyStatus string
	page             pageFlags
}

func (f listFlags) params() (store.ListParams, error) {
	p := store.ListParams{Queue: f.queue, Limit: f.page.limit, Cursor: f.page.cursor}
	if f.status != "" {
		s, err := job.ParseStatus(f.status)
		if err != nil {
			return p, fmt.Errorf("--status: %w", err)
		}
		p.Status = s
	}
	if f.dependencyStatus != "" {
		d, err := job.ParseDependencyStatus(f.dependencyStatus)
		if err != nil {
			return p, fmt.Errorf("--dependency-status: %w", err)
		}
		p.DependencyStatus = d
	}
	return p, f.page.validate()
}

func (c *cli) jobListCommand() *cobra.Command {
	var f listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := f.params()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := c.openMigratedStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			page, err := st.List(ctx, p)
			if err != nil {
				return fmt.Errorf("list jobs: %w", err)
			}
			if c.jsonOutput() {
				jobs := page.Jobs
				if jobs == nil {
					jobs = []*job.Job{}
				}
				return c.printJSON(map[string]any{"jobs": jobs, "next_cursor": page.NextCursor})
			}
			return c.printJobTable(page)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.queue, "queue", "", "only this queue")
	fl.StringVar(&f.status, "status", "", "only this status: pending, running, completed, failed, cancelled or skipped")
	fl.StringVar(&f.dependencyStatus, "dependency-status", "", "only this dependency status: none, waiting, satisfied or failed")
	f.page.register(cmd, "jobs")
	return cmd
}

func (c *cli) printJobTable(page *store.ListPage) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tQUEUE\tSTATUS\tPRIORITY\tATTEMPTS\tSCHEDULED\tERROR")
	for _, j := range page.Jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.Queue, j.Status, j.Priority,
			j.Attempts, j.MaxAttempts, formatTime(j.ScheduledAt), truncate(j.ErrorMessage, errorColumnWidth))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if page.NextCursor != "" {
		fmt.Fprintf(c.stdout, "more jobs: add --cursor %s\n", page.NextCursor)
	}
	return nil
}

func (c *cli) jobShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one job: every field, its error history and its result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			st, err := c.openMigratedStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			j, err := st.Get(ctx, id)
			if err != nil {
				return fmt.Errorf("get job %s: %w", id, err)
			}
			if c.jsonOutput() {
				return c.printJSON(j)
			}
			c.printJob(j)
			return nil
		},
	}
}

// printJob writes a job as "key: value" lines, leaving out what is unset.
func (c *cli) printJob(j *job.Job) {
	line := c.fieldPrinter()
	line("id", j.ID.String())
	line("queue", j.Queue)
	line("status", string(j.Status))
	line("priority", j.Priority.String())
	line("attempts", fmt.Sprintf("%d/%d", j.Attempts, j.MaxAttempts))
	line("payload", string(j.Payload))
	line("created_at", formatTime(j.CreatedAt))
	line("scheduled_at", formatTime(j.ScheduledAt))
	line("started_at", optTime(j.StartedAt))
	line("completed_at", optTime(j.CompletedAt))
	line("failed_at", optTime(j.FailedAt))
	if j.Timeout > 0 {
		line("timeout", j.Timeout.String())
	}
	if j.RetryPolicy != nil {
		b, _ := json.Marshal(j.RetryPolicy)
		line("retry", string(b))
	}
	if j.WorkflowID != nil {
		line("workflow_id", j.WorkflowID.String())
	}
	line("workflow_name", j.WorkflowName)
	line("step_name", j.StepName)
	if j.BatchID != nil {
		line("batch_id", j.BatchID.String())
	}
	line("dependency_status", string(j.DependencyStatus))
	line("depends_on", joinIDs(j.DependsOn))
	line("dependents", joinIDs(j.Dependents))
	line("condition", j.Condition)
	line("trace_id", j.TraceID)
	line("correlation_id", j.CorrelationID)
	line("unique_key", j.UniqueKey)
	line("leased_by", j.LeasedBy)
	line("lease_expires_at", optTime(j.LeaseExpiresAt))
	line("error", j.ErrorMessage)
	if len(j.Errors) > 0 {
		fmt.Fprintln(c.stdout, "errors:")
		for _, e := range j.Errors {
			fmt.Fprintf(c.stdout, "  attempt %d at %s (%s): %s\n", e.Attempt, formatTime(e.At), e.Outcome, oneLine(e.Message))
		}
	}
	if len(j.Result) > 0 {
		line("result", string(j.Result))
		line("result_expires_at", optTime(j.ResultExpiresAt))
	}
}

func (c *cli) jobRetryCommand() *cobra.Command {
	return c.withBulkRetry(c.jobTransitionCommand("retry", "Re-run a failed or cancelled job, or every one of a queue (attempts start again from 0)",
		func(st store.Store, cmd *cobra.Command, id uuid.UUID) (*job.Job, error) {
			return st.Retry(cmd.Context(), store.RetryParams{ID: id})
		}))
}

func (c *cli) jobCancelCommand() *cobra.Command {
	return c.jobTransitionCommand("cancel", "Cancel a pending or running job",
		func(st store.Store, cmd *cobra.Command, id uuid.UUID) (*job.Job, error) {
			return st.Cancel(cmd.Context(), store.CancelParams{ID: id})
		})
}

// jobTransitionCommand builds the commands that move one job to a new state.
func (c *cli) jobTransitionCommand(verb, short string, apply func(store.Store, *cobra.Command, uuid.UUID) (*job.Job, error)) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(args[0])
			if err != nil {
				return err
			}
			st, err := c.openMigratedStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			j, err := apply(st, cmd, id)
			if err != nil {
				return fmt.Errorf("%s job %s: %w", verb, id, err)
			}
			if c.jsonOutput() {
				return c.printJSON(j)
			}
			fmt.Fprintf(c.stdout, "job %s is now %s\n", j.ID, j.Status)
			return nil
		},
	}
}

func parseJobID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("job ID %q is not a UUID", s)
	}
	return id, nil
}

// formatTime prints times in UTC, as they are stored.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func joinIDs(ids []uuid.UUID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return strings.Join(s, ", ")
}

// oneLine folds a multi-line message (an app's response body) onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncate(s string, n int) string {
	s = oneLine(s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// pageFlags are the --limit and --cursor of every list command.
type pageFlags struct {
	limit  int
	cursor string
}

func (f *pageFlags) register(cmd *cobra.Command, noun string) {
	fl := cmd.Flags()
	fl.IntVar(&f.limit, "limit", store.DefaultListLimit, fmt.Sprintf("%s per page (at most %d)", noun, store.MaxListLimit))
	fl.StringVar(&f.cursor, "cursor", "", "continue after a previous page (its next cursor)")
}

// validate checks the flags before anything touches the database: cursors
// are ids, so a mistyped one is caught here with the flag's name.
func (f pageFlags) validate() error {
	if f.limit < 1 || f.limit > store.MaxListLimit {
		return fmt.Errorf("--limit %d must be between 1 and %d", f.limit, store.MaxListLimit)
	}
	if f.cursor != "" {
		if _, err := uuid.Parse(f.cursor); err != nil {
			return fmt.Errorf("--cursor %q is not a cursor from a previous listing", f.cursor)
		}
	}
	return nil
}

// fieldPrinter returns a writer of "key: value" lines for the show
// commands; unset values (empty strings) print nothing.
func (c *cli) fieldPrinter() func(k, v string) {
	return func(k, v string) {
		if v != "" {
			fmt.Fprintf(c.stdout, "%s: %s\n", k, v)
		}
	}
}

// optTime formats an optional time, empty when unset.
func optTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return formatTime(*t)
}
