package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

func (c *cli) queueCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "List queues, show their statistics, pause and resume them directly in the database",
		Long: `A pause is stored in the database, so every agent sharing it stops leasing the
queue with its next lease; requests already in flight finish. A queue can be
paused before it has jobs.`,
	}
	cmd.AddCommand(c.queueListCommand(), c.queueStatsCommand(), c.queuePauseCommand(), c.queueResumeCommand())
	return cmd
}

// queueViews reads queues (one, or all when name is empty) as the API shows them.
func (c *cli) queueViews(ctx context.Context, name string) ([]api.QueueView, error) {
	st, err := c.openMigratedStore(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	infos, err := st.Queues(ctx, store.QueuesParams{Queue: name})
	if err != nil {
		return nil, fmt.Errorf("describe queues: %w", err)
	}
	now, err := st.DatabaseNow(ctx)
	if err != nil {
		return nil, fmt.Errorf("describe queues: %w", err)
	}
	views := make([]api.QueueView, len(infos))
	for i, q := range infos {
		views[i] = api.NewQueueView(q, now)
	}
	return views, nil
}

func (c *cli) queueListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List every queue with its depth by status, pause, latency and throughput",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			views, err := c.queueViews(cmd.Context(), "")
			if err != nil {
				return err
			}
			if c.jsonOutput() {
				return c.printJSON(map[string]any{"queues": views})
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "QUEUE\tPAUSED\tPENDING\tRUNNING\tCOMPLETED\tFAILED\tCANCELLED\tSKIPPED\tOLDEST PENDING\tDONE/MIN")
			for _, v := range views {
				d := v.Depth
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\n", v.Name, yesNo(v.Paused),
					d[job.StatusPending], d[job.StatusRunning], d[job.StatusCompleted], d[job.StatusFailed],
					d[job.StatusCancelled], d[job.StatusSkipped], age(v.OldestPendingAgeSeconds), v.ThroughputPerMinute)
			}
			if err := tw.Flush(); err != nil {
				return fmt.Errorf("write table: %w", err)
			}
			return nil
		},
	}
}

func (c *cli) queueStatsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "stats [QUEUE]",
		Short: "Show one queue's statistics in detail, or every queue's",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
				if err := store.ValidateQueueName(name); err != nil {
					return err
				}
			}
			views, err := c.queueViews(cmd.Context(), name)
			if err != nil {
				return err
			}
			if name != "" && len(views) == 0 {
				return fmt.Errorf("queue %q has no jobs and no pause", name)
			}
			if c.jsonOutput() {
				if name != "" {
					return c.printJSON(views[0])
				}
				return c.printJSON(map[string]any{"queues": views})
			}
			for i, v := range views {
				if i > 0 {
					fmt.Fprintln(c.stdout)
				}
				if err := c.printQueueStats(v); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func (c *cli) printQueueStats(v api.QueueView) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Queue:\t%s\n", v.Name)
	paused := "no"
	if v.Paused {
		paused = "yes"
		if v.PausedAt != nil {
			paused += " (since " + formatTime(*v.PausedAt)
			if v.PausedBy != "" {
				paused += ", by " + v.PausedBy
			}
			paused += ")"
		}
	}
	fmt.Fprintf(tw, "Paused:\t%s\n", paused)
	for _, st := range job.Statuses {
		fmt.Fprintf(tw, "%s:\t%d\n", capitalize(string(st)), v.Depth[st])
	}
	fmt.Fprintf(tw, "Oldest pending:\t%s\n", age(v.OldestPendingAgeSeconds))
	fmt.Fprintf(tw, "Completed last minute:\t%d\n", v.ThroughputPerMinute)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	return nil
}

func (c *cli) queuePauseCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "pause QUEUE",
		Short: "Stop every agent from leasing the queue; jobs in flight finish",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.setPaused(cmd.Context(), args[0], true)
		},
	}
}

func (c *cli) queueResumeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "resume QUEUE",
		Short: "Let agents lease the queue again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.setPaused(cmd.Context(), args[0], false)
		},
	}
}

func (c *cli) setPaused(ctx context.Context, name string, paused bool) error {
	if err := store.ValidateQueueName(name); err != nil {
		return err
	}
	st, err := c.openMigratedStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	op, done := "resume", "resumed"
	if paused {
		op, done = "pause", "paused"
		err = st.PauseQueue(ctx, store.PauseQueueParams{Queue: name, By: "cli"})
	} else {
		err = st.ResumeQueue(ctx, store.ResumeQueueParams{Queue: name})
	}
	if err != nil {
		return fmt.Errorf("%s queue %q: %w", op, name, err)
	}
	if !c.jsonOutput() {
		fmt.Fprintf(c.stdout, "queue %s %s\n", name, done)
		return nil
	}
	infos, err := st.Queues(ctx, store.QueuesParams{Queue: name})
	if err != nil {
		return fmt.Errorf("describe queue %q: %w", name, err)
	}
	now, err := st.DatabaseNow(ctx)
	if err != nil {
		return fmt.Errorf("describe queue %q: %w", name, err)
	}
	info := store.QueueInfo{Name: name}
	if len(infos) == 1 {
		info = infos[0]
	}
	// A resumed queue without jobs has no row: show it with zero depth.
	return c.printJSON(api.NewQueueView(store.MergeQueues([]store.QueueInfo{info}, nil, "")[0], now))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// age renders a wait in seconds as a rounded duration; "-" when none waits.
func age(seconds float64) string {
	if seconds <= 0 {
		return "-"
	}
	return time.Duration(seconds * float64(time.Second)).Round(time.Second).String()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
