package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/sqlite"
)

func TestBatchShowPrintsCountersAndErrors(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	st, err := sqlite.Open(t.Context(), sqlite.Config{URL: db})
	require.NoError(t, err)
	got, err := st.EnqueueBatch(t.Context(), store.EnqueueBatchParams{Name: "import", FailureMode: store.CollectErrors,
		Jobs: []store.NewJob{{Queue: "rows"}, {Queue: "rows"}}})
	require.NoError(t, err)
	leased, err := st.Lease(t.Context(), store.LeaseParams{AgentID: "t", Limit: 1, Duration: time.Minute})
	require.NoError(t, err)
	_, err = st.Fail(t.Context(), store.FailParams{Failures: []store.Failure{{
		LeaseRef: store.LeaseRef{ID: leased[0].ID, Token: leased[0].LeaseToken}, Error: "row 7:\n bad date"}}})
	require.NoError(t, err)
	require.NoError(t, st.Close())
	id := got.Batch.ID.String()

	show := hw(t, nil, "batch", "show", id, "--database-url", db)
	requireOK(t, show)
	require.Contains(t, show.stdout, "id: "+id+"\nname: import\nstatus: processing\nfailure_mode: collect_errors\n")
	require.Contains(t, show.stdout, "jobs: 2 total, 1 pending, 0 completed, 1 failed, 0 cancelled\n")
	require.Contains(t, show.stdout, "error: "+leased[0].ID.String()+" row 7: bad date\n")

	asJSON := hw(t, nil, "batch", "show", id, "--database-url", db, "--output", "json")
	requireOK(t, asJSON)
	var b store.Batch
	require.NoError(t, json.Unmarshal([]byte(asJSON.stdout), &b), asJSON.stdout)
	require.Equal(t, got.Batch.ID, b.ID)
	require.Equal(t, 1, b.FailedJobs)

	bad := hw(t, nil, "batch", "show", "nope", "--database-url", db)
	require.Equal(t, 1, bad.code)
	require.True(t, strings.Contains(bad.stderr, `batch ID "nope" is not a UUID`), bad.stderr)
}
