package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/agent"
	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

const (
	// benchStall ends a bench whose jobs stop completing: something is broken
	// and waiting longer proves nothing.
	benchStall = 60 * time.Second
	// benchAppStartTimeout bounds the wait for the child app's address line.
	benchAppStartTimeout = 10 * time.Second
)

type benchFlags struct {
	jobs        int
	concurrency int
	batch       int
	json        bool
	cpuprofile  string
	// webhook subscribes one webhook to every event for the throughput bench.
	webhook bool
	latency benchLatencyFlags
}

// benchResult is the one JSON line `bench --json` prints: the fields of the
// mode that ran (exactly one of the embedded results is set).
type benchResult struct {
	Backend     string `json:"backend"`
	Mode        string `json:"mode"`
	Jobs        int    `json:"jobs"`
	Concurrency int    `json:"concurrency"`
	*BenchThroughput
	*BenchLatency
}

// BenchThroughput is what the burn-down measures (exported only so that
// encoding/json flattens it into benchResult).
type BenchThroughput struct {
	EnqueuePerSec float64 `json:"enqueue_per_sec"`
	JobsPerSec    float64 `json:"jobs_per_sec"`
	LatencyP50Ms  float64 `json:"latency_p50_ms"`
	LatencyP99Ms  float64 `json:"latency_p99_ms"`
	// WebhookEvents and WebhookDrainMs are set with --webhook: the events the
	// webhook acknowledged, and the time from the last job's completion to
	// the relay having delivered every event.
	WebhookEvents  *int64   `json:"webhook_events,omitempty"`
	WebhookDrainMs *float64 `json:"webhook_drain_ms,omitempty"`
}

