package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

func enqueueWorkflow(t *testing.T, s store.Store, w workflow.Workflow) *store.WorkflowEnqueued {
	t.Helper()
	res, err := s.EnqueueWorkflow(t.Context(), store.EnqueueWorkflowParams{Workflow: w, Now: time.Now()})
	require.NoError(t, err)
	return res
}

func TestEnvelopeCarriesTheParentsResultsByStepName(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	bodies := map[uuid.UUID][]byte{}
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies[c.id] = body
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"step": %q}`, r.Header.Get("Hammerwork-Step"))
	})
	s := newSQLite(t)
	cfg := testConfig(t, a)
	cfg.App.Envelope = true
	start(t, cfg, s)

	def, err := workflow.New("fan_in").
		AddParallel(workflow.Step{Name: "left", Queue: "wf"}, workflow.Step{Name: "right", Queue: "wf"}).
		Then(workflow.Step{Name: "join", Queue: "wf"}).
		Build()
	require.NoError(t, err)
	res := enqueueWorkflow(t, s, def)
	waitStatus(t, s, []*job.Job{{ID: res.Jobs["join"]}}, job.StatusCompleted)

	mu.Lock()
	defer mu.Unlock()
	var env struct {
		Parents map[string]json.RawMessage `json:"parents"`
	}
	require.NoError(t, json.Unmarshal(bodies[res.Jobs["join"]], &env), string(bodies[res.Jobs["join"]]))
	require.Len(t, env.Parents, 2)
	require.JSONEq(t, `{"step": "left"}`, string(env.Parents["left"]))
	require.JSONEq(t, `{"step": "right"}`, string(env.Parents["right"]))
	require.JSONEq(t, `{}`, string(mustField(t, bodies[res.Jobs["left"]], "parents")), "a root has no parents")
}

func mustField(t *testing.T, body []byte, key string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &m), string(body))
	return m[key]
}

func TestTimedOutWorkflowIsFailedAndLogged(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	cfg := testConfig(t, nil)
	// The agent serves no queue of the workflow, so only the timeout can end it.
	cfg.Agent.Queues = []string{"other"}
	cfg.Agent.RescueInterval = job.Duration(20 * time.Millisecond)
	r := start(t, cfg, s)

	def, err := workflow.New("too_slow").
		Add(workflow.Step{Name: "never", Queue: "unserved"}).
		Then(workflow.Step{Name: "after", Queue: "unserved"}).
		WithTimeout(50 * time.Millisecond).
		Build()
	require.NoError(t, err)
	res := enqueueWorkflow(t, s, def)
	id := res.Workflow.ID

	eventually(t, "the workflow to fail at its deadline", func() bool {
		wf, err := s.GetWorkflow(t.Context(), id)
		require.NoError(t, err)
		return wf.Status == workflow.StatusFailed
	})
	for _, jid := range res.Jobs {
		j, err := s.Get(t.Context(), jid)
		require.NoError(t, err)
		require.Equal(t, job.StatusCancelled, j.Status)
	}
	eventually(t, "the expiry to be logged", func() bool {
		return strings.Contains(r.logs.String(), "workflow_id="+id.String())
	})
	require.Contains(t, r.logs.String(), "level=WARN msg=\"workflow timed out")
}
