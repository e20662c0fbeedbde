package agent

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// chiSquare is Pearson's statistic of observed counts against expected
// shares of their total.
func chiSquare(observed map[job.Priority]int, weights PriorityWeights) float64 {
	total, wsum := 0, 0
	for _, n := range observed {
		total += n
	}
	for _, w := range weights {
		wsum += w
	}
	x2 := 0.0
	for l, w := range weights {
		exp := float64(total) * float64(w) / float64(wsum)
		d := float64(observed[l]) - exp
		x2 += d * d / exp
	}
	return x2
}

// chiSquareBound is far beyond the 99.9th percentile of chi-square with 4
// degrees of freedom (18.5): a correct split fails it about once in 10^5
// runs, a split off by a few points of share fails it every time.
const chiSquareBound = 30

var hammerworkWeights = PriorityWeights{
	job.PriorityCritical: 20, job.PriorityHigh: 10, job.PriorityNormal: 5, job.PriorityLow: 2, job.PriorityBackground: 1,
}

func TestWeightedPlanGivesEveryLevelItsShare(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	all := []job.Priority{4, 3, 2, 1, 0}
	observed := map[job.Priority]int{}
	// Leases of varied sizes, as freed slots come: the shares hold per slot.
	for i := range 4000 {
		plan := hammerworkWeights.plan(all, 1+i%7, rng)
		prev := job.PriorityCritical + 1
		for _, lc := range plan {
			require.Less(t, lc.level, prev, "highest level first, each once")
			prev = lc.level
			observed[lc.level] += lc.n
		}
	}
	require.Less(t, chiSquare(observed, hammerworkWeights), float64(chiSquareBound), "observed %v", observed)
	require.Positive(t, observed[job.PriorityBackground], "the lightest level is never starved")
}

func TestWeightedPlanDrawsOnlyReadyWeightedLevels(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	w := PriorityWeights{job.PriorityHigh: 3, job.PriorityLow: 1, job.PriorityNormal: 0}
	for range 200 {
		for _, lc := range w.plan([]job.Priority{job.PriorityNormal, job.PriorityLow}, 5, rng) {
			require.Equal(t, job.PriorityLow, lc.level, "high has nothing due, normal has no weight")
			require.Equal(t, 5, lc.n)
		}
	}
	require.Empty(t, w.plan([]job.Priority{job.PriorityNormal}, 5, rng), "no ready weighted level: strict lease")
	require.Empty(t, w.plan(nil, 5, rng))
}

func TestQueueControlKeysParseFromFileAndEnvironment(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hw.toml")
	require.NoError(t, os.WriteFile(path, []byte(`
[agent]
priority_weights = {critical = 20, high = 10, normal = 5, low = 2, background = 1}

[[queue]]
name = "emails"
priority_weights = {high = 3, "0" = 1}
rate_limit = "500/m"
burst = 5
`), 0o600))
	cfg, err := LoadConfig(path, nil)
	require.NoError(t, err)
	require.Equal(t, hammerworkWeights, cfg.Agent.PriorityWeights)
	q, _ := cfg.Queue("emails")
	require.Equal(t, PriorityWeights{job.PriorityHigh: 3, job.PriorityBackground: 1}, q.PriorityWeights)
	require.Equal(t, RateLimit("500/m"), q.RateLimit)
	require.Equal(t, 5, q.Burst)

	cfg, err = LoadConfig("", []string{"HW_AGENT_PRIORITY_WEIGHTS=critical=4, low=1"})
	require.NoError(t, err)
	require.Equal(t, PriorityWeights{job.PriorityCritical: 4, job.PriorityLow: 1}, cfg.Agent.PriorityWeights)

	for _, tc := range []struct{ toml, want string }{
		{"[agent]\npriority_weights = {urgent = 1}", `unknown priority "urgent"`},
		{"[agent]\npriority_weights = {high = -1}", "priority_weights.high (-1) must be between 0 and 1000000"},
		{"[[queue]]\nname = \"q\"\nrate_limit = \"fast\"", `rate limit "fast" must be N/unit`},
		{"[[queue]]\nname = \"q\"\nrate_limit = \"10/fortnight\"", `unit "fortnight"`},
		{"[[queue]]\nname = \"q\"\nburst = 3", `queue "q": burst needs a rate_limit`},
		{"[[queue]]\nname = \"q\"\nrate_limit = \"1/s\"\nburst = -1", `queue "q": burst (-1) must not be negative`},
	} {
		bad := filepath.Join(t.TempDir(), "bad.toml")
		require.NoError(t, os.WriteFile(bad, []byte(tc.toml), 0o600))
		_, err := LoadConfig(bad, nil)
		require.ErrorContains(t, err, tc.want, tc.toml)
	}
}

