package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
)

func TestMain(m *testing.M) {
	// bench re-executes its own binary as the no-op app; under `go test`
	// that binary is this test binary, which must then act as hw-agent.
	if len(os.Args) > 1 && os.Args[1] == "bench-app" {
		os.Exit(execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr, nil))
	}
	goleak.VerifyTestMain(m)
}

type cliResult struct {
	stdout, stderr string
	code           int
}

// hw runs one hw-agent command line in-process with an environment holding
// only env, so the developer's HW_* variables cannot leak into a test.
func hw(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr testkit.Buffer
	code := execute(context.Background(), args, &stdout, &stderr, env)
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// requireOK fails the test with the command's stderr when it did not exit 0.
func requireOK(t *testing.T, r cliResult) {
	t.Helper()
	require.Equal(t, 0, r.code, "stderr: %s\nstdout: %s", r.stderr, r.stdout)
}

// newDB returns the URL of a fresh SQLite database, migrated unless told not to.
func newDB(t *testing.T, migrate bool) string {
	t.Helper()
	url := testkit.SQLiteURL(t)
	if migrate {
		requireOK(t, hw(t, nil, "migrate", "--database-url", url))
	}
	return url
}

func enqueueJSON(t *testing.T, db string, args ...string) job.Job {
	t.Helper()
	r := hw(t, nil, append([]string{"job", "enqueue", "--database-url", db, "--output", "json"}, args...)...)
	requireOK(t, r)
	var j job.Job
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &j), r.stdout)
	return j
}

