package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/mysql"
	"github.com/hammerwork-go/hw-agent/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return testkit.MySQL(t) })
}

func open(t *testing.T, rawURL string) *mysql.Store {
	t.Helper()
	s, err := mysql.Open(t.Context(), mysql.Config{URL: rawURL, MaxConns: 8})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// withParam adds one query parameter to a URL or DSN.
func withParam(rawURL, key, value string) string {
	sep := "?"
	if strings.Contains(rawURL, "?") {
		sep = "&"
	}
	return rawURL + sep + key + "=" + url.QueryEscape(value)
}

// seedQuery is an operator's hand-written query for a queue's due jobs, as
// hammerwork documents it, verbatim but for the placeholder.
const seedQuery = `SELECT * FROM hammerwork_jobs
WHERE queue_name = ? AND status = 'pending' AND scheduled_at <= NOW()
  AND (dependency_status = 'none' OR dependency_status = 'satisfied')
ORDER BY priority DESC, scheduled_at ASC;`

// seedIDs runs the seed query on db and returns the ids it finds, in order.
func seedIDs(t *testing.T, db *sql.DB, queue string) []uuid.UUID {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), seedQuery, queue)
	require.NoError(t, err)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var out []uuid.UUID
	for rows.Next() {
		vals := make([]any, len(cols))
		for i := range vals {
			vals[i] = new(sql.RawBytes)
		}
		require.NoError(t, rows.Scan(vals...))
		require.Equal(t, "id", cols[0])
		id, err := uuid.ParseBytes(*vals[0].(*sql.RawBytes))
		require.NoError(t, err)
		out = append(out, id)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestSeedQueryRunsVerbatimAndMeansWhatItSays(t *testing.T) {
	t.Parallel()
	s := testkit.MySQL(t)
	ctx := t.Context()
	clock := store.UTC(time.Now())
	nj := func(queue string, p job.Priority, at time.Time) store.NewJob {
		return store.NewJob{Queue: queue, Payload: []byte(`{}`), Priority: p, ScheduledAt: at}
	}
	jobs, err := s.Enqueue(ctx, store.EnqueueParams{Now: clock.Add(-time.Hour), Jobs: []store.NewJob{
		nj("seed", job.PriorityNormal, clock.Add(-10*time.Minute)),   // 0 due
		nj("seed", job.PriorityHigh, clock.Add(-time.Minute)),        // 1 due, first
		nj("seed", job.PriorityNormal, clock.Add(-20*time.Minute)),   // 2 due, satisfied
		nj("seed", job.PriorityNormal, clock.Add(-30*time.Minute)),   // 3 waiting
		nj("seed", job.PriorityCritical, clock.Add(2*time.Hour)),     // 4 future
		nj("other", job.PriorityCritical, clock.Add(-time.Minute)),   // 5 other queue
		nj("seed", job.PriorityCritical, clock.Add(-40*time.Minute)), // 6 running
	}})
	require.NoError(t, err)
	_, err = s.DB().ExecContext(ctx, `UPDATE hammerwork_jobs SET dependency_status = 'satisfied' WHERE id = ?`, jobs[2].ID.String())
	require.NoError(t, err)
	_, err = s.DB().ExecContext(ctx, `UPDATE hammerwork_jobs SET dependency_status = 'waiting', pending_dependencies = 1 WHERE id = ?`, jobs[3].ID.String())
	require.NoError(t, err)
	leased, err := s.Lease(ctx, store.LeaseParams{AgentID: "a", Queues: []string{"seed"}, Limit: 1, Duration: time.Minute, Now: clock})
	require.NoError(t, err)
	require.Len(t, leased, 1)
	require.Equal(t, jobs[6].ID, leased[0].ID, "the critical job is leased first")

	require.Equal(t, []uuid.UUID{jobs[1].ID, jobs[2].ID, jobs[0].ID}, seedIDs(t, s.DB(), "seed"))
}

// TestTimesAreUTCWhateverTheSessionZone opens the store on a URL that asks
// for a +05:00 session and reads its rows from a separate +05:00 session:
// the store's sessions stay UTC, so instants survive and NOW() in the seed
// query agrees with stored times. The server's global settings are not
// touched.
func TestTimesAreUTCWhateverTheSessionZone(t *testing.T) {
	t.Parallel()
	dbURL := testkit.MySQLURL(t)
	plus5 := withParam(dbURL, "time_zone", "'+05:00'")
	s := open(t, plus5)
	_, err := s.Migrate(t.Context())
	require.NoError(t, err)
	ctx := t.Context()

	var zone string
	require.NoError(t, s.DB().QueryRowContext(ctx, `SELECT @@SESSION.time_zone`).Scan(&zone))
	require.Equal(t, "+00:00", zone, "the store forces UTC sessions")

	// The raw session really is at +05:00.
	raw := open(t, dbURL).DB()
	conn, err := raw.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, `SET time_zone = '+05:00'`)
	require.NoError(t, err)
	var offset int
	require.NoError(t, conn.QueryRowContext(ctx, `SELECT TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(), NOW())`).Scan(&offset))
	require.InDelta(t, 300, offset, 1)

	karachi := time.FixedZone("PKT", 5*3600)
	clock := time.Now().In(karachi).Truncate(time.Microsecond)
	due := clock.Add(-time.Minute).Add(123 * time.Microsecond)
	later := clock.Add(2 * time.Hour)
	jobs, err := s.Enqueue(ctx, store.EnqueueParams{Now: clock.Add(-time.Hour), Jobs: []store.NewJob{
		{Queue: "tz", Payload: []byte(`{}`), ScheduledAt: due},
		{Queue: "tz", Payload: []byte(`{}`), ScheduledAt: later},
	}})
	require.NoError(t, err)

	got, err := s.Get(ctx, jobs[0].ID)
	require.NoError(t, err)
	require.True(t, due.Equal(got.ScheduledAt), "want %s, got %s", due.UTC(), got.ScheduledAt)
	require.Equal(t, time.UTC, got.ScheduledAt.Location())

	// The column holds the UTC wall clock, whoever reads it.
	var stored string
	require.NoError(t, conn.QueryRowContext(ctx, `SELECT DATE_FORMAT(scheduled_at, '%Y-%m-%d %H:%i:%s.%f') FROM hammerwork_jobs WHERE id = ?`,
		jobs[0].ID.String()).Scan(&stored))
	require.Equal(t, due.UTC().Format("2006-01-02 15:04:05.000000"), stored)

	require.Equal(t, []uuid.UUID{jobs[0].ID}, seedIDs(t, s.DB(), "tz"), "the store's session finds only the due job")
	// Control: on the +05:00 session NOW() runs five hours ahead of the
	// stored UTC times, and the job due in two hours looks due.
	rows, err := conn.QueryContext(ctx, `SELECT COUNT(*) FROM hammerwork_jobs WHERE queue_name = 'tz' AND scheduled_at <= NOW()`)
	require.NoError(t, err)
	require.True(t, rows.Next())
	var n int
	require.NoError(t, rows.Scan(&n))
	require.NoError(t, rows.Close())
	require.Equal(t, 2, n)

	leased, err := s.Lease(ctx, store.LeaseParams{AgentID: "a", Limit: 5, Duration: time.Minute, Now: clock})
	require.NoError(t, err)
	require.Len(t, leased, 1)
	require.True(t, clock.Add(time.Minute).Equal(*leased[0].LeaseExpiresAt))
}

