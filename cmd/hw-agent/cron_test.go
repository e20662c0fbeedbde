package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/api"
)

// noon fires at 12:00 in Berlin every day, so its times are the same local
// time whatever the date the test runs on.
var noon = []string{"--cron", "0 12 * * *", "--timezone", "Europe/Berlin"}

func cron(t *testing.T, db string, args ...string) cliResult {
	t.Helper()
	return hw(t, nil, append(append([]string{"cron"}, args...), "--database-url", db)...)
}

func cronJSON(t *testing.T, db string, v any, args ...string) {
	t.Helper()
	r := cron(t, db, append(args, "--output", "json")...)
	requireOK(t, r)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), v), r.stdout)
}

// requireNoon checks that every time is a 12:00 in Berlin, in the future.
func requireNoon(t *testing.T, times []time.Time) {
	t.Helper()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	for i, at := range times {
		require.Equal(t, time.UTC, at.Location(), at)
		require.True(t, at.After(time.Now().Add(-time.Minute)), at)
		local := at.In(berlin)
		require.Equal(t, []int{12, 0, 0}, []int{local.Hour(), local.Minute(), local.Second()}, at)
		if i > 0 {
			require.Equal(t, times[i-1].In(berlin).AddDate(0, 0, 1).Format(time.DateOnly), local.Format(time.DateOnly), "one a day")
		}
	}
}

