package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// Dead letters are failed jobs (and cancelled ones) that stay in the table
// until retention deletes them. The bulk commands below act on many at once,
// so without --yes they only say how many jobs they would touch.

// withBulkRetry lets `job retry` take --queue/--status instead of an ID:
// every matching job is retried through the same store.Retry as one job,
// so workflow counters stay true.
func (c *cli) withBulkRetry(cmd *cobra.Command) *cobra.Command {
	var queue, status string
	var yes bool
	single := cmd.RunE
	cmd.Use = "retry ID | retry --status failed [--queue Q] [--yes]"
	cmd.Example = `  hw-agent job retry 0192f0c4-7a41-7c3e-9d2b-6f1e2d3c4b5a
  hw-agent job retry --queue emails --status failed          # says how many would be retried
  hw-agent job retry --queue emails --status failed --yes    # retries them`
	cmd.Args = cobra.RangeArgs(0, 1)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 1 {
			if queue != "" || status != "" || yes {
				return errors.New("give either a job ID or --status (with --queue and --yes), not both")
			}
			return single(cmd, args)
		}
		if status == "" {
			return errors.New("give a job ID, or --status failed (or cancelled) to retry many jobs")
		}
		st, err := job.ParseStatus(status)
		if err != nil {
			return fmt.Errorf("--status: %w", err)
		}
		if st != job.StatusFailed && st != job.StatusCancelled {
			return fmt.Errorf("--status %s: only failed or cancelled jobs can be retried", st)
		}
		if queue != "" && !store.ValidQueueName(queue) {
			return fmt.Errorf("--queue %q is not a valid queue name", queue)
		}
		return c.bulkRetry(cmd, queue, st, yes)
	}
	fl := cmd.Flags()
	fl.StringVar(&queue, "queue", "", "retry every matching job of this queue (default: every queue)")
	fl.StringVar(&status, "status", "", "retry every job in this status: failed or cancelled")
	fl.BoolVar(&yes, "yes", false, "really retry; without it the command only counts the jobs")
	return cmd
}

func (c *cli) bulkRetry(cmd *cobra.Command, queue string, status job.Status, yes bool) error {
	ctx := cmd.Context()
	st, err := c.openMigratedStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	where := describe(status, queue)
	if !yes {
		stats, err := st.QueueStats(ctx)
		if err != nil {
			return fmt.Errorf("count %s: %w", where, err)
		}
		var n int64
		for _, s := range stats {
			if s.Status == status && (queue == "" || s.Queue == queue) {
				n += s.Count
			}
		}
		if c.jsonOutput() {
			return c.printJSON(map[string]any{"would_retry": n, "status": status, "queue": queue})
		}
		fmt.Fprintf(c.stdout, "%d %s would be retried; add --yes to retry them\n", n, where)
		return nil
	}
	n, err := store.RetryMatching(ctx, st, store.RetryMatchingParams{Status: status, Queue: queue})
	if err != nil {
		return fmt.Errorf("retry %s (%d retried before the error): %w", where, n, err)
	}
	if c.jsonOutput() {
		return c.printJSON(map[string]any{"retried": n, "status": status, "queue": queue})
	}
	fmt.Fprintf(c.stdout, "retried %d %s\n", n, where)
	return nil
}

func (c *cli) jobPurgeCommand() *cobra.Command {
	var queue, status, olderThan string
	var yes bool
	cmd := &cobra.Command{
		Use:   "purge --status failed --older-than 7d [--queue Q] [--yes]",
		Short: "Delete finished jobs older than a given age, outside workflows",
		Long: `Delete finished jobs of one status that finished longer ago than --older-than,
counted from the database's clock. Without --yes it only counts them.

Jobs of a workflow are not purged: a workflow's retry and its jobs' conditions
read every job of it, so a finished workflow is deleted whole, with all its
jobs, by the agent's retention once every one of its jobs is past the
retention of its status ([retention] in the configuration).`,
		Example: `  hw-agent job purge --status failed --older-than 7d          # says how many would be deleted
  hw-agent job purge --status failed --older-than 7d --yes    # deletes them`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if status == "" {
				return errors.New("--status is required: completed, failed, cancelled or skipped")
			}
			st, err := job.ParseStatus(status)
			if err != nil {
				return fmt.Errorf("--status: %w", err)
			}
			if !st.Terminal() {
				return fmt.Errorf("--status %s: only finished jobs (completed, failed, cancelled, skipped) can be purged", st)
			}
			if olderThan == "" {
				return errors.New("--older-than is required (e.g. 7d, 36h, 90m; 0s for every age)")
			}
			age, err := parseAge(olderThan)
			if err != nil {
				return fmt.Errorf("--older-than: %w", err)
			}
			if queue != "" && !store.ValidQueueName(queue) {
				return fmt.Errorf("--queue %q is not a valid queue name", queue)
			}
			return c.purge(cmd, store.FinishedFilter{Status: st, Queue: queue}, age, olderThan, yes)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&status, "status", "", "delete jobs in this status: completed, failed, cancelled or skipped (required)")
	fl.StringVar(&olderThan, "older-than", "", "delete jobs that finished longer ago than this: a Go duration or days (7d) (required)")
	fl.StringVar(&queue, "queue", "", "only this queue (default: every queue)")
	fl.BoolVar(&yes, "yes", false, "really delete; without it the command only counts the jobs")
	return cmd
}

// purge deletes (or, without yes, counts) the jobs of f that finished more
// than age before the database's now: the clock that stamped their finish.
func (c *cli) purge(cmd *cobra.Command, f store.FinishedFilter, age time.Duration, olderThan string, yes bool) error {
	ctx := cmd.Context()
	st, err := c.openMigratedStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	where := describe(f.Status, f.Queue) + " older than " + olderThan
	now, err := st.DatabaseNow(ctx)
	if err != nil {
		return fmt.Errorf("purge %s: %w", where, err)
	}
	f.Before = now.Add(-age)
	if !yes {
		n, err := st.CountFinished(ctx, f)
		if err != nil {
			return fmt.Errorf("count %s: %w", where, err)
		}
		if c.jsonOutput() {
			return c.printJSON(map[string]any{"would_delete": n, "status": f.Status, "queue": f.Queue})
		}
		fmt.Fprintf(c.stdout, "%d %s would be deleted; add --yes to delete them\n", n, where)
		return nil
	}
	deleted := 0
	for {
		n, err := st.DeleteFinished(ctx, store.DeleteFinishedParams{FinishedFilter: f, Limit: store.DefaultCleanLimit})
		deleted += n
		if err != nil {
			return fmt.Errorf("delete %s (%d deleted before the error): %w", where, deleted, err)
		}
		if n < store.DefaultCleanLimit {
			break
		}
	}
	if c.jsonOutput() {
		return c.printJSON(map[string]any{"deleted": deleted, "status": f.Status, "queue": f.Queue})
	}
	fmt.Fprintf(c.stdout, "deleted %d %s\n", deleted, where)
	return nil
}

// describe names a selection of jobs for the command's output.
func describe(status job.Status, queue string) string {
	if queue == "" {
		return fmt.Sprintf("%s jobs", status)
	}
	return fmt.Sprintf("%s jobs on queue %s", status, queue)
}

// parseAge reads a Go duration or a whole number of days ("7d"), which Go
// durations lack and retention is usually thought of in.
func parseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("%q is not a number of days (e.g. 7d)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 7d, 36h, 90m)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q must not be negative", s)
	}
	return d, nil
}
