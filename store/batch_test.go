package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

func TestGroupBatchResultsListsABatchStepInIndexOrder(t *testing.T) {
	t.Parallel()
	got, err := store.GroupBatchResults(map[string]json.RawMessage{
		"extract":    json.RawMessage(`{"rows": 3}`),
		"resize[10]": json.RawMessage(`10`),
		"resize[2]":  json.RawMessage(`2`),
		"resize[0]":  nil,
	})
	require.NoError(t, err)
	require.JSONEq(t, `{"rows": 3}`, string(got["extract"]))
	require.JSONEq(t, `[null, 2, 10]`, string(got["resize"]))
	require.Len(t, got, 2)
}

func TestNewBatchStateCountsWhatWasWritten(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	jobs := []*job.Job{
		{Status: job.StatusPending},
		{Status: job.StatusPending, Duplicate: true},
		{Status: job.StatusCancelled},
	}
	b := store.NewBatchState(uuid.New(), store.FailFast, jobs, now)
	require.Equal(t, 2, b.Total, "a duplicate is not part of the batch")
	require.Equal(t, 1, b.Cancelled)
	require.Equal(t, 1, b.Pending())
	require.Equal(t, store.BatchProcessing, b.Status)
	require.Nil(t, b.CompletedAt)

	done := store.NewBatchState(uuid.New(), store.ContinueOnError, []*job.Job{{Status: job.StatusCancelled}}, now)
	require.Equal(t, store.BatchFailed, done.Status, "finished with nothing completed")
	require.Equal(t, &now, done.CompletedAt)
}

func TestDedupeAliasesDuplicatesAndTheirEdges(t *testing.T) {
	t.Parallel()
	live := &job.Job{ID: uuid.New(), UniqueKey: "k", Status: job.StatusRunning}
	a := &job.Job{ID: uuid.New(), UniqueKey: "k"}
	b := &job.Job{ID: uuid.New(), UniqueKey: "new"}
	c := &job.Job{ID: uuid.New(), UniqueKey: "new"}
	child := &job.Job{ID: uuid.New(), DependsOn: []uuid.UUID{a.ID}}
	edges := []store.Edge{{JobID: child.ID, DependsOnID: a.ID}, {JobID: a.ID, DependsOnID: b.ID}}

	result, write, keep := store.Dedupe([]*job.Job{a, b, c, child}, edges, map[string]*job.Job{"k": live})
	require.Equal(t, live.ID, result[0].ID)
	require.True(t, result[0].Duplicate)
	require.False(t, live.Duplicate, "the live job itself is not changed")
	require.Same(t, b, result[1])
	require.Equal(t, b.ID, result[2].ID, "a repeated key in the input is the first job")
	require.True(t, result[2].Duplicate)
	require.Equal(t, []*job.Job{b, child}, write)
	require.Equal(t, []store.Edge{{JobID: child.ID, DependsOnID: live.ID}}, keep, "edges go to the live job; the duplicate's own are dropped")
	require.Equal(t, []uuid.UUID{live.ID}, child.DependsOn)
}
