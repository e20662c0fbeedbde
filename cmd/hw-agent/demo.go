package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/agent"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/sqlite"
	"github.com/hammerwork-go/hw-agent/workflow"
)

const (
	// demoTimeout stops a demo that cannot finish; the jobs all end within a
	// few seconds when the agent works.
	demoTimeout = 60 * time.Second
	// demoProgressEvery paces the live progress lines.
	demoProgressEvery = 300 * time.Millisecond
	// demoBounce is the address the sample app rejects, to show a permanent failure.
	demoBounce = "bounce@example.invalid"
	// demoSchedule fires every second into demoScheduleQueue; the demo
	// shows demoScheduleFires of its runs reaching the app, then deletes it.
	demoSchedule      = "heartbeat"
	demoScheduleQueue = "heartbeats"
	demoScheduleFires = 3
)

func (c *cli) demoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Run jobs end to end on a throwaway SQLite database and a built-in sample app",
		Long: `Start a temporary SQLite database, a sample app with five queues and an agent
with an "@every 1s" schedule, whose first three runs reach the app; then
enqueue 20 jobs and watch them run: emails succeed, thumbnails take a moment,
reports fail once with 503 and succeed on retry, and one email is rejected with
422 and fails without a retry. Alongside runs a workflow: extract fans out to
three parallel steps, a summary waits for all of them, then one conditional
step runs and another is skipped. Everything is removed at the end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.runDemo(cmd.Context())
		},
	}
}

// demoJobs is what the demo enqueues: 20 jobs over three queues.
func demoJobs() []store.NewJob {
	quickRetry := &job.RetryPolicy{Strategy: job.StrategyFixed, Initial: job.Duration(200 * time.Millisecond)}
	var jobs []store.NewJob
	add := func(queue, payload string, retry *job.RetryPolicy) {
		jobs = append(jobs, store.NewJob{Queue: queue, Payload: []byte(payload), Priority: job.PriorityNormal, RetryPolicy: retry})
	}
	for i, name := range []string{"ada", "grace", "alan", "edsger", "barbara", "donald", "margaret"} {
		add("emails", fmt.Sprintf(`{"to":"%s@example.com","template":"welcome","n":%d}`, name, i+1), nil)
	}
	add("emails", `{"to":"`+demoBounce+`","template":"welcome"}`, nil)
	for i := 1; i <= 7; i++ {
		add("thumbnails", fmt.Sprintf(`{"image":"photos/%03d.jpg","width":320}`, i), nil)
	}
	for _, month := range []string{"2026-06", "2026-07", "2026-08", "2026-09", "2026-10"} {
		add("reports", fmt.Sprintf(`{"report":"sales","month":"%s"}`, month), quickRetry)
	}
	return jobs
}

func (c *cli) runDemo(ctx context.Context) error {
	started := time.Now()
	dir, err := os.MkdirTemp("", "hw-agent-demo-")
	if err != nil {
		return fmt.Errorf("create demo directory: %w", err)
	}
	defer os.RemoveAll(dir)

	dbURL := "sqlite://" + filepath.Join(dir, "demo.db")
	st, err := sqlite.Open(ctx, sqlite.Config{URL: dbURL})
	if err != nil {
		return fmt.Errorf("open demo database: %w", err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate demo database: %w", err)
	}

	app, err := startDemoApp()
	if err != nil {
		return err
	}
	defer app.Close()

	cfg := agent.DefaultConfig()
	cfg.Database.URL = dbURL
	cfg.Agent.ID = "demo"
	cfg.Agent.Concurrency = 4
	cfg.Agent.PollInterval = job.Duration(50 * time.Millisecond)
	cfg.Agent.LeaseDuration = job.Duration(30 * time.Second)
	cfg.App.HandlerURL = app.url + "/jobs/{queue}"
	cfg.App.RequestTimeout = job.Duration(5 * time.Second)
	cfg.API.Listen = "off"
	// The pipeline's steps get their parents' results in the envelope.
	envelope := true
	cfg.Queues = []agent.QueueConfig{{Name: demoPipelineQueue, Envelope: &envelope}}
	// A schedule as a configuration file gives it: the agent writes it at
	// start-up and fires it, one job per second. A scheduler pass every
	// 100ms (the default is 1s) keeps each run within about that of its
	// time, as the short poll interval keeps the jobs quick.
	cfg.Schedule = []agent.ScheduleConfig{{Name: demoSchedule, Cron: "@every 1s", Queue: demoScheduleQueue,
		Payload: agent.SchedulePayload(`{"beat": true}`)}}
	cfg.Schedules.Interval = job.Duration(100 * time.Millisecond)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	// The demo's own output is the show; agent logs stay quiet unless the
	// user asks for them with --log-level.
	logCfg := agent.LogConfig{Format: "text", Level: "error"}
	if c.flagSet("log-level") {
		logCfg.Level = c.logLevel
	}
	if c.flagSet("log-format") {
		logCfg.Format = c.logFormat
	}
	ag, err := agent.New(agent.Params{Config: cfg, Store: st, Logger: c.newLogger(logCfg)})
	if err != nil {
		return fmt.Errorf("start agent: %w", err)
	}

	fmt.Fprintf(c.stdout, "hw-agent demo\n  database    %s (temporary)\n  sample app  %s\n  schedule    %s: %q, a job on queue %s per run\n\n",
		dbURL, cfg.App.HandlerURL, demoSchedule, cfg.Schedule[0].Cron, demoScheduleQueue)

	agentCtx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	agentDone := make(chan error, 1)
	go func() { agentDone <- ag.Run(agentCtx) }()

	newJobs := demoJobs()
	var wfID uuid.UUID
	total := len(newJobs)
	waitErr := c.showSchedule(ctx, st, app, agentDone)
	if waitErr == nil {
		var steps int
		wfID, steps, waitErr = c.enqueueDemo(ctx, st, newJobs)
		total += steps
	}
	if waitErr == nil {
		waitErr = c.waitForDemo(ctx, st, total, wfID, agentDone)
	}
	stopAgent()
	if err := <-agentDone; err != nil && waitErr == nil {
		waitErr = fmt.Errorf("agent: %w", err)
	}
	if waitErr != nil {
		return waitErr
	}
	if err := c.printDemoSummary(ctx, st); err != nil {
		return err
	}
	if err := c.printDemoWorkflow(ctx, st, wfID); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "\nAll %d jobs finished in %s.\n", total, time.Since(started).Round(10*time.Millisecond))
	fmt.Fprintf(c.stdout, "Reports failed once with 503 and were retried after 200ms; the email to %s was\nrejected with 422 and failed at once (4xx means do not retry).\n", demoBounce)
	fmt.Fprintln(c.stdout, "In the workflow, summary waited for all three parallel steps; notify's condition\n(status == 'ok' over summary's result) held, archive's did not, so it was skipped.")
	fmt.Fprintln(c.stdout, `
