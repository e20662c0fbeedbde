package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// pipeline is a definition with a root, a chain and a barrier:
// extract -> {transform, audit} -> load.
const pipeline = `{
  "name": "data_pipeline",
  "description": "nightly load",
  "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
  "correlation_id": "order-42",
  "jobs": [
    {"name": "extract", "queue": "etl", "payload": {"source": "db"}},
    {"name": "transform", "queue": "etl", "payload": {}, "depends_on": ["extract"]},
    {"name": "audit", "queue": "audit", "depends_on": ["extract"]},
    {"name": "load", "queue": "etl", "depends_on": ["transform", "audit"], "condition": "rows > 0"}
  ]
}`

type created struct {
	ID     uuid.UUID            `json:"id"`
	Status workflow.Status      `json:"status"`
	Jobs   map[string]uuid.UUID `json:"jobs"`
}

type workflowBody struct {
	workflow.Record
	Jobs []*job.Job `json:"jobs"`
}

func (e *env) createWorkflow(t *testing.T, body string) created {
	t.Helper()
	r := e.post(t, "/v1/workflows", body)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var c created
	require.NoError(t, json.Unmarshal(r.body, &c), string(r.body))
	require.Equal(t, "/v1/workflows/"+c.ID.String(), r.header.Get("Location"))
	return c
}

func (e *env) getWorkflow(t *testing.T, id uuid.UUID) workflowBody {
	t.Helper()
	r := e.get(t, "/v1/workflows/"+id.String())
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var w workflowBody
	require.NoError(t, json.Unmarshal(r.body, &w), string(r.body))
	return w
}

// complete leases the job and completes it through the API with result.
func (e *env) complete(t *testing.T, id uuid.UUID, queue, result string) {
	t.Helper()
	token := e.lease(t, id, queue)
	r := e.post(t, "/v1/jobs/"+id.String()+"/complete", fmt.Sprintf(`{"lease_token": %q, "result": %s}`, token, result))
	require.Equal(t, http.StatusOK, r.status, string(r.body))
}

func TestCreateWorkflowEnqueuesEveryStepAndReportsProgress(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		c := e.createWorkflow(t, pipeline)
		require.Equal(t, workflow.StatusRunning, c.Status)
		require.Len(t, c.Jobs, 4)
		for _, step := range []string{"extract", "transform", "audit", "load"} {
			require.NotEqual(t, uuid.Nil, c.Jobs[step], step)
		}

		// The raw shape is the documented one, field for field.
		r := e.get(t, "/v1/workflows/"+c.ID.String())
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var raw map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(r.body, &raw))
		for _, k := range []string{"id", "name", "status", "failure_policy", "trace_id", "correlation_id", "stats", "jobs"} {
			require.Contains(t, raw, k)
		}
		var stats map[string]any
		require.NoError(t, json.Unmarshal(raw["stats"], &stats))
		for _, k := range []string{"total_jobs", "completed_jobs", "failed_jobs", "cancelled_jobs", "skipped_jobs",
			"pending_jobs", "running_jobs", "completion_percentage"} {
			require.Contains(t, stats, k)
		}

		w := e.getWorkflow(t, c.ID)
		require.Equal(t, c.ID, w.ID)
		require.Equal(t, "data_pipeline", w.Name)
		require.Equal(t, workflow.FailFast, w.FailurePolicy)
		require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", w.TraceID)
		require.Equal(t, "order-42", w.CorrelationID)
		require.Equal(t, 4, w.Stats.TotalJobs)
		require.Equal(t, 4, w.Stats.PendingJobs)
		require.Len(t, w.Jobs, 4)
		byStep := map[string]*job.Job{}
		for _, j := range w.Jobs {
			byStep[j.StepName] = j
			require.Equal(t, c.ID, *j.WorkflowID)
			require.Equal(t, c.Jobs[j.StepName], j.ID)
		}
		require.Equal(t, job.DependencyNone, byStep["extract"].DependencyStatus)
		require.Equal(t, job.DependencyWaiting, byStep["load"].DependencyStatus)
		require.ElementsMatch(t, []uuid.UUID{c.Jobs["transform"], c.Jobs["audit"]}, byStep["load"].DependsOn)

		// Completing the root releases both children and moves the counters.
		e.complete(t, c.Jobs["extract"], "etl", `{"rows": 3}`)
		w = e.getWorkflow(t, c.ID)
		require.Equal(t, 1, w.Stats.CompletedJobs)
		require.Equal(t, 3, w.Stats.PendingJobs)
		require.InDelta(t, 25.0, w.Stats.CompletionPercentage, 0.01)
		require.Equal(t, job.DependencySatisfied, e.stored(t, c.Jobs["transform"]).DependencyStatus)
		require.Equal(t, job.DependencyWaiting, e.stored(t, c.Jobs["load"]).DependencyStatus)
	})
}

