package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/store"
)

func TestEnqueueWithLiveUniqueKeyReturnsTheExistingJob(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		first := e.enqueue(t, `{"queue": "q", "payload": {"n": 1}, "unique_key": "order-17"}`)
		require.Equal(t, "order-17", first.UniqueKey)
		require.False(t, first.Duplicate)

		r := e.post(t, "/v1/jobs", `{"queue": "q", "payload": {"n": 2}, "unique_key": "order-17"}`)
		require.Equal(t, http.StatusOK, r.status, "a duplicate creates nothing: 200, not 201")
		var body map[string]any
		require.NoError(t, json.Unmarshal(r.body, &body))
		require.Equal(t, true, body["duplicate"], string(r.body))
		require.Equal(t, first.ID.String(), body["id"])
		require.JSONEq(t, `{"n": 1}`, string(r.job(t).Payload), "the existing job, as enqueued first")
		e.requireJobCount(t, 1)

		token := e.lease(t, first.ID, "q")
		done := e.post(t, "/v1/jobs/"+first.ID.String()+"/complete", `{"lease_token": "`+token+`"}`)
		require.Equal(t, http.StatusOK, done.status, string(done.body))
		again := e.enqueue(t, `{"queue": "q", "unique_key": "order-17"}`)
		require.NotEqual(t, first.ID, again.ID, "a completed job frees its key")
	})
}

func TestBatchEnqueueCreatesABatchAndReportsIt(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		held := e.enqueue(t, `{"queue": "h", "unique_key": "held"}`)

		r := e.post(t, "/v1/jobs/batch", `{"name": "import", "failure_mode": "collect_errors", "jobs": [
			{"queue": "q", "payload": {"n": 1}},
			{"queue": "q", "unique_key": "held"},
			{"queue": "q", "payload": {"n": 3}}]}`)
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		var resp struct {
			BatchID    uuid.UUID   `json:"batch_id"`
			IDs        []uuid.UUID `json:"ids"`
			Duplicates []int       `json:"duplicates"`
		}
		require.NoError(t, json.Unmarshal(r.body, &resp))
		require.Len(t, resp.IDs, 3)
		require.Equal(t, held.ID, resp.IDs[1], "the duplicate element returns the live job's id")
		require.Equal(t, []int{1}, resp.Duplicates)
		require.Equal(t, "/v1/batches/"+resp.BatchID.String(), r.header.Get("Location"))
		require.Equal(t, resp.BatchID, *e.stored(t, resp.IDs[0]).BatchID)

		token := e.lease(t, resp.IDs[0], "q")
		failed := e.post(t, "/v1/jobs/"+resp.IDs[0].String()+"/fail", `{"lease_token": "`+token+`", "error": "bad row", "retry": false}`)
		require.Equal(t, http.StatusOK, failed.status, string(failed.body))

		got := e.get(t, "/v1/batches/"+resp.BatchID.String())
		require.Equal(t, http.StatusOK, got.status, string(got.body))
		var b map[string]any
		require.NoError(t, json.Unmarshal(got.body, &b))
		require.Equal(t, "import", b["name"])
		require.Equal(t, "collect_errors", b["failure_mode"])
		require.Equal(t, "processing", b["status"])
		require.EqualValues(t, 2, b["total_jobs"], "the duplicate is not part of the batch")
		require.EqualValues(t, 1, b["failed_jobs"])
		require.EqualValues(t, 1, b["pending_jobs"])
		errs, ok := b["errors"].([]any)
		require.True(t, ok, string(got.body))
		require.Len(t, errs, 1)
		require.Equal(t, map[string]any{"job_id": resp.IDs[0].String(), "error": "bad row"}, errs[0])
	})
}

func TestBatchEnqueueOldShapeStillWorks(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		r := e.post(t, "/v1/jobs/batch", `{"jobs": [{"queue": "q"}, {"queue": "q"}]}`)
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		var resp struct {
			BatchID uuid.UUID   `json:"batch_id"`
			IDs     []uuid.UUID `json:"ids"`
		}
		require.NoError(t, json.Unmarshal(r.body, &resp))
		require.Len(t, resp.IDs, 2)
		var b map[string]any
		got := e.get(t, "/v1/batches/"+resp.BatchID.String())
		require.NoError(t, json.Unmarshal(got.body, &b))
		require.Equal(t, "continue_on_error", b["failure_mode"])
		require.Equal(t, "pending", b["status"])
		require.EqualValues(t, 2, b["total_jobs"])
	})
}

func TestBatchEnqueueRejectsOversizeAndBadModeWritingNothing(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		jobs := strings.TrimSuffix(strings.Repeat(`{"queue":"q"},`, store.MaxBatchJobs+1), ",")
		er := e.post(t, "/v1/jobs/batch", `{"jobs": [`+jobs+`]}`).requireError(t, http.StatusRequestEntityTooLarge, "payload_too_large")
		require.Contains(t, er.Message, "at most 10000 jobs")
		er = e.post(t, "/v1/jobs/batch", `{"failure_mode": "sometimes", "jobs": [{"queue": "q"}]}`).requireError(t, http.StatusUnprocessableEntity, "invalid")
		require.Contains(t, er.Message, "failure_mode")
		e.requireJobCount(t, 0)

		e.get(t, "/v1/batches/"+uuid.NewString()).requireError(t, http.StatusNotFound, "not_found")
		e.get(t, "/v1/batches/nope").requireError(t, http.StatusBadRequest, "bad_request")
	})
}

func TestWorkflowBatchStepExpandsIntoABatch(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		e := setup(t, st)
		r := e.post(t, "/v1/workflows", `{"name": "thumbs", "jobs": [
			{"name": "resize", "queue": "img", "batch": [{"f": "a"}, {"f": "b"}]},
			{"name": "report", "queue": "img", "depends_on": ["resize"], "condition": "size(parents.resize) == 2"}]}`)
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		var resp struct {
			Jobs map[string]uuid.UUID `json:"jobs"`
		}
		require.NoError(t, json.Unmarshal(r.body, &resp))
		require.Len(t, resp.Jobs, 3)
		a, b := e.stored(t, resp.Jobs["resize[0]"]), e.stored(t, resp.Jobs["resize[1]"])
		require.JSONEq(t, `{"f": "b"}`, string(b.Payload))
		require.NotNil(t, a.BatchID)
		require.Equal(t, *a.BatchID, *b.BatchID)
		require.Equal(t, 2, e.stored(t, resp.Jobs["report"]).PendingDependencies)

		got := e.get(t, "/v1/batches/"+a.BatchID.String())
		require.Equal(t, http.StatusOK, got.status, string(got.body))
		var batch map[string]any
		require.NoError(t, json.Unmarshal(got.body, &batch))
		require.Equal(t, "resize", batch["name"])
		require.EqualValues(t, 2, batch["total_jobs"])

		bad := e.post(t, "/v1/workflows", `{"name": "w", "jobs": [{"name": "a", "queue": "q", "payload": {}, "batch": [{}]}]}`)
		require.Equal(t, http.StatusUnprocessableEntity, bad.status, string(bad.body))
		require.Contains(t, string(bad.body), "jobs[0].batch: give payload or batch, not both")
	})
}
