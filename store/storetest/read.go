package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// queueStats returns the store's counts without zero rows, which a backend
// may or may not report.
func queueStats(t *testing.T, s store.Store) []store.QueueCount {
	t.Helper()
	counts, err := s.QueueStats(t.Context())
	require.NoError(t, err, "queue stats")
	return slices.DeleteFunc(counts, func(c store.QueueCount) bool { return c.Count == 0 })
}

// requireNewestFirst checks the listing order: id DESC.
func requireNewestFirst(t *testing.T, jobs []*job.Job) {
	t.Helper()
	require.Truef(t, slices.IsSortedFunc(ids(jobs), func(a, b uuid.UUID) int { return compareIDs(b, a) }),
		"jobs are listed by id DESC: %v", ids(jobs))
}

func testListFilters(t *testing.T, s store.Store) {
	jobs := enqueue(t, s, base, newJob("a"), newJob("a"), newJob("a"), newJob("b"), newJob("b"))
	a1, a2, a3, b1, b2 := jobs[0], jobs[1], jobs[2], jobs[3], jobs[4]
	now := base.Add(time.Second)
	doneB := lease(t, s, store.LeaseParams{Queues: []string{"b"}, Limit: 1, Now: now})
	require.Len(t, doneB, 1)
	require.Empty(t, complete(t, s, now, store.Completion{LeaseRef: ref(doneB[0])}))
	cancel(t, s, a3.ID, now)
	runA := lease(t, s, store.LeaseParams{Queues: []string{"a"}, Limit: 1, Now: now})
	require.Len(t, runA, 1)
	pendingA := a1
	if runA[0].ID == a1.ID {
		pendingA = a2
	}
	pendingB := b1
	if doneB[0].ID == b1.ID {
		pendingB = b2
	}

	for _, tc := range []struct {
		name string
		p    store.ListParams
		want []uuid.UUID
	}{
		{"All", store.ListParams{}, ids(jobs)},
		{"Queue", store.ListParams{Queue: "a"}, []uuid.UUID{a1.ID, a2.ID, a3.ID}},
		{"UnknownQueue", store.ListParams{Queue: "c"}, nil},
		{"Running", store.ListParams{Status: job.StatusRunning}, []uuid.UUID{runA[0].ID}},
		{"Completed", store.ListParams{Status: job.StatusCompleted}, []uuid.UUID{doneB[0].ID}},
		{"Cancelled", store.ListParams{Status: job.StatusCancelled}, []uuid.UUID{a3.ID}},
		{"Failed", store.ListParams{Status: job.StatusFailed}, nil},
		{"QueueAndStatus", store.ListParams{Queue: "b", Status: job.StatusPending}, []uuid.UUID{pendingB.ID}},
		{"PendingEverywhere", store.ListParams{Status: job.StatusPending}, []uuid.UUID{pendingA.ID, pendingB.ID}},
		{"DependencyNone", store.ListParams{DependencyStatus: job.DependencyNone}, ids(jobs)},
		{"DependencyWaiting", store.ListParams{DependencyStatus: job.DependencyWaiting}, nil},
		{"AllFilters", store.ListParams{Queue: "a", Status: job.StatusCancelled, DependencyStatus: job.DependencyNone}, []uuid.UUID{a3.ID}},
	} {
		got := listAll(t, s, tc.p)
		require.ElementsMatchf(t, tc.want, ids(got), "filter %s", tc.name)
		requireNewestFirst(t, got)
	}
}

func testListNewestFirst(t *testing.T, s store.Store) {
	var want []uuid.UUID
	for i := range 3 {
		j := enqueue(t, s, base.Add(time.Duration(i)*time.Second), newJob("q"))[0]
		want = append([]uuid.UUID{j.ID}, want...)
	}
	got := listAll(t, s, store.ListParams{})
	require.Equal(t, want, ids(got), "the last enqueued job is listed first")
	for _, j := range got {
		requireSameJob(t, get(t, s, j.ID), j)
	}
}

