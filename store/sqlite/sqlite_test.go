package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/storetest"
	"github.com/hammerwork-go/hw-agent/workflow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) { storetest.Run(t, newTestStore) }

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openMigrated(t, MemoryURL) })
}

// newTestStore is a fresh, migrated store on its own file.
func newTestStore(t *testing.T) store.Store {
	return openMigrated(t, fileURL(t))
}

func fileURL(t *testing.T) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "hammerwork.db")
}

func openMigrated(t *testing.T, url string) *Store {
	t.Helper()
	s := open(t, url)
	_, err := s.Migrate(t.Context())
	require.NoError(t, err)
	return s
}

func open(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Config{URL: url})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestMigrateAppliesEveryVersionOnceAndIsIdempotent(t *testing.T) {
	t.Parallel()
	for _, url := range []string{MemoryURL, fileURL(t)} {
		s := open(t, url)
		pending, err := s.PendingMigrations(t.Context())
		require.NoError(t, err, "PendingMigrations works on an empty database")
		require.Equal(t, embeddedVersions(t), pending)

		_, err = s.Get(t.Context(), uuid.New())
		require.ErrorIs(t, err, store.ErrNotMigrated, "an unmigrated database says so")

		applied, err := s.Migrate(t.Context())
		require.NoError(t, err)
		require.Equal(t, pending, applied)

		applied, err = s.Migrate(t.Context())
		require.NoError(t, err)
		require.Empty(t, applied, "a second Migrate applies nothing")
		pending, err = s.PendingMigrations(t.Context())
		require.NoError(t, err)
		require.Empty(t, pending)
	}
}

func TestOpenRejectsOtherURLs(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"", "postgres://x", "sqlite://", "sqlite://a.db?mode=ro", "sqlite:memory"} {
		_, err := Open(t.Context(), Config{URL: url})
		require.ErrorIsf(t, err, store.ErrInvalid, "url %q", url)
	}
}

func TestOpenAcceptsAbsoluteAndRelativePaths(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, url := range []string{"sqlite://rel.db", "sqlite://" + filepath.Join(dir, "abs.db")} {
		openMigrated(t, url)
	}
	require.FileExists(t, filepath.Join(dir, "rel.db"))
	require.FileExists(t, filepath.Join(dir, "abs.db"))
}

// The query from hammerwork's workflow guide must run verbatim, with SQLite's
// CURRENT_TIMESTAMP for NOW(), and return exactly the leasable jobs in order.
func TestSeedQueryRunsVerbatim(t *testing.T) {
	t.Parallel()
	s := openMigrated(t, fileURL(t))
	now := time.Now()
	nj := func(queue string, p job.Priority, at time.Time) store.NewJob {
		return store.NewJob{Queue: queue, Payload: []byte(`{}`), Priority: p, ScheduledAt: at}
	}
	jobs, err := s.Enqueue(t.Context(), store.EnqueueParams{Now: now.Add(-time.Hour), Jobs: []store.NewJob{
		nj("seed", job.PriorityNormal, now.Add(-30*time.Minute)),   // 0: third
		nj("seed", job.PriorityHigh, now.Add(-10*time.Minute)),     // 1: second
		nj("seed", job.PriorityHigh, now.Add(-20*time.Minute)),     // 2: first
		nj("seed", job.PriorityCritical, now.Add(time.Hour)),       // 3: not yet due
		nj("other", job.PriorityCritical, now.Add(-time.Hour)),     // 4: other queue
		nj("seed", job.PriorityLow, now.Add(-40*time.Minute)),      // 5: fourth
		nj("seed", job.PriorityCritical, now.Add(-50*time.Minute)), // 6: waiting for a parent
		nj("seed", job.PriorityCritical, now.Add(-50*time.Minute)), // 7: leased below
		nj("seed", job.PriorityLow, now.Add(-45*time.Minute)),      // 8: satisfied, after 5
	}})
	require.NoError(t, err)
	_, err = s.write.ExecContext(t.Context(),
		`UPDATE hammerwork_jobs SET dependency_status = 'waiting', pending_dependencies = 1 WHERE id = ?`, jobs[6].ID.String())
	require.NoError(t, err)
	_, err = s.write.ExecContext(t.Context(),
		`UPDATE hammerwork_jobs SET dependency_status = 'satisfied' WHERE id = ?`, jobs[8].ID.String())
	require.NoError(t, err)
	leased, err := s.Lease(t.Context(), store.LeaseParams{AgentID: "a", Queues: []string{"seed"}, Limit: 1, Duration: time.Minute, Now: now})
	require.NoError(t, err)
	require.Len(t, leased, 1)
	require.Equal(t, jobs[7].ID, leased[0].ID)

	rows, err := s.read.QueryContext(t.Context(), `SELECT * FROM hammerwork_jobs
WHERE queue_name = ? AND status = 'pending' AND scheduled_at <= CURRENT_TIMESTAMP
  AND (dependency_status = 'none' OR dependency_status = 'satisfied')
ORDER BY priority DESC, scheduled_at ASC;`, "seed")
	require.NoError(t, err)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var got []uuid.UUID
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		id, err := uuid.Parse(fmt.Sprint(vals[0]))
		require.NoError(t, err)
		got = append(got, id)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []uuid.UUID{jobs[2].ID, jobs[1].ID, jobs[0].ID, jobs[8].ID, jobs[5].ID}, got)
}

