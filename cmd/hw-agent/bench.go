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
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/agent"
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
}

// benchResult is the one JSON line `bench --json` prints.
type benchResult struct {
	Backend       string  `json:"backend"`
	Jobs          int     `json:"jobs"`
	Concurrency   int     `json:"concurrency"`
	EnqueuePerSec float64 `json:"enqueue_per_sec"`
	JobsPerSec    float64 `json:"jobs_per_sec"`
	LatencyP50Ms  float64 `json:"latency_p50_ms"`
	LatencyP99Ms  float64 `json:"latency_p99_ms"`
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

The database is a temporary SQLite file unless --database-url is given; the
configuration file and HW_DATABASE_URL are ignored so a bench never writes to a
production database by accident. With --database-url the database is MIGRATED
and the jobs are WRITTEN to it, on a fresh queue named bench_<random>, and left
there afterwards.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.jobs < 1 {
				return fmt.Errorf("--jobs %d must be at least 1", f.jobs)
			}
			if f.concurrency < 1 {
				return fmt.Errorf("--concurrency %d must be at least 1", f.concurrency)
			}
			if f.batch < 1 {
				return fmt.Errorf("--batch %d must be at least 1", f.batch)
			}
			return c.runBench(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.jobs, "jobs", 50000, "number of jobs")
	fl.IntVar(&f.concurrency, "concurrency", 50, "agent.concurrency: in-flight requests to the app")
	fl.IntVar(&f.batch, "batch", 5000, "jobs per Enqueue call")
	fl.BoolVar(&f.json, "json", false, "print exactly one JSON line with the results (as --output json)")
	return cmd
}

func (c *cli) runBench(ctx context.Context, f benchFlags) error {
	dbURL := c.databaseURL
	if !c.flagSet("database-url") {
		dir, err := os.MkdirTemp("", "hw-agent-bench-")
		if err != nil {
			return fmt.Errorf("create bench directory: %w", err)
		}
		defer os.RemoveAll(dir)
		dbURL = "sqlite://" + filepath.Join(dir, "bench.db")
	}
	kind, err := store.ParseDatabaseURL(dbURL)
	if err != nil {
		return fmt.Errorf("--database-url: %w", err)
	}

	cfg := agent.DefaultConfig()
	cfg.Database.URL = dbURL
	cfg.Database.MaxConns = 20
	st, err := openStore(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", store.RedactURL(dbURL), err)
	}

	app, err := c.startBenchApp()
	if err != nil {
		return err
	}
	defer app.stop()

	queue, err := benchQueueName()
	if err != nil {
		return err
	}
	cfg.Agent.ID = "bench"
	cfg.Agent.Queues = []string{queue}
	cfg.Agent.Concurrency = f.concurrency
	cfg.Agent.PollInterval = job.Duration(20 * time.Millisecond)
	cfg.App.HandlerURL = "http://" + app.addr + "/jobs/{queue}"
	cfg.App.RequestTimeout = job.Duration(10 * time.Second)
	cfg.Agent.LeaseDuration = job.Duration(60 * time.Second)
	cfg.API.Listen = "off"
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bench configuration: %w", err)
	}
	logCfg := agent.LogConfig{Format: "text", Level: "warn"}
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

	c.progress("bench: %d jobs on %s (queue %s), concurrency %d, app %s\n", f.jobs, kind, queue, f.concurrency, app.addr)
	agentCtx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	agentDone := make(chan error, 1)
	agentStart := time.Now()
	go func() { agentDone <- ag.Run(agentCtx) }()

	enqueueTime, err := c.benchEnqueue(ctx, st, queue, f)
	if err == nil {
		err = c.benchWait(ctx, st, queue, f.jobs, agentDone)
	}
	stopAgent()
	if agentErr := <-agentDone; agentErr != nil && err == nil {
		err = fmt.Errorf("agent: %w", agentErr)
	}
	if err != nil {
		return err
	}

	lat, lastDone, err := benchLatencies(ctx, st, queue)
	if err != nil {
		return err
	}
	res := benchResult{
		Backend:       string(kind),
		Jobs:          f.jobs,
		Concurrency:   f.concurrency,
		EnqueuePerSec: round1(float64(f.jobs) / enqueueTime.Seconds()),
		JobsPerSec:    round1(float64(f.jobs) / lastDone.Sub(agentStart).Seconds()),
		LatencyP50Ms:  millis(percentile(lat, 0.50)),
		LatencyP99Ms:  millis(percentile(lat, 0.99)),
	}
	if f.json || c.jsonOutput() {
		b, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
		fmt.Fprintf(c.stdout, "%s\n", b)
		return nil
	}
	fmt.Fprintf(c.stdout, "bench: %d jobs on %s, concurrency %d\n", res.Jobs, res.Backend, res.Concurrency)
	fmt.Fprintf(c.stdout, "  enqueue     %.0f jobs/s (batches of %d)\n", res.EnqueuePerSec, f.batch)
	fmt.Fprintf(c.stdout, "  throughput  %.0f jobs/s (agent start to last completion, enqueue running alongside)\n", res.JobsPerSec)
	fmt.Fprintf(c.stdout, "  latency     p50 %.2f ms, p99 %.2f ms (created_at to started_at)\n", res.LatencyP50Ms, res.LatencyP99Ms)
	return nil
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
func (c *cli) benchWait(ctx context.Context, st store.Store, queue string, total int, agentDone <-chan error) error {
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
		case err := <-agentDone:
			return fmt.Errorf("agent stopped before the bench finished: %v", err)
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
// outlive a bench that dies without calling stop.
func (c *cli) startBenchApp() (*benchApp, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable for bench-app: %w", err)
	}
	cmd := exec.Command(exe, "bench-app", "--listen", "127.0.0.1:0", "--exit-on-stdin-eof")
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
