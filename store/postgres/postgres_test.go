package postgres_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/postgres"
	"github.com/hammerwork-go/hw-agent/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return testkit.Postgres(t) })
}

// seedQuery is the query of hammerwork's workflow guide, verbatim but for
// the placeholder.
const seedQuery = `SELECT * FROM hammerwork_jobs
WHERE queue_name = $1 AND status = 'pending' AND scheduled_at <= NOW()
  AND (dependency_status = 'none' OR dependency_status = 'satisfied')
ORDER BY priority DESC, scheduled_at ASC;`

func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSeedQueryReturnsExactlyTheLeasableJobsInOrder(t *testing.T) {
	t.Parallel()
	s := testkit.Postgres(t)
	ctx := t.Context()
	now := time.Now().Add(-time.Minute) // NOW() in the query is the database's clock

	newJob := func(queue string, p job.Priority, scheduled time.Time) store.NewJob {
		return store.NewJob{Queue: queue, Payload: []byte(`{}`), Priority: p, ScheduledAt: scheduled}
	}
	jobs, err := s.Enqueue(ctx, store.EnqueueParams{Now: now, Jobs: []store.NewJob{
		newJob("seed", job.PriorityNormal, now.Add(-2*time.Second)),   // 0: leasable, third
		newJob("seed", job.PriorityCritical, now),                     // 1: leasable, first
		newJob("seed", job.PriorityNormal, now.Add(-3*time.Second)),   // 2: leasable, second
		newJob("seed", job.PriorityLow, now),                          // 3: leasable, last (satisfied)
		newJob("seed", job.PriorityHigh, now.Add(time.Hour)),          // 4: scheduled in the future
		newJob("other", job.PriorityCritical, now),                    // 5: other queue
		newJob("seed", job.PriorityCritical, now.Add(-time.Hour)),     // 6: waiting for a parent
		newJob("seed", job.PriorityCritical, now.Add(-2*time.Hour)),   // 7: dependency failed
		newJob("seed", job.PriorityBackground, now.Add(-time.Minute)), // 8: cancelled
	}})
	require.NoError(t, err)
	_, err = s.Cancel(ctx, store.CancelParams{ID: jobs[8].ID, Now: now})
	require.NoError(t, err)
	for i, status := range map[int]string{3: "satisfied", 6: "waiting", 7: "failed"} {
		_, err := s.Pool().Exec(ctx, `UPDATE hammerwork_jobs SET dependency_status = $2 WHERE id = $1`, jobs[i].ID, status)
		require.NoError(t, err)
	}

	rows, err := s.Pool().Query(ctx, seedQuery, "seed")
	require.NoError(t, err)
	var got []uuid.UUID
	for rows.Next() {
		values, err := rows.Values()
		require.NoError(t, err)
		for i, f := range rows.FieldDescriptions() {
			if f.Name == "id" {
				got = append(got, uuid.UUID(values[i].([16]byte)))
			}
		}
	}
	require.NoError(t, rows.Err())
	want := []uuid.UUID{jobs[1].ID, jobs[2].ID, jobs[0].ID, jobs[3].ID}
	require.Equal(t, want, got)

	// Lease agrees with the seed query, job by job.
	for _, id := range want {
		leased, err := s.Lease(ctx, store.LeaseParams{AgentID: "a", Queues: []string{"seed"}, Limit: 1, Duration: time.Minute, Now: now})
		require.NoError(t, err)
		require.Len(t, leased, 1)
		require.Equal(t, id, leased[0].ID)
	}
}

