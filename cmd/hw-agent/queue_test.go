package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/job"
)

func queueListJSON(t *testing.T, db string) []api.QueueView {
	t.Helper()
	r := hw(t, nil, "queue", "list", "--database-url", db, "--output", "json")
	requireOK(t, r)
	var out struct {
		Queues []api.QueueView `json:"queues"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	return out.Queues
}

func TestQueueListStatsPauseResume(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	enqueueJSON(t, db, "--queue", "emails", "--payload", `{}`)
	enqueueJSON(t, db, "--queue", "emails", "--payload", `{}`, "--delay", "1h")
	enqueueJSON(t, db, "--queue", "reports", "--payload", `{}`)

	qs := queueListJSON(t, db)
	require.Len(t, qs, 2)
	require.Equal(t, "emails", qs[0].Name)
	require.EqualValues(t, 2, qs[0].Depth[job.StatusPending])
	require.False(t, qs[0].Paused)

	r := hw(t, nil, "queue", "pause", "emails", "--database-url", db)
	requireOK(t, r)
	require.Equal(t, "queue emails paused\n", r.stdout)
	r = hw(t, nil, "queue", "pause", "later", "--database-url", db, "--output", "json")
	requireOK(t, r)
	var v api.QueueView
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v), r.stdout)
	require.True(t, v.Paused, "a queue without jobs can be paused")
	require.Equal(t, "cli", v.PausedBy)

	table := hw(t, nil, "queue", "list", "--database-url", db)
	requireOK(t, table)
	require.Regexp(t, `QUEUE\s+PAUSED\s+PENDING\s+RUNNING\s+COMPLETED\s+FAILED\s+CANCELLED\s+SKIPPED\s+OLDEST PENDING\s+DONE/MIN`, table.stdout)
	require.Regexp(t, `emails\s+yes\s+2\s+0\s+0\s+0\s+0\s+0\s+`, table.stdout)
	require.Regexp(t, `later\s+yes\s+0\s+`, table.stdout)
	require.Regexp(t, `reports\s+no\s+1\s+`, table.stdout)

	stats := hw(t, nil, "queue", "stats", "emails", "--database-url", db)
	requireOK(t, stats)
	require.Regexp(t, `Queue:\s+emails`, stats.stdout)
	require.Regexp(t, `Paused:\s+yes \(since .*, by cli\)`, stats.stdout)
	require.Regexp(t, `Pending:\s+2`, stats.stdout)
	require.Regexp(t, `Completed last minute:\s+0`, stats.stdout)
	all := hw(t, nil, "queue", "stats", "--database-url", db)
	requireOK(t, all)
	for _, name := range []string{"emails", "later", "reports"} {
		require.Regexp(t, `Queue:\s+`+name, all.stdout)
	}

	requireOK(t, hw(t, nil, "queue", "resume", "emails", "--database-url", db))
	qs = queueListJSON(t, db)
	require.False(t, qs[0].Paused)
	require.True(t, qs[1].Paused, "resuming one queue leaves the others paused")
}

func TestQueueCommandsRejectBadNamesAndUnknownQueues(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	for _, args := range [][]string{
		{"queue", "pause", "bad name"},
		{"queue", "resume", "a/b"},
		{"queue", "stats", "bad name"},
	} {
		r := hw(t, nil, append(args, "--database-url", db)...)
		require.NotZero(t, r.code, args)
		require.Contains(t, r.stderr, "not a valid name", args)
	}
	r := hw(t, nil, "queue", "stats", "nowhere", "--database-url", db)
	require.NotZero(t, r.code)
	require.Contains(t, r.stderr, `queue "nowhere" has no jobs and no pause`)
	require.Empty(t, queueListJSON(t, db), "rejected commands write nothing")
}
