package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// stepCall is one request the workflow app received: when it arrived and
// when the app had answered it.
type stepCall struct {
	step     string
	header   http.Header
	parents  map[string]json.RawMessage
	arrived  time.Time
	answered time.Time
	status   int
}

// workflowApp answers workflow jobs by their Hammerwork-Step header:
// a step in fail answers 422, a step in hold waits until release is closed,
// every other step answers 200 {"step": ..., "verdict": "go"}. It reads the
// envelope (app.envelope = true) to record the parents' results.
type workflowApp struct {
	srv     *httptest.Server
	fail    map[string]bool
	hold    map[string]bool
	release chan struct{}
	letGo   func()

	mu    sync.Mutex
	calls []stepCall
}

func newWorkflowApp(t *testing.T, fail, hold []string) *workflowApp {
	t.Helper()
	app := &workflowApp{fail: map[string]bool{}, hold: map[string]bool{}, release: make(chan struct{})}
	for _, s := range fail {
		app.fail[s] = true
	}
	for _, s := range hold {
		app.hold[s] = true
	}
	app.letGo = sync.OnceFunc(func() { close(app.release) })
	app.srv = httptest.NewServer(http.HandlerFunc(app.serve))
	t.Cleanup(app.srv.Close)
	// Cleanups run last-in first-out: held requests are let go before the
	// server waits for its handlers to return.
	t.Cleanup(app.letGo)
	return app
}