func TestRateLimitParsesUnits(t *testing.T) {
	t.Parallel()
	type parsed struct {
		n   int
		per time.Duration
	}
	for in, want := range map[RateLimit]parsed{
		"100/s": {100, time.Second}, "500/m": {500, time.Minute}, "20/h": {20, time.Hour},
		"5/10s": {5, 10 * time.Second}, " 7 / s ": {7, time.Second}, "": {},
	} {
		n, per, err := in.Parse()
		require.NoError(t, err, in)
		require.Equal(t, want, parsed{n, per}, in)
	}
	for _, in := range []RateLimit{"0/s", "-1/s", "10", "x/s", "10/0s", "10/-1m"} {
		_, _, err := in.Parse()
		require.Error(t, err, in)
	}
}

// recorder is an app that answers 200 and records each request's priority
// and arrival time, in arrival order.
type recorder struct {
	mu       sync.Mutex
	levels   []job.Priority
	arrivals []time.Time
	byJob    map[string]time.Time
}

func newRecorder(t *testing.T) (*recorder, *app) {
	rec := &recorder{byJob: map[string]time.Time{}}
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		at := time.Now()
		l, err := job.ParsePriority(r.Header.Get("Hammerwork-Priority"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec.mu.Lock()
		rec.levels = append(rec.levels, l)
		rec.arrivals = append(rec.arrivals, at)
		rec.byJob[c.id.String()] = at
		rec.mu.Unlock()
		ok(w, r, c)
	})
	return rec, a
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.levels)
}

func backlog(perLevel int, queue string) []store.NewJob {
	var jobs []store.NewJob
	for i := range perLevel * 5 {
		// Interleaved, so enqueue order says nothing about priority.
		jobs = append(jobs, store.NewJob{Queue: queue, Priority: job.Priority(i % 5)})
	}
	return jobs
}

func TestStrictPriorityDeliversABacklogInPriorityOrder(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	rec, a := newRecorder(t)
	jobs := enqueue(t, s, backlog(10, "q")...)
	cfg := testConfig(t, a)
	cfg.Agent.Concurrency = 1
	start(t, cfg, s)

	waitStatus(t, s, jobs, job.StatusCompleted)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.levels, len(jobs))
	for i := 1; i < len(rec.levels); i++ {
		require.LessOrEqualf(t, rec.levels[i], rec.levels[i-1], "delivery %d came after a lower level: %v", i, rec.levels)
	}
}

func TestWeightedPrioritiesGiveEachLevelItsShareUnderABacklog(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	rec, a := newRecorder(t)
	// 300 per level: the first 400 deliveries never run a level dry (the
	// critical share of 400 is 210, nine standard deviations below 300).
	enqueue(t, s, backlog(300, "q")...)
	cfg := testConfig(t, a)
	cfg.Agent.Concurrency = 10
	cfg.Queues = []QueueConfig{{Name: "q", PriorityWeights: hammerworkWeights}}
	r := start(t, cfg, s)

	const sample = 400
	// Weighted selection leases one drawn level at a time, so 400 deliveries
	// take seconds alone and far longer on a loaded CI machine; the test
	// judges their shares, not their speed.
	testkit.Eventually(t, 4*waitFor, fmt.Sprintf("%d deliveries", sample), func() bool { return rec.count() >= sample })
	require.NoError(t, r.stop(t))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	observed := map[job.Priority]int{}
	for _, l := range rec.levels[:sample] {
		observed[l]++
	}
	require.Less(t, chiSquare(observed, hammerworkWeights), float64(chiSquareBound), "observed %v", observed)
	for l := job.PriorityBackground; l <= job.PriorityCritical; l++ {
		require.Positivef(t, observed[l], "level %s was starved", l)
	}
}