Next: point an agent at your own app:
  hw-agent migrate
  hw-agent run     # dispatches to http://127.0.0.1:8080/jobs/{queue}, API on 127.0.0.1:9090
  hw-agent job enqueue --queue emails --payload '{"to":"ada@example.com"}'`)
	return nil
}

// showSchedule prints the schedule's first runs as their jobs reach the
// app, then deletes the schedule (its jobs stay) and waits for every job it
// made, a run fired just before the delete included, so that the counts
// of the rest of the demo leave them out.
func (c *cli) showSchedule(ctx context.Context, st store.Store, app *demoApp, agentDone chan error) error {
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	for range demoScheduleFires {
		select {
		case f := <-app.fires:
			fmt.Fprintf(c.stdout, "  %s fired for %s: job %s reached the app %s after its time\n",
				demoSchedule, f.nominal.Format(time.TimeOnly), f.jobID, f.at.Sub(f.nominal).Round(time.Millisecond))
		case err := <-agentDone:
			agentDone <- err
			return fmt.Errorf("agent stopped before the schedule fired: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("schedule %s: no run reached the app within %s", demoSchedule, demoTimeout)
		}
	}
	if err := st.DeleteSchedule(ctx, demoSchedule); err != nil {
		return fmt.Errorf("delete demo schedule: %w", err)
	}
	tick := time.NewTicker(demoProgressEvery)
	defer tick.Stop()
	for {
		counts, err := statusCounts(ctx, st, demoScheduleQueue)
		if err != nil {
			return err
		}
		if counts[job.StatusPending]+counts[job.StatusRunning] == 0 {
			fmt.Fprintf(c.stdout, "  one run per second, each job in a trace of its own; %s is deleted now, its jobs stay.\n\n", demoSchedule)
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("schedule %s: its jobs did not finish within %s", demoSchedule, demoTimeout)
		}
	}
}

// enqueueDemo enqueues the demo's jobs and workflow, prints what it
// enqueued, and returns the workflow's id and number of jobs.
func (c *cli) enqueueDemo(ctx context.Context, st store.Store, newJobs []store.NewJob) (uuid.UUID, int, error) {
	if _, err := st.Enqueue(ctx, store.EnqueueParams{Jobs: newJobs}); err != nil {
		return uuid.Nil, 0, fmt.Errorf("enqueue demo jobs: %w", err)
	}
	def, err := demoWorkflow()
	if err != nil {
		return uuid.Nil, 0, fmt.Errorf("build demo workflow: %w", err)
	}
	wf, err := st.EnqueueWorkflow(ctx, store.EnqueueWorkflowParams{Workflow: def})
	if err != nil {
		return uuid.Nil, 0, fmt.Errorf("enqueue demo workflow: %w", err)
	}
	fmt.Fprintf(c.stdout, "  enqueued    %d jobs: %s\n  workflow    %s (%d jobs): %s\n\n",
		len(newJobs), describeQueues(newJobs), def.Name, len(def.Steps), demoWorkflowShape)
	return wf.Workflow.ID, len(def.Steps), nil
}

// waitForDemo prints the status counts and the workflow's progress as they
// change until every job is terminal, the agent stops, or demoTimeout passes.
func (c *cli) waitForDemo(ctx context.Context, st store.Store, total int, wfID uuid.UUID, agentDone chan error) error {
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	tick := time.NewTicker(demoProgressEvery)
	defer tick.Stop()
	last := ""
	for {
		counts, err := statusCounts(ctx, st, "")
		if err != nil {
			return err
		}
		beats, err := statusCounts(ctx, st, demoScheduleQueue)
		if err != nil {
			return err
		}
		for s, n := range beats { // shown before, and all finished
			counts[s] -= n
		}
		wf, err := st.GetWorkflow(ctx, wfID)
		if err != nil {
			return fmt.Errorf("read demo workflow: %w", err)
		}
		line := fmt.Sprintf("  pending %-3d running %-3d completed %-3d failed %-3d skipped %-3d workflow %s %s",
			counts[job.StatusPending], counts[job.StatusRunning], counts[job.StatusCompleted], counts[job.StatusFailed],
			counts[job.StatusSkipped], wf.Status, progress(wf.Stats))
		if line != last {
			fmt.Fprintln(c.stdout, line)
			last = line
		}
		if terminalCount(counts) >= int64(total) && wf.Status.Terminal() {
			return nil
		}
		select {
		case <-tick.C:
		case err := <-agentDone:
			agentDone <- err // for the caller, which waits for the agent to end
			return fmt.Errorf("agent stopped before the demo finished: %v", err)
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return c.demoStuck(st, total-int(terminalCount(counts)))
			}
			return ctx.Err()
		}
	}
}

// demoStuck explains a demo that ran out of time by listing unfinished jobs.
func (c *cli) demoStuck(st store.Store, unfinished int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var stuck []string
	for _, s := range []job.Status{job.StatusPending, job.StatusRunning} {
		page, err := st.List(ctx, store.ListParams{Status: s, Limit: store.MaxListLimit})
		if err != nil {
			return fmt.Errorf("demo timed out after %s with %d unfinished jobs (listing them failed: %w)", demoTimeout, unfinished, err)
		}
		for _, j := range page.Jobs {
			stuck = append(stuck, fmt.Sprintf("  %s %s %s attempts %d/%d %s", j.ID, j.Queue, j.Status, j.Attempts, j.MaxAttempts, truncate(j.ErrorMessage, 80)))
		}
	}
	return fmt.Errorf("demo timed out after %s with %d unfinished jobs:\n%s", demoTimeout, unfinished, strings.Join(stuck, "\n"))
}

func (c *cli) printDemoSummary(ctx context.Context, st store.Store) error {
	type row struct{ completed, failed, retries int }
	rows := map[string]*row{}
	page, err := st.List(ctx, store.ListParams{Limit: store.MaxListLimit})
	if err != nil {
		return fmt.Errorf("list demo jobs: %w", err)
	}
	for _, j := range page.Jobs {
		r := rows[j.Queue]
		if r == nil {
			r = &row{}
			rows[j.Queue] = r
		}
		switch j.Status {
		case job.StatusCompleted:
			r.completed++
		case job.StatusFailed:
			r.failed++
		}
		if j.Attempts > 1 {
			r.retries += j.Attempts - 1
		}
	}
	queues := make([]string, 0, len(rows))
	for q := range rows {
		queues = append(queues, q)
	}
	sort.Strings(queues)
	fmt.Fprintln(c.stdout)
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tCOMPLETED\tFAILED\tRETRIES")
	for _, q := range queues {
		r := rows[q]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", q, r.completed, r.failed, r.retries)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

// statusCounts sums QueueStats by status, for one queue or (queue "") all.
func statusCounts(ctx context.Context, st store.Store, queue string) (map[job.Status]int64, error) {
	stats, err := st.QueueStats(ctx)
	if err != nil {
		return nil, fmt.Errorf("read queue stats: %w", err)
	}
	counts := map[job.Status]int64{}
	for _, s := range stats {
		if queue == "" || s.Queue == queue {
			counts[s.Status] += s.Count
		}
	}
	return counts, nil
}

func terminalCount(counts map[job.Status]int64) int64 {
	var n int64
	for s, c := range counts {
		if s.Terminal() {
			n += c
		}
	}
	return n
}

func describeQueues(jobs []store.NewJob) string {
	n := map[string]int{}
	var order []string
	for _, j := range jobs {
		if n[j.Queue] == 0 {
			order = append(order, j.Queue)
		}
		n[j.Queue]++
	}
	parts := make([]string, len(order))
	for i, q := range order {
		parts[i] = fmt.Sprintf("%s %d", q, n[q])
	}
	return strings.Join(parts, ", ")
}

// demoApp is the sample app the demo dispatches to: a real HTTP server on a
// free loopback port, so the demo exercises the same path as production.
type demoApp struct {
	url string
	srv *http.Server
	// seen remembers the report jobs already failed once.
	mu   sync.Mutex
	seen map[string]bool
	// fires receives the scheduled jobs as they arrive, while the demo
	// watches; later ones are answered without it.
	fires chan demoFire
}

// demoFire is one scheduled job as the app received it.
type demoFire struct {
	jobID   string
	nominal time.Time
	at      time.Time
}

func startDemoApp() (*demoApp, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start sample app: %w", err)
	}
	a := &demoApp{url: "http://" + ln.Addr().String(), seen: map[string]bool{}, fires: make(chan demoFire, demoScheduleFires)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /jobs/{queue}", a.handle)
	a.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
	}
	// Serve returns only when Close stops it; the demo reports the agent's
	// outcomes, so the app has nothing of its own to report.
	go func() { _ = a.srv.Serve(ln) }()
	return a, nil
}

func (a *demoApp) Close() error { return a.srv.Close() }

func (a *demoApp) handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.PathValue("queue") {
	case "emails":
		if strings.Contains(string(body), demoBounce) {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"error":"mailbox does not exist"}`)
			return
		}
		_, _ = io.WriteString(w, `{"sent":true}`)
	case "thumbnails":
		select {
		case <-time.After(time.Duration(150+rand.IntN(250)) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, `{"width":320,"height":240}`)
	case demoPipelineQueue:
		pipelineStep(w, r, body)
	case demoScheduleQueue:
		a.scheduled(r)
		_, _ = io.WriteString(w, `{"beat":"ok"}`)
	case "reports":
		if a.firstAttempt(r.Header.Get("Hammerwork-Job-Id")) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"warehouse busy, try again"}`)
			return
		}
		_, _ = io.WriteString(w, `{"rows":1234}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":"no such queue"}`)
	}
}