func (app *workflowApp) serve(w http.ResponseWriter, r *http.Request) {
	c := stepCall{step: r.Header.Get("Hammerwork-Step"), header: r.Header.Clone(), arrived: time.Now()}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var env struct {
		Parents map[string]json.RawMessage `json:"parents"`
	}
	_ = json.Unmarshal(body, &env)
	c.parents = env.Parents
	defer func() {
		c.answered = time.Now()
		app.mu.Lock()
		app.calls = append(app.calls, c)
		app.mu.Unlock()
	}()
	if app.hold[c.step] {
		select {
		case <-app.release:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	app.mu.Lock()
	failing := app.fail[c.step]
	app.mu.Unlock()
	if failing {
		c.status = http.StatusUnprocessableEntity
		w.WriteHeader(c.status)
		_, _ = io.WriteString(w, `{"error": "cannot process this step"}`)
		return
	}
	c.status = http.StatusOK
	_, _ = fmt.Fprintf(w, `{"step": %q, "verdict": "go"}`, c.step)
}

// heal makes a failing step succeed from its next request on.
func (app *workflowApp) heal(step string) {
	app.mu.Lock()
	defer app.mu.Unlock()
	delete(app.fail, step)
}

// byStep returns the calls for each step, in arrival order.
func (app *workflowApp) byStep() map[string][]stepCall {
	app.mu.Lock()
	defer app.mu.Unlock()
	out := map[string][]stepCall{}
	for _, c := range app.calls {
		out[c.step] = append(out[c.step], c)
	}
	return out
}

// startWorkflowAgent migrates dbURL and runs an agent that wraps payloads
// in the envelope, so steps receive their parents' results.
func startWorkflowAgent(t *testing.T, dbURL string, app *workflowApp) *agentProc {
	t.Helper()
	migrate(t, dbURL)
	return startAgent(t, map[string]string{
		"HW_DATABASE_URL":        dbURL,
		"HW_APP_HANDLER_URL":     app.srv.URL + "/jobs/{queue}",
		"HW_APP_REQUEST_TIMEOUT": requestTimeout.String(),
		"HW_APP_ENVELOPE":        "true",
		"HW_API_LISTEN":          freeAddr(t),
		"HW_AGENT_POLL_INTERVAL": "50ms",
		"HW_AGENT_DRAIN_TIMEOUT": drainTimeout.String(),
	})
}

// workflowState is the part of GET /v1/workflows/{id} these tests check.
type workflowState struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Stats  struct {
		TotalJobs            int     `json:"total_jobs"`
		CompletedJobs        int     `json:"completed_jobs"`
		FailedJobs           int     `json:"failed_jobs"`
		CancelledJobs        int     `json:"cancelled_jobs"`
		SkippedJobs          int     `json:"skipped_jobs"`
		PendingJobs          int     `json:"pending_jobs"`
		RunningJobs          int     `json:"running_jobs"`
		CompletionPercentage float64 `json:"completion_percentage"`
	} `json:"stats"`
	Jobs []struct {
		ID        string   `json:"id"`
		StepName  string   `json:"step_name"`
		Status    string   `json:"status"`
		DependsOn []string `json:"depends_on"`
	} `json:"jobs"`
}

// postWorkflow creates a workflow through the API and returns its id and
// the job id of each step.
func postWorkflow(t *testing.T, a *agentProc, def map[string]any) (string, map[string]string) {
	t.Helper()
	status, body := a.call(http.MethodPost, "/v1/workflows", def)
	require.Equal(t, http.StatusCreated, status, "POST /v1/workflows: %s", body)
	var resp struct {
		ID     string            `json:"id"`
		Status string            `json:"status"`
		Jobs   map[string]string `json:"jobs"`
	}
	require.NoError(t, json.Unmarshal(body, &resp), "POST /v1/workflows: %s", body)
	require.Equal(t, "running", resp.Status)
	return resp.ID, resp.Jobs
}

func getWorkflow(t *testing.T, a *agentProc, id string) workflowState {
	t.Helper()
	status, body := a.call(http.MethodGet, "/v1/workflows/"+id, nil)
	require.Equal(t, http.StatusOK, status, "GET /v1/workflows/%s: %s", id, body)
	var w workflowState
	require.NoError(t, json.Unmarshal(body, &w), "GET /v1/workflows/%s: %s", id, body)
	return w
}

func waitWorkflow(t *testing.T, a *agentProc, id, status string) workflowState {
	t.Helper()
	var w workflowState
	poll(t, fmt.Sprintf("workflow %s to become %s", id, status), func() (bool, string) {
		w = getWorkflow(t, a, id)
		return w.Status == status, fmt.Sprintf("%+v", w)
	})
	return w
}

// step is one step of a definition sent to POST /v1/workflows.
func step(name string, dependsOn []string, condition string) map[string]any {
	s := map[string]any{"name": name, "queue": "pipeline", "payload": map[string]any{"step": name}}
	if len(dependsOn) > 0 {
		s["depends_on"] = dependsOn
	}
	if condition != "" {
		s["condition"] = condition
	}
	return s
}

func TestWorkflowRunsInDependencyOrder(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			testWorkflowOrder(t, b.URL(t))
		})
	}
}