func TestCronAddListShowPauseResumeTriggerRemove(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	add := append([]string{"add", "nightly", "--queue", "reports", "--payload", `{"kind":"daily"}`, "--max-attempts", "3"}, noon...)

	r := cron(t, db, add...)
	requireOK(t, r)
	require.Regexp(t, `^schedule nightly created \(0 12 \* \* \* in Europe/Berlin, next run \d{4}-\d\d-\d\dT1[01]:00:00Z\)\n$`, r.stdout)
	r = cron(t, db, add...)
	requireOK(t, r)
	require.Contains(t, r.stdout, "schedule nightly unchanged", "the same definition again changes nothing")

	var changed struct {
		Outcome  string           `json:"outcome"`
		Schedule api.ScheduleView `json:"schedule"`
	}
	cronJSON(t, db, &changed, append(add, "--overlap", "allow")...)
	require.Equal(t, "changed", changed.Outcome)
	require.EqualValues(t, "allow", changed.Schedule.Overlap)
	require.Equal(t, "reports", changed.Schedule.Target.Job.Queue)
	require.Equal(t, 3, changed.Schedule.Target.Job.MaxAttempts)
	require.JSONEq(t, `{"kind":"daily"}`, string(changed.Schedule.Target.Job.Payload))

	wf := writeFile(t, "etl.yaml", chainYAML)
	r = cron(t, db, "add", "etl", "--cron", "@every 1h", "--workflow-file", wf)
	requireOK(t, r)
	require.Contains(t, r.stdout, "schedule etl created (@every 1h in UTC")

	table := cron(t, db, "list")
	requireOK(t, table)
	require.Regexp(t, `NAME\s+CRON\s+TIMEZONE\s+TARGET\s+PAUSED\s+NEXT RUN\s+LAST RUN`, table.stdout)
	require.Regexp(t, `etl\s+@every 1h\s+UTC\s+workflow reports\s+no\s+\S+Z\s+-`, table.stdout)
	require.Regexp(t, `nightly\s+0 12 \* \* \*\s+Europe/Berlin\s+job on reports\s+no\s+\S+Z\s+-`, table.stdout)
	var list struct {
		Schedules  []api.ScheduleView `json:"schedules"`
		NextCursor string             `json:"next_cursor"`
	}
	cronJSON(t, db, &list, "list", "--limit", "1")
	require.Len(t, list.Schedules, 1)
	require.Equal(t, "etl", list.Schedules[0].Name)
	require.Equal(t, "etl", list.NextCursor)
	var rest struct {
		Schedules []api.ScheduleView `json:"schedules"`
	}
	cronJSON(t, db, &rest, "list", "--cursor", "etl")
	require.Len(t, rest.Schedules, 1)
	require.Equal(t, "nightly", rest.Schedules[0].Name)
	require.Equal(t, changed.Schedule.UpdatedAt, rest.Schedules[0].UpdatedAt)

	show := cron(t, db, "show", "nightly")
	requireOK(t, show)
	for _, want := range []string{"name: nightly\n", "cron: 0 12 * * *\n", "timezone: Europe/Berlin\n", "target: job on reports\n",
		"overlap: allow\n", "catchup: latest\n", "catchup_window: 1h0m0s\n", "paused: no\n", "next fire times:\n", "(none yet)"} {
		require.Contains(t, show.stdout, want)
	}
	require.Regexp(t, `UTC\s+LOCAL \(Europe/Berlin\)`, show.stdout)
	require.Len(t, regexp.MustCompile(`(?m)^\S+Z\s+\S+ 12:00:00 CES?T$`).FindAllString(show.stdout, -1), 5, show.stdout)

	r = cron(t, db, "pause", "nightly", "--reason", "maintenance")
	requireOK(t, r)
	require.Equal(t, "schedule nightly paused (next run none while paused)\n", r.stdout)

	var run api.ScheduleRunView
	cronJSON(t, db, &run, "trigger", "nightly")
	require.True(t, run.Triggered)
	require.EqualValues(t, "fired", run.Outcome)
	require.NotNil(t, run.JobID, "a trigger fires even while paused")
	jobs := listJSON(t, db, "--queue", "reports")
	require.Len(t, jobs, 1)
	require.Equal(t, *run.JobID, jobs[0].ID)
	require.Equal(t, 3, jobs[0].MaxAttempts)
	r = cron(t, db, "trigger", "etl")
	requireOK(t, r)
	require.Regexp(t, `^schedule etl triggered at \S+Z: workflow [0-9a-f-]{36}\n$`, r.stdout)

	var detail struct {
		api.ScheduleView
		Next []time.Time           `json:"next"`
		Runs []api.ScheduleRunView `json:"runs"`
	}
	cronJSON(t, db, &detail, "show", "nightly")
	require.True(t, detail.Paused)
	require.Equal(t, "maintenance", detail.PausedReason)
	require.Equal(t, run.JobID, detail.LastJobID)
	require.Equal(t, []api.ScheduleRunView{run}, detail.Runs)
	require.Len(t, detail.Next, 5)
	requireNoon(t, detail.Next)
	show = cron(t, db, "show", "nightly")
	requireOK(t, show)
	require.Contains(t, show.stdout, "paused_reason: maintenance\n")
	require.Regexp(t, `NOMINAL TIME\s+FIRED AT\s+OUTCOME\s+TRIGGERED\s+CREATED\s+NOTE`, show.stdout)
	require.Regexp(t, `\S+Z\s+\S+Z\s+fired\s+yes\s+job `+run.JobID.String(), show.stdout)

	r = cron(t, db, "resume", "nightly")
	requireOK(t, r)
	require.Regexp(t, `^schedule nightly resumed \(next run \S+Z\)\n$`, r.stdout)
	var resumed api.ScheduleView
	cronJSON(t, db, &resumed, "resume", "nightly")
	require.False(t, resumed.Paused)

	r = cron(t, db, "remove", "nightly")
	requireOK(t, r)
	require.Equal(t, "schedule nightly removed\n", r.stdout)
	for _, args := range [][]string{{"show", "nightly"}, {"remove", "nightly"}, {"pause", "nightly"}, {"trigger", "nightly"}, {"next", "nightly"}} {
		r = cron(t, db, args...)
		require.NotZero(t, r.code, args)
		require.Contains(t, r.stderr, `schedule "nightly"`, args)
		require.Contains(t, r.stderr, "not found", args)
	}
	require.Len(t, listJSON(t, db, "--queue", "reports"), 1, "the jobs a removed schedule created stay")
}

