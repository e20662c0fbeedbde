package tests

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
)

// The fault runs' settings. Leases are short so that a killed agent's jobs
// are rescued within seconds; the request timeout must stay below the lease.
const (
	faultQueue          = "fault"
	faultAgents         = 3
	faultLease          = 2 * time.Second
	faultRequestTimeout = 1500 * time.Millisecond
	faultMaxAttempts    = 25 // far more than kills can use up, so every fate is the app's
	faultBatchSize      = 10
	faultWaveGap        = 400 * time.Millisecond  // between two waves of enqueues
	faultOutage         = 2500 * time.Millisecond // longer than a lease: leases run out while the database is down
	faultSettle         = 90 * time.Second        // for the last jobs to finish once the faults stop
)

// TestFaultsLoseNoJob runs jobs and workflows through several agents that
// are killed with SIGKILL and restarted in a loop, on a private PostgreSQL
// that also crashes (pg_ctl stop -m immediate) and comes back mid-run, and on
// SQLite (kills only). At the end no job is lost or left running, every
// job's fate is the one its app answers call for, a job was delivered again
// only after the attempt before had ended (lease expired, connection error,
// timeout, or the app's own 5xx), and every workflow's counters equal its
// jobs' states.
//
// HW_FAULT_JOBS sets the number of standalone jobs (default 400, with a
// workflow per 15 jobs); the faults last about HW_FAULT_JOBS/25 seconds,
// then the jobs settle. HW_FAULT_SEED replays a run's plan (not its timing).
func TestFaultsLoseNoJob(t *testing.T) {
	t.Parallel()
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		pg := startPrivatePG(t)
		runFaults(t, pg.URL(), pg)
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		runFaults(t, testkit.SQLiteURL(t), nil)
	})
}

// faultStep is one step of a planned workflow.
type faultStep struct {
	name    string
	parents []int // indexes of earlier steps
	kind    string
	ms      int  // the app's work
	proceed bool // what its result tells a conditional child
	cond    bool // runs only when its one parent's result says proceed
}

// faultWorkflow is a planned workflow: "ok" (everything completes but the
// skipped), "continue_on_failure" or "fail_fast", each of the last two with
// one step the app fails.
type faultWorkflow struct {
	name   string
	policy string
	steps  []faultStep
}

// faultJob is the part of a stored job the fault checks read.
type faultJob struct {
	ID         string            `json:"id"`
	Queue      string            `json:"queue"`
	Status     string            `json:"status"`
	Attempts   int               `json:"attempts"`
	Payload    json.RawMessage   `json:"payload"`
	Result     json.RawMessage   `json:"result"`
	Errors     []faultAttemptErr `json:"errors"`
	WorkflowID *string           `json:"workflow_id"`
	StepName   string            `json:"step_name"`
	DependsOn  []string          `json:"depends_on"`
	LeasedBy   string            `json:"leased_by"`
}

type faultAttemptErr struct {
	Attempt int    `json:"attempt"`
	Outcome string `json:"outcome"`
	Message string `json:"message"`
}

type faultPayload struct {
	Kind    string `json:"kind"`
	MS      int    `json:"ms"`
	Proceed *bool  `json:"proceed"`
}

// envInt reads a positive integer from the environment.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s=%q", name, v)
	require.Positive(t, n, "%s", name)
	return n
}

