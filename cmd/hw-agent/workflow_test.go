package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/sqlite"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// chainJSON is extract -> {resize, classify} -> publish.
const chainJSON = `{
  "name": "images",
  "failure_policy": "continue_on_failure",
  "jobs": [
    {"name": "extract", "queue": "img", "payload": {"file": "a.png"}},
    {"name": "resize", "queue": "img", "depends_on": ["extract"]},
    {"name": "classify", "queue": "ml", "depends_on": ["extract"]},
    {"name": "publish", "queue": "img", "depends_on": ["resize", "classify"]}
  ]
}`

const chainYAML = `name: reports
description: monthly
jobs:
  - name: fetch
    queue: etl
    payload:
      month: "2026-10"
  - name: render
    queue: etl
    depends_on: [fetch]
    condition: "rows > 0"
`

type createdWorkflow struct {
	ID     uuid.UUID            `json:"id"`
	Status workflow.Status      `json:"status"`
	Jobs   map[string]uuid.UUID `json:"jobs"`
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

func createWorkflow(t *testing.T, db, name, body string) createdWorkflow {
	t.Helper()
	r := hw(t, nil, "workflow", "create", "--database-url", db, "--output", "json", "--file", writeFile(t, name, body))
	requireOK(t, r)
	var c createdWorkflow
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &c), r.stdout)
	return c
}

// openTestStore opens the test's SQLite database next to the CLI, the way a
// second process would.
func openTestStore(t *testing.T, db string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{URL: db})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// runReadyJobs leases every ready job and completes it with result, as an
// agent would, and returns how many it ran.
func runReadyJobs(t *testing.T, st store.Store, result string) int {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	jobs, err := st.Lease(ctx, store.LeaseParams{AgentID: "test", Limit: 100, Duration: time.Minute, Now: now})
	require.NoError(t, err)
	if len(jobs) == 0 {
		return 0
	}
	done := make([]store.Completion, len(jobs))
	for i, j := range jobs {
		done[i] = store.Completion{LeaseRef: store.LeaseRef{ID: j.ID, Token: j.LeaseToken}, Result: []byte(result)}
	}
	stale, err := st.Complete(ctx, store.CompleteParams{Completions: done, Now: now})
	require.NoError(t, err)
	require.Empty(t, stale)
	return len(jobs)
}

func TestWorkflowCreateFromJSONAndYAMLFiles(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)

	c := createWorkflow(t, db, "images.json", chainJSON)
	require.Equal(t, workflow.StatusRunning, c.Status)
	require.Len(t, c.Jobs, 4)

	r := hw(t, nil, "workflow", "create", "--database-url", db, "--file", writeFile(t, "reports.yaml", chainYAML))
	requireOK(t, r)
	require.Contains(t, r.stdout, "created workflow ")
	require.Contains(t, r.stdout, "reports, 2 jobs")
	require.Regexp(t, `(?m)^STEP\s+QUEUE\s+JOB ID$`, r.stdout)
	require.Regexp(t, `(?m)^fetch\s+etl\s+[0-9a-f-]{36}$`, r.stdout)
	require.Regexp(t, `(?m)^render\s+etl\s+[0-9a-f-]{36}$`, r.stdout)

	// Jobs waiting for parents show up under the dependency filter.
	waiting := listJSON(t, db, "--status", "pending", "--dependency-status", "waiting")
	require.Len(t, waiting, 4, "resize, classify, publish and render wait for their parents")
	for _, j := range waiting {
		require.NotNil(t, j.WorkflowID)
		require.NotEqual(t, "extract", j.StepName)
		require.NotEqual(t, "fetch", j.StepName)
	}
	r = hw(t, nil, "job", "list", "--database-url", db, "--status", "pending", "--dependency-status", "none")
	requireOK(t, r)
	require.Len(t, strings.Split(strings.TrimSpace(r.stdout), "\n"), 3, "header + extract + fetch:\n%s", r.stdout)
}

func TestWorkflowCreateRejectsAnInvalidFileAndWritesNothing(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	cycle := `{"name": "loop", "jobs": [
		{"name": "a", "queue": "q", "depends_on": ["b"]},
		{"name": "b", "queue": "q", "depends_on": ["a"]}]}`
	r := hw(t, nil, "workflow", "create", "--database-url", db, "--file", writeFile(t, "loop.json", cycle))
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "cycle")
	require.Contains(t, r.stderr, "loop.json")

	r = hw(t, nil, "workflow", "create", "--database-url", db, "--file", filepath.Join(t.TempDir(), "missing.json"))
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "--file")

	r = hw(t, nil, "workflow", "create", "--database-url", db)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "--file is required")

	require.Empty(t, listJSON(t, db))
	r = hw(t, nil, "workflow", "list", "--database-url", db, "--output", "json")
	requireOK(t, r)
	require.JSONEq(t, `{"workflows": [], "next_cursor": ""}`, r.stdout)
}