func TestMigrateIsIdempotentAcrossConcurrentMigrators(t *testing.T) {
	t.Parallel()
	dbURL := testkit.MySQLURL(t)
	const n = 5
	stores := make([]*mysql.Store, n)
	for i := range stores {
		stores[i] = open(t, dbURL)
	}
	pending, err := stores[0].PendingMigrations(t.Context())
	require.NoError(t, err)
	require.Equal(t, embeddedVersions(t), pending)
	_, err = stores[0].List(t.Context(), store.ListParams{})
	require.ErrorIs(t, err, store.ErrNotMigrated)

	applied := make([][]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() { applied[i], errs[i] = s.Migrate(t.Context()) })
	}
	wg.Wait()
	total := 0
	for i := range n {
		require.NoError(t, errs[i])
		total += len(applied[i])
	}
	require.Equal(t, len(embeddedVersions(t)), total, "each version is applied by exactly one migrator: %v", applied)
	again, err := stores[0].Migrate(t.Context())
	require.NoError(t, err)
	require.Empty(t, again)
	pending, err = stores[0].PendingMigrations(t.Context())
	require.NoError(t, err)
	require.Empty(t, pending)
}

// TestMigrateResumesAfterACrashMidMigration runs part of 0001 by hand, as a
// migrator that died after its first statement would have left it (MySQL
// commits DDL at once), and checks that Migrate finishes the job.
func TestMigrateResumesAfterACrashMidMigration(t *testing.T) {
	t.Parallel()
	s := open(t, testkit.MySQLURL(t))
	file, err := os.ReadFile("migrations/0001_init.sql")
	require.NoError(t, err)
	first := strings.SplitN(string(file), ";\n", 2)[0]
	_, err = s.DB().ExecContext(t.Context(), first)
	require.NoError(t, err)

	applied, err := s.Migrate(t.Context())
	require.NoError(t, err)
	require.Equal(t, embeddedVersions(t), applied)
	var tables int
	require.NoError(t, s.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM information_schema.tables
		WHERE table_schema = DATABASE() AND table_name LIKE 'hammerwork\_%'`).Scan(&tables))
	require.Equal(t, 1+createdTables(t), tables, "every table of the migrations, and hammerwork_migrations")
}

// TestMigrateReRunsAnInterruptedAlterMigration forgets that 0002 was
// applied, as if its migrator died after the DDL but before recording it:
// the ALTER TABLE and CREATE INDEX statements run again and their duplicate
// column and index errors count as done.
func TestMigrateReRunsAnInterruptedAlterMigration(t *testing.T) {
	t.Parallel()
	s := testkit.MySQL(t)
	_, err := s.DB().ExecContext(t.Context(), `DELETE FROM hammerwork_migrations WHERE version = '0002_workflows'`)
	require.NoError(t, err)
	applied, err := s.Migrate(t.Context())
	require.NoError(t, err)
	require.Equal(t, []string{"0002_workflows"}, applied)
	pending, err := s.PendingMigrations(t.Context())
	require.NoError(t, err)
	require.Empty(t, pending)
}

func TestOpenAcceptsBothURLFormsAndNeverShowsThePassword(t *testing.T) {
	t.Parallel()
	dbURL := testkit.MySQLURL(t)
	dsn := strings.TrimPrefix(dbURL, "mysql://")
	if !strings.Contains(dsn, "@tcp(") {
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		pw, _ := u.User.Password()
		dsn = fmt.Sprintf("%s:%s@tcp(%s)%s", u.User.Username(), pw, u.Host, u.Path)
	}
	for _, form := range []string{dbURL, dsn, "mysql://" + dsn} {
		s := open(t, form)
		require.NoError(t, s.Ping(t.Context()), form)
	}

	for _, bad := range []string{
		"mysql://hw:s3cret-pw@127.0.0.1:1/hw?timeout=2s",
		"hw:s3cret-pw@tcp(127.0.0.1:1)/hw?timeout=2s",
		"mysql://hw:s3cret-pw@127.0.0.1:1/hw?timeout=notaduration",
		"mysql://hw:s3cret-pw@127.0.0.1:1/",
	} {
		_, err := mysql.Open(t.Context(), mysql.Config{URL: bad})
		require.Error(t, err, bad)
		require.NotContains(t, err.Error(), "s3cret-pw", bad)
		require.NotContains(t, mysql.RedactURL(bad), "s3cret-pw", bad)
	}
	require.Equal(t, "mysql://hw:xxxxx@db:3306/hw", mysql.RedactURL("mysql://hw:p%40ss@db:3306/hw"))
	require.Equal(t, "hw:xxxxx@tcp(db:3306)/hw", mysql.RedactURL("hw:p@ss@tcp(db:3306)/hw"))
}

// lockWaiting polls until a transaction of this test's database waits for
// a row lock. InnoDB refreshes information_schema.innodb_trx only when it
// has not been read for 100ms, so a faster poll would never see the change.
func lockWaiting(t *testing.T, db *sql.DB) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM information_schema.innodb_trx t
			JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id
			WHERE t.trx_state = 'LOCK WAIT' AND p.db = DATABASE()`).Scan(&n)
		return err == nil && n > 0
	}, 20*time.Second, 150*time.Millisecond, "a transaction waits for a lock")
}