// TestLeaseAndSeedQueriesCanUseThePartialIndexes proves the predicates
// match the partial indexes: with sequential scans disabled the planner
// still finds a plan through them.
func TestLeaseAndSeedQueriesCanUseThePartialIndexes(t *testing.T) {
	t.Parallel()
	s := testkit.Postgres(t)
	ctx := t.Context()
	// plan explains sql after setup, in a transaction it rolls back.
	plan := func(setup, sql string, args ...any) string {
		tx, err := s.Pool().Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(context.Background()) }()
		_, err = tx.Exec(ctx, `SET LOCAL enable_seqscan = off`)
		require.NoError(t, err)
		if setup != "" {
			_, err = tx.Exec(ctx, setup)
			require.NoError(t, err)
		}
		rows, err := tx.Query(ctx, `EXPLAIN `+sql, args...)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return strings.Join(lines, "\n")
	}
	require.Contains(t, plan(`DROP INDEX hammerwork_jobs_lease_all_idx`, seedQuery, "q"), "hammerwork_jobs_lease_queue_idx")
	leaseOne := `SELECT id FROM hammerwork_jobs
    WHERE status = 'pending' AND dependency_status IN ('none', 'satisfied') AND scheduled_at <= $1
    ORDER BY priority DESC, scheduled_at, id LIMIT 10 FOR UPDATE SKIP LOCKED`
	require.Contains(t, plan("", leaseOne, time.Now()), "hammerwork_jobs_lease_all_idx")
}

func TestMigrateIsIdempotentUnderConcurrentMigrators(t *testing.T) {
	t.Parallel()
	url := testkit.PostgresURL(t)
	s := open(t, url)
	ctx := t.Context()

	pending, err := s.PendingMigrations(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, pending)
	require.Equal(t, "0001_init", pending[0])

	var (
		mu      sync.Mutex
		applied []string
		wg      sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			other, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 2})
			if !assertNoError(t, err) {
				return
			}
			defer other.Close()
			got, err := other.Migrate(ctx)
			if !assertNoError(t, err) {
				return
			}
			mu.Lock()
			applied = append(applied, got...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(applied)
	require.Equal(t, pending, applied, "every migration applied exactly once")

	again, err := s.Migrate(ctx)
	require.NoError(t, err)
	require.Empty(t, again)
	pending, err = s.PendingMigrations(ctx)
	require.NoError(t, err)
	require.Empty(t, pending)
}

// assertNoError reports err from a goroutine, where require cannot stop the test.
func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

func TestUnmigratedDatabaseIsErrNotMigrated(t *testing.T) {
	t.Parallel()
	s := open(t, testkit.PostgresURL(t))
	ctx := t.Context()
	now := time.Now()

	_, err := s.Enqueue(ctx, store.EnqueueParams{Now: now, Jobs: []store.NewJob{{Queue: "q"}}})
	require.ErrorIs(t, err, store.ErrNotMigrated)
	_, err = s.Lease(ctx, store.LeaseParams{Limit: 1, Now: now})
	require.ErrorIs(t, err, store.ErrNotMigrated)
	_, err = s.Get(ctx, uuid.New())
	require.ErrorIs(t, err, store.ErrNotMigrated)
	_, err = s.List(ctx, store.ListParams{})
	require.ErrorIs(t, err, store.ErrNotMigrated)
	_, err = s.QueueStats(ctx)
	require.ErrorIs(t, err, store.ErrNotMigrated)
	_, err = s.Complete(ctx, store.CompleteParams{Now: now, Completions: []store.Completion{{LeaseRef: store.LeaseRef{ID: uuid.New(), Token: "t"}}}})
	require.ErrorIs(t, err, store.ErrNotMigrated)
	_, err = s.RescueExpired(ctx, store.RescueParams{Now: now})
	require.ErrorIs(t, err, store.ErrNotMigrated)
	_, err = s.Cancel(ctx, store.CancelParams{ID: uuid.New(), Now: now})
	require.ErrorIs(t, err, store.ErrNotMigrated)
}

func TestOpenErrorsNeverShowThePassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cretPW-42"
	for _, url := range []string{
		"postgres://hw:" + secret + "@127.0.0.1:1/test?sslmode=disable&connect_timeout=2",
		"postgres://hw:" + secret + "@127.0.0.1:notaport/test",
		"host=127.0.0.1 port=1 user=hw password=" + secret + " connect_timeout=2 sslmode=disable",
	} {
		_, err := postgres.Open(t.Context(), postgres.Config{URL: url})
		require.Error(t, err)
		require.NotContains(t, err.Error(), secret)
	}
	require.Equal(t, "postgres://hw:xxxxx@db:5432/x", postgres.RedactURL("postgres://hw:"+secret+"@db:5432/x"))
}

