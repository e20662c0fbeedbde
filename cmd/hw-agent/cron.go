package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/schedule"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// Schedules are kept in the database, so every agent sharing it fires them;
// these commands change them there, without a running agent. The store's
// schedule calls name the schedule in their errors, which are returned as
// they are.

// showRuns is how many of the latest runs `cron show` lists.
const showRuns = 10

// showNext is how many fire times `cron show` previews.
const showNext = 5

func (c *cli) cronCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cron",
		Short: "Add, list, show, pause, resume, trigger and remove cron schedules directly in the database",
		Long: `A schedule enqueues a job or a workflow at the times of a cron expression in a
time zone. It is stored in the database, and whichever agent sharing it looks
first fires each slot, exactly once.`,
	}
	cmd.AddCommand(c.cronAddCommand(), c.cronListCommand(), c.cronShowCommand(), c.cronRemoveCommand(),
		c.cronPauseCommand(), c.cronResumeCommand(), c.cronTriggerCommand(), c.cronNextCommand())
	return cmd
}

// cronFlags are the flags of `cron add`.
type cronFlags struct {
	cron              string
	timezone          string
	job               enqueueFlags
	workflowFile      string
	overlap           string
	catchup           string
	catchupWindow     time.Duration
	jitter            time.Duration
	startAt           string
	endAt             string
	dependsOnSchedule string
}

// jobOnlyFlags are the flags that describe a job target.
var jobOnlyFlags = []string{"payload", "priority", "max-attempts", "timeout", "unique-key"}

// def builds the definition from the flags and validates it, so bad input
// writes nothing and every error names the flag to fix.
func (f cronFlags) def(cmd *cobra.Command, name string) (store.ScheduleDef, error) {
	d := store.ScheduleDef{Name: name, Cron: f.cron, Timezone: f.timezone, Overlap: schedule.Overlap(f.overlap),
		Catchup: schedule.Catchup(f.catchup), CatchupWindow: job.Duration(f.catchupWindow), Jitter: job.Duration(f.jitter),
		DependsOnSchedule: f.dependsOnSchedule}
	if f.cron == "" {
		return d, errors.New("--cron is required")
	}
	if f.catchupWindow < 0 {
		return d, fmt.Errorf("--catchup-window %s must be positive", f.catchupWindow)
	}
	if f.jitter < 0 {
		return d, fmt.Errorf("--jitter %s must not be negative", f.jitter)
	}
	var err error
	if d.StartAt, err = parseFlagTime("--start-at", f.startAt); err != nil {
		return d, err
	}
	if d.EndAt, err = parseFlagTime("--end-at", f.endAt); err != nil {
		return d, err
	}
	switch {
	case f.job.queue != "" && f.workflowFile != "":
		return d, errors.New("give --queue or --workflow-file, not both")
	case f.workflowFile != "":
		for _, fl := range jobOnlyFlags {
			if cmd.Flags().Changed(fl) {
				return d, fmt.Errorf("--%s describes a job: it goes with --queue, not --workflow-file", fl)
			}
		}
		b, err := os.ReadFile(f.workflowFile)
		if err != nil {
			return d, fmt.Errorf("--workflow-file: %w", err)
		}
		w, err := workflow.ParseFile(f.workflowFile, b)
		if err != nil {
			return d, fmt.Errorf("--workflow-file %s: %w", f.workflowFile, err)
		}
		d.Target.Workflow = &w
	case f.job.queue != "":
		nj, err := f.job.newJob()
		if err != nil {
			return d, err
		}
		t := &store.JobTemplate{Queue: nj.Queue, Payload: nj.Payload, MaxAttempts: nj.MaxAttempts,
			Timeout: job.Duration(nj.Timeout), UniqueKey: nj.UniqueKey}
		if nj.Priority != job.PriorityNormal {
			t.Priority = &nj.Priority
		}
		d.Target.Job = t
	default:
		return d, errors.New("give --queue (a job) or --workflow-file (a workflow) for the schedule to create")
	}
	if err := d.Validate(); err != nil {
		return d, scheduleFlagError(name, err)
	}
	return d, nil
}