func testListCursor(t *testing.T, s store.Store) {
	in := []store.NewJob{newJob("q"), newJob("q"), newJob("other"), newJob("q"), newJob("q"), newJob("other"), newJob("q")}
	jobs := enqueue(t, s, base, in...)
	var want []uuid.UUID
	for _, j := range jobs {
		if j.Queue == "q" {
			want = append(want, j.ID)
		}
	}

	var got []*job.Job
	p := store.ListParams{Queue: "q", Limit: 2}
	for pages := 1; ; pages++ {
		require.LessOrEqual(t, pages, 3, "5 jobs take 3 pages of 2")
		page, err := s.List(t.Context(), p)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Jobs), 2, "a page holds at most Limit jobs")
		got = append(got, page.Jobs...)
		if page.NextCursor == "" {
			break
		}
		p.Cursor = page.NextCursor
	}
	require.ElementsMatch(t, want, ids(got), "paging visits every job exactly once")
	requireNewestFirst(t, got)
}

func testListLastPage(t *testing.T, s store.Store) {
	jobs := enqueue(t, s, base, newJob("q"), newJob("q"), newJob("q"), newJob("q"))
	first, err := s.List(t.Context(), store.ListParams{Limit: 2})
	require.NoError(t, err)
	require.Len(t, first.Jobs, 2)
	require.NotEmpty(t, first.NextCursor)

	last, err := s.List(t.Context(), store.ListParams{Limit: 2, Cursor: first.NextCursor})
	require.NoError(t, err)
	require.Len(t, last.Jobs, 2)
	require.Empty(t, last.NextCursor, "the page holding the last job has no cursor, even when full")
	require.ElementsMatch(t, ids(jobs), append(ids(first.Jobs), ids(last.Jobs)...))
}

func testListLimits(t *testing.T, s store.Store) {
	in := make([]store.NewJob, store.MaxListLimit+1)
	for i := range in {
		in[i] = newJob("q")
	}
	enqueue(t, s, base, in...)

	page, err := s.List(t.Context(), store.ListParams{})
	require.NoError(t, err)
	require.Len(t, page.Jobs, store.DefaultListLimit, "no Limit means 50")
	require.NotEmpty(t, page.NextCursor)

	page, err = s.List(t.Context(), store.ListParams{Limit: 5 * store.MaxListLimit})
	require.NoError(t, err)
	require.Len(t, page.Jobs, store.MaxListLimit, "Limit is capped at 1000")
	require.NotEmpty(t, page.NextCursor)
	requireNewestFirst(t, page.Jobs)

	rest, err := s.List(t.Context(), store.ListParams{Limit: store.MaxListLimit, Cursor: page.NextCursor})
	require.NoError(t, err)
	require.Len(t, rest.Jobs, 1)
	require.Empty(t, rest.NextCursor)
}

func testListBadCursor(t *testing.T, s store.Store) {
	enqueue(t, s, base, newJob("q"))
	_, err := s.List(t.Context(), store.ListParams{Cursor: "not-a-job-id"})
	require.ErrorIs(t, err, store.ErrInvalid)
}

func testQueueStats(t *testing.T, s store.Store) {
	require.Empty(t, queueStats(t, s), "an empty store counts nothing")

	jobs := running(t, s, base, newJob("b"), newJob("b"), newJob("b"))
	enqueue(t, s, base, newJob("a"), newJob("a"), newJob("a"))
	now := base.Add(time.Second)
	require.Empty(t, complete(t, s, now, store.Completion{LeaseRef: ref(jobs[0])}))
	fail(t, s, now, store.Failure{LeaseRef: ref(jobs[1]), Error: "HTTP 400", Outcome: "http_400"})
	cancel(t, s, jobs[2].ID, now)
	lease(t, s, store.LeaseParams{Queues: []string{"a"}, Limit: 1, Now: now})

	require.ElementsMatch(t, []store.QueueCount{
		{Queue: "a", Status: job.StatusPending, Count: 2},
		{Queue: "a", Status: job.StatusRunning, Count: 1},
		{Queue: "b", Status: job.StatusCompleted, Count: 1},
		{Queue: "b", Status: job.StatusFailed, Count: 1},
		{Queue: "b", Status: job.StatusCancelled, Count: 1},
	}, queueStats(t, s))
}