func TestCronNextPreviewsStoredSchedulesAndExpressions(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	requireOK(t, cron(t, db, append([]string{"add", "noon", "--queue", "q"}, noon...)...))

	var p api.SchedulePreview
	cronJSON(t, db, &p, "next", "noon", "-n", "3")
	require.Equal(t, "noon", p.Name)
	require.Equal(t, "Europe/Berlin", p.Timezone)
	require.Len(t, p.Times, 3)
	requireNoon(t, p.Times)

	// Without a database: no --database-url, no configuration.
	r := hw(t, nil, append([]string{"cron", "next", "--output", "json"}, noon...)...)
	requireOK(t, r)
	var expr api.SchedulePreview
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &expr), r.stdout)
	require.Len(t, expr.Times, api.DefaultPreview)
	requireNoon(t, expr.Times)
	require.Equal(t, p.Times, expr.Times[:3], "the stored schedule and its expression agree")

	r = hw(t, nil, "cron", "next", "--cron", "0 12 * * *", "--timezone", "Europe/Berlin", "-n", "2")
	requireOK(t, r)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 3)
	require.Regexp(t, `^UTC\s+LOCAL \(Europe/Berlin\)$`, lines[0])
	require.Regexp(t, `^\S+T1[01]:00:00Z\s+\S+ 12:00:00 CES?T$`, lines[1])

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cron", "next", "--cron", "61 * * * *"}, `--cron (cron): "61 * * * *"`},
		{[]string{"cron", "next", "--cron", "@daily", "--timezone", "Mars/Olympus"}, `--timezone (timezone): unknown time zone "Mars/Olympus"`},
		{[]string{"cron", "next", "--cron", "@daily", "-n", "101"}, "-n 101 must be between 1 and 100"},
		{[]string{"cron", "next"}, "give a schedule NAME, or an expression with --cron"},
		{[]string{"cron", "next", "noon", "--cron", "@daily", "--database-url", db}, "not both"},
	} {
		r := hw(t, nil, tc.args...)
		require.NotZero(t, r.code, tc.args)
		require.Contains(t, r.stderr, tc.want, tc.args)
	}
}

func TestCronAddRejectsBadInputNamingTheFlag(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	wf := writeFile(t, "w.json", chainJSON)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--cron", "61 * * * *", "--queue", "q"}, []string{`invalid schedule "bad": --cron (cron): "61 * * * *"`}},
		{[]string{"--cron", "0 2 * * *", "--timezone", "Mars/Olympus", "--queue", "q"}, []string{"--timezone (timezone): unknown time zone"}},
		{[]string{"--cron", "every day", "--timezone", "Nowhere", "--queue", "q"}, []string{"--cron (cron)", "--timezone (timezone)"}},
		{[]string{"--cron", "@daily", "--overlap", "queue", "--queue", "q"}, []string{"--overlap (overlap)"}},
		{[]string{"--cron", "@hourly", "--jitter", "2h", "--queue", "q"}, []string{"--jitter (jitter)"}},
		{[]string{"--cron", "@daily", "--start-at", "tomorrow", "--queue", "q"}, []string{`--start-at "tomorrow" is not an RFC 3339 time`}},
		{[]string{"--cron", "@daily", "--jitter", "soon", "--queue", "q"}, []string{`"soon"`, "--jitter"}},
		{[]string{"--queue", "q"}, []string{"--cron is required"}},
		{[]string{"--cron", "@daily"}, []string{"give --queue (a job) or --workflow-file (a workflow)"}},
		{[]string{"--cron", "@daily", "--queue", "q", "--workflow-file", wf}, []string{"give --queue or --workflow-file, not both"}},
		{[]string{"--cron", "@daily", "--workflow-file", wf, "--payload", "{}"}, []string{"--payload describes a job"}},
		{[]string{"--cron", "@daily", "--queue", "a b"}, []string{"--queue"}},
		{[]string{"--cron", "@daily", "--queue", "q", "--payload", "{"}, []string{"--payload is not valid JSON"}},
		{[]string{"--cron", "@daily", "--workflow-file", writeFile(t, "broken.json", `{"name": "w", "jobs": [{"name": "s"}]}`)}, []string{"--workflow-file", "jobs[0].queue"}},
	} {
		r := cron(t, db, append([]string{"add", "bad"}, tc.args...)...)
		require.NotZero(t, r.code, tc.args)
		for _, want := range tc.want {
			require.Contains(t, r.stderr, want, tc.args)
		}
	}
	var list struct {
		Schedules []api.ScheduleView `json:"schedules"`
	}
	cronJSON(t, db, &list, "list")
	require.Empty(t, list.Schedules, "rejected input writes nothing")
}