func parseFlagTime(flag, v string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, fmt.Errorf("%s %q is not an RFC 3339 time (e.g. 2026-01-02T15:04:05Z)", flag, v)
	}
	return &t, nil
}

// fieldFlags names the flag of each field a schedule's validation reports.
var fieldFlags = map[string]string{
	"name": "NAME", "cron": "--cron", "timezone": "--timezone", "overlap": "--overlap", "catchup": "--catchup",
	"catchup_window": "--catchup-window", "jitter": "--jitter", "start_at": "--start-at", "end_at": "--end-at",
	"depends_on_schedule": "--depends-on-schedule", "target.job": "--queue", "target.workflow": "--workflow-file",
}

// scheduleFlagError rewrites a schedule's validation problems with the
// flags that set each field; other errors are returned as they are.
func scheduleFlagError(name string, err error) error {
	var ve *schedule.ValidationError
	var fe *schedule.FieldError
	var problems []*schedule.FieldError
	switch {
	case errors.As(err, &ve):
		problems = ve.Problems
	case errors.As(err, &fe):
		problems = []*schedule.FieldError{fe}
	default:
		return err
	}
	msgs := make([]string, len(problems))
	for i, p := range problems {
		field := p.Field
		if flag, ok := fieldFlags[p.Field]; ok {
			field = flag + " (" + p.Field + ")"
		}
		msgs[i] = field + ": " + p.Message
	}
	prefix := "invalid schedule"
	if name != "" {
		prefix += fmt.Sprintf(" %q", name)
	}
	return fmt.Errorf("%s: %s", prefix, strings.Join(msgs, "; "))
}

