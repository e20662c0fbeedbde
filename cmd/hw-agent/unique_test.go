package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
)

func TestJobEnqueueUniqueKeyReturnsTheLiveJob(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)

	first := hw(t, nil, "job", "enqueue", "--database-url", db, "--queue", "emails", "--unique-key", "welcome-ada",
		"--output", "json")
	requireOK(t, first)
	var j job.Job
	require.NoError(t, json.Unmarshal([]byte(first.stdout), &j), first.stdout)
	require.Equal(t, "welcome-ada", j.UniqueKey)
	require.False(t, j.Duplicate)

	dup := hw(t, nil, "job", "enqueue", "--database-url", db, "--queue", "emails", "--unique-key", "welcome-ada")
	requireOK(t, dup)
	require.Equal(t, "duplicate: "+j.ID.String()+" on queue emails already holds unique key \"welcome-ada\" (pending)\n", dup.stdout)
	require.Len(t, listJSON(t, db), 1, "a duplicate enqueues nothing")

	requireOK(t, hw(t, nil, "job", "cancel", j.ID.String(), "--database-url", db))
	again := hw(t, nil, "job", "enqueue", "--database-url", db, "--queue", "emails", "--unique-key", "welcome-ada")
	requireOK(t, again)
	require.Contains(t, again.stdout, "enqueued ", "a cancelled job frees its key")
	require.Len(t, listJSON(t, db), 2)
}
