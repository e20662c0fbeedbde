package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/maintenance"
)

// testSecret and otherSecret are Standard Webhooks secrets ("whsec_" +
// base64 of a key).
const (
	testSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	otherSecret = "whsec_c2Vjb25kLXNpZ25pbmcta2V5LWZvci1yb3RhdGlvbg=="
)

// [events] defaults to the relay's defaults, every key can be set in the
// file or from HW_EVENTS_*, and the section becomes the relay's settings.
func TestEventsSectionSetsTheRelay(t *testing.T) {
	t.Parallel()
	def := DefaultConfig().Events
	require.Equal(t, maintenance.RelayConfig{
		Interval: maintenance.DefaultRelayInterval, Batch: maintenance.DefaultRelayBatch,
		ClaimTTL: maintenance.DefaultRelayClaimTTL, Retention: maintenance.DefaultEventRetention,
	}, def.relayConfig())
	require.Equal(t, 24*time.Hour, def.Retention.D())

	path := writeConfig(t, `
[events]
retention = "1h"
interval = "100ms"
batch = 50
`)
	cfg, err := LoadConfig(path, []string{"HW_EVENTS_CLAIM_TTL=5s"})
	require.NoError(t, err)
	require.Equal(t, maintenance.RelayConfig{Interval: 100 * time.Millisecond, Batch: 50, ClaimTTL: 5 * time.Second, Retention: time.Hour},
		cfg.Events.relayConfig())
}

func TestEventsSectionRejectsBadValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, toml, want string
	}{
		{"zero retention", `retention = "0s"`, "events.retention (0s) must be positive"},
		{"zero interval", `interval = "0s"`, "events.interval (0s) must be positive"},
		{"zero claim ttl", `claim_ttl = "0s"`, "events.claim_ttl (0s) must be positive"},
		{"zero batch", `batch = 0`, "events.batch (0) must be between 1 and 10000"},
		{"huge batch", `batch = 20000`, "events.batch (20000) must be between 1 and 10000"},
		{"claim within a pass", "interval = \"2s\"\nclaim_ttl = \"1s\"", "events.claim_ttl (1s) must exceed events.interval (2s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadConfig(writeConfig(t, "[events]\n"+tc.toml+"\n"), nil)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// A [[webhook]] entry is a webhook.Def: the filter and policy keys sit
// flat beside the webhook's own, and enabled defaults to true.
func TestWebhookEntriesBecomeDefinitions(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
[[webhook]]
name = "orders"
url = "https://192.0.2.10/hammerwork"
secrets = ["`+testSecret+`", "`+otherSecret+`"]
events = ["job.completed", "job.failed", "workflow.*"]
queues = ["orders"]
priorities = [3, 4]
workflow_names = ["checkout"]
include_payload = true
include_result = true
timeout = "5s"
concurrency = 4
max_attempts = 3
retry_initial = "2s"
retry_max = "1m"
max_failures = 5

[[webhook]]
name = "audit"
url = "http://10.0.0.7:8080/events"
enabled = false
`)
	cfg, err := LoadConfig(path, nil)
	require.NoError(t, err)
	require.Len(t, cfg.Webhooks, 2)
	enabled := false
	require.Equal(t, webhook.Def{
		Name: "orders", URL: "https://192.0.2.10/hammerwork", Secrets: []string{testSecret, otherSecret},
		Policy: events.Policy{
			Filter: events.Filter{Types: []string{"job.completed", "job.failed", "workflow.*"}, Queues: []string{"orders"},
				Priorities: []int{3, 4}, WorkflowNames: []string{"checkout"}},
			MaxAttempts: 3, RetryInitial: job.Duration(2 * time.Second), RetryMax: job.Duration(time.Minute), MaxFailures: 5,
		},
		IncludePayload: true, IncludeResult: true, Timeout: job.Duration(5 * time.Second), Concurrency: 4,
	}, cfg.Webhooks[0])
	require.True(t, cfg.Webhooks[0].IsEnabled())
	require.Equal(t, webhook.Def{Name: "audit", URL: "http://10.0.0.7:8080/events", Enabled: &enabled}, cfg.Webhooks[1])
	require.False(t, cfg.Webhooks[1].IsEnabled())
}

// Every problem of a [[webhook]] stops start-up with the entry's key, as
// the [[schedule]] errors do.
func TestWebhookEntriesRejectBadValues(t *testing.T) {
	t.Parallel()
	ok := "name = \"ok\"\nurl = \"http://10.0.0.7/hooks\"\n"
	for _, tc := range []struct {
		name, second, want string
	}{
		{"no url", `name = "b"`, "webhook[1].url: is required"},
		{"not http", "name = \"b\"\nurl = \"ftp://example.com/x\"", `webhook[1].url: "ftp://example.com/x" is not an http or https URL`},
		{"malformed url", "name = \"b\"\nurl = \"http://[::1\"", "webhook[1].url: "},
		{"no name", `url = "http://10.0.0.7/b"`, "webhook[1].name: is required"},
		{"unknown event type", "name = \"b\"\nurl = \"http://10.0.0.7/b\"\nevents = [\"job.exploded\"]", `webhook[1].events[0]: "job.exploded" matches no event type`},
		{"bad secret", "name = \"b\"\nurl = \"http://10.0.0.7/b\"\nsecrets = [\"hunter2\"]", "webhook[1].secrets[0]: is not a Standard Webhooks secret"},
		{"bad priority", "name = \"b\"\nurl = \"http://10.0.0.7/b\"\npriorities = [7]", "webhook[1].priorities[0]: 7 is not a priority level"},
		{"duplicate name", "name = \"ok\"\nurl = \"http://10.0.0.7/b\"", `webhook[1].name "ok" is webhook[0]'s name too`},
		{"own api", "name = \"b\"\nurl = \"http://127.0.0.1:9090/v1/jobs\"", "webhook[1].url: \"http://127.0.0.1:9090/v1/jobs\" resolves to this agent's own API listener"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadConfig(writeConfig(t, "[[webhook]]\n"+ok+"\n[[webhook]]\n"+tc.second+"\n"), nil)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "webhook[0]:", "the valid entry is not reported")
		})
	}
	_, err := LoadConfig(writeConfig(t, "[[webhook]]\n"+ok+"filter = \"job.*\"\n"), nil)
	require.ErrorContains(t, err, "unknown key webhook.filter")
}