// twoRunning enqueues and leases two jobs and some filler, returning the
// two in id order.
func twoRunning(t *testing.T, s *mysql.Store, queue string) (a, b *job.Job) {
	t.Helper()
	clock := store.UTC(time.Now())
	jobs, err := s.Enqueue(t.Context(), store.EnqueueParams{Now: clock, Jobs: []store.NewJob{
		{Queue: queue, Payload: []byte(`{}`)}, {Queue: queue, Payload: []byte(`{}`)},
	}})
	require.NoError(t, err)
	leased, err := s.Lease(t.Context(), store.LeaseParams{AgentID: "a", Queues: []string{queue}, Limit: 2, Duration: time.Hour, Now: clock})
	require.NoError(t, err)
	require.Len(t, leased, 2)
	byID := map[uuid.UUID]*job.Job{leased[0].ID: leased[0], leased[1].ID: leased[1]}
	a, b = byID[jobs[0].ID], byID[jobs[1].ID]
	if a.ID.String() > b.ID.String() {
		a, b = b, a
	}
	return a, b
}

// TestDeadlockIsRetriedAndCounted provokes a real deadlock: another
// transaction, made the heavier one by updating filler rows, locks the second
// job; Complete locks the first and waits for the second; the other
// transaction then asks for the first. InnoDB rolls back the lighter
// transaction, Complete's, and the store runs it again.
func TestDeadlockIsRetriedAndCounted(t *testing.T) {
	t.Parallel()
	s := testkit.MySQL(t)
	ctx := t.Context()
	a, b := twoRunning(t, s, "deadlock")
	filler := make([]store.NewJob, 200)
	for i := range filler {
		filler[i] = store.NewJob{Queue: "filler", Payload: []byte(`{}`)}
	}
	_, err := s.Enqueue(ctx, store.EnqueueParams{Jobs: filler})
	require.NoError(t, err)

	other, err := s.DB().BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = other.Rollback() }() // the test ends holding the lock; rolling back releases it
	_, err = other.ExecContext(ctx, `UPDATE hammerwork_jobs SET max_attempts = max_attempts + 1 WHERE queue_name = 'filler'`)
	require.NoError(t, err)
	_, err = other.ExecContext(ctx, `SELECT id FROM hammerwork_jobs WHERE id = ? FOR UPDATE`, b.ID.String())
	require.NoError(t, err)

	type result struct {
		stale []uuid.UUID
		err   error
	}
	done := make(chan result, 1)
	go func() {
		stale, err := s.Complete(ctx, store.CompleteParams{Now: time.Now(), Completions: []store.Completion{
			{LeaseRef: store.LeaseRef{ID: b.ID, Token: b.LeaseToken}}, {LeaseRef: store.LeaseRef{ID: a.ID, Token: a.LeaseToken}},
		}})
		done <- result{stale, err}
	}()
	lockWaiting(t, s.DB())
	_, err = other.ExecContext(ctx, `SELECT id FROM hammerwork_jobs WHERE id = ? FOR UPDATE`, a.ID.String())
	require.NoError(t, err, "the heavier transaction survives the deadlock")
	require.NoError(t, other.Commit())

	r := <-done
	require.NoError(t, r.err, "the deadlock never surfaces")
	require.Empty(t, r.stale)
	require.EqualValues(t, 1, s.RetriedTransactions())
	for _, j := range []*job.Job{a, b} {
		got, err := s.Get(ctx, j.ID)
		require.NoError(t, err)
		require.Equal(t, job.StatusCompleted, got.Status)
	}
}