func runFaults(t *testing.T, dbURL string, pg *privatePG) {
	began := time.Now()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("HW_FAULT_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "HW_FAULT_SEED=%q", v)
	}
	nJobs := envInt(t, "HW_FAULT_JOBS", 400)
	nWorkflows := max(3, nJobs/15)
	t.Logf("fault run: %d jobs, %d workflows, HW_FAULT_SEED=%d", nJobs, nWorkflows, seed)
	plan := rand.New(rand.NewPCG(seed, 1))

	migrate(t, dbURL)
	app := newFaultApp(t)
	env := func(listen, queues, handlerPath string) map[string]string {
		return map[string]string{
			"HW_DATABASE_URL":                  dbURL,
			"HW_DATABASE_MAX_CONNS":            "4",
			"HW_APP_HANDLER_URL":               app.srv.URL + handlerPath,
			"HW_APP_REQUEST_TIMEOUT":           faultRequestTimeout.String(),
			"HW_AGENT_QUEUES":                  queues,
			"HW_AGENT_CONCURRENCY":             "16",
			"HW_AGENT_LEASE_DURATION":          faultLease.String(),
			"HW_AGENT_RESCUE_INTERVAL":         "250ms",
			"HW_AGENT_POLL_INTERVAL":           "100ms",
			"HW_AGENT_DRAIN_TIMEOUT":           "1s",
			"HW_AGENT_COMPLETE_FLUSH_INTERVAL": "20ms",
			"HW_RETRY_STRATEGY":                "fixed",
			"HW_RETRY_INITIAL":                 "100ms",
			"HW_API_LISTEN":                    listen,
		}
	}
	// The control agent serves only a queue nobody uses and is never killed:
	// the test enqueues and inspects through its API.
	control := startAgent(t, env(freeAddr(t), "fault-control", "/jobs/{queue}"))
	api := newAPIClient(t, control.base)
	workers := newFleet(t, faultAgents, func(n int) map[string]string {
		return env("off", faultQueue, fmt.Sprintf("/p/%d/jobs/{queue}", n))
	})

	stopChaos, chaosDone := make(chan struct{}, 1), make(chan struct{})
	go workers.chaos(rand.New(rand.NewPCG(seed, 2)), 300*time.Millisecond, 1200*time.Millisecond, stopChaos, chaosDone)
	chaosStopped := false
	stopTheChaos := func() {
		if !chaosStopped {
			chaosStopped = true
			close(stopChaos)
			<-chaosDone
		}
	}
	t.Cleanup(stopTheChaos)

	// Waves: one batch of standalone jobs each, and the workflows spread
	// among them. The database crashes two fifths of the way through.
	waves := (nJobs + faultBatchSize - 1) / faultBatchSize
	workflows := make([]faultWorkflow, nWorkflows)
	for i := range workflows {
		workflows[i] = planWorkflow(plan, i, seed)
	}
	known := map[string]bool{} // every job id an enqueue answered with
	knownWorkflows := map[string]bool{}
	resent := 0 // enqueues that failed and were sent again
	outage := make(chan faultOutageResult, 1)
	crashAt := waves * 2 / 5
	next := 0 // next standalone job number
	wfNext := 0
	for wave := range waves {
		if pg != nil && wave == crashAt {
			go func() {
				res := faultOutageResult{from: time.Now()}
				if res.err = pg.crash(); res.err == nil {
					down := time.NewTimer(faultOutage) // how long the database stays down
					<-down.C
					res.err = pg.start()
				}
				res.to = time.Now()
				outage <- res
			}()
		}
		wave0 := time.Now()
		var batch []map[string]any
		for ; next < nJobs && len(batch) < faultBatchSize; next++ {
			kind := "ok"
			switch r := plan.IntN(100); {
			case r < 10:
				kind = "flaky"
			case r < 17:
				kind = "fail"
			}
			batch = append(batch, map[string]any{
				"queue":        faultQueue,
				"payload":      map[string]any{"kind": kind, "ms": workTime(plan), "n": next},
				"max_attempts": faultMaxAttempts,
				"unique_key":   fmt.Sprintf("fault-%d-%d", seed, next),
			})
		}
		var ids struct {
			IDs []string `json:"ids"`
		}
		// A batch that fails may have been written anyway (the database can
		// crash after the commit): sent again, the unique keys make the
		// agent answer with the jobs already there.
		resent += retryUntil(t, "POST /v1/jobs/batch", func() error {
			_, err := api.do(http.MethodPost, "/v1/jobs/batch", map[string]any{"jobs": batch}, &ids)
			return err
		})
		require.Len(t, ids.IDs, len(batch))
		for _, id := range ids.IDs {
			known[id] = true
		}
		// Workflows are not idempotent: one sent twice may exist twice, and
		// the checks below read every workflow the database holds.
		for ; wfNext < nWorkflows && wfNext*waves < (wave+1)*nWorkflows; wfNext++ {
			w := workflows[wfNext]
			var created struct {
				ID   string            `json:"id"`
				Jobs map[string]string `json:"jobs"`
			}
			resent += retryUntil(t, "POST /v1/workflows", func() error {
				_, err := api.do(http.MethodPost, "/v1/workflows", w.definition(), &created)
				return err
			})
			knownWorkflows[created.ID] = true
			for _, id := range created.Jobs {
				known[id] = true
			}
		}
		if rest := faultWaveGap - time.Since(wave0); rest > 0 && wave < waves-1 {
			pause := time.NewTimer(rest) // the pace of the producer, not a wait for the agent
			<-pause.C
		}
	}
	facts := faultFacts{}
	if pg != nil {
		res := <-outage
		require.NoError(t, res.err, "crash and restart the database")
		facts.outages = append(facts.outages, res)
		t.Logf("the database was down from %s (%s into the run) for %s", res.from.Format(time.StampMilli), res.from.Sub(began).Round(time.Millisecond), res.to.Sub(res.from).Round(time.Millisecond))
	}
	faultsEnd := time.Now()
	stopTheChaos()
	workers.revive()

	// Settle: every job of the queue reaches a terminal state.
	settled := false
	var seen string
	deadline := time.Now().Add(faultSettle)
	tick := time.NewTicker(pollEvery * 4)
	for time.Now().Before(deadline) {
		workers.revive()
		var q struct {
			Depth map[string]int `json:"depth"`
		}
		if _, err := api.do(http.MethodGet, "/v1/queues/"+faultQueue, nil, &q); err != nil {
			seen = err.Error()
		} else {
			seen = fmt.Sprintf("depth %v", q.Depth)
			if q.Depth["pending"]+q.Depth["running"] == 0 {
				settled = true
				break
			}
		}
		<-tick.C
	}
	tick.Stop()
	settledIn := time.Since(faultsEnd)
	if !settled {
		t.Errorf("jobs still not terminal %s after the faults stopped; last seen: %s", faultSettle, seen)
	}

	// No agent may deliver anything while the results are read: stop them
	// all, then the app (Close waits for requests being answered).
	workers.killAll()
	app.srv.Close()
	deliveries := app.deliveries()
	facts.ended = workers.endedAt()

	jobs := listAll[faultJob](t, api, "/v1/jobs?queue="+faultQueue, "jobs")
	wfRecords := listAll[struct {
		ID string `json:"id"`
	}](t, api, "/v1/workflows", "workflows")

	v := &violations{}
	byID := map[string]faultJob{}
	for _, j := range jobs {
		byID[j.ID] = j
	}
	for id := range known {
		if _, ok := byID[id]; !ok {
			v.add(id, "lost: enqueued (the API answered with its id) but not in the database")
		}
	}
	for id := range deliveries {
		if _, ok := byID[id]; !ok {
			v.add(id, "the app was called for a job that is not in the queue")
		}
	}

	st := faultStats{}
	for _, j := range jobs {
		checkFaultJob(v, &st, j, deliveries[j.ID], facts)
	}
	plans := map[string]faultWorkflow{}
	for _, w := range workflows {
		plans[w.name] = w
	}
	for id := range knownWorkflows {
		if !slices.ContainsFunc(wfRecords, func(r struct {
			ID string `json:"id"`
		}) bool {
			return r.ID == id
		}) {
			v.add(id, "workflow lost: created but not in the database")
		}
	}
	for _, r := range wfRecords {
		var w workflowState
		if _, err := api.do(http.MethodGet, "/v1/workflows/"+r.ID, nil, &w); err != nil {
			v.add(r.ID, "GET workflow: %v", err)
			continue
		}
		p, ok := plans[w.Name]
		if !ok {
			v.add(r.ID, "workflow %q is none the test created", w.Name)
			continue
		}
		checkFaultWorkflow(v, p, w, byID)
	}

	workers.mu.Lock()
	kills, starts, selfExits, fleetErrs := workers.kills, workers.starts, slices.Clone(workers.selfExits), slices.Clone(workers.errs)
	workers.mu.Unlock()
	t.Logf("%d jobs (%d in %d workflows), %d agent kills, %d agent starts, %d enqueues sent again; "+
		"%d jobs delivered more than once (%d extra deliveries: %d after lease expiry, %d after connection errors, %d after timeouts, %d after the app's 5xx); "+
		"%d leases lost by live agents; faults for %s, settled in %s, whole run %s",
		len(jobs), st.workflowJobs, len(wfRecords), kills, starts, resent,
		st.duplicated, st.extra, st.byOutcome["lease_expired"], st.byOutcome["connection_error"]+st.byOutcome["connection_refused"],
		st.byOutcome["timeout"], st.byOutcome["http_500"], len(st.liveRescues),
		faultsEnd.Sub(began).Round(time.Millisecond), settledIn.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	refused := 0
	for _, s := range selfExits {
		if facts.down(s.started, s.ended) {
			refused++ // an agent cannot start while the database is down
			continue
		}
		t.Errorf("%s", s.msg)
	}
	if refused > 0 {
		t.Logf("%d agents refused to start while the database was down", refused)
	}
	for _, err := range fleetErrs {
		t.Errorf("kill loop: %v", err)
	}
	// A few leases lost by slow agents are the price of a 2s lease on a
	// loaded machine; many mean that live leases are being rescued.
	for i, s := range st.liveRescues {
		if i == 5 {
			break
		}
		t.Logf("lease lost by a live agent: %s", s)
	}
	if n := len(st.liveRescues); n > max(5, st.byOutcome["lease_expired"]/10) {
		v.add("leases", "%d of %d lease expiries happened while the holder was alive and the database up: live leases are being rescued", n, st.byOutcome["lease_expired"])
	}
	require.Positive(t, kills, "the kill loop killed no agent")
	require.GreaterOrEqual(t, len(jobs), len(known), "jobs in the queue")
	require.Len(t, known, nJobs+plannedSteps(workflows), "ids the enqueues answered with")

	if len(v.list) > 0 {
		for i, s := range v.list {
			if i == 40 {
				t.Logf("... and %d more", len(v.list)-40)
				break
			}
			t.Logf("violation: %s", s)
		}
		for _, id := range v.ids[:min(len(v.ids), 3)] {
			if j, ok := byID[id]; ok {
				b, _ := json.Marshal(j)
				t.Logf("job %s: %s\ndeliveries: %+v", id, b, deliveries[id])
			}
			for _, line := range workers.grepLogs(id, 20) {
				t.Logf("  %s", line)
			}
		}
		t.Fatalf("%d invariant violations (HW_FAULT_SEED=%d)", len(v.list), seed)
	}
}

// faultOutageResult is one crash of the database: when it went down, when
// it accepted connections again.
type faultOutageResult struct {
	from, to time.Time
	err      error
}

// faultFacts are what the checks need to know of the faults.
type faultFacts struct {
	ended   map[int]time.Time // when each fleet process ended, by number
	outages []faultOutageResult
}

// faultRecovery is how long after a restart the database still counts as
// down: the agents' pools reconnect and the first writes after crash
// recovery are slow, so a lease may run out before its outcome is written.
const faultRecovery = faultLease

// excuses says whether a lease held by process proc from a to b could run
// out: the process died, or the database was down (or just back) so its
// heartbeats or its outcome's write failed.
func (f faultFacts) excuses(proc int, a, b time.Time) bool {
	if end, ok := f.ended[proc]; ok && end.Before(b) {
		return true
	}
	return f.down(a, b)
}

// down says whether the database was down, or just back, between a and b.
func (f faultFacts) down(a, b time.Time) bool {
	for _, o := range f.outages {
		if o.from.Before(b) && o.to.Add(faultRecovery).After(a) {
			return true
		}
	}
	return false
}

// retryUntil calls send until it succeeds, for at most faultSettle, and
// returns how many times it failed. Failures are expected while the
// database is down.
func retryUntil(t *testing.T, what string, send func() error) int {
	t.Helper()
	deadline := time.Now().Add(faultSettle)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	failed := 0
	for {
		err := send()
		if err == nil {
			return failed
		}
		failed++
		if time.Now().After(deadline) {
			t.Fatalf("%s kept failing for %s: %v", what, faultSettle, err)
		}
		<-tick.C
	}
}

// listAll reads every page of a list route.
func listAll[T any](t *testing.T, api *apiClient, path, field string) []T {
	t.Helper()
	var all []T
	cursor := ""
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	for range 10000 {
		p := path + sep + "limit=1000"
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		var page map[string]json.RawMessage
		_, err := api.do(http.MethodGet, p, nil, &page)
		require.NoError(t, err)
		var items []T
		require.NoError(t, json.Unmarshal(page[field], &items), "GET %s", p)
		all = append(all, items...)
		cursor = ""
		if c, ok := page["next_cursor"]; ok {
			require.NoError(t, json.Unmarshal(c, &cursor))
		}
		if cursor == "" {
			return all
		}
	}
	t.Fatalf("GET %s: more than 10000 pages", path)
	return nil
}

// workTime draws how long the app works on a job, in milliseconds: mostly
// briefly, one job in ten for most of a lease, so that heartbeats must keep
// it (and a rescuer that took live leases would show).
func workTime(rng *rand.Rand) int {
	if rng.IntN(10) == 0 {
		return 500 + rng.IntN(400)
	}
	return rng.IntN(200)
}

// planWorkflow draws a workflow of 5 to 8 steps: each step after the first
// depends on one or two earlier ones (or on none, a second root), one step
// with a single parent runs on a condition over that parent's result, and
// for the two failure policies one other step is failed by the app.
func planWorkflow(rng *rand.Rand, i int, seed uint64) faultWorkflow {
	policies := []string{"ok", "continue_on_failure", "fail_fast"}
	w := faultWorkflow{name: fmt.Sprintf("fault-%d-%d", seed, i), policy: policies[i%3]}
	n := 5 + rng.IntN(4)
	for s := range n {
		st := faultStep{name: fmt.Sprintf("s%d", s), kind: "ok", proceed: true, ms: workTime(rng)}
		if s > 0 && rng.IntN(100) >= 15 {
			for range 1 + rng.IntN(min(2, s)) {
				p := rng.IntN(s)
				if !slices.Contains(st.parents, p) {
					st.parents = append(st.parents, p)
				}
			}
		}
		if rng.IntN(100) < 15 {
			st.kind = "flaky"
		}
		w.steps = append(w.steps, st)
	}
	var single []int
	for s, st := range w.steps {
		if len(st.parents) == 1 {
			single = append(single, s)
		}
	}
	cond := -1
	if len(single) > 0 {
		cond = single[rng.IntN(len(single))]
		w.steps[cond].cond = true
		w.steps[w.steps[cond].parents[0]].proceed = rng.IntN(2) == 0
	}
	if w.policy != "ok" {
		f := rng.IntN(n)
		if f == cond {
			f = (f + 1) % n
		}
		w.steps[f].kind = "fail"
	}
	return w
}

// definition is the workflow's POST /v1/workflows body.
func (w faultWorkflow) definition() map[string]any {
	policy := w.policy
	if policy == "ok" {
		policy = "fail_fast"
	}
	var jobs []map[string]any
	for _, s := range w.steps {
		j := map[string]any{
			"name": s.name, "queue": faultQueue, "max_attempts": faultMaxAttempts,
			"payload": map[string]any{"kind": s.kind, "ms": s.ms, "proceed": s.proceed},
		}
		var deps []string
		for _, p := range s.parents {
			deps = append(deps, w.steps[p].name)
		}
		if len(deps) > 0 {
			j["depends_on"] = deps
		}
		if s.cond {
			j["condition"] = "proceed"
		}
		jobs = append(jobs, j)
	}
	return map[string]any{"name": w.name, "failure_policy": policy, "jobs": jobs}
}

func plannedSteps(ws []faultWorkflow) int {
	n := 0
	for _, w := range ws {
		n += len(w.steps)
	}
	return n
}

// expected returns the one status each step must end in, or "" where the
// policy leaves a choice (fail_fast races its cancellations with the jobs
// already running).
func (w faultWorkflow) expected() []string {
	out := make([]string, len(w.steps))
	doomed := make([]bool, len(w.steps)) // a failed step or a descendant of one
	for i, s := range w.steps {
		blocked := false
		for _, p := range s.parents {
			if out[p] == "failed" || out[p] == "cancelled" || doomed[p] {
				blocked = true
			}
			doomed[i] = doomed[i] || doomed[p]
		}
		switch {
		case blocked:
			out[i] = "cancelled"
		case s.kind == "fail":
			out[i] = "failed"
			doomed[i] = true
		case s.cond && !w.steps[s.parents[0]].proceed:
			out[i] = "skipped"
		default:
			out[i] = "completed"
		}
		if w.policy == "fail_fast" && !doomed[i] {
			out[i] = "" // completed, or cancelled by the failure elsewhere
		}
	}
	return out
}

// violations collects what the checks found, so one run reports them all.
type violations struct {
	list []string
	ids  []string
}

func (v *violations) add(id, format string, args ...any) {
	v.list = append(v.list, id+": "+fmt.Sprintf(format, args...))
	if !slices.Contains(v.ids, id) {
		v.ids = append(v.ids, id)
	}
}

// faultStats counts what the checks saw, for the log.
type faultStats struct {
	workflowJobs int
	duplicated   int
	extra        int
	byOutcome    map[string]int
	// liveRescues are leases that ran out while their agent was alive and
	// the database up: the agent was too slow to extend them or to write
	// the outcome (under load, a 2s lease allows it), or a rescuer took a
	// live lease (a bug).
	liveRescues []string
}

// redeliveryCauses are the ends of an attempt that let the job be
// delivered again although the app had not asked for a retry.
var redeliveryCauses = map[string]bool{
	"lease_expired": true, "connection_error": true, "connection_refused": true, "timeout": true,
}

// checkFaultJob checks one job against its deliveries: a terminal state,
// the state the app's answers call for (standalone jobs; workflow jobs are
// checked with their workflow), and that every attempt followed by another
// one ended in a way that allows a redelivery.
func checkFaultJob(v *violations, st *faultStats, j faultJob, ds []delivery, facts faultFacts) {
	if st.byOutcome == nil {
		st.byOutcome = map[string]int{}
	}
	var p faultPayload
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		v.add(j.ID, "payload %s: %v", j.Payload, err)
		return
	}
	switch j.Status {
	case "completed", "failed", "cancelled", "skipped":
	default:
		v.add(j.ID, "left %s (attempts %d, leased by %q)", j.Status, j.Attempts, j.LeasedBy)
	}
	if j.WorkflowID == nil {
		want := "completed"
		if p.Kind == "fail" {
			want = "failed"
		}
		if j.Status != want {
			v.add(j.ID, "a %s job ended %s, want %s; errors %+v", p.Kind, j.Status, want, j.Errors)
		}
	} else {
		st.workflowJobs++
	}

	errAt := map[int]faultAttemptErr{}
	for _, e := range j.Errors {
		errAt[e.Attempt] = e
	}
	attempts := map[int]bool{}
	tokens := map[string]bool{}
	for _, d := range ds {
		if attempts[d.Attempt] {
			v.add(j.ID, "attempt %d delivered twice: two live leases at once (deliveries %+v)", d.Attempt, ds)
		}
		attempts[d.Attempt] = true
		if tokens[d.Token] {
			v.add(j.ID, "lease token %s delivered twice", d.Token)
		}
		tokens[d.Token] = true
		if d.Attempt < 1 || d.Attempt > j.Attempts {
			v.add(j.ID, "delivered as attempt %d, but the job records %d attempts", d.Attempt, j.Attempts)
		}
		if d.Attempt >= j.Attempts {
			continue // the last attempt: its end is the job's state
		}
		e, ok := errAt[d.Attempt]
		switch {
		case !ok:
			v.add(j.ID, "attempt %d (app answered %d) was followed by attempt %d, but the history has no end for it: %+v",
				d.Attempt, d.Status, j.Attempts, j.Errors)
		case e.Outcome == "lease_expired":
			// The lease may run out only when its holder died or could
			// not reach the database: then the next delivery follows.
			var next *delivery
			for k := range ds {
				if ds[k].Attempt > d.Attempt && (next == nil || ds[k].Attempt < next.Attempt) {
					next = &ds[k]
				}
			}
			if next != nil && !facts.excuses(d.Proc, d.At, next.At) {
				st.liveRescues = append(st.liveRescues, j.ID+": "+fmt.Sprintf("attempt %d was delivered by process %d at %s and its lease rescued (attempt %d delivered at %s) while that process was alive (it ended at %s) and the database up",
					d.Attempt, d.Proc, d.At.Format(time.StampMilli), next.Attempt, next.At.Format(time.StampMilli), facts.ended[d.Proc].Format(time.StampMilli)))
			}
		case redeliveryCauses[e.Outcome]:
		case e.Outcome == "http_500" && d.Status == http.StatusInternalServerError:
		default:
			v.add(j.ID, "attempt %d: the app answered %d, the history says %s (%s), and the job was delivered again",
				d.Attempt, d.Status, e.Outcome, e.Message)
		}
	}
	if len(ds) > 1 {
		st.duplicated++
		st.extra += len(ds) - 1
		for _, d := range ds {
			if e, ok := errAt[d.Attempt]; ok && d.Attempt < j.Attempts {
				st.byOutcome[e.Outcome]++
			}
		}
	}

	switch j.Status {
	case "completed":
		var r struct {
			Attempt int    `json:"attempt"`
			Token   string `json:"token"`
		}
		if err := json.Unmarshal(j.Result, &r); err != nil {
			v.add(j.ID, "completed with result %s: %v", j.Result, err)
			break
		}
		if r.Attempt != j.Attempts {
			v.add(j.ID, "completed by attempt %d's answer, but attempt %d holds the job: a stale lease wrote its outcome", r.Attempt, j.Attempts)
		}
		if !slices.ContainsFunc(ds, func(d delivery) bool { return d.Token == r.Token && d.Status == http.StatusOK }) {
			v.add(j.ID, "completed with a result for lease %s that the app never answered 200 (deliveries %+v)", r.Token, ds)
		}
	case "failed":
		last := faultAttemptErr{}
		if len(j.Errors) > 0 {
			last = j.Errors[len(j.Errors)-1]
		}
		if last.Attempt != j.Attempts || last.Outcome != "http_422" {
			v.add(j.ID, "failed, but its last error is %+v, not the app's 422 at attempt %d", last, j.Attempts)
		}
	case "skipped":
		if len(ds) > 0 {
			v.add(j.ID, "skipped, but delivered %d times", len(ds))
		}
	}
}