func TestDelayedJobsAreNeverDeliveredBeforeTheirTime(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	rec, a := newRecorder(t)
	base := time.Now()
	var news []store.NewJob
	for i := range 20 {
		news = append(news, store.NewJob{Queue: "q", ScheduledAt: base.Add(time.Duration(300+(i*137)%1500) * time.Millisecond)})
	}
	jobs := enqueue(t, s, news...)
	cfg := testConfig(t, a)
	// An hour between polls: the first lease finds nothing due, and every
	// delivery comes from the agent waking for the next due job, never from
	// a poll.
	cfg.Agent.PollInterval = job.Duration(time.Hour)
	start(t, cfg, s)
	waitStatus(t, s, jobs, job.StatusCompleted)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, j := range jobs {
		at, ok := rec.byJob[j.ID.String()]
		require.True(t, ok)
		require.Falsef(t, at.Before(j.ScheduledAt), "job due at %s was delivered at %s", j.ScheduledAt, at)
	}
}

func TestRateLimitBoundsDispatchesInEveryWindow(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	rec, a := newRecorder(t)
	const n, perSecond, burst = 40, 20, 2
	jobs := enqueue(t, s, many(n, "limited")...)
	cfg := testConfig(t, a)
	cfg.Queues = []QueueConfig{{Name: "limited", RateLimit: RateLimit(fmt.Sprintf("%d/s", perSecond)), Burst: burst}}
	start(t, cfg, s)

	waitStatus(t, s, jobs, job.StatusCompleted)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// A token bucket lets through at most burst + rate*T in any window of
	// length T; the slack covers requests leased in time but reaching the
	// app a little apart. Without the limit all 40 arrive within
	// milliseconds.
	const window, slack = time.Second, 3
	for i, from := range rec.arrivals {
		in := 0
		for _, at := range rec.arrivals[i:] {
			if at.Sub(from) < window {
				in++
			}
		}
		require.LessOrEqualf(t, in, burst+perSecond+slack, "dispatches in the second after arrival %d", i)
	}
}

// TestPauseHoldsForEveryAgentAndResumeLetsAllProceed runs two agents on one
// database, each with its own API: a pause through one stops both, and
// after a resume both lease the queue again.
func TestPauseHoldsForEveryAgentAndResumeLetsAllProceed(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	s1, s2 := openSQLite(t, path), openSQLite(t, path)
	api1 := httptest.NewServer(api.New(api.Params{Store: s1}))
	t.Cleanup(api1.Close)

	// The app holds paused-queue requests until four are in flight: with
	// two slots per agent, that happens only when both agents lease it.
	release := make(chan struct{})
	var once sync.Once
	a := newApp(t, func(w http.ResponseWriter, r *http.Request, c call) {
		if c.queue == "paused" {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		ok(w, r, c)
	})
	arrived := make(chan call, 100)
	a.mu.Lock()
	a.arrived = arrived
	a.mu.Unlock()
	go func() {
		held := 0
		for c := range arrived {
			if c.queue == "paused" {
				if held++; held == 4 {
					once.Do(func() { close(release) })
				}
			}
		}
	}()
	// Cleanups run last first: these run after the agents have stopped.
	t.Cleanup(func() { close(arrived) })
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	resp, err := http.Post(api1.URL+"/v1/queues/paused/pause", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	for _, s := range []store.Store{s1, s2} {
		cfg := testConfig(t, a)
		cfg.Agent.Concurrency = 2
		start(t, cfg, s)
	}
	held := enqueue(t, s1, many(6, "paused")...)
	// Jobs of another queue, enqueued after, prove both agents lease.
	control := enqueue(t, s2, many(10, "open")...)
	waitStatus(t, s1, control, job.StatusCompleted)
	for _, j := range held {
		require.Zero(t, a.callsOf(j.ID), "no agent leases a paused queue")
		g, err := s2.Get(t.Context(), j.ID)
		require.NoError(t, err)
		require.Equal(t, job.StatusPending, g.Status)
	}

	resp, err = http.Post(api1.URL+"/v1/queues/paused/resume", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// The app answers only once four requests of the queue are in flight,
	// two per agent: the jobs complete only if both agents lease them.
	waitStatus(t, s1, held, job.StatusCompleted)
}