func (c *cli) cronAddCommand() *cobra.Command {
	var f cronFlags
	cmd := &cobra.Command{
		Use:   "add NAME --cron EXPR (--queue Q | --workflow-file FILE)",
		Short: "Create or replace a schedule",
		Long: `Create the schedule, or replace the one of that name. Adding a schedule again
with the same definition changes nothing (its next run and history stay); a
changed definition counts its slots again from now. The cron expression has 5
fields (minute hour day-of-month month day-of-week), or 6 with leading seconds,
or is a descriptor such as @daily or "@every 15m"; it is read in --timezone.`,
		Example: `  hw-agent cron add nightly --cron "0 2 * * *" --timezone Europe/Berlin --queue reports --payload '{"kind":"daily"}'
  hw-agent cron add etl --cron "@every 1h" --workflow-file pipeline.yaml --overlap buffer_one`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			def, err := f.def(cmd, args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				before, err := st.GetSchedule(ctx, def.Name)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				rec, created, err := st.PutSchedule(ctx, store.PutScheduleParams{Def: def})
				if err != nil {
					return scheduleFlagError(def.Name, err)
				}
				outcome := "changed"
				switch {
				case created:
					outcome = "created"
				case before != nil && before.UpdatedAt.Equal(rec.UpdatedAt):
					outcome = "unchanged"
				}
				if c.jsonOutput() {
					return c.printJSON(map[string]any{"outcome": outcome, "schedule": api.NewScheduleView(rec)})
				}
				fmt.Fprintf(c.stdout, "schedule %s %s (%s in %s, next run %s)\n", rec.Name, outcome, rec.Cron,
					api.NewScheduleView(rec).Timezone, nextRun(rec))
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cron, "cron", "", `cron expression, e.g. "0 2 * * *" or "@every 15m" (required)`)
	fl.StringVar(&f.timezone, "timezone", "", "IANA time zone the expression is read in (default UTC)")
	fl.StringVar(&f.job.queue, "queue", "", "enqueue a job on this queue at each run")
	fl.StringVar(&f.job.payload, "payload", "{}", "the job's JSON payload")
	fl.StringVar(&f.job.priority, "priority", "normal", "the job's priority: background, low, normal, high or critical")
	fl.IntVar(&f.job.maxAttempts, "max-attempts", 0, fmt.Sprintf("the job's attempts before it fails (default %d)", job.DefaultMaxAttempts))
	fl.DurationVar(&f.job.timeout, "timeout", 0, "the job's request timeout (default: the queue's or app.request_timeout)")
	fl.StringVar(&f.job.uniqueKey, "unique-key", "", "while a pending or running job holds this key, a run enqueues no other")
	fl.StringVar(&f.workflowFile, "workflow-file", "", "create this workflow at each run (.json, .yaml or .yml, as for `workflow create`)")
	fl.StringVar(&f.overlap, "overlap", "", "while the previous run is live: skip (default), allow or buffer_one")
	fl.StringVar(&f.catchup, "catchup", "", "slots missed while no agent ran: latest (default), none or all")
	fl.DurationVar(&f.catchupWindow, "catchup-window", 0, "how late the newest missed slot still fires with --catchup latest (default 1h)")
	fl.DurationVar(&f.jitter, "jitter", 0, "delay each run by a random duration up to this")
	fl.StringVar(&f.startAt, "start-at", "", "first time a slot may fire (RFC 3339)")
	fl.StringVar(&f.endAt, "end-at", "", "last time a slot may fire (RFC 3339)")
	fl.StringVar(&f.dependsOnSchedule, "depends-on-schedule", "", "each job waits for the latest job of this schedule")
	return cmd
}

func nextRun(rec *store.ScheduleRecord) string {
	switch {
	case rec.Paused:
		return "none while paused"
	case rec.NextRunAt == nil:
		return "none: past its end"
	}
	return formatTime(*rec.NextRunAt)
}

func (c *cli) cronListCommand() *cobra.Command {
	var limit int
	var cursor string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List schedules by name",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > store.MaxListLimit {
				return fmt.Errorf("--limit %d must be between 1 and %d", limit, store.MaxListLimit)
			}
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				page, err := st.ListSchedules(ctx, store.ListSchedulesParams{Limit: limit, Cursor: cursor})
				if err != nil {
					return err
				}
				views := make([]api.ScheduleView, len(page.Schedules))
				for i, r := range page.Schedules {
					views[i] = api.NewScheduleView(r)
				}
				if c.jsonOutput() {
					return c.printJSON(map[string]any{"schedules": views, "next_cursor": page.NextCursor})
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tCRON\tTIMEZONE\tTARGET\tPAUSED\tNEXT RUN\tLAST RUN")
				for i, v := range views {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.Cron, v.Timezone, targetName(v.Target),
						yesNo(v.Paused), nextRun(page.Schedules[i]), orDash(optTime(v.LastRunAt)))
				}
				if err := tw.Flush(); err != nil {
					return fmt.Errorf("write table: %w", err)
				}
				if page.NextCursor != "" {
					fmt.Fprintf(c.stdout, "more schedules: add --cursor %s\n", page.NextCursor)
				}
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&limit, "limit", store.DefaultListLimit, fmt.Sprintf("schedules per page (at most %d)", store.MaxListLimit))
	fl.StringVar(&cursor, "cursor", "", "continue after a previous page (its next cursor)")
	return cmd
}

// targetName is what a run creates, in one word: "job on <queue>" or
// "workflow <name>".
func targetName(t store.ScheduleTarget) string {
	switch {
	case t.Job != nil:
		return "job on " + t.Job.Queue
	case t.Workflow != nil:
		return "workflow " + t.Workflow.Name
	}
	return "-"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// scheduleDetail is `cron show --output json`: the schedule as the API
// shows it, its next fire times and its latest runs.
type scheduleDetail struct {
	api.ScheduleView
	Next []time.Time           `json:"next"`
	Runs []api.ScheduleRunView `json:"runs"`
}

func (c *cli) cronShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: fmt.Sprintf("Show one schedule: its definition, state, next %d fire times and last %d runs", showNext, showRuns),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				rec, err := st.GetSchedule(ctx, name)
				if err != nil {
					return err
				}
				runs, err := st.ScheduleRuns(ctx, store.ScheduleRunsParams{Name: name, Limit: showRuns})
				if err != nil {
					return err
				}
				next, err := previewStored(ctx, st, rec, showNext)
				if err != nil {
					return err
				}
				d := scheduleDetail{ScheduleView: api.NewScheduleView(rec), Next: next, Runs: make([]api.ScheduleRunView, len(runs.Runs))}
				for i, r := range runs.Runs {
					d.Runs[i] = api.NewScheduleRunView(r)
				}
				if c.jsonOutput() {
					return c.printJSON(d)
				}
				return c.printSchedule(rec, d)
			})
		},
	}
}