// testWorkflowOrder runs the guide's patterns in one workflow: a chain
// (extract -> clean), a diamond (clean -> {left, right} -> merge, a job of
// several dependencies), an if/else over merge's result (publish runs,
// discard is skipped) with a merge after it (finish), and a fan-out to ten
// chunks gathered by one fan-in job.
func testWorkflowOrder(t *testing.T, dbURL string) {
	app := newWorkflowApp(t, nil, nil)
	agent := startWorkflowAgent(t, dbURL, app)

	parents := map[string][]string{
		"clean": {"extract"}, "left": {"clean"}, "right": {"clean"},
		"merge": {"left", "right"}, "publish": {"merge"}, "discard": {"merge"},
		"finish": {"publish", "discard"},
	}
	defJobs := []any{
		step("extract", nil, ""),
		step("clean", parents["clean"], ""),
		step("left", parents["left"], ""),
		step("right", parents["right"], ""),
		step("merge", parents["merge"], ""),
		step("publish", parents["publish"], "verdict == 'go'"),
		step("discard", parents["discard"], "verdict == 'stop'"),
		step("finish", parents["finish"], ""),
	}
	for i := range 10 {
		chunk := fmt.Sprintf("chunk%d", i)
		parents[chunk] = []string{"finish"}
		parents["gather"] = append(parents["gather"], chunk)
		defJobs = append(defJobs, step(chunk, parents[chunk], ""))
	}
	defJobs = append(defJobs, step("gather", parents["gather"], ""))
	const total = 19
	id, jobs := postWorkflow(t, agent, map[string]any{
		"name":           "order_check",
		"correlation_id": "e2e-order",
		"jobs":           defJobs,
	})
	require.Len(t, jobs, total)

	w := waitWorkflow(t, agent, id, "completed")
	require.Equal(t, "order_check", w.Name)
	require.Equal(t, total, w.Stats.TotalJobs)
	require.Equal(t, total-1, w.Stats.CompletedJobs)
	require.Equal(t, 1, w.Stats.SkippedJobs)
	require.Zero(t, w.Stats.FailedJobs)
	require.Zero(t, w.Stats.CancelledJobs)
	require.Zero(t, w.Stats.PendingJobs)
	require.Zero(t, w.Stats.RunningJobs)
	require.InDelta(t, 100.0, w.Stats.CompletionPercentage, 0.001)
	require.Len(t, w.Jobs, total)
	for _, j := range w.Jobs {
		want := "completed"
		if j.StepName == "discard" {
			want = "skipped"
		}
		require.Equal(t, want, j.Status, "step %s", j.StepName)
	}

	calls := app.byStep()
	require.NotContains(t, calls, "discard", "a step whose condition is false is never sent")
	for s, id := range jobs {
		if s == "discard" {
			continue
		}
		require.Len(t, calls[s], 1, "step %s is delivered once", s)
		c := calls[s][0]
		h := c.header
		require.Equal(t, id, h.Get("Hammerwork-Job-Id"))
		require.Equal(t, w.ID, h.Get("Hammerwork-Workflow-Id"), "step %s", s)
		require.Equal(t, "order_check", h.Get("Hammerwork-Workflow-Name"), "step %s", s)
		require.Equal(t, s, h.Get("Hammerwork-Step"))
		require.Equal(t, "e2e-order", h.Get("Hammerwork-Correlation-Id"), "the workflow's correlation id reaches every job")

		var wantParents []string
		for _, p := range parents[s] {
			wantParents = append(wantParents, jobs[p])
		}
		var gotParents []string
		if v := h.Get("Hammerwork-Parent-Ids"); v != "" {
			gotParents = strings.Split(v, ",")
		}
		require.ElementsMatch(t, wantParents, gotParents, "Hammerwork-Parent-Ids of step %s", s)

		// Order: a child arrives only after every parent was answered; a
		// skipped parent is never sent.
		for _, p := range parents[s] {
			if p == "discard" {
				continue
			}
			parent := calls[p][0]
			require.True(t, c.arrived.After(parent.answered),
				"step %s arrived at %s, before its parent %s was answered at %s", s, c.arrived, p, parent.answered)
		}
		// The envelope carries each parent's result by step name; a
		// skipped parent has none.
		names := make([]string, 0, len(c.parents))
		for name, result := range c.parents {
			if name == "discard" {
				require.JSONEq(t, `null`, string(result), "a skipped parent has no result")
				continue
			}
			names = append(names, name)
			require.JSONEq(t, fmt.Sprintf(`{"step": %q, "verdict": "go"}`, name), string(result))
		}
		wantNames := slices.DeleteFunc(slices.Clone(parents[s]), func(p string) bool { return p == "discard" })
		require.ElementsMatch(t, wantNames, names, "envelope parents of step %s", s)
	}
}

func TestWorkflowFailFastCancelsTheRest(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			testFailFast(t, b.URL(t))
		})
	}
}

