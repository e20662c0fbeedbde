package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/job"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hw-agent.toml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

func TestDefaultConfigValidates(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	require.NoError(t, cfg.Validate())

	loaded, err := LoadConfig("", nil)
	require.NoError(t, err)
	require.NotEmpty(t, loaded.Agent.ID, "agent.id defaults to hostname-pid")
	require.Equal(t, []string{"*"}, loaded.Agent.Queues)
	require.Equal(t, "sqlite://hammerwork.db", loaded.Database.URL)
}

func TestEnvironmentOverridesFile(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
[database]
url = "sqlite://from-file.db"
[agent]
concurrency = 7
queues = ["a"]
`)
	cfg, err := LoadConfig(path, []string{
		"HW_DATABASE_URL=postgres://u@db/jobs",
		"HW_AGENT_CONCURRENCY=12",
		"HW_AGENT_QUEUES=emails, reports",
		"PATH=/usr/bin",
		"HW_TEST_POSTGRES_URL=ignored",
	})
	require.NoError(t, err)
	require.Equal(t, "postgres://u@db/jobs", cfg.Database.URL)
	require.Equal(t, 12, cfg.Agent.Concurrency)
	require.Equal(t, []string{"emails", "reports"}, cfg.Agent.Queues)
}

func TestEnvironmentRejectsUnknownVariableAndBadValue(t *testing.T) {
	t.Parallel()
	_, err := LoadConfig("", []string{"HW_AGENT_CONCURENCY=3"})
	require.ErrorContains(t, err, "HW_AGENT_CONCURENCY")
	_, err = LoadConfig("", []string{"HW_AGENT_CONCURRENCY=many"})
	require.ErrorContains(t, err, "HW_AGENT_CONCURRENCY")
}

func TestUnknownKeyErrorNamesTheKey(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
[agent]
concurency = 3
`)
	_, err := LoadConfig(path, nil)
	require.ErrorContains(t, err, "agent.concurency")
}

func TestLeaseDurationMustExceedRequestTimeout(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
[agent]
lease_duration = "30s"
[app]
request_timeout = "60s"
`)
	_, err := LoadConfig(path, nil)
	require.ErrorContains(t, err, "agent.lease_duration (30s)")
	require.ErrorContains(t, err, "app.request_timeout (1m0s)")

	cfg := DefaultConfig()
	cfg.Queues = []QueueConfig{{Name: "slow", RequestTimeout: job.Duration(2 * time.Minute)}}
	err = cfg.Validate()
	require.ErrorContains(t, err, "agent.lease_duration")
	require.ErrorContains(t, err, `queue "slow" request_timeout`)
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Agent.Concurrency = 0
	_, err := New(Params{Config: cfg, Store: nil})
	require.ErrorContains(t, err, "agent.concurrency (0)")
}

func TestTargetForPrefersJobThenQueueThenApp(t *testing.T) {
	t.Parallel()
	yes := true
	cfg := DefaultConfig()
	cfg.App.SigningSecret = "whsec_secret"
	cfg.App.MaxResultBytes = 512
	cfg.Queues = []QueueConfig{{
		Name: "mail", HandlerURL: "http://127.0.0.1:9000/mail/{queue}",
		RequestTimeout: job.Duration(10 * time.Second), Envelope: &yes,
	}}
	for name, tc := range map[string]struct {
		job  job.Job
		want dispatch.Target
	}{
		"app defaults": {
			job: job.Job{Queue: "reports"},
			want: dispatch.Target{URL: "http://127.0.0.1:8080/jobs/reports", Timeout: 60 * time.Second,
				SigningSecret: "whsec_secret", MaxResultBytes: 512},
		},
		"queue overrides": {
			job: job.Job{Queue: "mail"},
			want: dispatch.Target{URL: "http://127.0.0.1:9000/mail/mail", Timeout: 10 * time.Second, Envelope: true,
				SigningSecret: "whsec_secret", MaxResultBytes: 512},
		},
		"job timeout wins": {
			job: job.Job{Queue: "mail", Timeout: job.Duration(3 * time.Second)},
			want: dispatch.Target{URL: "http://127.0.0.1:9000/mail/mail", Timeout: 3 * time.Second, Envelope: true,
				SigningSecret: "whsec_secret", MaxResultBytes: 512},
		},
	} {
		require.Equal(t, tc.want, cfg.TargetFor(&tc.job), name)
	}
}

func TestRetryPolicyForPrefersJobThenQueueThenDefault(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Retry = job.RetryPolicy{Strategy: job.StrategyFixed, Initial: job.Duration(7 * time.Second)}
	cfg.Queues = []QueueConfig{{Name: "mail", Retry: &job.RetryPolicy{Strategy: job.StrategyLinear, Initial: job.Duration(time.Second)}}}
	own := &job.RetryPolicy{Strategy: job.StrategyFibonacci, Initial: job.Duration(2 * time.Second)}

	require.Equal(t, dispatch.WithDefaults(*own), cfg.RetryPolicyFor(&job.Job{Queue: "mail", RetryPolicy: own}))
	require.Equal(t, dispatch.WithDefaults(*cfg.Queues[0].Retry), cfg.RetryPolicyFor(&job.Job{Queue: "mail"}))
	require.Equal(t, dispatch.WithDefaults(cfg.Retry), cfg.RetryPolicyFor(&job.Job{Queue: "other"}))

	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	j := &job.Job{ID: uuid.New(), Queue: "other", Attempts: 1}
	require.Equal(t, now.Add(7*time.Second), cfg.RetryAt(j, now), "a fixed policy without jitter waits its initial delay")
}

func TestSelectionsGiveConfiguredQueuesTheirOwnProducer(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Queues = []QueueConfig{{Name: "a", Concurrency: 2}, {Name: "b"}}
	sels := cfg.selections()
	require.Len(t, sels, 3)
	require.Equal(t, []string{"a"}, sels[0].Queues)
	require.Equal(t, 2, sels[0].limit)
	require.Equal(t, []string{"b"}, sels[1].Queues)
	require.Empty(t, sels[2].Queues, "the wildcard producer leases from every queue")
	require.Equal(t, []string{"a", "b"}, sels[2].Exclude, "except those with their own producer")

	cfg.Agent.Queues = []string{"b", "c", "d"}
	sels = cfg.selections()
	require.Len(t, sels, 2)
	require.Equal(t, []string{"b"}, sels[0].Queues)
	require.Equal(t, []string{"c", "d"}, sels[1].Queues)
	require.Empty(t, sels[1].Exclude)
}