// previewStored is a stored schedule's next n fire times from the
// database's now. A paused schedule counts from now, as resuming it does.
func previewStored(ctx context.Context, st store.Store, rec *store.ScheduleRecord, n int) ([]time.Time, error) {
	now, err := st.DatabaseNow(ctx)
	if err != nil {
		return nil, fmt.Errorf("preview schedule %q: %w", rec.Name, err)
	}
	var cursor time.Time
	if !rec.Paused {
		cursor = rec.Cursor
	}
	times, err := api.FireTimes(rec.ScheduleDef, cursor, now, n)
	if err != nil {
		return nil, fmt.Errorf("preview schedule %q: %w", rec.Name, err)
	}
	return times, nil
}

func (c *cli) printSchedule(rec *store.ScheduleRecord, d scheduleDetail) error {
	v := d.ScheduleView
	line := c.fieldPrinter()
	line("name", v.Name)
	line("cron", v.Cron)
	line("timezone", v.Timezone)
	line("target", targetName(v.Target))
	if t := v.Target.Job; t != nil {
		line("payload", string(t.Payload))
		line("unique_key", t.UniqueKey)
	}
	line("overlap", string(v.Overlap))
	line("catchup", string(v.Catchup))
	line("catchup_window", v.CatchupWindow.String())
	if v.Jitter > 0 {
		line("jitter", v.Jitter.String())
	}
	line("start_at", optTime(v.StartAt))
	line("end_at", optTime(v.EndAt))
	line("depends_on_schedule", v.DependsOnSchedule)
	line("paused", yesNo(v.Paused))
	line("paused_reason", v.PausedReason)
	line("paused_at", optTime(v.PausedAt))
	line("next_run_at", nextRun(rec))
	line("last_run_at", optTime(v.LastRunAt))
	if v.LastJobID != nil {
		line("last_job_id", v.LastJobID.String())
	}
	if v.LastWorkflowID != nil {
		line("last_workflow_id", v.LastWorkflowID.String())
	}
	line("created_at", formatTime(v.CreatedAt))
	line("updated_at", formatTime(v.UpdatedAt))

	fmt.Fprintln(c.stdout, "\nnext fire times:")
	if err := c.printTimes(d.Next, v.Timezone); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "\nlast runs:")
	if len(d.Runs) == 0 {
		fmt.Fprintln(c.stdout, "(none yet)")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NOMINAL TIME\tFIRED AT\tOUTCOME\tTRIGGERED\tCREATED\tNOTE")
	for _, r := range d.Runs {
		created := "-"
		switch {
		case r.JobID != nil:
			created = "job " + r.JobID.String()
		case r.WorkflowID != nil:
			created = "workflow " + r.WorkflowID.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", formatTime(r.NominalTime), formatTime(r.FiredAt), r.Outcome,
			yesNo(r.Triggered), created, truncate(r.Note, errorColumnWidth))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// printTimes lists fire times in UTC and in the schedule's zone.
func (c *cli) printTimes(times []time.Time, timezone string) error {
	if len(times) == 0 {
		fmt.Fprintln(c.stdout, "(none: the schedule has no slot left)")
		return nil
	}
	loc, err := schedule.LoadTimezone(timezone)
	if err != nil {
		return scheduleFlagError("", err)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "UTC\tLOCAL (%s)\n", loc)
	for _, t := range times {
		fmt.Fprintf(tw, "%s\t%s\n", formatTime(t), t.In(loc).Format("2006-01-02 15:04:05 MST"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

func (c *cli) cronRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a schedule and its runs; the jobs and workflows it created stay",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				if err := st.DeleteSchedule(ctx, name); err != nil {
					return err
				}
				if c.jsonOutput() {
					return c.printJSON(map[string]string{"removed": name})
				}
				fmt.Fprintf(c.stdout, "schedule %s removed\n", name)
				return nil
			})
		},
	}
}

func (c *cli) cronPauseCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "pause NAME",
		Short: "Stop every agent from firing the schedule until it is resumed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				rec, err := st.PauseSchedule(ctx, store.PauseScheduleParams{Name: name, Reason: reason})
				if err != nil {
					return err
				}
				return c.printScheduleChange(rec, "paused")
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown by `cron show` and the API")
	return cmd
}