// validationProblems reads a 422's details as the list of {path, message}.
func validationProblems(t *testing.T, r response) string {
	t.Helper()
	require.Equal(t, http.StatusUnprocessableEntity, r.status, string(r.body))
	var body struct {
		Error struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(r.body, &body), string(r.body))
	require.Equal(t, "invalid", body.Error.Code)
	require.NotEmpty(t, body.Error.Details, "a rejected definition lists its problems: %s", r.body)
	require.Contains(t, string(body.Error.Details), `"path"`, string(r.body))
	require.Contains(t, string(body.Error.Details), `"message"`, string(r.body))
	return body.Error.Message + " " + string(body.Error.Details)
}

func TestInvalidWorkflowIs422WithDetailsAndWritesNothing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body string
		mention    []string // every name the error must mention
	}{
		{"cycle", `{"name": "w", "jobs": [
			{"name": "a", "queue": "q", "depends_on": ["c"]},
			{"name": "b", "queue": "q", "depends_on": ["a"]},
			{"name": "c", "queue": "q", "depends_on": ["b"]}]}`, []string{"a", "b", "c", "cycle"}},
		{"self dependency", `{"name": "w", "jobs": [{"name": "solo", "queue": "q", "depends_on": ["solo"]}]}`, []string{"solo"}},
		{"unknown dependency", `{"name": "w", "jobs": [
			{"name": "a", "queue": "q"},
			{"name": "b", "queue": "q", "depends_on": ["ghost"]}]}`, []string{"ghost"}},
		{"duplicate step", `{"name": "w", "jobs": [
			{"name": "twice", "queue": "q"},
			{"name": "twice", "queue": "q"}]}`, []string{"twice"}},
		{"no jobs", `{"name": "w", "jobs": []}`, nil},
	}
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		for _, tc := range cases {
			msg := validationProblems(t, e.post(t, "/v1/workflows", tc.body))
			for _, m := range tc.mention {
				require.Contains(t, msg, m, tc.name)
			}
		}
		e.post(t, "/v1/workflows", `{"name": "w", "jobs": [`).requireError(t, http.StatusBadRequest, "bad_request")
		e.post(t, "/v1/workflows", ``).requireError(t, http.StatusBadRequest, "bad_request")

		e.requireJobCount(t, 0)
		r := e.get(t, "/v1/workflows")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.JSONEq(t, `{"workflows": [], "next_cursor": ""}`, string(r.body), "a rejected definition writes nothing")
	})
}

func TestListWorkflowsFiltersAndPages(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		var ids []uuid.UUID
		for i := range 3 {
			ids = append(ids, e.createWorkflow(t, fmt.Sprintf(`{"name": "w%d", "jobs": [{"name": "only", "queue": "q"}]}`, i)).ID)
		}
		r := e.post(t, "/v1/workflows/"+ids[1].String()+"/cancel", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))

		list := func(query string) ([]uuid.UUID, string) {
			t.Helper()
			r := e.get(t, "/v1/workflows"+query)
			require.Equal(t, http.StatusOK, r.status, string(r.body))
			var page struct {
				Workflows  []workflow.Record `json:"workflows"`
				NextCursor *string           `json:"next_cursor"`
			}
			require.NoError(t, json.Unmarshal(r.body, &page), string(r.body))
			require.NotNil(t, page.Workflows, "an empty page is [], not null")
			require.NotNil(t, page.NextCursor)
			got := make([]uuid.UUID, len(page.Workflows))
			for i, w := range page.Workflows {
				got[i] = w.ID
			}
			return got, *page.NextCursor
		}
		all, _ := list("")
		require.Equal(t, []uuid.UUID{ids[2], ids[1], ids[0]}, all, "newest first")
		cancelled, _ := list("?status=cancelled")
		require.Equal(t, []uuid.UUID{ids[1]}, cancelled)
		none, _ := list("?status=completed")
		require.Empty(t, none)

		first, cursor := list("?limit=2")
		require.Equal(t, []uuid.UUID{ids[2], ids[1]}, first)
		require.NotEmpty(t, cursor)
		rest, cursor := list("?limit=2&cursor=" + cursor)
		require.Equal(t, []uuid.UUID{ids[0]}, rest)
		require.Empty(t, cursor)

		for _, q := range []string{"?status=done", "?limit=0", "?limit=x", "?cursor=nope", "?name=w1"} {
			e.get(t, "/v1/workflows"+q).requireError(t, http.StatusBadRequest, "bad_request")
		}
	})
}