// TestLockWaitTimeoutIsRetried holds a job's row lock past a 1-second
// innodb_lock_wait_timeout (set for the store's sessions through its URL):
// Extend times out, is retried, and succeeds once the lock is released.
func TestLockWaitTimeoutIsRetried(t *testing.T) {
	t.Parallel()
	dbURL := testkit.MySQLURL(t)
	s := open(t, withParam(dbURL, "innodb_lock_wait_timeout", "1"))
	_, err := s.Migrate(t.Context())
	require.NoError(t, err)
	ctx := t.Context()
	a, _ := twoRunning(t, s, "timeout")

	other, err := s.DB().BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = other.Rollback() }() // the test ends holding the lock; rolling back releases it
	_, err = other.ExecContext(ctx, `SELECT id FROM hammerwork_jobs WHERE id = ? FOR UPDATE`, a.ID.String())
	require.NoError(t, err)

	until := store.UTC(time.Now().Add(2 * time.Hour))
	done := make(chan error, 1)
	go func() {
		stale, err := s.Extend(ctx, store.ExtendParams{Until: until, Leases: []store.LeaseRef{{ID: a.ID, Token: a.LeaseToken}}})
		if err == nil && len(stale) > 0 {
			err = errors.New("extend reported the lease stale")
		}
		done <- err
	}()
	require.Eventually(t, func() bool { return s.RetriedTransactions() > 0 }, 20*time.Second, 10*time.Millisecond,
		"the timed-out transaction is retried")
	require.NoError(t, other.Rollback())
	require.NoError(t, <-done)
	got, err := s.Get(ctx, a.ID)
	require.NoError(t, err)
	require.True(t, until.Equal(*got.LeaseExpiresAt))
}