// scheduled hands a scheduled job to the demo. Its run's nominal time is
// in the correlation id, "<schedule>@<RFC 3339 time>".
func (a *demoApp) scheduled(r *http.Request) {
	f := demoFire{jobID: r.Header.Get("Hammerwork-Job-Id"), at: time.Now()}
	_, nominal, _ := strings.Cut(r.Header.Get("Hammerwork-Correlation-Id"), "@")
	f.nominal, _ = time.Parse(time.RFC3339, nominal)
	select {
	case a.fires <- f:
	default:
	}
}

func (a *demoApp) firstAttempt(jobID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen[jobID] {
		return false
	}
	a.seen[jobID] = true
	return true
}

// demoPipelineQueue carries the demo workflow's jobs.
const demoPipelineQueue = "pipeline"

// demoWorkflowShape describes demoWorkflow for the demo's header.
const demoWorkflowShape = "extract -> {resize, classify, index} -> summary -> notify if status == 'ok', archive if status == 'failed'"

// demoWorkflow is the sample workflow, built with the builder: a root, a
// fan-out of three parallel steps, a barrier, and two conditional steps over
// the barrier's result, one of which is skipped.
func demoWorkflow() (workflow.Workflow, error) {
	step := func(name string, payload string) workflow.Step {
		return workflow.Step{Name: name, Queue: demoPipelineQueue, Payload: json.RawMessage(payload)}
	}
	fanOut := func(name string) workflow.Step {
		s := step(name, `{"images": "photos/"}`)
		s.DependsOn = []string{"extract"}
		return s
	}
	notify := step("notify", `{"channel": "#photos"}`)
	notify.Condition = "status == 'ok'"
	archive := step("archive", `{"bucket": "cold"}`)
	archive.DependsOn = []string{"summary"}
	archive.Condition = "status == 'failed'"
	return workflow.New("image_pipeline").
		WithDescription("hw-agent demo: fan-out, barrier and conditions").
		Add(step("extract", `{"album": "holidays"}`)).
		Then(fanOut("resize")).
		AddParallel(fanOut("classify"), fanOut("index")).
		Then(step("summary", `{}`)).
		Then(notify).
		Add(archive).
		Build()
}