func TestWorkflowGraphExportsEachFormat(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		c := e.createWorkflow(t, pipeline)
		path := "/v1/workflows/" + c.ID.String() + "/graph"

		for format, contentType := range map[string]string{
			"dot": "text/vnd.graphviz", "mermaid": "text/plain", "json": "application/json", "": "application/json",
		} {
			r := e.get(t, path+"?format="+format)
			require.Equal(t, http.StatusOK, r.status, "%s: %s", format, r.body)
			require.Equal(t, contentType, strings.Split(r.header.Get("Content-Type"), ";")[0], format)
			for _, step := range []string{"extract", "transform", "audit", "load"} {
				require.Contains(t, string(r.body), step, format)
			}
		}
		var g struct {
			Nodes []map[string]any  `json:"nodes"`
			Edges []json.RawMessage `json:"edges"`
		}
		r := e.get(t, path+"?format=json")
		require.NoError(t, json.Unmarshal(r.body, &g), string(r.body))
		require.Len(t, g.Nodes, 4)
		require.Len(t, g.Edges, 4, "extract->transform, extract->audit, transform->load, audit->load")

		er := e.get(t, path+"?format=png").requireError(t, http.StatusBadRequest, "bad_request")
		require.Contains(t, er.Message, "png")
		e.get(t, "/v1/workflows/"+uuid.NewString()+"/graph").requireError(t, http.StatusNotFound, "not_found")
		e.get(t, "/v1/workflows/nope/graph").requireError(t, http.StatusBadRequest, "bad_request")
	})
}

func TestWorkflowCancelAndRetryFollowTheStateMachine(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		c := e.createWorkflow(t, pipeline)
		base := "/v1/workflows/" + c.ID.String()

		e.post(t, base+"/retry", "").requireError(t, http.StatusConflict, "conflict")

		r := e.post(t, base+"/cancel", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var wf workflow.Record
		require.NoError(t, json.Unmarshal(r.body, &wf))
		require.Equal(t, workflow.StatusCancelled, wf.Status)
		w := e.getWorkflow(t, c.ID)
		require.Equal(t, 4, w.Stats.CancelledJobs)
		for _, j := range w.Jobs {
			require.Equal(t, job.StatusCancelled, j.Status, j.StepName)
		}
		e.post(t, base+"/cancel", "").requireError(t, http.StatusConflict, "conflict")

		r = e.post(t, base+"/retry", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.NoError(t, json.Unmarshal(r.body, &wf))
		require.Equal(t, workflow.StatusRunning, wf.Status)
		w = e.getWorkflow(t, c.ID)
		require.Equal(t, 4, w.Stats.PendingJobs)
		require.Equal(t, job.DependencyWaiting, e.stored(t, c.Jobs["load"]).DependencyStatus,
			"a retry recomputes dependencies from the parents")

		missing := "/v1/workflows/" + uuid.NewString()
		e.get(t, missing).requireError(t, http.StatusNotFound, "not_found")
		e.post(t, missing+"/cancel", "").requireError(t, http.StatusNotFound, "not_found")
		e.post(t, missing+"/retry", "").requireError(t, http.StatusNotFound, "not_found")
		e.get(t, "/v1/workflows/nope").requireError(t, http.StatusBadRequest, "bad_request")
	})
}