func (c *cli) cronResumeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "resume NAME",
		Short: "Let the schedule fire again; the slots of the pause are not caught up",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				rec, err := st.ResumeSchedule(ctx, store.ResumeScheduleParams{Name: name})
				if err != nil {
					return err
				}
				return c.printScheduleChange(rec, "resumed")
			})
		},
	}
}

func (c *cli) printScheduleChange(rec *store.ScheduleRecord, done string) error {
	if c.jsonOutput() {
		return c.printJSON(api.NewScheduleView(rec))
	}
	fmt.Fprintf(c.stdout, "schedule %s %s (next run %s)\n", rec.Name, done, nextRun(rec))
	return nil
}

func (c *cli) cronTriggerCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "trigger NAME",
		Short: "Fire one run now, whatever the overlap policy and even while paused",
		Long: `Create the schedule's job or workflow now, as a run outside its slots: the
next scheduled run stays where it was. An agent leases the job at its next
poll.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			ctx := cmd.Context()
			return c.withStore(ctx, func(st store.Store) error {
				run, err := st.TriggerSchedule(ctx, store.TriggerScheduleParams{Name: name})
				if err != nil {
					return err
				}
				if c.jsonOutput() {
					return c.printJSON(api.NewScheduleRunView(run))
				}
				created := "nothing"
				switch {
				case run.JobID != nil:
					created = "job " + run.JobID.String()
				case run.WorkflowID != nil:
					created = "workflow " + run.WorkflowID.String()
				}
				fmt.Fprintf(c.stdout, "schedule %s triggered at %s: %s\n", name, formatTime(run.NominalTime), created)
				return nil
			})
		},
	}
}

func (c *cli) cronNextCommand() *cobra.Command {
	var (
		n        int
		expr     string
		timezone string
	)
	cmd := &cobra.Command{
		Use:   "next (NAME | --cron EXPR [--timezone TZ])",
		Short: "Preview the next fire times of a schedule, or of an expression without a database",
		Example: `  hw-agent cron next nightly -n 3
  hw-agent cron next --cron "0 2 * * 1-5" --timezone America/New_York`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if n < 1 || n > api.MaxPreview {
				return fmt.Errorf("-n %d must be between 1 and %d", n, api.MaxPreview)
			}
			switch {
			case len(args) == 1 && (expr != "" || cmd.Flags().Changed("timezone")):
				return errors.New("give a schedule NAME or --cron, not both")
			case len(args) == 1:
				ctx := cmd.Context()
				return c.withStore(ctx, func(st store.Store) error {
					rec, err := st.GetSchedule(ctx, args[0])
					if err != nil {
						return err
					}
					times, err := previewStored(ctx, st, rec, n)
					if err != nil {
						return err
					}
					return c.printPreview(api.SchedulePreview{Name: rec.Name, Cron: rec.Cron, Timezone: api.NewScheduleView(rec).Timezone, Times: times})
				})
			case expr == "":
				return errors.New("give a schedule NAME, or an expression with --cron")
			}
			def := store.ScheduleDef{Cron: expr, Timezone: timezone}
			times, err := api.FireTimes(def, time.Time{}, time.Now(), n)
			if err != nil {
				return scheduleFlagError("", err)
			}
			if timezone == "" {
				timezone = "UTC"
			}
			return c.printPreview(api.SchedulePreview{Cron: expr, Timezone: timezone, Times: times})
		},
	}
	fl := cmd.Flags()
	fl.IntVarP(&n, "n", "n", api.DefaultPreview, fmt.Sprintf("how many fire times (at most %d)", api.MaxPreview))
	fl.StringVar(&expr, "cron", "", "preview this expression instead of a stored schedule")
	fl.StringVar(&timezone, "timezone", "", "the expression's IANA time zone (default UTC)")
	return cmd
}

func (c *cli) printPreview(p api.SchedulePreview) error {
	if c.jsonOutput() {
		return c.printJSON(p)
	}
	return c.printTimes(p.Times, p.Timezone)
}