func (c *cli) benchCommand() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure enqueue rate, dispatch throughput and latency against a no-op app",
		Long: `Enqueue --jobs no-op jobs in batches while an agent dispatches them to a no-op
app running as a separate process, then report:
  enqueue_per_sec  jobs inserted per second of Enqueue calls
  jobs_per_sec     jobs completed per second, from agent start to the last completion
  latency p50/p99  created_at -> started_at of every job (queueing included)

With --latency, instead: enqueue single jobs through the agent's API at --rate
per second for --duration, then run a --chain step workflow (each step depends
on the one before), with the default agent.poll_interval, and report, as the
app measured them:
  enqueue -> app   p50/p90/p99 from sending POST /v1/jobs to the job's request
                   arriving at the app
  workflow hop     p50/p90/p99 from the app answering a step to the next step's
                   request arriving at the app
  chain            from sending POST /v1/workflows to the app answering the last step

--webhook subscribes one webhook (the no-op app's /events) to every event, so
the outbox, its triggers and the relay run alongside, and adds:
  webhook events   events the webhook acknowledged (three per job)
  webhook drain    from the last completion to every event delivered

--cpuprofile FILE writes a Go CPU profile (runtime/pprof) of the bench process,
the agent included, while the agent runs; read it with "go tool pprof FILE".

The database is a temporary SQLite file unless --database-url is given; the
configuration file and HW_DATABASE_URL are ignored so a bench never writes to a
production database by accident. With --database-url the database is MIGRATED
and the jobs are WRITTEN to it, on a fresh queue named bench_<random>, and left
there afterwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(cmd.Flags().Changed); err != nil {
				return err
			}
			return c.runBench(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.jobs, "jobs", 50000, "number of jobs")
	fl.IntVar(&f.concurrency, "concurrency", 50, "agent.concurrency: in-flight requests to the app")
	fl.IntVar(&f.batch, "batch", 5000, "jobs per Enqueue call")
	fl.BoolVar(&f.json, "json", false, "print exactly one JSON line with the results (as --output json)")
	fl.StringVar(&f.cpuprofile, "cpuprofile", "", "write a Go CPU profile of the bench process (agent included) to this file")
	fl.BoolVar(&f.webhook, "webhook", false, "subscribe a no-op webhook to every event and time the relay's delivery of them")
	f.latency.register(cmd)
	return cmd
}

// validate checks the flags, and that each given flag belongs to the mode
// that runs: a --rate without --latency would silently measure nothing.
func (f benchFlags) validate(changed func(string) bool) error {
	if f.concurrency < 1 {
		return fmt.Errorf("--concurrency %d must be at least 1", f.concurrency)
	}
	if f.latency.on {
		for _, name := range []string{"jobs", "batch", "webhook"} {
			if changed(name) {
				return fmt.Errorf("--%s is for the throughput bench, not --latency (use --rate and --duration)", name)
			}
		}
		return f.latency.validate()
	}
	for _, name := range latencyOnlyFlags {
		if changed(name) {
			return fmt.Errorf("--%s needs --latency", name)
		}
	}
	if f.jobs < 1 {
		return fmt.Errorf("--jobs %d must be at least 1", f.jobs)
	}
	if f.batch < 1 {
		return fmt.Errorf("--batch %d must be at least 1", f.batch)
	}
	return nil
}

func (c *cli) runBench(ctx context.Context, f benchFlags) error {
	env, err := c.openBench(ctx, f)
	if err != nil {
		return err
	}
	defer env.close()

	res := benchResult{Backend: string(env.kind), Concurrency: f.concurrency}
	if f.latency.on {
		res.Mode = "latency"
		c.progress("bench: latency on %s (queue %s), %g jobs/s for %s then a %d-step chain, app %s\n",
			env.kind, env.queue, f.latency.rate, f.latency.duration, f.latency.chain, env.app.addr)
		res.Jobs = f.latency.jobs()
		res.BenchLatency, err = c.benchLatency(ctx, env, f.latency)
	} else {
		res.Mode, res.Jobs = "throughput", f.jobs
		c.progress("bench: %d jobs on %s (queue %s), concurrency %d, app %s\n", f.jobs, env.kind, env.queue, f.concurrency, env.app.addr)
		res.BenchThroughput, err = c.benchThroughput(ctx, env, f)
	}
	if err != nil {
		return err
	}
	if f.json || c.jsonOutput() {
		b, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
		fmt.Fprintf(c.stdout, "%s\n", b)
		return nil
	}
	if res.BenchLatency != nil {
		c.printLatency(res, f.latency)
		return nil
	}
	fmt.Fprintf(c.stdout, "bench: %d jobs on %s, concurrency %d\n", res.Jobs, res.Backend, res.Concurrency)
	fmt.Fprintf(c.stdout, "  enqueue     %.0f jobs/s (batches of %d)\n", res.EnqueuePerSec, f.batch)
	fmt.Fprintf(c.stdout, "  throughput  %.0f jobs/s (agent start to last completion, enqueue running alongside)\n", res.JobsPerSec)
	fmt.Fprintf(c.stdout, "  latency     p50 %.2f ms, p99 %.2f ms (created_at to started_at)\n", res.LatencyP50Ms, res.LatencyP99Ms)
	if res.WebhookEvents != nil {
		fmt.Fprintf(c.stdout, "  webhook     %d events delivered, the last %.0f ms after the last completion\n", *res.WebhookEvents, *res.WebhookDrainMs)
	}
	return nil
}

// benchEnv is what both bench modes run on: a migrated store, the no-op app
// child, a fresh queue, and an agent (serving its API in latency mode) that
// start runs and stop ends.
type benchEnv struct {
	kind  store.DatabaseKind
	st    store.Store
	app   *benchApp
	queue string
	ag    *agent.Agent
	api   *apiServer // nil unless the mode enqueues through the API
	// cpuprofile is the --cpuprofile file, written from start to stop.
	cpuprofile string

	closers   []func()
	profile   *os.File
	stopAgent context.CancelFunc
	// agentDone is closed once Run has returned agentErr.
	agentDone chan struct{}
	agentErr  error
	started   time.Time
}

// openBench prepares the database, the app and the agent. The throughput
// bench polls every 20ms so that a backlog drains at full speed; the latency
// bench keeps the default agent.poll_interval, since how soon a job reaches
// the app with the default configuration is what it measures.
func (c *cli) openBench(ctx context.Context, f benchFlags) (_ *benchEnv, err error) {
	env := &benchEnv{cpuprofile: f.cpuprofile}
	defer func() {
		if err != nil {
			env.close()
		}
	}()
	dbURL := c.databaseURL
	if !c.flagSet("database-url") {
		dir, err := os.MkdirTemp("", "hw-agent-bench-")
		if err != nil {
			return nil, fmt.Errorf("create bench directory: %w", err)
		}
		env.closers = append(env.closers, func() { os.RemoveAll(dir) })
		dbURL = "sqlite://" + filepath.Join(dir, "bench.db")
	}
	if env.kind, err = store.ParseDatabaseURL(dbURL); err != nil {
		return nil, fmt.Errorf("--database-url: %w", err)
	}

	cfg := agent.DefaultConfig()
	cfg.Database.URL = dbURL
	cfg.Database.MaxConns = 20
	if env.st, err = openStore(ctx, cfg.Database); err != nil {
		return nil, err
	}
	env.closers = append(env.closers, func() { env.st.Close() })
	if _, err := env.st.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate %s: %w", store.RedactURL(dbURL), err)
	}

	if env.app, err = c.startBenchApp(f.latency.on); err != nil {
		return nil, err
	}
	env.closers = append(env.closers, env.app.stop)

	if env.queue, err = benchQueueName(); err != nil {
		return nil, err
	}
	cfg.Agent.ID = "bench"
	cfg.Agent.Queues = []string{env.queue}
	cfg.Agent.Concurrency = f.concurrency
	if !f.latency.on {
		cfg.Agent.PollInterval = job.Duration(20 * time.Millisecond)
	}
	cfg.App.HandlerURL = "http://" + env.app.addr + "/jobs/{queue}"
	cfg.App.RequestTimeout = job.Duration(10 * time.Second)
	cfg.Agent.LeaseDuration = job.Duration(60 * time.Second)
	cfg.API.Listen = "off"
	if f.webhook {
		cfg.Webhooks = []webhook.Def{{Name: benchWebhook, URL: "http://" + env.app.addr + "/events"}}
	}
	if f.latency.on {
		cfg.API.Listen = "127.0.0.1:0"
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bench configuration: %w", err)
	}
	logCfg := agent.LogConfig{Format: "text", Level: "warn"}
	if c.flagSet("log-level") {
		logCfg.Level = c.logLevel
	}
	if c.flagSet("log-format") {
		logCfg.Format = c.logFormat
	}
	log := c.newLogger(logCfg)
	if env.ag, err = agent.New(agent.Params{Config: cfg, Store: env.st, Logger: log}); err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	if cfg.API.Listen != "off" {
		if env.api, err = listenAPI(cfg, env.st, env.ag, log, nil, nil); err != nil {
			return nil, err
		}
		env.closers = append(env.closers, func() { env.api.ln.Close() })
	}
	return env, nil
}

// start begins the measured phase: the CPU profile, if asked for, then the
// agent and its API.
func (e *benchEnv) start(ctx context.Context) error {
	if e.cpuprofile != "" {
		f, err := os.Create(e.cpuprofile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("--cpuprofile %s: %w", e.cpuprofile, err)
		}
		e.profile = f
	}
	var agentCtx context.Context
	agentCtx, e.stopAgent = context.WithCancel(ctx)
	e.agentDone = make(chan struct{})
	e.started = time.Now()
	go func() {
		defer close(e.agentDone)
		e.agentErr = e.ag.Run(agentCtx)
	}()
	if e.api != nil {
		e.api.start(e.stopAgent)
	}
	return e.waitStarted(ctx)
}

// waitStarted returns once the agent has applied its configuration (the
// --webhook subscriber among it), so no bench job precedes its events.
func (e *benchEnv) waitStarted(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !e.ag.Started() {
		select {
		case <-tick.C:
		case <-e.agentDone:
			return errors.Join(errors.New("agent stopped while starting"), e.agentErr)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// stop ends the measured phase: the agent drains and stops, then the API,
// then the profile is written. It returns the first error of the three.
func (e *benchEnv) stop() error {
	e.stopAgent()
	var errs []error
	<-e.agentDone
	if e.agentErr != nil {
		errs = append(errs, fmt.Errorf("agent: %w", e.agentErr))
	}
	if e.api != nil {
		errs = append(errs, e.api.shutdown())
	}
	if e.profile != nil {
		pprof.StopCPUProfile()
		if err := e.profile.Close(); err != nil {
			errs = append(errs, fmt.Errorf("--cpuprofile %s: %w", e.cpuprofile, err))
		}
		e.profile = nil
	}
	return errors.Join(errs...)
}

// close releases what openBench set up, last first.
func (e *benchEnv) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// benchThroughput is the burn-down: enqueue f.jobs in batches while the
// agent runs, wait for every one to finish, read their times back.
func (c *cli) benchThroughput(ctx context.Context, env *benchEnv, f benchFlags) (*BenchThroughput, error) {
	if err := env.start(ctx); err != nil {
		return nil, err
	}
	enqueueTime, err := c.benchEnqueue(ctx, env.st, env.queue, f)
	if err == nil {
		err = c.benchWait(ctx, env.st, env.queue, f.jobs, env.agentDone)
	}
	var drained time.Time
	var delivered int64
	if err == nil && f.webhook {
		drained, delivered, err = c.benchDrain(ctx, env.st, int64(3*f.jobs), env.agentDone)
	}
	if stopErr := env.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return nil, err
	}
	lat, lastDone, err := benchLatencies(ctx, env.st, env.queue)
	if err != nil {
		return nil, err
	}
	res := &BenchThroughput{
		EnqueuePerSec: round1(float64(f.jobs) / enqueueTime.Seconds()),
		JobsPerSec:    round1(float64(f.jobs) / lastDone.Sub(env.started).Seconds()),
		LatencyP50Ms:  millis(percentile(lat, 0.50)),
		LatencyP99Ms:  millis(percentile(lat, 0.99)),
	}
	if f.webhook {
		drain := millis(max(drained.Sub(lastDone), 0))
		res.WebhookEvents, res.WebhookDrainMs = &delivered, &drain
	}
	return res, nil
}

// benchWebhook names the --webhook subscriber.
const benchWebhook = "bench"

// benchDrain waits until the relay has delivered at least want events to
// the bench webhook and has none left to deliver, and returns when that was
// and how many it acknowledged.
func (c *cli) benchDrain(ctx context.Context, st store.Store, want int64, agentDone <-chan struct{}) (time.Time, int64, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last, lastChange, lastPrint := int64(-1), time.Now(), time.Time{}
	for {
		sub, err := st.GetSubscriberByName(ctx, benchWebhook)
		if err != nil {
			return time.Time{}, 0, fmt.Errorf("read the bench webhook: %w", err)
		}
		latest, err := st.LatestSeq(ctx)
		if err != nil {
			return time.Time{}, 0, fmt.Errorf("read the outbox: %w", err)
		}
		if sub.Cursor >= want && sub.Cursor >= latest {
			c.progress("bench: webhook acknowledged %d events\n", sub.Cursor)
			return time.Now(), sub.Cursor, nil
		}
		if sub.Cursor != last {
			last, lastChange = sub.Cursor, time.Now()
		}
		if time.Since(lastPrint) >= time.Second {
			c.progress("bench: webhook acknowledged %d/%d events\n", sub.Cursor, max(want, latest))
			lastPrint = time.Now()
		}
		if !sub.Enabled {
			return time.Time{}, 0, fmt.Errorf("the bench webhook was disabled: %s", sub.DisabledReason)
		}
		if time.Since(lastChange) > benchStall {
			return time.Time{}, 0, fmt.Errorf("bench stalled: the webhook acknowledged nothing for %s (%d events)", benchStall, sub.Cursor)
		}
		select {
		case <-tick.C:
		case <-agentDone:
			return time.Time{}, 0, errors.New("agent stopped before the webhook caught up")
		case <-ctx.Done():
			return time.Time{}, 0, ctx.Err()
		}
	}
}

// progress writes a progress line to stderr, keeping stdout for the result.
func (c *cli) progress(format string, a ...any) { fmt.Fprintf(c.stderr, format, a...) }

// benchEnqueue inserts the jobs in batches while the agent already runs, so
// latency measures dispatch under load rather than a pre-filled backlog. It
// returns the time spent inside Enqueue calls.
func (c *cli) benchEnqueue(ctx context.Context, st store.Store, queue string, f benchFlags) (time.Duration, error) {
	var spent time.Duration
	for done := 0; done < f.jobs; {
		n := min(f.batch, f.jobs-done)
		batch := make([]store.NewJob, n)
		for i := range batch {
			batch[i] = store.NewJob{Queue: queue, Payload: []byte(`{}`), Priority: job.PriorityNormal}
		}
		t0 := time.Now()
		if _, err := st.Enqueue(ctx, store.EnqueueParams{Jobs: batch}); err != nil {
			return 0, fmt.Errorf("enqueue batch at %d: %w", done, err)
		}
		spent += time.Since(t0)
		done += n
		c.progress("bench: enqueued %d/%d\n", done, f.jobs)
	}
	return spent, nil
}

// benchWait polls the queue's counts until every job is terminal. Jobs that
// end other than completed make the bench fail: a no-op app never fails.
func (c *cli) benchWait(ctx context.Context, st store.Store, queue string, total int, agentDone <-chan struct{}) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var lastDone int64 = -1
	lastChange := time.Now()
	lastPrint := time.Time{}
	for {
		counts, err := statusCounts(ctx, st, queue)
		if err != nil {
			return err
		}
		done := terminalCount(counts)
		if done != lastDone {
			lastDone, lastChange = done, time.Now()
		}
		if time.Since(lastPrint) >= time.Second || done >= int64(total) {
			c.progress("bench: completed %d/%d (running %d, pending %d)\n", counts[job.StatusCompleted], total, counts[job.StatusRunning], counts[job.StatusPending])
			lastPrint = time.Now()
		}
		if done >= int64(total) {
			if bad := done - counts[job.StatusCompleted]; bad > 0 {
				return fmt.Errorf("%d of %d bench jobs did not complete (failed %d, cancelled %d): see `hw-agent job list --queue %s --status failed`",
					bad, total, counts[job.StatusFailed], counts[job.StatusCancelled], queue)
			}
			return nil
		}
		if time.Since(lastChange) > benchStall {
			return fmt.Errorf("bench stalled: no job finished for %s (%d/%d done)", benchStall, done, total)
		}
		select {
		case <-tick.C:
		case <-agentDone:
			return errors.New("agent stopped before the bench finished")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// benchLatencies reads every job of the queue back and returns its
// created_at -> started_at latencies and the last completion time.
func benchLatencies(ctx context.Context, st store.Store, queue string) ([]time.Duration, time.Time, error) {
	var (
		lat      []time.Duration
		lastDone time.Time
		cursor   string
	)
	for {
		page, err := st.List(ctx, store.ListParams{Queue: queue, Limit: store.MaxListLimit, Cursor: cursor})
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("read bench jobs back: %w", err)
		}
		for _, j := range page.Jobs {
			if j.StartedAt != nil {
				lat = append(lat, j.StartedAt.Sub(j.CreatedAt))
			}
			if j.CompletedAt != nil && j.CompletedAt.After(lastDone) {
				lastDone = *j.CompletedAt
			}
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(lat) == 0 {
		return nil, time.Time{}, errors.New("no bench job has a started_at")
	}
	slices.Sort(lat)
	return lat, lastDone, nil
}

// percentile returns the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*100) / 100
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// benchQueueName is a fresh queue per run, so a bench on a shared database
// neither leases nor counts anyone else's jobs.
func benchQueueName() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("name bench queue: %w", err)
	}
	return "bench_" + hex.EncodeToString(b[:]), nil
}

// benchApp is the no-op app child process.
type benchApp struct {
	addr  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// startBenchApp re-executes this binary as `bench-app` so the app's HTTP
// serving does not share the agent's CPU scheduler and heap, as in a real
// sidecar deployment. The child exits when its stdin closes, so it cannot
// outlive a bench that dies without calling stop. With record the app keeps
// each request's arrival and answer times for GET /records (latency mode);
// without, the throughput bench's app does no bookkeeping per request.
func (c *cli) startBenchApp(record bool) (*benchApp, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable for bench-app: %w", err)
	}
	args := []string{"bench-app", "--listen", "127.0.0.1:0", "--exit-on-stdin-eof"}
	if record {
		args = append(args, "--record")
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = c.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("bench-app stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench-app stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bench-app: %w", err)
	}
	app := &benchApp{cmd: cmd, stdin: stdin}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	timer := time.NewTimer(benchAppStartTimeout)
	defer timer.Stop()
	select {
	case app.addr = <-line:
	case <-timer.C:
	}
	if app.addr == "" {
		app.stop()
		return nil, errors.New("bench-app did not print its listen address")
	}
	return app, nil
}

// stop kills the child by its pid and reaps it.
func (a *benchApp) stop() {
	a.stdin.Close()
	// Kill fails only for a child that already exited, and Wait then
	// reports the kill: neither is news once the bench is over.
	_ = a.cmd.Process.Kill()
	_ = a.cmd.Wait()
}
