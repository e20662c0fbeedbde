package storetest

import (
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// Unique keys: while a job with a key is pending or running, enqueueing the
// key again returns that job with Duplicate set; once it finishes the key
// is free. The database decides (a unique index over live jobs), so
// concurrent enqueues of one key agree on one job.

var uniqueTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"UniqueKeyReturnsTheLiveJobAsDuplicate", testUniqueDuplicate},
	{"UniqueKeyIsHeldWhileRunningAndFreedWhenFinished", testUniqueFreedWhenFinished},
	{"UniqueKeyRepeatedInOneEnqueueInsertsOnce", testUniqueWithinOneEnqueue},
	{"UniqueKeyConcurrentEnqueuesMakeExactlyOneJob", testUniqueConcurrent},
	{"UniqueKeyWithDependsOnSkipsTheDuplicatesEdges", testUniqueWithDependsOn},
}

func uniqueJob(key string) store.NewJob {
	n := newJob("unique")
	n.UniqueKey = key
	return n
}

func testUniqueDuplicate(t *testing.T, s store.Store) {
	first := enqueue(t, s, base, uniqueJob("k1"))[0]
	require.False(t, first.Duplicate, "the first enqueue inserts")

	got := enqueue(t, s, base.Add(1), uniqueJob("k1"), newJob("unique"), uniqueJob("k2"))
	require.True(t, got[0].Duplicate, "the live key returns the existing job")
	require.Equal(t, first.ID, got[0].ID)
	require.Equal(t, job.StatusPending, got[0].Status)
	require.False(t, got[1].Duplicate, "a job without a key is inserted")
	require.False(t, got[2].Duplicate, "another key is inserted")
	require.Len(t, listAll(t, s, store.ListParams{Queue: "unique"}), 3, "one job per key plus the keyless one")
}

func testUniqueFreedWhenFinished(t *testing.T, s store.Store) {
	first := running(t, s, base, uniqueJob("k"))[0]
	dup := enqueue(t, s, base.Add(1), uniqueJob("k"))[0]
	require.True(t, dup.Duplicate, "a running job holds its key")
	require.Equal(t, first.ID, dup.ID)

	require.Empty(t, complete(t, s, base.Add(2), store.Completion{LeaseRef: ref(first)}))
	second := enqueue(t, s, base.Add(3), uniqueJob("k"))[0]
	require.False(t, second.Duplicate, "a completed job frees its key")
	require.NotEqual(t, first.ID, second.ID)

	leased := leaseOne(t, s, base.Add(4))
	require.Equal(t, second.ID, leased.ID)
	res := fail(t, s, base.Add(5), store.Failure{LeaseRef: ref(leased), Error: "boom"})
	require.Equal(t, []uuid.UUID{second.ID}, res.Failed)
	third := enqueue(t, s, base.Add(6), uniqueJob("k"))[0]
	require.False(t, third.Duplicate, "a failed job frees its key")

	// Retrying the failed job while the key is held again is a conflict the
	// database reports, never a second live job with the key.
	_, err := s.Retry(t.Context(), store.RetryParams{ID: second.ID, Now: base.Add(7)})
	require.ErrorIs(t, err, store.ErrConflict, "retrying a job whose key is held by a live job")
	require.Len(t, listAll(t, s, store.ListParams{Queue: "unique", Status: job.StatusPending}), 1)
}

func testUniqueWithinOneEnqueue(t *testing.T, s store.Store) {
	got := enqueue(t, s, base, uniqueJob("same"), uniqueJob("same"), uniqueJob("other"))
	require.False(t, got[0].Duplicate)
	require.True(t, got[1].Duplicate, "the second job with the key is a duplicate of the first")
	require.Equal(t, got[0].ID, got[1].ID)
	require.False(t, got[2].Duplicate)
	require.Len(t, listAll(t, s, store.ListParams{Queue: "unique"}), 2)
}

func testUniqueConcurrent(t *testing.T, s store.Store) {
	const callers = 20
	var wg sync.WaitGroup
	got := make([]uuid.UUID, callers)
	errs := make([]error, callers)
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			<-start
			jobs, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: []store.NewJob{uniqueJob("race")}, Now: base})
			errs[i] = err
			if err == nil {
				got[i] = jobs[0].ID
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "caller %d", i)
	}
	all := listAll(t, s, store.ListParams{Queue: "unique"})
	require.Len(t, all, 1, "exactly one job for the key")
	for i, id := range got {
		require.Equal(t, all[0].ID, id, "caller %d gets the one job's id", i)
	}
}

func testUniqueWithDependsOn(t *testing.T, s store.Store) {
	parent := enqueue(t, s, base, uniqueJob("p"))[0]
	child := newJob("unique")
	child.UniqueKey = "c"
	got := enqueue(t, s, base.Add(1), uniqueJob("p"), withParents(child, parent.ID))
	require.True(t, got[0].Duplicate)
	require.Equal(t, parent.ID, got[0].ID)
	require.False(t, got[1].Duplicate)
	require.Equal(t, []uuid.UUID{got[1].ID}, get(t, s, parent.ID).Dependents, "the child's edge goes to the live parent")
	again := enqueue(t, s, base.Add(2), withParents(child, parent.ID))[0]
	require.True(t, again.Duplicate)
	require.Equal(t, []uuid.UUID{got[1].ID}, get(t, s, parent.ID).Dependents, "a duplicate writes no edge")
}

func withParents(n store.NewJob, parents ...uuid.UUID) store.NewJob {
	n.DependsOn = parents
	return n
}