// testFailFast fails one root with 422 while an independent branch is
// still running (the app holds it): fail_fast cancels the held job, its
// child and the failed job's child, and fails the workflow.
func testFailFast(t *testing.T, dbURL string) {
	app := newWorkflowApp(t, []string{"charge"}, []string{"reserve"})
	agent := startWorkflowAgent(t, dbURL, app)

	id, jobs := postWorkflow(t, agent, map[string]any{
		"name":           "checkout",
		"failure_policy": "fail_fast",
		"jobs": []any{
			step("reserve", nil, ""),
			step("ship", []string{"reserve"}, ""),
			step("charge", nil, ""),
			step("receipt", []string{"charge"}, ""),
		},
	})

	w := waitWorkflow(t, agent, id, "failed")
	require.Equal(t, 4, w.Stats.TotalJobs)
	require.Equal(t, 1, w.Stats.FailedJobs)
	require.Equal(t, 3, w.Stats.CancelledJobs)
	require.Zero(t, w.Stats.CompletedJobs)
	require.Zero(t, w.Stats.PendingJobs)
	require.Zero(t, w.Stats.RunningJobs)
	for s, want := range map[string]string{"charge": "failed", "reserve": "cancelled", "ship": "cancelled", "receipt": "cancelled"} {
		j := agent.getJob(jobs[s])
		require.Equal(t, want, j.Status, "step %s", s)
	}
	require.Contains(t, agent.getJob(jobs["charge"]).ErrorMessage, "422")

	calls := app.byStep()
	require.Len(t, calls["charge"], 1, "a 422 is not retried")
	require.NotContains(t, calls, "ship", "children of a failed workflow are never sent")
	require.NotContains(t, calls, "receipt")

	status, body := agent.call(http.MethodPost, "/v1/workflows/"+id+"/cancel", nil)
	require.Equal(t, http.StatusConflict, status, "a failed workflow cannot be cancelled: %s", body)

	// The held job's late answer cannot undo the cancellation.
	app.letGo()
	require.NoError(t, agent.stop(drainTimeout))
	require.Equal(t, "cancelled", getJobDirect(t, dbURL, jobs["reserve"]), "still cancelled after the agent stopped")
}

// getJobDirect reads a job's status with the CLI, without an agent.
func getJobDirect(t *testing.T, dbURL, id string) string {
	t.Helper()
	_, err := uuid.Parse(id)
	require.NoError(t, err)
	res := runCLI(t, nil, "job", "show", id, "--database-url", dbURL, "--output", "json")
	require.NoError(t, res.err, "hw-agent job show: %s", res.stderr)
	var j jobView
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &j), res.stdout)
	return j.Status
}

// dependencyStatus reads a job's dependency_status through the API.
func dependencyStatus(t *testing.T, a *agentProc, id string) string {
	t.Helper()
	status, body := a.call(http.MethodGet, "/v1/jobs/"+id, nil)
	require.Equal(t, http.StatusOK, status, "GET /v1/jobs/%s: %s", id, body)
	var j struct {
		DependencyStatus string `json:"dependency_status"`
	}
	require.NoError(t, json.Unmarshal(body, &j), body)
	return j.DependencyStatus
}

// requireStepStatuses checks the workflow's jobs by step name.
func requireStepStatuses(t *testing.T, w workflowState, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, j := range w.Jobs {
		got[j.StepName] = j.Status
	}
	require.Equal(t, want, got)
}

// The other failure policies, manual retry and cancel, and cancelling a
// running workflow, through the real agent on every backend.
func TestWorkflowFailurePoliciesAndControls(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			t.Run("ContinueOnFailure", func(t *testing.T) {
				t.Parallel()
				testContinueOnFailure(t, b.URL(t))
			})
			t.Run("ManualRetryAndCancel", func(t *testing.T) {
				t.Parallel()
				testManual(t, b.URL(t))
			})
			t.Run("CancelMidRun", func(t *testing.T) {
				t.Parallel()
				testCancelMidRun(t, b.URL(t))
			})
		})
	}
}