func TestEnqueueWithDependsOnWaitsForItsParent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		parent := e.enqueue(t, `{"queue": "q", "payload": {"n": 1}}`)
		child := e.enqueue(t, fmt.Sprintf(`{"queue": "q", "payload": {"n": 2}, "depends_on": [%q]}`, parent.ID))
		require.Equal(t, job.DependencyWaiting, child.DependencyStatus)
		require.Equal(t, []uuid.UUID{parent.ID}, child.DependsOn)
		require.Equal(t, []uuid.UUID{child.ID}, e.stored(t, parent.ID).Dependents)

		e.complete(t, parent.ID, "q", `{"ok": true}`)
		require.Equal(t, job.DependencySatisfied, e.stored(t, child.ID).DependencyStatus)

		e.post(t, "/v1/jobs", fmt.Sprintf(`{"queue": "q", "depends_on": [%q]}`, uuid.NewString())).
			requireError(t, http.StatusUnprocessableEntity, "invalid")
		e.requireJobCount(t, 2)
	})
}

func TestWorkflowRetryAfterTimeoutAnswersWithTheNewDeadline(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		c := e.createWorkflow(t, `{"name": "timed", "timeout": "1m", "jobs": [
			{"name": "a", "queue": "q"}, {"name": "b", "queue": "q", "depends_on": ["a"]}]}`)
		require.True(t, now.Add(time.Minute).Equal(*e.getWorkflow(t, c.ID).Deadline), "deadline at create")
		expired, err := st.ExpireWorkflows(context.Background(), store.ExpireWorkflowsParams{Now: now.Add(2 * time.Minute)})
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{c.ID}, expired)
		failed := e.getWorkflow(t, c.ID)
		require.Equal(t, workflow.StatusFailed, failed.Status)
		require.Equal(t, "workflow timed out after 1m0s", failed.ErrorMessage)

		later := now.Add(time.Hour)
		retrier := setup(t, st, func(p *api.Params) { p.Now = func() time.Time { return later } })
		r := retrier.post(t, "/v1/workflows/"+c.ID.String()+"/retry", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var body map[string]any
		require.NoError(t, json.Unmarshal(r.body, &body))
		require.Equal(t, "running", body["status"])
		require.Equal(t, later.Add(time.Minute).Format(time.RFC3339), body["deadline"], "the answer names the new deadline")
		require.NotContains(t, body, "error_message", "the timeout's error is cleared")

		expired, err = st.ExpireWorkflows(context.Background(), store.ExpireWorkflowsParams{Now: later.Add(30 * time.Second)})
		require.NoError(t, err)
		require.Empty(t, expired, "the next expirer pass leaves the retried workflow running")
		require.Equal(t, workflow.StatusRunning, e.getWorkflow(t, c.ID).Status)
	})
}

func TestJobRetryWithAFailedParentIs409NamingItAndWritesNothing(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		c := e.createWorkflow(t, `{"name": "cof", "failure_policy": "continue_on_failure", "jobs": [
			{"name": "a", "queue": "q", "max_attempts": 1}, {"name": "b", "queue": "q", "depends_on": ["a"]}]}`)
		token := e.lease(t, c.Jobs["a"], "q")
		r := e.post(t, "/v1/jobs/"+c.Jobs["a"].String()+"/fail", fmt.Sprintf(`{"lease_token": %q, "error": "boom"}`, token))
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		before := e.getWorkflow(t, c.ID)
		require.Equal(t, workflow.StatusFailed, before.Status)
		require.Equal(t, job.StatusCancelled, e.stored(t, c.Jobs["b"]).Status)

		apiErr := e.post(t, "/v1/jobs/"+c.Jobs["b"].String()+"/retry", "").requireError(t, http.StatusConflict, "conflict")
		require.Contains(t, apiErr.Message, "parent a ("+c.Jobs["a"].String()+") is failed")
		require.Contains(t, apiErr.Message, "retry them, or the workflow, first")
		after := e.getWorkflow(t, c.ID)
		require.Equal(t, before.Stats, after.Stats, "nothing written")
		require.Equal(t, workflow.StatusFailed, after.Status)
		require.Equal(t, job.StatusCancelled, e.stored(t, c.Jobs["b"]).Status)

		r = e.post(t, "/v1/jobs/"+c.Jobs["a"].String()+"/retry", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, workflow.StatusRunning, e.getWorkflow(t, c.ID).Status)
	})
}
