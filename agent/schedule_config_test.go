package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/schedule"
)

// A [[schedule]] entry becomes the store's definition: a TOML table
// payload is converted to JSON, a string payload is JSON text, policies and
// times carry over, and [schedules] defaults to a 1s interval without
// pruning.
func TestScheduleEntriesBecomeDefinitions(t *testing.T) {
	t.Parallel()
	require.Equal(t, time.Second, DefaultConfig().Schedules.Interval.D())
	require.False(t, DefaultConfig().Schedules.Prune)

	path := writeConfig(t, `
[schedules]
interval = "500ms"
prune = true

[[schedule]]
name = "nightly-report"
cron = "0 3 * * *"
timezone = "Europe/Berlin"
overlap = "allow"
catchup = "all"
catchup_window = "6h"
jitter = "30s"
start_at = 2026-01-01T00:00:00Z
end_at = "2027-01-01T00:00:00+01:00"
paused = true
queue = "reports"
payload = { report = "daily", rows = [1, 2] }
priority = "high"
max_attempts = 3
timeout = "5m"
unique_key = "nightly"
result_ttl = "24h"
[schedule.retry]
strategy = "fixed"
initial = "1s"

[[schedule]]
name = "ping"
cron = "@every 1s"
queue = "pings"
payload = '{"ping": true}'
`)
	cfg, err := LoadConfig(path, []string{"HW_SCHEDULES_INTERVAL=2s"})
	require.NoError(t, err)
	require.Equal(t, 2*time.Second, cfg.Schedules.Interval.D())
	require.True(t, cfg.Schedules.Prune)
	require.Len(t, cfg.Schedule, 2)

	d, err := cfg.Schedule[0].def()
	require.NoError(t, err)
	require.NoError(t, d.Validate())
	require.Equal(t, "nightly-report", d.Name)
	require.Equal(t, "Europe/Berlin", d.Timezone)
	require.Equal(t, schedule.OverlapAllow, d.Overlap)
	require.Equal(t, schedule.CatchupAll, d.Catchup)
	require.Equal(t, 6*time.Hour, d.CatchupWindow.D())
	require.Equal(t, 30*time.Second, d.Jitter.D())
	require.True(t, d.StartAt.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	require.True(t, d.EndAt.Equal(time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)))
	require.True(t, *cfg.Schedule[0].Paused)
	tpl := d.Target.Job
	require.NotNil(t, tpl)
	require.Nil(t, d.Target.Workflow)
	require.Equal(t, "reports", tpl.Queue)
	require.JSONEq(t, `{"report": "daily", "rows": [1, 2]}`, string(tpl.Payload))
	require.Equal(t, job.PriorityHigh, *tpl.Priority)
	require.Equal(t, 3, tpl.MaxAttempts)
	require.Equal(t, 5*time.Minute, tpl.Timeout.D())
	require.Equal(t, "nightly", tpl.UniqueKey)
	require.Equal(t, 24*time.Hour, tpl.ResultTTL.D())
	require.Equal(t, job.StrategyFixed, tpl.Retry.Strategy)

	d, err = cfg.Schedule[1].def()
	require.NoError(t, err)
	require.Equal(t, json.RawMessage(`{"ping": true}`), d.Target.Job.Payload)
	require.Nil(t, cfg.Schedule[1].Paused, "paused unset leaves the stored pause alone")
}

// workflow_file is read with the workflow create command's loader, relative
// to the configuration file's directory.
func TestScheduleWorkflowFileIsReadRelativeToTheConfig(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
[[schedule]]
name = "etl"
cron = "@hourly"
workflow_file = "etl.yaml"
`)
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(path), "etl.yaml"), []byte(`
name: etl
jobs:
  - name: extract
    queue: etl
  - name: load
    queue: etl
    depends_on: [extract]
`), 0o600))
	cfg, err := LoadConfig(path, nil)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(filepath.Dir(path), "etl.yaml"), cfg.Schedule[0].WorkflowFile)
	d, err := cfg.Schedule[0].def()
	require.NoError(t, err)
	require.Nil(t, d.Target.Job)
	require.Equal(t, "etl", d.Target.Workflow.Name)
	require.Len(t, d.Target.Workflow.Steps, 2)
}

// Every bad entry stops start-up with a message naming its key, all of
// them at once.
func TestBadScheduleEntriesNameTheirKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badWorkflow := filepath.Join(dir, "cycle.json")
	require.NoError(t, os.WriteFile(badWorkflow, []byte(`{"name": "c", "jobs": [
		{"name": "a", "queue": "q", "depends_on": ["b"]}, {"name": "b", "queue": "q", "depends_on": ["a"]}]}`), 0o600))
	cfg := DefaultConfig()
	cfg.Schedules.Interval = 0
	cfg.Schedule = []ScheduleConfig{
		{Name: "ok", Cron: "@daily", Queue: "q"},
		{Name: "bad-cron", Cron: "61 * * * *", Timezone: "Mars/Olympus", Overlap: "sometimes", Queue: "q", MaxAttempts: -1},
		{Name: "ok", Cron: "@daily", Queue: "q"},
		{Name: "no-target", Cron: "@daily"},
		{Name: "both", Cron: "@daily", Queue: "q", WorkflowFile: badWorkflow},
		{Name: "wf", Cron: "@daily", WorkflowFile: badWorkflow, UniqueKey: "k", Payload: SchedulePayload(`{}`)},
		{Name: "missing", Cron: "@daily", WorkflowFile: filepath.Join(dir, "absent.yaml")},
		{Name: "when", Cron: "@daily", Queue: "q", StartAt: "tomorrow", Jitter: job.Duration(-time.Second)},
		{Name: "self", Cron: "@every 1m", Queue: "q", DependsOnSchedule: "self", Jitter: job.Duration(2 * time.Minute)},
	}
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"schedules.interval must be positive",
		"schedule[1].cron: ",
		"schedule[1].timezone: ",
		`schedule[1].overlap: "sometimes"`,
		"schedule[1]: max_attempts -1",
		`schedule[2].name "ok" is schedule[0]'s name too`,
		"schedule[3]: needs a target: queue (a job) or workflow_file (a workflow)",
		"schedule[4]: queue and workflow_file are both set",
		"schedule[5].payload: only a job target",
		"schedule[5].unique_key: only a job target",
		"schedule[5].workflow_file " + badWorkflow + ": ",
		"schedule[6].workflow_file: ",
		`schedule[7].start_at: "tomorrow" is not an RFC 3339 date-time`,
		"schedule[8].depends_on_schedule: a schedule cannot depend on itself",
		"schedule[8].jitter: ",
	} {
		require.ErrorContains(t, err, want)
	}
	require.NotContains(t, err.Error(), "schedule[0].")
	require.NotContains(t, err.Error(), "schedule[0]:")

	_, err = LoadConfig(writeConfig(t, "[[schedule]]\nname = \"x\"\ncron = \"@daily\"\nqueue = \"q\"\nstart_at = 2026-01-01T00:00:00\n"), nil)
	require.ErrorContains(t, err, "has no offset")
	_, err = LoadConfig(writeConfig(t, "[[schedule]]\nname = \"x\"\ncron = \"@daily\"\nqueue = \"q\"\npayload = \"not json\"\n"), nil)
	require.ErrorContains(t, err, "is not JSON text")
	_, err = LoadConfig(writeConfig(t, "[[schedule]]\nname = \"x\"\ncron = \"@daily\"\nqueue = \"q\"\nqueu = \"typo\"\n"), nil)
	require.ErrorContains(t, err, "schedule.queu")
}