// testContinueOnFailure: bad fails with 422; exactly its descendants are
// cancelled with dependency_status 'failed' and never sent, the
// independent branch completes, and the workflow ends failed.
func testContinueOnFailure(t *testing.T, dbURL string) {
	app := newWorkflowApp(t, []string{"bad"}, nil)
	agent := startWorkflowAgent(t, dbURL, app)
	id, jobs := postWorkflow(t, agent, map[string]any{
		"name":           "branches",
		"failure_policy": "continue_on_failure",
		"jobs": []any{
			step("bad", nil, ""), step("bad_child", []string{"bad"}, ""), step("bad_grandchild", []string{"bad_child"}, ""),
			step("good", nil, ""), step("good_child", []string{"good"}, ""),
		},
	})
	w := waitWorkflow(t, agent, id, "failed")
	requireStepStatuses(t, w, map[string]string{
		"bad": "failed", "bad_child": "cancelled", "bad_grandchild": "cancelled", "good": "completed", "good_child": "completed",
	})
	require.Equal(t, 1, w.Stats.FailedJobs)
	require.Equal(t, 2, w.Stats.CancelledJobs)
	require.Equal(t, 2, w.Stats.CompletedJobs)
	for _, s := range []string{"bad_child", "bad_grandchild"} {
		require.Equal(t, "failed", dependencyStatus(t, agent, jobs[s]), "dependency_status of %s", s)
	}
	calls := app.byStep()
	require.NotContains(t, calls, "bad_child")
	require.NotContains(t, calls, "bad_grandchild")
	require.Len(t, calls["good_child"], 1)
}

// testManual: a failure pauses the workflow with its descendants waiting;
// after the app is fixed, retrying the workflow re-pends the failed job and
// its descendants then run. A second paused workflow is cancelled instead.
func testManual(t *testing.T, dbURL string) {
	app := newWorkflowApp(t, []string{"flaky", "broken"}, nil)
	agent := startWorkflowAgent(t, dbURL, app)
	id, jobs := postWorkflow(t, agent, map[string]any{
		"name": "manual", "failure_policy": "manual",
		"jobs": []any{step("flaky", nil, ""), step("after", []string{"flaky"}, ""), step("side", nil, "")},
	})
	poll(t, "side done and the workflow paused", func() (bool, string) {
		w := getWorkflow(t, agent, id)
		return w.Status == "paused" && w.Stats.CompletedJobs == 1, fmt.Sprintf("%+v", w)
	})
	w := getWorkflow(t, agent, id)
	requireStepStatuses(t, w, map[string]string{"flaky": "failed", "after": "pending", "side": "completed"})
	require.Equal(t, "waiting", dependencyStatus(t, agent, jobs["after"]), "descendants wait while paused")
	require.NotContains(t, app.byStep(), "after")

	app.heal("flaky")
	status, body := agent.call(http.MethodPost, "/v1/workflows/"+id+"/retry", nil)
	require.Equal(t, http.StatusOK, status, "retry: %s", body)
	w = waitWorkflow(t, agent, id, "completed")
	requireStepStatuses(t, w, map[string]string{"flaky": "completed", "after": "completed", "side": "completed"})
	calls := app.byStep()
	require.Len(t, calls["flaky"], 2, "failed once, then retried by the operator")
	require.True(t, calls["after"][0].arrived.After(calls["flaky"][1].answered), "after runs once flaky succeeded")

	id2, jobs2 := postWorkflow(t, agent, map[string]any{
		"name": "manual_cancel", "failure_policy": "manual",
		"jobs": []any{step("broken", nil, ""), step("never", []string{"broken"}, "")},
	})
	waitWorkflow(t, agent, id2, "paused")
	status, body = agent.call(http.MethodPost, "/v1/workflows/"+id2+"/cancel", nil)
	require.Equal(t, http.StatusOK, status, "cancel: %s", body)
	w = waitWorkflow(t, agent, id2, "cancelled")
	requireStepStatuses(t, w, map[string]string{"broken": "failed", "never": "cancelled"})
	require.Equal(t, "cancelled", agent.getJob(jobs2["never"]).Status)
	require.NotContains(t, app.byStep(), "never")
}