// TestFourAgentsCompleteEveryJobExactlyOnce runs four stores as four agents
// would: each leases batches and completes them, all at once on one
// database. Every job must be completed once, and no deadlock may surface.
func TestFourAgentsCompleteEveryJobExactlyOnce(t *testing.T) {
	t.Parallel()
	dbURL := testkit.MySQLURL(t)
	const agents = 4
	n := 5000
	if testing.Short() {
		n = 500
	}
	stores := make([]*mysql.Store, agents)
	for i := range stores {
		stores[i] = open(t, dbURL)
	}
	_, err := stores[0].Migrate(t.Context())
	require.NoError(t, err)
	news := make([]store.NewJob, n)
	queues := []string{"alpha", "beta", "gamma"}
	for i := range news {
		news[i] = store.NewJob{Queue: queues[i%len(queues)], Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)), Priority: job.Priority(i % 5)}
	}
	enqueued, err := stores[0].Enqueue(t.Context(), store.EnqueueParams{Jobs: news})
	require.NoError(t, err)

	var mu sync.Mutex
	completed := map[uuid.UUID]int{}
	errs := make(chan error, agents)
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			ctx := context.Background()
			agentID := fmt.Sprintf("agent-%d", i)
			// Half the agents start on "alpha" alone, as an agent with a
			// producer of its own for that queue would.
			onlyAlpha := i%2 == 1
			for {
				p := store.LeaseParams{AgentID: agentID, Limit: 50, Duration: time.Minute, Now: time.Now()}
				if onlyAlpha {
					p.Queues = []string{"alpha"}
				}
				jobs, err := s.Lease(ctx, p)
				if err != nil {
					errs <- err
					return
				}
				if len(jobs) == 0 && onlyAlpha {
					onlyAlpha = false // alpha is drained: help with the rest
					continue
				}
				if len(jobs) == 0 {
					errs <- nil
					return
				}
				cs := make([]store.Completion, len(jobs))
				for k, j := range jobs {
					cs[k] = store.Completion{LeaseRef: store.LeaseRef{ID: j.ID, Token: j.LeaseToken}, Result: []byte(`{"ok":true}`)}
				}
				stale, err := s.Complete(ctx, store.CompleteParams{Completions: cs, Now: time.Now()})
				if err != nil {
					errs <- err
					return
				}
				if len(stale) > 0 {
					errs <- fmt.Errorf("%s: %d stale completions", agentID, len(stale))
					return
				}
				mu.Lock()
				for _, j := range jobs {
					completed[j.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, completed, n)
	for _, j := range enqueued {
		require.Equal(t, 1, completed[j.ID], "job %s", j.ID)
	}
	stats, err := stores[0].QueueStats(t.Context())
	require.NoError(t, err)
	var done int64
	for _, c := range stats {
		require.Equal(t, job.StatusCompleted, c.Status)
		done += c.Count
	}
	require.EqualValues(t, n, done)
	var retried int64
	for _, s := range stores {
		retried += s.RetriedTransactions()
	}
	t.Logf("%d agents completed %d jobs; %d transactions retried", agents, n, retried)
}
