package main

import (
	"fmt"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/store"
)

func (c *cli) batchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "batch",
		Short: "Show batches (jobs enqueued together with POST /v1/jobs/batch, or a workflow's batch step)",
	}
	cmd.AddCommand(c.batchShowCommand())
	return cmd
}

func (c *cli) batchShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a batch: its status, counters and, for collect_errors, its failed jobs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := uuid.Parse(args[0])
			if err != nil {
				return fmt.Errorf("batch ID %q is not a UUID", args[0])
			}
			return c.withStore(cmd.Context(), func(st store.Store) error {
				b, err := st.GetBatch(cmd.Context(), id)
				if err != nil {
					return fmt.Errorf("get batch %s: %w", id, err)
				}
				if c.jsonOutput() {
					return c.printJSON(b)
				}
				c.printBatch(b)
				return nil
			})
		},
	}
}

// printBatch writes a batch as "key: value" lines, then its errors.
func (c *cli) printBatch(b *store.Batch) {
	fmt.Fprintf(c.stdout, "id: %s\n", b.ID)
	if b.Name != "" {
		fmt.Fprintf(c.stdout, "name: %s\n", b.Name)
	}
	fmt.Fprintf(c.stdout, "status: %s\nfailure_mode: %s\n", b.Status, b.FailureMode)
	fmt.Fprintf(c.stdout, "jobs: %d total, %d pending, %d completed, %d failed, %d cancelled\n",
		b.TotalJobs, b.PendingJobs, b.CompletedJobs, b.FailedJobs, b.CancelledJobs)
	fmt.Fprintf(c.stdout, "created_at: %s\n", formatTime(b.CreatedAt))
	if b.CompletedAt != nil {
		fmt.Fprintf(c.stdout, "completed_at: %s\n", formatTime(*b.CompletedAt))
	}
	for _, e := range b.Errors {
		fmt.Fprintf(c.stdout, "error: %s %s\n", e.JobID, oneLine(e.Error))
	}
}