// TestEnqueueNotifiesOncePerQueuePerBatch covers both insert paths (COPY
// for a large batch, one INSERT for a small one). Notifications arrive in
// commit order, so a final marker batch bounds what each batch sent. The
// channel is database-wide, so the queue names carry a prefix of this test
// and other tests' notifications are ignored.
func TestEnqueueNotifiesOncePerQueuePerBatch(t *testing.T) {
	t.Parallel()
	url := testkit.PostgresURL(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s := open(t, url)
	_, err := s.Migrate(ctx)
	require.NoError(t, err)
	listener, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer listener.Close(context.Background())
	_, err = listener.Exec(ctx, "LISTEN "+postgres.NotifyChannel)
	require.NoError(t, err)

	batch := func(n int, queues ...string) []store.NewJob {
		out := make([]store.NewJob, n)
		for i := range out {
			out[i] = store.NewJob{Queue: queues[i%len(queues)], Payload: []byte(`{"i": 1}`), Priority: job.PriorityNormal}
		}
		return out
	}
	prefix := "n" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12] + "-"
	a, b, c, end := prefix+"a", prefix+"b", prefix+"c", prefix+"end"
	now := time.Now()
	large, err := s.Enqueue(ctx, store.EnqueueParams{Now: now, Jobs: batch(250, a, b)})
	require.NoError(t, err)
	_, err = s.Enqueue(ctx, store.EnqueueParams{Now: now, Jobs: batch(5, c, a)})
	require.NoError(t, err)
	_, err = s.Enqueue(ctx, store.EnqueueParams{Now: now, Jobs: batch(1, end)})
	require.NoError(t, err)

	var got []string
	for {
		n, err := listener.WaitForNotification(ctx)
		require.NoError(t, err)
		if n.Payload == end {
			break
		}
		if strings.HasPrefix(n.Payload, prefix) {
			got = append(got, n.Payload)
		}
	}
	require.Len(t, got, 4, "one notification per queue per batch: %v", got)
	require.ElementsMatch(t, []string{a, b}, got[:2])
	require.ElementsMatch(t, []string{c, a}, got[2:])

	// The COPY path stores what Enqueue returned.
	for _, j := range []*job.Job{large[0], large[249]} {
		stored, err := s.Get(ctx, j.ID)
		require.NoError(t, err)
		require.Equal(t, j.Payload, stored.Payload, "payload kept byte for byte")
		require.Equal(t, j.Queue, stored.Queue)
		require.True(t, j.CreatedAt.Equal(stored.CreatedAt))
	}
}

func TestEnqueueLargeBatchWithDuplicateIDWritesNothing(t *testing.T) {
	t.Parallel()
	s := testkit.Postgres(t)
	ctx := t.Context()
	jobs := make([]store.NewJob, 200)
	for i := range jobs {
		jobs[i] = store.NewJob{Queue: "dup"}
	}
	jobs[150].ID = uuid.Must(uuid.NewV7())
	jobs[10].ID = jobs[150].ID
	_, err := s.Enqueue(ctx, store.EnqueueParams{Now: time.Now(), Jobs: jobs})
	require.ErrorIs(t, err, store.ErrConflict)
	stats, err := s.QueueStats(ctx)
	require.NoError(t, err)
	require.Empty(t, stats)
}