// The agent's own API address counts as itself only while the API is on.
func TestWebhookToOwnPortAllowedWithoutAPI(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, "[api]\nlisten = \"off\"\n[[webhook]]\nname = \"loop\"\nurl = \"http://127.0.0.1:9090/hooks\"\n")
	_, err := LoadConfig(path, nil)
	require.NoError(t, err)
}

// A secret written "env:NAME" is NAME's value, so the file carries no
// secret; the variable is no configuration key (an HW_ one is not
// refused as unknown), and a missing one names the key, never a value.
func TestWebhookSecretsFromTheEnvironment(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
[[webhook]]
name = "orders"
url = "http://10.0.0.7/hooks"
secrets = ["env:HW_WEBHOOK_ORDERS_SECRET", "`+otherSecret+`"]
`)
	cfg, err := LoadConfig(path, []string{"HW_WEBHOOK_ORDERS_SECRET=" + testSecret, "HW_AGENT_CONCURRENCY=7"})
	require.NoError(t, err)
	require.Equal(t, []string{testSecret, otherSecret}, cfg.Webhooks[0].Secrets)
	require.Equal(t, 7, cfg.Agent.Concurrency)

	_, err = LoadConfig(path, []string{"HW_AGENT_CONCURRENCY=7"})
	require.EqualError(t, err, "webhook[0].secrets[0]: environment variable HW_WEBHOOK_ORDERS_SECRET is not set")

	_, err = LoadConfig(path, []string{"HW_WEBHOOK_ORDERS_SECRET=not-a-whsec-secret"})
	require.ErrorContains(t, err, "webhook[0].secrets[0]: is not a Standard Webhooks secret")
	require.NotContains(t, err.Error(), "not-a-whsec-secret", "a secret's value is never in a message")

	_, err = LoadConfig(path, []string{"HW_WEBHOOK_ORDERS_SECRET=" + testSecret, "HW_WEBHOOK_OTHER_SECRET=" + testSecret})
	require.ErrorContains(t, err, "environment variable HW_WEBHOOK_OTHER_SECRET names no configuration key")
	require.False(t, strings.Contains(err.Error(), testSecret))
}