// pipelineStep answers the demo workflow's jobs. summary reads its parents'
// results from the envelope, as an app would, and reports their number.
func pipelineStep(w http.ResponseWriter, r *http.Request, body []byte) {
	step := r.Header.Get("Hammerwork-Step")
	switch step {
	case "extract":
		_, _ = io.WriteString(w, `{"images": 3}`)
	case "summary":
		var env struct {
			Parents map[string]json.RawMessage `json:"parents"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"summary wants the envelope"}`)
			return
		}
		fmt.Fprintf(w, `{"status": "ok", "parts": %d}`, len(env.Parents))
	default:
		select {
		case <-time.After(time.Duration(100+rand.IntN(200)) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, `{"step": %q, "done": true}`, step)
	}
}

// printDemoWorkflow shows how the workflow ended as its graph: one row per
// node in level order, with its status, parents and condition.
func (c *cli) printDemoWorkflow(ctx context.Context, st store.Store, id uuid.UUID) error {
	wf, jobs, err := readWorkflow(ctx, st, id)
	if err != nil {
		return err
	}
	byID := make(map[uuid.UUID]*job.Job, len(jobs))
	for _, j := range jobs {
		byID[j.ID] = j
	}
	fmt.Fprintf(c.stdout, "\nWorkflow %s: %s (%s)\n", wf.Name, wf.Status, counters(wf.Stats))
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LEVEL\tSTEP\tSTATUS\tAFTER\tCONDITION")
	for _, n := range workflow.NewGraph(jobs).Nodes {
		j := byID[n.ID]
		after := make([]string, len(j.DependsOn))
		for i, p := range j.DependsOn {
			after[i] = byID[p].StepName
		}
		sort.Strings(after)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", n.Level, n.Step, n.Status, strings.Join(after, ", "), j.Condition)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write workflow graph: %w", err)
	}
	return nil
}
