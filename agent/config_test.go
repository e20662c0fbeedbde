package agent

import (
	"os"
	"path/filepath"
	"strings"
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
	require.Equal(t, "http://127.0.0.1:8080/jobs/{queue}", loaded.App.HandlerURL)
	require.Equal(t, "127.0.0.1:9090", loaded.API.Listen)
	require.Empty(t, loaded.App.HealthURL, "no health gate by default")
	require.Empty(t, loaded.API.Token, "no auth by default")
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

func TestCompleteFlushIntervalIsAcceptedAndIgnored(t *testing.T) {
	t.Parallel()
	// Files written for the flush-interval completer still load, whatever
	// the value: group commit has no wait for it to bound.
	for _, v := range []string{`"0s"`, `"30s"`, `"20ms"`} {
		path := writeConfig(t, `
[agent]
lease_duration = "90s"
complete_flush_interval = `+v+`
`)
		_, err := LoadConfig(path, nil)
		require.NoError(t, err, v)
	}
}

func TestMaxLeaseExtensionDefaultsToAnHourAndCoversTheLease(t *testing.T) {
	t.Parallel()
	require.Equal(t, job.Duration(time.Hour), DefaultConfig().Agent.MaxLeaseExtension)
	cfg, err := LoadConfig("", []string{"HW_AGENT_MAX_LEASE_EXTENSION=10m"})
	require.NoError(t, err)
	require.Equal(t, job.Duration(10*time.Minute), cfg.Agent.MaxLeaseExtension)

	path := writeConfig(t, `
[agent]
max_lease_extension = "1m"
`)
	_, err = LoadConfig(path, nil)
	require.ErrorContains(t, err, "agent.max_lease_extension (1m0s) must be at least agent.lease_duration (1m30s)")
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

	j := &job.Job{ID: uuid.New(), Queue: "other", Attempts: 1}
	require.Equal(t, 7*time.Second, dispatch.RetryDelay(cfg.RetryPolicyFor(j), j.Attempts), "a fixed policy without jitter waits its initial delay")
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

// TestEveryBadValueNamesItsKey sets each key to a bad value, in the file and
// through its HW_ variable, and requires the start-up error to name it.
func TestEveryBadValueNamesItsKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		section, key, file, env, named string
	}{
		{"database", "url", `"oracle://db"`, "oracle://db", "database.url"},
		{"database", "url", `""`, "", "database.url"},
		{"database", "max_conns", `0`, "0", "database.max_conns"},
		{"database", "max_conns", `"ten"`, "ten", "max_conns"},
		{"agent", "queues", `["bad queue"]`, "bad queue", "agent.queues"},
		{"agent", "queues", `[]`, "", "agent.queues"},
		{"agent", "concurrency", `0`, "0", "agent.concurrency"},
		{"agent", "concurrency", `-3`, "-3", "agent.concurrency"},
		{"agent", "lease_duration", `"1s"`, "1s", "agent.lease_duration"},
		{"agent", "lease_duration", `"soon"`, "soon", "lease_duration"},
		{"agent", "poll_interval", `"0s"`, "0s", "agent.poll_interval"},
		{"agent", "poll_interval", `"-1s"`, "-1s", "agent.poll_interval"},
		{"agent", "drain_timeout", `"-1s"`, "-1s", "agent.drain_timeout"},
		{"agent", "drain_timeout", `"later"`, "later", "drain_timeout"},
		{"agent", "rescue_interval", `"0s"`, "0s", "agent.rescue_interval"},
		{"agent", "max_lease_extension", `"0s"`, "0s", "agent.max_lease_extension"},
		{"agent", "max_lease_extension", `"forever"`, "forever", "max_lease_extension"},
		{"app", "handler_url", `"ftp://app/jobs"`, "ftp://app/jobs", "app.handler_url"},
		{"app", "handler_url", `"http://"`, "http://", "app.handler_url"},
		{"app", "health_url", `"not a url"`, "not a url", "app.health_url"},
		{"app", "health_interval", `"0s"`, "0s", "app.health_interval"},
		{"app", "request_timeout", `"0s"`, "0s", "app.request_timeout"},
		{"app", "request_timeout", `"2m"`, "2m", "app.request_timeout"},
		{"app", "signing_secret", `"whsec_%%%"`, "whsec_%%%", "app.signing_secret"},
		{"app", "envelope", `"yes please"`, "yes please", "envelope"},
		{"app", "max_result_bytes", `-1`, "-1", "app.max_result_bytes"},
		{"api", "max_body_bytes", `0`, "0", "api.max_body_bytes"},
		{"log", "format", `"xml"`, "xml", "log.format"},
		{"log", "level", `"loud"`, "loud", "log.level"},
	}
	for _, tt := range tests {
		t.Run(tt.section+"."+tt.key+"="+tt.env, func(t *testing.T) {
			t.Parallel()
			path := writeConfig(t, "["+tt.section+"]\n"+tt.key+" = "+tt.file+"\n")
			_, err := LoadConfig(path, nil)
			require.ErrorContains(t, err, tt.named, "in the file")

			env := "HW_" + strings.ToUpper(tt.section+"_"+tt.key)
			_, err = LoadConfig("", []string{env + "=" + tt.env})
			require.Error(t, err, "through %s", env)
			if !strings.Contains(err.Error(), env) {
				require.ErrorContains(t, err, tt.named, "through %s", env)
			}
		})
	}
}
