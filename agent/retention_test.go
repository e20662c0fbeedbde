package agent

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/maintenance"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

func TestRetentionDefaultsFileEnvironmentAndValidation(t *testing.T) {
	t.Parallel()
	def := DefaultConfig().Retention
	require.Equal(t, time.Minute, def.Interval.D())
	require.Equal(t, 7*24*time.Hour, def.For(job.StatusCompleted))
	require.Equal(t, 30*24*time.Hour, def.For(job.StatusFailed))
	require.Equal(t, 30*24*time.Hour, def.For(job.StatusCancelled))
	require.Equal(t, 7*24*time.Hour, def.For(job.StatusSkipped))
	require.Zero(t, def.For(job.StatusRunning), "unfinished jobs have no retention")
	require.Equal(t, 500, def.BatchSize)

	path := writeConfig(t, `
[retention]
completed = "24h"
failed = "0s"
[retry]
jitter_mode = "additive"
`)
	cfg, err := LoadConfig(path, []string{"HW_RETENTION_INTERVAL=5m", "HW_RETENTION_BATCH_SIZE=100"})
	require.NoError(t, err)
	require.Equal(t, 24*time.Hour, cfg.Retention.For(job.StatusCompleted))
	require.Zero(t, cfg.Retention.For(job.StatusFailed), "0s keeps failed jobs forever")
	require.Equal(t, 5*time.Minute, cfg.Retention.Interval.D())
	require.Equal(t, 100, cfg.Retention.BatchSize)
	require.Equal(t, job.JitterAdditive, cfg.Retry.JitterMode)

	_, err = LoadConfig(writeConfig(t, "[retention]\nbatch_size = 0\n"), nil)
	require.ErrorContains(t, err, "retention.batch_size (0)")
	_, err = LoadConfig(writeConfig(t, "[retention]\nskipped = \"-1h\"\n"), nil)
	require.ErrorContains(t, err, "retention.skipped")
	_, err = LoadConfig(writeConfig(t, "[retry]\njitter_mode = \"both\"\n"), nil)
	require.ErrorContains(t, err, "retry.jitter_mode")

	bad := DefaultConfig()
	bad.Retention.Failed = job.Duration(-time.Hour)
	require.ErrorContains(t, bad.Validate(), "retention.failed (-1h0m0s) must not be negative")
	off := DefaultConfig()
	off.Retention.Interval = 0
	require.NoError(t, off.Validate(), "interval 0 turns the cleaner off")
	a, err := New(Params{Config: off, Store: newSQLite(t)})
	require.NoError(t, err)
	require.Nil(t, a.cleaner, "no cleaner runs with interval 0")
}

// cleanerWorkflow runs a continue_on_failure workflow through an agent whose
// app completes queue "q" and rejects queue "bad": step ok completes, step
// broken (which depends on it) fails. It returns the enqueued workflow and
// the cleaner's passes once the workflow has failed.
func cleanerWorkflow(t *testing.T, s store.Store, cfg func(*Config)) (*store.WorkflowEnqueued, <-chan maintenance.CleanResult) {
	t.Helper()
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		if c.queue == "bad" {
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		ok(w, r, c)
	})
	c := testConfig(t, a)
	c.Retention.Interval = job.Duration(10 * time.Millisecond)
	cfg(&c)
	def, err := workflow.New("kept_whole").WithFailurePolicy(workflow.ContinueOnFailure).
		Add(workflow.Step{Name: "ok", Queue: "q"}).
		Then(workflow.Step{Name: "broken", Queue: "bad", MaxAttempts: 1}).
		Build()
	require.NoError(t, err)
	res := enqueueWorkflow(t, s, def)
	passes := startCleaning(t, c, s, nil)
	eventually(t, "the workflow to fail", func() bool {
		select {
		case <-passes:
		default:
		}
		wf, err := s.GetWorkflow(t.Context(), res.Workflow.ID)
		require.NoError(t, err)
		return wf.Status == workflow.StatusFailed
	})
	return res, passes
}

func TestCleanerKeepsAFailedWorkflowWholeWhileItsFailedJobIsRetained(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	res, passes := cleanerWorkflow(t, s, func(c *Config) {
		c.Retention.Completed = job.Duration(time.Millisecond)
		c.Retention.Failed = job.Duration(time.Hour)
	})
	for range 2 { // the second pass starts after the workflow failed
		select {
		case p := <-passes:
			require.Zero(t, p.Workflows, "no workflow is past the failed retention")
			require.Zero(t, p.Deleted[job.StatusCompleted], "the completed step of a workflow never goes alone")
		case <-time.After(waitFor):
			t.Fatal("no cleaner pass")
		}
	}
	for _, id := range res.Jobs {
		_, err := s.Get(t.Context(), id)
		require.NoError(t, err, "every job of the workflow is kept")
	}
	_, err := s.RetryWorkflow(t.Context(), store.WorkflowParams{ID: res.Workflow.ID, Now: time.Now()})
	require.NoError(t, err, "the kept workflow can be retried")
}

func TestCleanerDeletesAFinishedWorkflowWhole(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	res, passes := cleanerWorkflow(t, s, func(c *Config) {
		c.Retention.Completed = job.Duration(time.Millisecond)
		c.Retention.Failed = job.Duration(time.Millisecond)
	})
	deleted := 0
	for deleted == 0 {
		select {
		case p := <-passes:
			deleted += p.Workflows
		case <-time.After(waitFor):
			t.Fatal("the cleaner never deleted the workflow")
		}
	}
	require.Equal(t, 1, deleted)
	_, err := s.GetWorkflow(t.Context(), res.Workflow.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "the workflow row went")
	for name, id := range res.Jobs {
		_, err := s.Get(t.Context(), id)
		require.ErrorIs(t, err, store.ErrNotFound, "step %s went with it", name)
	}
}