func listJSON(t *testing.T, db string, args ...string) []job.Job {
	t.Helper()
	r := hw(t, nil, append([]string{"job", "list", "--database-url", db, "--output", "json"}, args...)...)
	requireOK(t, r)
	var page struct {
		Jobs       []job.Job `json:"jobs"`
		NextCursor string    `json:"next_cursor"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &page), r.stdout)
	return page.Jobs
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	db := newDB(t, false)
	first := hw(t, nil, "migrate", "--database-url", db)
	requireOK(t, first)
	require.Contains(t, first.stdout, "applied ")
	second := hw(t, nil, "migrate", "--database-url", db)
	requireOK(t, second)
	require.Equal(t, "already up to date\n", second.stdout)
}

func TestJobEnqueueListShowCancelRetry(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)

	enq := hw(t, nil, "job", "enqueue", "--database-url", db, "--queue", "emails",
		"--payload", `{"to":"ada@example.com"}`, "--priority", "high", "--delay", "1h",
		"--max-attempts", "5", "--timeout", "30s")
	requireOK(t, enq)
	require.Contains(t, enq.stdout, "enqueued ")
	require.Contains(t, enq.stdout, "priority high")

	jobs := listJSON(t, db)
	require.Len(t, jobs, 1)
	j := jobs[0]
	require.Equal(t, "emails", j.Queue)
	require.Equal(t, job.StatusPending, j.Status)
	require.Equal(t, job.PriorityHigh, j.Priority)
	require.Equal(t, 5, j.MaxAttempts)
	require.Equal(t, 30*time.Second, j.Timeout.D())
	require.JSONEq(t, `{"to":"ada@example.com"}`, string(j.Payload))
	require.WithinDuration(t, time.Now().Add(time.Hour), j.ScheduledAt, time.Minute)
	id := j.ID.String()

	table := hw(t, nil, "job", "list", "--database-url", db)
	requireOK(t, table)
	require.Contains(t, table.stdout, "ID")
	require.Contains(t, table.stdout, "QUEUE")
	require.Contains(t, table.stdout, id)
	require.Contains(t, table.stdout, "pending")
	require.Contains(t, table.stdout, "0/5")

	show := hw(t, nil, "job", "show", id, "--database-url", db)
	requireOK(t, show)
	require.Contains(t, show.stdout, "id: "+id+"\n")
	require.Contains(t, show.stdout, "status: pending\n")
	require.Contains(t, show.stdout, "queue: emails\n")

	cancel := hw(t, nil, "job", "cancel", id, "--database-url", db)
	requireOK(t, cancel)
	require.Equal(t, "job "+id+" is now cancelled\n", cancel.stdout)

	again := hw(t, nil, "job", "cancel", id, "--database-url", db)
	require.Equal(t, 1, again.code)
	require.Contains(t, again.stderr, "cancel job "+id)

	require.Len(t, listJSON(t, db, "--status", "cancelled"), 1)
	require.Empty(t, listJSON(t, db, "--status", "pending"))

	retry := hw(t, nil, "job", "retry", id, "--database-url", db, "--output", "json")
	requireOK(t, retry)
	var retried job.Job
	require.NoError(t, json.Unmarshal([]byte(retry.stdout), &retried))
	require.Equal(t, job.StatusPending, retried.Status)
}

func TestJobListPagesWithCursor(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	for range 3 {
		enqueueJSON(t, db, "--queue", "q")
	}
	first := hw(t, nil, "job", "list", "--database-url", db, "--limit", "2")
	requireOK(t, first)
	_, cursor, ok := strings.Cut(first.stdout, "--cursor ")
	require.True(t, ok, "no cursor hint in:\n%s", first.stdout)
	rest := listJSON(t, db, "--limit", "2", "--cursor", strings.TrimSpace(cursor))
	require.Len(t, rest, 1)
}

func TestBadInputNamesTheFlagAndWritesNothing(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	cases := []struct {
		args []string
		flag string
	}{
		{[]string{"job", "enqueue", "--queue", "q", "--payload", `{"to":`}, "--payload"},
		{[]string{"job", "enqueue", "--queue", "q", "--payload", `not json`}, "--payload"},
		{[]string{"job", "enqueue", "--queue", "q", "--priority", "urgent"}, "--priority"},
		{[]string{"job", "enqueue", "--queue", "q", "--max-attempts", "-1"}, "--max-attempts"},
		{[]string{"job", "enqueue", "--queue", "q", "--delay", "-5s"}, "--delay"},
		{[]string{"job", "enqueue", "--queue", "bad queue"}, "--queue"},
		{[]string{"job", "enqueue"}, "--queue"},
		{[]string{"job", "list", "--status", "done"}, "--status"},
		{[]string{"job", "list", "--dependency-status", "blocked"}, "--dependency-status"},
		{[]string{"job", "list", "--cursor", "abc"}, "--cursor"},
		{[]string{"job", "show", "not-a-uuid"}, "not a UUID"},
		{[]string{"job", "cancel", "42"}, "not a UUID"},
		{[]string{"version", "--output", "yaml"}, "--output"},
	}
	for _, tc := range cases {
		r := hw(t, nil, append(tc.args, "--database-url", db)...)
		require.Equal(t, 1, r.code, "%v", tc.args)
		require.Contains(t, r.stderr, tc.flag, "%v", tc.args)
		require.Equal(t, 1, strings.Count(r.stderr, "hw-agent:"), "error printed once: %q", r.stderr)
		require.Empty(t, r.stdout, "%v", tc.args)
	}
	require.Empty(t, listJSON(t, db))
}

func TestUnknownJobIsNotFound(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	r := hw(t, nil, "job", "show", "0190f0c4-1c2a-7000-8000-000000000000", "--database-url", db)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "not found")
}

func TestMySQLMigrateEnqueueAndList(t *testing.T) {
	t.Parallel()
	db := testkit.MySQLURL(t)
	first := hw(t, nil, "migrate", "--database-url", db)
	requireOK(t, first)
	require.Contains(t, first.stdout, "applied ")
	second := hw(t, nil, "migrate", "--database-url", db)
	requireOK(t, second)
	require.Equal(t, "already up to date\n", second.stdout)

	j := enqueueJSON(t, db, "--queue", "emails", "--payload", `{"to":"ada@example.com"}`)
	jobs := listJSON(t, db, "--queue", "emails")
	require.Len(t, jobs, 1)
	require.Equal(t, j.ID, jobs[0].ID)
	require.JSONEq(t, `{"to":"ada@example.com"}`, string(jobs[0].Payload))

	// The driver's DSN form, bare, names the same database.
	u, err := url.Parse(db)
	require.NoError(t, err)
	dsn := fmt.Sprintf("%s@tcp(%s)%s?%s", u.User.String(), u.Host, u.Path, u.RawQuery)
	require.Len(t, listJSON(t, dsn, "--queue", "emails"), 1, "job list --database-url %s", dsn)
}

func TestMySQLBench(t *testing.T) {
	if testing.Short() {
		t.Skip("bench starts a child process")
	}
	t.Parallel()
	r := hw(t, nil, "bench", "--jobs", "300", "--json", "--database-url", testkit.MySQLURL(t))
	requireOK(t, r)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	require.Equal(t, "mysql", res["backend"])
	require.EqualValues(t, 300, res["jobs"])
	require.Greater(t, res["jobs_per_sec"], 0.0)
}

func TestMySQLErrorsNeverShowThePassword(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"mysql://root:s3cret-pw@127.0.0.1:1/hw?timeout=2s", "root:s3cret-pw@tcp(127.0.0.1:1)/hw?timeout=2s"} {
		r := hw(t, nil, "job", "list", "--database-url", db)
		require.Equal(t, 1, r.code, db)
		require.NotEmpty(t, r.stderr, db)
		require.NotContains(t, r.stderr, "s3cret-pw", db)
	}
}

func TestDatabaseErrorsNeverShowThePassword(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"postgres://hw:s3cret-pw@127.0.0.1:1/hw?sslmode=disable&connect_timeout=2",
		"oracle://hw:s3cret-pw@db/hw",
	} {
		r := hw(t, nil, "job", "list", "--database-url", url)
		require.Equal(t, 1, r.code, url)
		require.NotEmpty(t, r.stderr)
		require.NotContains(t, r.stderr, "s3cret-pw")
	}
}

func TestRedactPasswords(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"connect postgres://u:pw@h:5432/db failed": "connect postgres://u:xxxxx@h:5432/db failed",
		"a mysql://root:p%40ss@tcp/db b":           "a mysql://root:xxxxx@tcp/db b",
		"no password postgres://u@h/db":            "no password postgres://u@h/db",
		"plain message":                            "plain message",
	}
	for in, want := range cases {
		require.Equal(t, want, redactPasswords(in), in)
	}
}

func TestConfigFileFromEnvironmentAndFlagOverride(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	enqueueJSON(t, db, "--queue", "from-config")
	cfgPath := filepath.Join(t.TempDir(), "hw.toml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("[database]\nurl = \""+db+"\"\n"), 0o600))

	r := hw(t, []string{"HW_CONFIG=" + cfgPath}, "job", "list", "--output", "json")
	requireOK(t, r)
	require.Contains(t, r.stdout, "from-config")

	other := newDB(t, true)
	r = hw(t, []string{"HW_CONFIG=" + cfgPath}, "job", "list", "--output", "json", "--database-url", other)
	requireOK(t, r)
	require.NotContains(t, r.stdout, "from-config")

	bad := filepath.Join(t.TempDir(), "bad.toml")
	require.NoError(t, os.WriteFile(bad, []byte("[agent]\nconcurency = 5\n"), 0o600))
	r = hw(t, nil, "job", "list", "--config", bad)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "agent.concurency")

	// run stops at the configuration, naming the variable or key. The
	// database is unmigrated, so a configuration wrongly accepted fails on
	// the migration check instead of running.
	unmigrated := newDB(t, false)
	for env, named := range map[string]string{
		"HW_AGENT_CONCURENCY=5":           "HW_AGENT_CONCURENCY",
		"HW_AGENT_CONCURRENCY=many":       "HW_AGENT_CONCURRENCY",
		"HW_AGENT_CONCURRENCY=0":          "agent.concurrency",
		"HW_APP_SIGNING_SECRET=whsec_%%%": "app.signing_secret",
		"HW_AGENT_LEASE_DURATION=1s":      "agent.lease_duration",
	} {
		r = hw(t, []string{env, "HW_API_LISTEN=off"}, "run", "--database-url", unmigrated)
		require.Equal(t, 1, r.code, env)
		require.Contains(t, r.stderr, named, env)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := hw(t, nil, "version")
	requireOK(t, r)
	require.Contains(t, r.stdout, "hw-agent ")
	require.Contains(t, r.stdout, "go1.")

	r = hw(t, nil, "version", "--output", "json")
	requireOK(t, r)
	var v map[string]string
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	require.NotEmpty(t, v["version"])
}

func TestRunRefusesUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	db := newDB(t, false)
	r := hw(t, []string{"HW_API_LISTEN=off"}, "run", "--database-url", db)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "unapplied migrations")
	require.Contains(t, r.stderr, "run `hw-agent migrate` first, or start with --migrate")
}

func TestRunDispatchesJobsAndStopsCleanly(t *testing.T) {
	t.Parallel()
	var hits sync.Map
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Store(r.URL.Path, true)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(app.Close)

	db := newDB(t, false)
	env := []string{
		"HW_APP_HANDLER_URL=" + app.URL + "/jobs/{queue}",
		"HW_AGENT_POLL_INTERVAL=50ms",
		"HW_API_LISTEN=127.0.0.1:0",
	}
	run := startRun(t, db, env)
	stderr := &run.stderr

	require.Eventually(t, func() bool {
		return strings.Contains(stderr.String(), "api listening")
	}, 10*time.Second, 20*time.Millisecond, "stderr: %s", stderr.String())
	j := enqueueJSON(t, db, "--queue", "emails", "--payload", `{"n":1}`)

	require.Eventually(t, func() bool {
		r := hw(t, nil, "job", "show", j.ID.String(), "--database-url", db, "--output", "json")
		var got job.Job
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &got) == nil && got.Status == job.StatusCompleted
	}, 10*time.Second, 50*time.Millisecond, "stderr: %s", stderr.String())
	_, hit := hits.Load("/jobs/emails")
	require.True(t, hit)

	run.stop(t)
}

// runningAgent is `hw-agent run --migrate` executed in-process until stop.
type runningAgent struct {
	cancel context.CancelFunc
	done   chan int
	stderr testkit.Buffer
}

// startRun starts `hw-agent run --migrate` on db with env, in-process; its
// logs go to stderr. The test must call stop.
func startRun(t *testing.T, db string, env []string) *runningAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := &runningAgent{cancel: cancel, done: make(chan int, 1)}
	go func() {
		var stdout testkit.Buffer
		r.done <- execute(ctx, []string{"run", "--migrate", "--database-url", db}, &stdout, &r.stderr, env)
	}()
	return r
}

// stop cancels the run and requires it to exit 0 within 30 s.
func (r *runningAgent) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case code := <-r.done:
		require.Equal(t, 0, code, "stderr: %s", r.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop after its context was cancelled")
	}
}

func TestDemoRunsToCompletion(t *testing.T) {
	if testing.Short() {
		t.Skip("demo runs jobs for a few seconds")
	}
	t.Parallel()
	r := hw(t, nil, "demo")
	requireOK(t, r)
	require.Contains(t, r.stdout, "All 27 jobs finished")
	require.Contains(t, r.stdout, "QUEUE")
	require.Regexp(t, `reports\s+5\s+0\s+5`, r.stdout)
	require.Regexp(t, `emails\s+7\s+1\s+0`, r.stdout)
	require.Regexp(t, `thumbnails\s+7\s+0\s+0`, r.stdout)
	require.Regexp(t, `pipeline\s+6\s+0\s+0`, r.stdout)
	require.Regexp(t, `workflow running 0/7 \(0\.0%\)`, r.stdout, "the live output follows the workflow")
	require.Contains(t, r.stdout, "Workflow image_pipeline: completed")
	require.Regexp(t, `(?m)^2\s+summary\s+completed\s+classify, index, resize`, r.stdout, "the barrier waits for all three")
	require.Regexp(t, `(?m)^3\s+archive\s+skipped\s+summary\s+status == 'failed'$`, r.stdout)
	require.Regexp(t, `(?m)^3\s+notify\s+completed\s+summary\s+status == 'ok'$`, r.stdout)
}

func TestBenchPrintsOneJSONLine(t *testing.T) {
	if testing.Short() {
		t.Skip("bench starts a child process and runs 500 jobs")
	}
	t.Parallel()
	r := hw(t, nil, "bench", "--jobs", "500", "--json")
	requireOK(t, r)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 1, r.stdout)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &res))
	for _, k := range []string{"backend", "jobs", "concurrency", "enqueue_per_sec", "jobs_per_sec", "latency_p50_ms", "latency_p99_ms"} {
		require.Contains(t, res, k)
	}
	require.Equal(t, "sqlite", res["backend"])
	require.EqualValues(t, 500, res["jobs"])
	require.Greater(t, res["jobs_per_sec"], 0.0)
}

func TestBenchWebhookDeliversEveryEventAndTimesTheDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("bench starts a child process and runs 300 jobs")
	}
	t.Parallel()
	r := hw(t, nil, "bench", "--jobs", "300", "--webhook", "--json")
	requireOK(t, r)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	// enqueued, started, completed: three events per job, every one
	// acknowledged by the webhook before the bench reports.
	require.EqualValues(t, 900, res["webhook_events"], r.stdout)
	require.GreaterOrEqual(t, res["webhook_drain_ms"], 0.0)
	require.Greater(t, res["jobs_per_sec"], 0.0)
}

func TestPostgresBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("bench starts a child process")
	}
	t.Parallel()
	db := testkit.PostgresURL(t)

	r := hw(t, nil, "job", "list", "--database-url", db)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "unapplied migrations")

	requireOK(t, hw(t, nil, "migrate", "--database-url", db))
	j := enqueueJSON(t, db, "--queue", "pg", "--payload", `{"n":1}`)
	jobs := listJSON(t, db, "--queue", "pg")
	require.Len(t, jobs, 1)
	require.Equal(t, j.ID, jobs[0].ID)

	r = hw(t, nil, "bench", "--jobs", "300", "--json", "--database-url", db)
	requireOK(t, r)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	require.Equal(t, "postgres", res["backend"])
}