// checkFaultWorkflow checks one workflow: its counters equal its jobs'
// states, nothing is left to run, its status follows from its policy, and
// each step ended as planned.
func checkFaultWorkflow(v *violations, p faultWorkflow, w workflowState, byID map[string]faultJob) {
	count := map[string]int{}
	status := map[string]string{}
	for _, j := range w.Jobs {
		count[j.Status]++
		status[j.StepName] = j.Status
	}
	s := w.Stats
	got := [7]int{s.TotalJobs, s.CompletedJobs, s.FailedJobs, s.CancelledJobs, s.SkippedJobs, s.PendingJobs, s.RunningJobs}
	want := [7]int{len(w.Jobs), count["completed"], count["failed"], count["cancelled"], count["skipped"], count["pending"], count["running"]}
	if got != want {
		v.add(w.ID, "workflow counters total/completed/failed/cancelled/skipped/pending/running = %v, its jobs say %v", got, want)
	}
	if len(w.Jobs) != len(p.steps) {
		v.add(w.ID, "workflow has %d jobs, planned %d", len(w.Jobs), len(p.steps))
	}
	wantStatus := "failed"
	if p.policy == "ok" {
		wantStatus = "completed"
	}
	if w.Status != wantStatus {
		v.add(w.ID, "workflow %s (%s) is %s, want %s; jobs %v", p.name, p.policy, w.Status, wantStatus, status)
	}
	exp := p.expected()
	for i, step := range p.steps {
		got := status[step.name]
		if exp[i] != "" && got != exp[i] {
			v.add(w.ID, "workflow %s (%s): step %s is %s, want %s; jobs %v", p.name, p.policy, step.name, got, exp[i], status)
		}
		if got == "completed" || got == "skipped" {
			for _, par := range step.parents {
				if ps := status[p.steps[par].name]; ps != "completed" && ps != "skipped" {
					v.add(w.ID, "workflow %s: step %s is %s though its parent %s is %s", p.name, step.name, got, p.steps[par].name, ps)
				}
			}
		}
	}
	for _, j := range w.Jobs {
		if _, ok := byID[j.ID]; !ok {
			v.add(w.ID, "workflow job %s (%s) is not in the queue's listing", j.ID, j.StepName)
		}
	}
}
