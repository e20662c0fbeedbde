package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/workflow"
)

// failReadyJobs leases every ready job and fails it for good, as an agent
// does on a 4xx, and returns how many it failed.
func failReadyJobs(t *testing.T, st store.Store) int {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	jobs, err := st.Lease(ctx, store.LeaseParams{AgentID: "test", Limit: 100, Duration: time.Minute, Now: now})
	require.NoError(t, err)
	fs := make([]store.Failure, len(jobs))
	for i, j := range jobs {
		fs[i] = store.Failure{LeaseRef: store.LeaseRef{ID: j.ID, Token: j.LeaseToken}, Error: "400 Bad Request", Outcome: "http_400"}
	}
	res, err := st.Fail(ctx, store.FailParams{Failures: fs, Now: now})
	require.NoError(t, err)
	require.Len(t, res.Failed, len(jobs))
	return len(jobs)
}

func TestDeadLettersListRetryInBulkAndPurge(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	st := openTestStore(t, db)
	for range 3 {
		enqueueJSON(t, db, "--queue", "emails")
	}
	enqueueJSON(t, db, "--queue", "other")
	require.Equal(t, 4, failReadyJobs(t, st))
	enqueueJSON(t, db, "--queue", "emails")
	require.Equal(t, 1, runReadyJobs(t, st, `{}`))

	require.Len(t, listJSON(t, db, "--status", "failed"), 4, "job list --status failed lists the dead letters")
	require.Len(t, listJSON(t, db, "--status", "failed", "--queue", "emails"), 3)

	r := hw(t, nil, "job", "retry", "--database-url", db, "--queue", "emails", "--status", "failed")
	requireOK(t, r)
	require.Equal(t, "3 failed jobs on queue emails would be retried; add --yes to retry them\n", r.stdout)
	require.Len(t, listJSON(t, db, "--status", "failed", "--queue", "emails"), 3, "without --yes nothing changes")

	r = hw(t, nil, "job", "retry", "--database-url", db, "--queue", "emails", "--status", "failed", "--yes")
	requireOK(t, r)
	require.Equal(t, "retried 3 failed jobs on queue emails\n", r.stdout)
	retried := listJSON(t, db, "--status", "pending", "--queue", "emails")
	require.Len(t, retried, 3)
	for _, j := range retried {
		require.Zero(t, j.Attempts)
		require.Len(t, j.Errors, 1, "the error history is kept")
	}
	require.Len(t, listJSON(t, db, "--status", "failed"), 1, "the other queue's dead letter stays")

	r = hw(t, nil, "job", "purge", "--database-url", db, "--status", "failed", "--older-than", "7d")
	requireOK(t, r)
	require.Equal(t, "0 failed jobs older than 7d would be deleted; add --yes to delete them\n", r.stdout)

	r = hw(t, nil, "job", "purge", "--database-url", db, "--status", "failed", "--older-than", "0s", "--output", "json")
	requireOK(t, r)
	var count struct {
		WouldDelete int `json:"would_delete"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &count), r.stdout)
	require.Equal(t, 1, count.WouldDelete)

	r = hw(t, nil, "job", "purge", "--database-url", db, "--status", "failed", "--older-than", "0s", "--yes")
	requireOK(t, r)
	require.Equal(t, "deleted 1 failed jobs older than 0s\n", r.stdout)
	require.Empty(t, listJSON(t, db, "--status", "failed"))
	require.Len(t, listJSON(t, db, "--status", "completed"), 1, "purge deletes only the status it names")
	require.Len(t, listJSON(t, db, "--status", "pending"), 3)
}

func TestDeadLetterCommandsRejectBadInput(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	j := enqueueJSON(t, db, "--queue", "q")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "retry"}, "give a job ID, or --status"},
		{[]string{"job", "retry", "--status", "completed"}, "only failed or cancelled"},
		{[]string{"job", "retry", "--status", "done"}, "--status"},
		{[]string{"job", "retry", j.ID.String(), "--yes"}, "not both"},
		{[]string{"job", "retry", "--status", "failed", "--queue", "bad queue"}, "--queue"},
		{[]string{"job", "purge", "--older-than", "7d"}, "--status is required"},
		{[]string{"job", "purge", "--status", "pending", "--older-than", "7d"}, "only finished jobs"},
		{[]string{"job", "purge", "--status", "failed"}, "--older-than is required"},
		{[]string{"job", "purge", "--status", "failed", "--older-than", "7x"}, "--older-than"},
		{[]string{"job", "purge", "--status", "failed", "--older-than", "-1h"}, "negative"},
	} {
		r := hw(t, nil, append(tt.args, "--database-url", db)...)
		require.NotEqual(t, 0, r.code, "%v", tt.args)
		require.Contains(t, r.stderr, tt.want, "%v", tt.args)
	}
	require.Equal(t, job.StatusPending, listJSON(t, db)[0].Status, "bad input changes nothing")
}

func TestParseAgeAcceptsGoDurationsAndDays(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"7d": 7 * 24 * time.Hour, "0d": 0, "36h": 36 * time.Hour, "90m": 90 * time.Minute, "0s": 0, " 1d ": 24 * time.Hour,
	} {
		got, err := parseAge(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "d", "1.5d", "-1d", "7x", "-5m", "week"} {
		_, err := parseAge(in)
		require.Error(t, err, in)
	}
}

func TestJobPurgeCountsAgeFromTheDatabaseAndLeavesWorkflowJobs(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	st := openTestStore(t, db)
	ctx := context.Background()
	dbNow, err := st.DatabaseNow(ctx)
	require.NoError(t, err)
	created, failed := dbNow.Add(-3*time.Hour), dbNow.Add(-2*time.Hour)

	_, err = st.Enqueue(ctx, store.EnqueueParams{Now: created, Jobs: []store.NewJob{{Queue: "emails"}}})
	require.NoError(t, err)
	wf, err := st.EnqueueWorkflow(ctx, store.EnqueueWorkflowParams{Now: created, Workflow: workflow.Workflow{
		Name: "w", Steps: []workflow.Step{{Name: "a", Queue: "emails"}}}})
	require.NoError(t, err)
	jobs, err := st.Lease(ctx, store.LeaseParams{AgentID: "test", Limit: 10, Duration: time.Minute, Now: failed})
	require.NoError(t, err)
	require.Len(t, jobs, 2)
	fs := make([]store.Failure, len(jobs))
	for i, j := range jobs {
		fs[i] = store.Failure{LeaseRef: store.LeaseRef{ID: j.ID, Token: j.LeaseToken}, Error: "400 Bad Request", Outcome: "http_400"}
	}
	_, err = st.Fail(ctx, store.FailParams{Failures: fs, Now: failed})
	require.NoError(t, err)
	enqueueJSON(t, db, "--queue", "emails")
	require.Equal(t, 1, failReadyJobs(t, st), "a job failed just now")
	require.Len(t, listJSON(t, db, "--status", "failed"), 3)

	r := hw(t, nil, "job", "purge", "--database-url", db, "--status", "failed", "--older-than", "1h")
	requireOK(t, r)
	require.Equal(t, "1 failed jobs older than 1h would be deleted; add --yes to delete them\n", r.stdout,
		"the job failed 2h ago counts, the one failed now does not, nor the workflow's")

	r = hw(t, nil, "job", "purge", "--database-url", db, "--status", "failed", "--older-than", "1h", "--yes")
	requireOK(t, r)
	require.Equal(t, "deleted 1 failed jobs older than 1h\n", r.stdout)
	left := listJSON(t, db, "--status", "failed")
	require.Len(t, left, 2)
	var inWorkflow int
	for _, j := range left {
		if j.WorkflowID != nil {
			require.Equal(t, wf.Workflow.ID, *j.WorkflowID)
			inWorkflow++
		}
	}
	require.Equal(t, 1, inWorkflow, "the workflow's job stays with its workflow")

	r = hw(t, nil, "job", "purge", "--help")
	requireOK(t, r)
	require.Contains(t, r.stdout, "Jobs of a workflow are not purged", "the help says what purge leaves")
	require.Contains(t, r.stdout, "deleted whole, with all its\njobs, by the agent's retention")
}