func TestWorkflowListShowGraphAndDependencies(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	first := createWorkflow(t, db, "images.json", chainJSON)
	second := createWorkflow(t, db, "reports.yaml", chainYAML)

	r := hw(t, nil, "workflow", "list", "--database-url", db)
	requireOK(t, r)
	require.Regexp(t, `(?m)^ID\s+NAME\s+STATUS\s+POLICY\s+PROGRESS\s+CREATED$`, r.stdout)
	require.Regexp(t, second.ID.String()+`\s+reports\s+running\s+fail_fast\s+0/2 \(0\.0%\)`, r.stdout)
	require.Regexp(t, first.ID.String()+`\s+images\s+running\s+continue_on_failure\s+0/4`, r.stdout)
	require.Less(t, strings.Index(r.stdout, second.ID.String()), strings.Index(r.stdout, first.ID.String()), "newest first")

	r = hw(t, nil, "workflow", "list", "--database-url", db, "--output", "json", "--limit", "1")
	requireOK(t, r)
	var page struct {
		Workflows  []workflow.Record `json:"workflows"`
		NextCursor string            `json:"next_cursor"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &page))
	require.Len(t, page.Workflows, 1)
	require.Equal(t, second.ID, page.Workflows[0].ID)
	r = hw(t, nil, "workflow", "list", "--database-url", db, "--output", "json", "--cursor", page.NextCursor)
	requireOK(t, r)
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &page))
	require.Len(t, page.Workflows, 1)
	require.Equal(t, first.ID, page.Workflows[0].ID)

	r = hw(t, nil, "workflow", "list", "--database-url", db, "--status", "completed")
	requireOK(t, r)
	require.NotContains(t, r.stdout, first.ID.String())
	r = hw(t, nil, "workflow", "list", "--database-url", db, "--status", "done")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "--status")

	st := openTestStore(t, db)
	require.Equal(t, 2, runReadyJobs(t, st, `{"rows": 0}`), "the two roots")

	r = hw(t, nil, "workflow", "show", first.ID.String(), "--database-url", db)
	requireOK(t, r)
	require.Contains(t, r.stdout, "name: images")
	require.Contains(t, r.stdout, "status: running")
	require.Contains(t, r.stdout, "progress: 1/4 (25.0%)")
	require.Contains(t, r.stdout, "completed 1")
	require.Regexp(t, `(?m)^STEP\s+QUEUE\s+STATUS\s+DEPENDENCY_STATUS\s+ATTEMPTS\s+JOB ID`, r.stdout)
	require.Regexp(t, `(?m)^extract\s+img\s+completed\s+none\s+1/3\s+`+first.Jobs["extract"].String(), r.stdout)
	require.Regexp(t, `(?m)^classify\s+ml\s+pending\s+satisfied\s+0/3\s+`, r.stdout)
	require.Regexp(t, `(?m)^publish\s+img\s+pending\s+waiting\s+0/3\s+`, r.stdout)

	r = hw(t, nil, "workflow", "show", first.ID.String(), "--database-url", db, "--output", "json")
	requireOK(t, r)
	var shown struct {
		workflow.Record
		Jobs []job.Job `json:"jobs"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &shown), r.stdout)
	require.Equal(t, 4, shown.Stats.TotalJobs)
	require.Equal(t, 1, shown.Stats.CompletedJobs)
	require.Len(t, shown.Jobs, 4)

	// The YAML workflow's condition (rows > 0) was false: render is skipped.
	r = hw(t, nil, "workflow", "status", second.ID.String(), "--database-url", db)
	requireOK(t, r)
	require.Regexp(t, `^completed\s+2/2 \(100\.0%\).*skipped 1`, r.stdout)

	for format, want := range map[string]string{"dot": "digraph", "mermaid": "classify", "json": `"nodes"`} {
		r = hw(t, nil, "workflow", "graph", first.ID.String(), "--database-url", db, "--format", format)
		requireOK(t, r)
		require.Contains(t, r.stdout, want, format)
		for _, step := range []string{"extract", "resize", "classify", "publish"} {
			require.Contains(t, r.stdout, step, format)
		}
	}
	r = hw(t, nil, "workflow", "graph", first.ID.String(), "--database-url", db, "--format", "png")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `--format "png"`)

	r = hw(t, nil, "workflow", "dependencies", first.Jobs["resize"].String(), "--database-url", db)
	requireOK(t, r)
	require.Contains(t, r.stdout, "step resize")
	require.Regexp(t, `(?m)^parent\s+extract\s+img\s+completed\s+none\s+`+first.Jobs["extract"].String(), r.stdout)
	require.Regexp(t, `(?m)^dependent\s+publish\s+img\s+pending\s+waiting\s+`+first.Jobs["publish"].String(), r.stdout)

	r = hw(t, nil, "workflow", "dependencies", first.Jobs["publish"].String(), "--database-url", db, "--output", "json")
	requireOK(t, r)
	var deps struct {
		Job        job.Job   `json:"job"`
		Parents    []job.Job `json:"parents"`
		Dependents []job.Job `json:"dependents"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &deps), r.stdout)
	require.Len(t, deps.Parents, 2)
	require.Empty(t, deps.Dependents)

	for _, args := range [][]string{
		{"workflow", "show", uuid.NewString()},
		{"workflow", "graph", uuid.NewString()},
		{"workflow", "status", uuid.NewString()},
		{"workflow", "dependencies", uuid.NewString()},
	} {
		r = hw(t, nil, append(args, "--database-url", db)...)
		require.Equal(t, 1, r.code, args)
		require.Contains(t, r.stderr, "not found", args)
	}
	r = hw(t, nil, "workflow", "show", "nope", "--database-url", db)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `workflow ID "nope" is not a UUID`)
}

func TestWorkflowCancelAndRetry(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	c := createWorkflow(t, db, "images.json", chainJSON)
	id := c.ID.String()

	r := hw(t, nil, "workflow", "retry", id, "--database-url", db)
	require.Equal(t, 1, r.code, "a running workflow has nothing to retry")
	require.Contains(t, r.stderr, "conflict")

	r = hw(t, nil, "workflow", "cancel", id, "--database-url", db)
	requireOK(t, r)
	require.Contains(t, r.stdout, "workflow "+id+" is now cancelled")
	require.Contains(t, r.stdout, "cancelled 4")
	for _, j := range listJSON(t, db) {
		require.Equal(t, job.StatusCancelled, j.Status, j.StepName)
	}
	r = hw(t, nil, "workflow", "cancel", id, "--database-url", db)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "conflict")

	r = hw(t, nil, "workflow", "retry", id, "--database-url", db, "--output", "json")
	requireOK(t, r)
	var wf workflow.Record
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &wf), r.stdout)
	require.Equal(t, workflow.StatusRunning, wf.Status)
	require.Len(t, listJSON(t, db, "--status", "pending", "--dependency-status", "waiting"), 3)
}

func TestWorkflowStatusWatchExitsWhenTheWorkflowFinishes(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	c := createWorkflow(t, db, "images.json", chainJSON)

	var stdout, stderr testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- execute(context.Background(), []string{"workflow", "status", c.ID.String(), "--watch", "--database-url", db},
			&stdout, &stderr, nil)
	}()
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "running") }, 30*time.Second, 10*time.Millisecond)

	st := openTestStore(t, db)
	deadline := time.Now().Add(30 * time.Second)
	for ran := 0; ran < 4; {
		require.True(t, time.Now().Before(deadline), "only %d of 4 jobs became ready", ran)
		ran += runReadyJobs(t, st, `{"ok": true}`)
	}
	select {
	case code := <-done:
		require.Equal(t, 0, code, "stderr: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("status --watch did not exit after the workflow completed; output:\n%s", stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	require.Regexp(t, `^running\s+0/4 \(0\.0%\)\s+pending 4`, lines[0])
	require.Regexp(t, `^completed\s+4/4 \(100\.0%\)\s+pending 0  running 0  completed 4`, lines[len(lines)-1])

	// Without --watch the command prints once and exits, whatever the status.
	r := hw(t, nil, "workflow", "status", c.ID.String(), "--database-url", db, "--output", "json")
	requireOK(t, r)
	var wf workflow.Record
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &wf), r.stdout)
	require.Equal(t, workflow.StatusCompleted, wf.Status)
	require.InDelta(t, 100.0, wf.Stats.CompletionPercentage, 0.01)
}