// testCancelMidRun cancels a workflow while one of its jobs is at the app:
// every unfinished job is cancelled, the running job's late answer changes
// nothing and its children are never sent.
func testCancelMidRun(t *testing.T, dbURL string) {
	app := newWorkflowApp(t, nil, []string{"slow"})
	agent := startWorkflowAgent(t, dbURL, app)
	id, jobs := postWorkflow(t, agent, map[string]any{
		"name": "cancel_me",
		"jobs": []any{step("quick", nil, ""), step("slow", nil, ""), step("next", []string{"slow", "quick"}, "")},
	})
	poll(t, "slow at the app and quick done", func() (bool, string) {
		w := getWorkflow(t, agent, id)
		return w.Stats.RunningJobs == 1 && w.Stats.CompletedJobs == 1, fmt.Sprintf("%+v", w)
	})
	status, body := agent.call(http.MethodPost, "/v1/workflows/"+id+"/cancel", nil)
	require.Equal(t, http.StatusOK, status, "cancel: %s", body)
	w := getWorkflow(t, agent, id)
	require.Equal(t, "cancelled", w.Status)
	requireStepStatuses(t, w, map[string]string{"quick": "completed", "slow": "cancelled", "next": "cancelled"})

	app.letGo()
	require.NoError(t, agent.stop(drainTimeout))
	require.Equal(t, "cancelled", getJobDirect(t, dbURL, jobs["slow"]), "the late answer changed nothing")
	require.NotContains(t, app.byStep(), "next")
}

// TestTimedOutWorkflowRetriedRunsToCompletion: a workflow failed by its
// timeout is retried through the API; the answer carries a new deadline
// (the retry's time + the timeout), and the agent's next expirer passes
// leave it running until it completes.
func TestTimedOutWorkflowRetriedRunsToCompletion(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			testTimeoutRetry(t, b.URL(t))
		})
	}
}

func testTimeoutRetry(t *testing.T, dbURL string) {
	const timeout = 6 * time.Second
	app := newWorkflowApp(t, nil, []string{"slow"})
	migrate(t, dbURL)
	agent := startAgent(t, map[string]string{
		"HW_DATABASE_URL":          dbURL,
		"HW_APP_HANDLER_URL":       app.srv.URL + "/jobs/{queue}",
		"HW_APP_REQUEST_TIMEOUT":   requestTimeout.String(),
		"HW_APP_ENVELOPE":          "true",
		"HW_API_LISTEN":            freeAddr(t),
		"HW_AGENT_POLL_INTERVAL":   "50ms",
		"HW_AGENT_RESCUE_INTERVAL": "100ms",
		"HW_AGENT_DRAIN_TIMEOUT":   drainTimeout.String(),
	})
	id, _ := postWorkflow(t, agent, map[string]any{
		"name": "timed", "timeout": timeout.String(),
		"jobs": []any{step("slow", nil, ""), step("next", []string{"slow"}, "")},
	})
	w := waitWorkflow(t, agent, id, "failed")
	requireStepStatuses(t, w, map[string]string{"slow": "cancelled", "next": "cancelled"})
	app.letGo()

	before := time.Now()
	status, body := agent.call(http.MethodPost, "/v1/workflows/"+id+"/retry", nil)
	after := time.Now()
	require.Equal(t, http.StatusOK, status, "retry: %s", body)
	var retried struct {
		Status   string    `json:"status"`
		Deadline time.Time `json:"deadline"`
	}
	require.NoError(t, json.Unmarshal(body, &retried), "retry: %s", body)
	require.Equal(t, "running", retried.Status)
	require.False(t, retried.Deadline.Before(before.Add(timeout).Add(-time.Millisecond)), "new deadline %s is the retry's time + %s", retried.Deadline, timeout)
	require.False(t, retried.Deadline.After(after.Add(timeout)), "new deadline %s is the retry's time + %s", retried.Deadline, timeout)

	w = waitWorkflow(t, agent, id, "completed")
	requireStepStatuses(t, w, map[string]string{"slow": "completed", "next": "completed"})
}
