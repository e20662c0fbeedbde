package agent

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
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
