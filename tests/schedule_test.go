package tests

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/mysql"
	"github.com/hammerwork-go/hw-agent/store/postgres"
)

// The exactly-once run's settings.
const (
	proofSchedule = "proof"
	proofAgents   = 3
	// proofChaos is how long agents are killed and restarted while the
	// schedule fires every second.
	proofChaos = 20 * time.Second
	// Between two kills; each kill is followed by the victim's restart,
	// so at least proofAgents-1 agents are up at every instant.
	proofMinGap = 1200 * time.Millisecond
	proofMaxGap = 2500 * time.Millisecond
)

// TestScheduleFiresEachSlotExactlyOnceAcrossKilledAgents runs three
// `hw-agent run` processes on one PostgreSQL and on one MariaDB database,
// with an "@every 1s" schedule (overlap allow, catch-up latest) from their
// configuration file, and kills one agent with SIGKILL and starts it again
// every 1.2 to 2.5 s for 20 s, so that kills land mid-pass and
// mid-transaction while the others keep firing. Every restart upserts the
// same [[schedule]], which must change nothing. At the end the runs table
// and the jobs agree one to one: each fired run names its job, each job's
// correlation id names its run's slot, no slot has two runs or two jobs,
// and no second between the first run and the last is missing: catch-up
// "latest" may let a slot pass only while every agent is down, and one
// always ran. HW_SCHEDULE_PROOF_SEED replays a run's kills (not their
// timing against the clock).
func TestScheduleFiresEachSlotExactlyOnceAcrossKilledAgents(t *testing.T) {
	t.Parallel()
	for _, b := range []struct {
		name string
		url  func(testing.TB) string
		open func(ctx context.Context, url string) (store.Store, error)
	}{
		{"postgres", testkit.PostgresURL, func(ctx context.Context, url string) (store.Store, error) {
			return postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 4})
		}},
		{"mysql", testkit.MySQLURL, func(ctx context.Context, url string) (store.Store, error) {
			return mysql.Open(ctx, mysql.Config{URL: url, MaxConns: 4})
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dbURL := b.url(t)
			migrate(t, dbURL)
			st, err := b.open(context.Background(), dbURL)
			require.NoError(t, err)
			t.Cleanup(func() { _ = st.Close() })
			runScheduleProof(t, dbURL, st)
		})
	}
}