func TestNotMigratedIsNotConfusedWithOtherErrors(t *testing.T) {
	t.Parallel()
	s := testkit.Postgres(t)
	_, err := s.Get(t.Context(), uuid.New())
	require.ErrorIs(t, err, store.ErrNotFound)
	require.False(t, errors.Is(err, store.ErrNotMigrated))
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWaitForJobsWakesOnEnqueueAndEndsWithContextOrClose(t *testing.T) {
	t.Parallel()
	s := testkit.Postgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	listenCtx, stopListening := context.WithCancel(ctx)
	wake, err := s.WaitForJobs(listenCtx)
	require.NoError(t, err)
	queue := "wake-" + uuid.NewString() // the channel is database-wide: other tests notify too
	_, err = s.Enqueue(ctx, store.EnqueueParams{Now: time.Now(), Jobs: []store.NewJob{{Queue: queue}, {Queue: queue}}})
	require.NoError(t, err)
	for woken := false; !woken; {
		select {
		case q := <-wake:
			woken = q == queue
		case <-ctx.Done():
			t.Fatal("no wake-up after enqueue")
		}
	}
	stopListening()
	requireClosed(ctx, t, wake)

	wake, err = s.WaitForJobs(ctx)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	requireClosed(ctx, t, wake)
	_, err = s.WaitForJobs(ctx)
	require.Error(t, err, "a closed store does not listen")
}

// requireClosed drains ch until it closes or ctx ends.
func requireClosed(ctx context.Context, t *testing.T, ch <-chan string) {
	t.Helper()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-ctx.Done():
			t.Fatal("channel did not close")
		}
	}
}

// TestGetFillsDependsOnAndDependents writes an edge the way the workflow
// code does (depends_on on the child, a row in the edge table) and reads it
// from both ends.
func TestGetFillsDependsOnAndDependents(t *testing.T) {
	t.Parallel()
	s := testkit.Postgres(t)
	ctx := t.Context()
	jobs, err := s.Enqueue(ctx, store.EnqueueParams{Now: time.Now(), Jobs: []store.NewJob{{Queue: "q"}, {Queue: "q"}, {Queue: "q"}}})
	require.NoError(t, err)
	parent, child1, child2 := jobs[0].ID, jobs[1].ID, jobs[2].ID
	for _, child := range []uuid.UUID{child1, child2} {
		_, err = s.Pool().Exec(ctx, `UPDATE hammerwork_jobs SET depends_on = jsonb_build_array($2::text),
			dependency_status = 'waiting', pending_dependencies = 1 WHERE id = $1`, child, parent.String())
		require.NoError(t, err)
		_, err = s.Pool().Exec(ctx, `INSERT INTO hammerwork_job_dependencies (job_id, depends_on_id) VALUES ($1, $2)`, child, parent)
		require.NoError(t, err)
	}

	p, err := s.Get(ctx, parent)
	require.NoError(t, err)
	require.Empty(t, p.DependsOn)
	want := []uuid.UUID{child1, child2}
	slices.SortFunc(want, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	require.Equal(t, want, p.Dependents)

	c, err := s.Get(ctx, child1)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{parent}, c.DependsOn)
	require.Empty(t, c.Dependents)
	require.Equal(t, job.DependencyWaiting, c.DependencyStatus)
	require.Equal(t, 1, c.PendingDependencies)

	// A waiting child is not leasable; its parent is.
	leased, err := s.Lease(ctx, store.LeaseParams{AgentID: "a", Limit: 10, Duration: time.Minute, Now: time.Now()})
	require.NoError(t, err)
	require.Len(t, leased, 1)
	require.Equal(t, parent, leased[0].ID)
}

func TestCompleteRejectsAResultThatIsNotJSON(t *testing.T) {
	t.Parallel()
	s := testkit.Postgres(t)
	ctx := t.Context()
	now := time.Now()
	_, err := s.Enqueue(ctx, store.EnqueueParams{Now: now, Jobs: []store.NewJob{{Queue: "q"}}})
	require.NoError(t, err)
	leased, err := s.Lease(ctx, store.LeaseParams{AgentID: "a", Limit: 1, Duration: time.Minute, Now: now})
	require.NoError(t, err)
	require.Len(t, leased, 1)
	ref := store.LeaseRef{ID: leased[0].ID, Token: leased[0].LeaseToken}
	_, err = s.Complete(ctx, store.CompleteParams{Now: now, Completions: []store.Completion{{LeaseRef: ref, Result: []byte("not json")}}})
	require.ErrorIs(t, err, store.ErrInvalid)
	got, err := s.Get(ctx, ref.ID)
	require.NoError(t, err)
	require.Equal(t, job.StatusRunning, got.Status, "a rejected batch changes nothing")
}