// Two Stores on one file stand for two agent processes: each has its own
// write connection, and they meet only in SQLite's file lock.
func TestTwoProcessesMigrateAndLeaseWithoutDoubleLeases(t *testing.T) {
	t.Parallel()
	url := fileURL(t)
	stores := []*Store{open(t, url), open(t, url)}

	var mu sync.Mutex
	var applied []string
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for _, s := range stores {
		wg.Go(func() {
			a, err := s.Migrate(t.Context())
			if err != nil {
				errs <- err
			}
			mu.Lock()
			applied = append(applied, a...)
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Empty(t, drain(errs))
	slices.Sort(applied)
	require.Equal(t, embeddedVersions(t), applied, "each version is applied once between both")
	var mode string
	require.NoError(t, stores[1].read.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode))
	require.Equal(t, "wal", mode, "readers run beside the writer")

	const total = 400
	now := time.Now()
	in := make([]store.NewJob, total)
	for i := range in {
		in[i] = store.NewJob{Queue: "q", Payload: []byte(`{}`), Priority: job.Priority(i % 5)}
	}
	_, err := stores[0].Enqueue(t.Context(), store.EnqueueParams{Jobs: in, Now: now})
	require.NoError(t, err)

	seen := map[uuid.UUID]string{}
	var doubles []string
	deadline := time.Now().Add(time.Minute)
	for p, s := range stores {
		for w := range 4 {
			agent := fmt.Sprintf("process-%d-worker-%d", p, w)
			wg.Go(func() {
				for time.Now().Before(deadline) {
					got, err := s.Lease(context.Background(), store.LeaseParams{AgentID: agent, Limit: 5, Duration: time.Hour, Now: now})
					if err != nil {
						errs <- fmt.Errorf("%s: %w", agent, err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, j := range got {
						if prev, ok := seen[j.ID]; ok {
							doubles = append(doubles, fmt.Sprintf("%s leased by %s and %s", j.ID, prev, agent))
						}
						seen[j.ID] = agent
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	require.Empty(t, drain(errs), "no leaser fails, \"database is locked\" included")
	require.Empty(t, doubles)
	require.Len(t, seen, total, "every job is leased")
}

func drain(errs chan error) []error {
	var out []error
	for {
		select {
		case err := <-errs:
			out = append(out, err)
		default:
			return out
		}
	}
}

// Timestamps are fixed-width text, so the database orders them as times.
func TestTimestampsAreStoredInTheFixedFormat(t *testing.T) {
	t.Parallel()
	s := openMigrated(t, MemoryURL)
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	jobs, err := s.Enqueue(t.Context(), store.EnqueueParams{Now: at, Jobs: []store.NewJob{{Queue: "q"}}})
	require.NoError(t, err)
	var created string
	require.NoError(t, s.read.QueryRowContext(t.Context(),
		`SELECT created_at FROM hammerwork_jobs WHERE id = ?`, jobs[0].ID.String()).Scan(&created))
	require.Equal(t, "2030-01-02 02:04:05.000000", created)
}

func TestStateErrorsOfCancelAndRetry(t *testing.T) {
	t.Parallel()
	s := openMigrated(t, MemoryURL)
	jobs, err := s.Enqueue(t.Context(), store.EnqueueParams{Now: time.Now(), Jobs: []store.NewJob{{Queue: "q"}}})
	require.NoError(t, err)
	_, err = s.Retry(t.Context(), store.RetryParams{ID: jobs[0].ID, Now: time.Now()})
	var se *store.StateError
	require.True(t, errors.As(err, &se), "got %v", err)
	require.Equal(t, "retry", se.Op)
	require.Equal(t, job.StatusPending, se.Current)
}

// A workflow row that is gone must not jam its jobs: they resolve like jobs
// outside a workflow, so the agent's completions still commit.
func TestJobsOfADeletedWorkflowStillResolve(t *testing.T) {
	t.Parallel()
	s := openMigrated(t, MemoryURL)
	ctx := t.Context()
	now := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	got, err := s.EnqueueWorkflow(ctx, store.EnqueueWorkflowParams{Now: now, Workflow: workflow.Workflow{
		Name: "gone", Steps: []workflow.Step{{Name: "a", Queue: "q"}, {Name: "b", Queue: "q", DependsOn: []string{"a"}}},
	}})
	require.NoError(t, err)
	leased, err := s.Lease(ctx, store.LeaseParams{AgentID: "t", Limit: 10, Duration: time.Minute, Now: now})
	require.NoError(t, err)
	require.Len(t, leased, 1)
	_, err = s.write.ExecContext(ctx, `DELETE FROM hammerwork_workflows WHERE id = ?`, got.Workflow.ID.String())
	require.NoError(t, err)

	stale, err := s.Complete(ctx, store.CompleteParams{Now: now,
		Completions: []store.Completion{{LeaseRef: store.LeaseRef{ID: leased[0].ID, Token: leased[0].LeaseToken}}}})
	require.NoError(t, err)
	require.Empty(t, stale)
	b, err := s.Get(ctx, got.Jobs["b"])
	require.NoError(t, err)
	require.Equal(t, job.DependencySatisfied, b.DependencyStatus)
	_, err = s.CancelWorkflow(ctx, store.WorkflowParams{ID: got.Workflow.ID, Now: now})
	require.ErrorIs(t, err, store.ErrNotFound)
}