func runScheduleProof(t *testing.T, dbURL string, st store.Store) {
	cfgPath := filepath.Join(t.TempDir(), "hw-agent.toml")
	// The scheduler's default interval: an "@every 1s" schedule must lose
	// no slot to it.
	require.NoError(t, os.WriteFile(cfgPath, []byte(`
[[schedule]]
name = "`+proofSchedule+`"
cron = "@every 1s"
overlap = "allow"
catchup = "latest"
queue = "proof"
payload = { kind = "ok" }
max_attempts = 25
`), 0o600))
	app := newFaultApp(t)
	f := newFleet(t, proofAgents, func(n int) map[string]string {
		return map[string]string{
			"HW_CONFIG":                cfgPath,
			"HW_DATABASE_URL":          dbURL,
			"HW_DATABASE_MAX_CONNS":    "4",
			"HW_API_LISTEN":            "off",
			"HW_AGENT_ID":              fmt.Sprintf("proof-%d", n),
			"HW_APP_HANDLER_URL":       fmt.Sprintf("%s/p/%d/jobs/{queue}", app.srv.URL, n),
			"HW_AGENT_LEASE_DURATION":  "3s",
			"HW_APP_REQUEST_TIMEOUT":   "2s",
			"HW_AGENT_POLL_INTERVAL":   "200ms",
			"HW_AGENT_RESCUE_INTERVAL": "1s",
		}
	})
	ctx := context.Background()
	poll(t, "the schedule's first run", func() (bool, string) {
		runs := proofRuns(t, st)
		return len(runs) > 0, fmt.Sprintf("%d runs", len(runs))
	})

	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("HW_SCHEDULE_PROOF_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "HW_SCHEDULE_PROOF_SEED=%q", v)
	}
	t.Logf("schedule proof: HW_SCHEDULE_PROOF_SEED=%d replays the kills' order and pace", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	end := time.Now().Add(proofChaos)
	for time.Now().Before(end) {
		gap := proofMinGap + time.Duration(rng.Int64N(int64(proofMaxGap-proofMinGap)))
		<-time.After(gap) // the chaos's pace, not a wait for the agents
		f.mu.Lock()
		f.reviveLocked()
		i := rng.IntN(proofAgents)
		if err := f.killLocked(i); err != nil {
			f.errs = append(f.errs, err)
		}
		if err := f.startLocked(i); err != nil {
			f.errs = append(f.errs, err)
		}
		f.mu.Unlock()
	}
	// Two more slots after the last kill, fired by whoever is up.
	last := proofRuns(t, st)[0].NominalTime
	poll(t, "two runs after the last kill", func() (bool, string) {
		runs := proofRuns(t, st)
		return runs[0].NominalTime.Sub(last) >= 2*time.Second, fmt.Sprintf("newest run %s", runs[0].NominalTime)
	})
	f.killAll()
	f.mu.Lock()
	kills, errs, selfExits := f.kills, f.errs, f.selfExits
	f.mu.Unlock()
	require.Empty(t, errs, "the kill loop")
	require.Empty(t, selfExits, "an agent ended on its own")
	require.GreaterOrEqual(t, kills, int(proofChaos/proofMaxGap), "agents were killed")

	runs := proofRuns(t, st)
	jobs := proofJobs(t, ctx, st)
	t.Logf("schedule proof: %d kills, %d runs, %d jobs, %d delivered", kills, len(runs), len(jobs), len(app.deliveries()))

	bySlot := map[time.Time]*store.ScheduleRun{}
	for _, r := range runs {
		require.Equal(t, store.RunFired, r.Outcome, "overlap allow fires every slot: %+v", r)
		require.False(t, r.Triggered)
		require.NotNil(t, r.JobID, "run %s", r.NominalTime)
		require.Nil(t, bySlot[r.NominalTime], "two runs of slot %s", r.NominalTime)
		bySlot[r.NominalTime] = r
	}
	jobSlots := map[time.Time]string{}
	for _, j := range jobs {
		name, at, ok := strings.Cut(j.CorrelationID, "@")
		require.True(t, ok && name == proofSchedule, "job %s: correlation id %q", j.ID, j.CorrelationID)
		slot, err := time.Parse(time.RFC3339, at)
		require.NoError(t, err, "job %s: correlation id %q", j.ID, j.CorrelationID)
		slot = slot.UTC()
		require.Empty(t, jobSlots[slot], "slot %s has two jobs: %s and %s", slot, jobSlots[slot], j.ID)
		jobSlots[slot] = j.ID.String()
		r := bySlot[slot]
		require.NotNil(t, r, "job %s of slot %s has no run", j.ID, slot)
		require.Equal(t, j.ID, *r.JobID, "slot %s: the run names another job", slot)
	}
	require.Len(t, jobSlots, len(bySlot), "every run's job exists")

	first, newest := runs[len(runs)-1].NominalTime, runs[0].NominalTime
	var missing []string
	for slot := first; !slot.After(newest); slot = slot.Add(time.Second) {
		if bySlot[slot] == nil {
			missing = append(missing, slot.Format(time.TimeOnly))
		}
	}
	require.Empty(t, missing, "slots with no run between %s and %s; the agents' logs say: %q",
		first.Format(time.TimeOnly), newest.Format(time.TimeOnly), f.grepLogs("missed", 10))
	require.GreaterOrEqual(t, newest.Sub(first), proofChaos, "the runs cover the whole chaos")
}

// proofRuns is every run of the proof schedule, newest first.
func proofRuns(t *testing.T, st store.Store) []*store.ScheduleRun {
	t.Helper()
	var runs []*store.ScheduleRun
	p := store.ScheduleRunsParams{Name: proofSchedule, Limit: store.MaxListLimit}
	for {
		page, err := st.ScheduleRuns(context.Background(), p)
		if errors.Is(err, store.ErrNotFound) {
			return nil // not created yet
		}
		require.NoError(t, err)
		runs = append(runs, page.Runs...)
		if page.NextCursor == "" {
			return runs
		}
		p.Cursor = page.NextCursor
	}
}

// proofJobs is every job of the proof's queue.
func proofJobs(t *testing.T, ctx context.Context, st store.Store) []*job.Job {
	t.Helper()
	var jobs []*job.Job
	p := store.ListParams{Queue: "proof", Limit: store.MaxListLimit}
	for {
		page, err := st.List(ctx, p)
		require.NoError(t, err)
		jobs = append(jobs, page.Jobs...)
		if page.NextCursor == "" {
			return jobs
		}
		p.Cursor = page.NextCursor
	}
}
