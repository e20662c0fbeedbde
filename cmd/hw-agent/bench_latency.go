package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/workflow"
)

// benchHTTPTimeout bounds one call of the latency bench to the agent's API or
// to the app: on a loopback interface anything longer is a hang.
const benchHTTPTimeout = 30 * time.Second

// latencyOnlyFlags are the flags that mean something only with --latency.
var latencyOnlyFlags = []string{"rate", "duration", "chain"}

// benchLatencyFlags configure `bench --latency`.
type benchLatencyFlags struct {
	on       bool
	rate     float64
	duration time.Duration
	chain    int
}

func (f *benchLatencyFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.on, "latency", false, "measure latency: single jobs at --rate for --duration, then a --chain step workflow")
	fl.Float64Var(&f.rate, "rate", 50, "with --latency: single jobs enqueued per second")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "with --latency: how long single jobs are enqueued")
	fl.IntVar(&f.chain, "chain", 100, "with --latency: steps of the chain workflow (each depends on the one before)")
}

func (f benchLatencyFlags) validate() error {
	if !(f.rate > 0) || math.IsInf(f.rate, 0) {
		return fmt.Errorf("--rate %g must be a positive number of jobs per second", f.rate)
	}
	if f.duration <= 0 {
		return fmt.Errorf("--duration %s must be positive", f.duration)
	}
	if f.jobs() < 1 {
		return fmt.Errorf("--rate %g for --duration %s enqueues no job: raise either", f.rate, f.duration)
	}
	if f.chain < 2 {
		return fmt.Errorf("--chain %d must be at least 2: a hop is between two steps", f.chain)
	}
	return nil
}

// jobs is how many single jobs the trickle enqueues.
func (f benchLatencyFlags) jobs() int { return int(math.Round(f.rate * f.duration.Seconds())) }

// BenchLatency is what `bench --latency` measures, every time taken at the
// app (exported only so that encoding/json flattens it into benchResult).
type BenchLatency struct {
	RatePerSec  float64 `json:"rate_per_sec"`
	DurationSec float64 `json:"duration_sec"`
	// EnqueueToApp*: from sending POST /v1/jobs to the job's first request
	// arriving at the app.
	EnqueueToAppP50Ms float64 `json:"enqueue_to_app_p50_ms"`
	EnqueueToAppP90Ms float64 `json:"enqueue_to_app_p90_ms"`
	EnqueueToAppP99Ms float64 `json:"enqueue_to_app_p99_ms"`
	EnqueueToAppMaxMs float64 `json:"enqueue_to_app_max_ms"`
	ChainSteps        int     `json:"chain_steps"`
	// ChainHops and Hop*: from the app answering a step to the next step's
	// request arriving at the app.
	ChainHops int     `json:"chain_hops"`
	HopP50Ms  float64 `json:"hop_p50_ms"`
	HopP90Ms  float64 `json:"hop_p90_ms"`
	HopP99Ms  float64 `json:"hop_p99_ms"`
	HopMaxMs  float64 `json:"hop_max_ms"`
	// ChainMs: from sending POST /v1/workflows to the app answering the
	// last step.
	ChainMs float64 `json:"chain_ms"`
}

// benchChain is the chain workflow as the bench sent it.
type benchChain struct {
	sent time.Time
	// jobs are the steps' job ids, first step first.
	jobs []string
}

// benchLatency enqueues single jobs through the agent's API, as a user
// does, at a fixed rate, waits for them, then runs the chain and waits for
// it. Both waits read the database only to know when to go on and that
// every job completed; the times come from the app's records.
func (c *cli) benchLatency(ctx context.Context, env *benchEnv, f benchLatencyFlags) (*BenchLatency, error) {
	// One connection per in-flight enqueue is kept for reuse, so a steady
	// trickle does not open a connection per job.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: benchHTTPTimeout}
	defer client.CloseIdleConnections()
	base := "http://" + env.api.ln.Addr().String()

	if err := env.start(ctx); err != nil {
		return nil, err
	}
	sent, err := c.benchTrickle(ctx, client, base, env.queue, f)
	if err == nil {
		err = c.benchWait(ctx, env.st, env.queue, len(sent), env.agentDone)
	}
	var chain benchChain
	if err == nil {
		c.progress("bench: running a %d-step chain\n", f.chain)
		chain, err = benchRunChain(ctx, client, base, env.queue, f.chain)
	}
	if err == nil {
		err = c.benchWait(ctx, env.st, env.queue, len(sent)+f.chain, env.agentDone)
	}
	if stopErr := env.stop(); err == nil {
		err = stopErr
	}
	if err != nil {
		return nil, err
	}
	records, err := env.app.records(ctx, client)
	if err != nil {
		return nil, err
	}
	return latencyResult(f, sent, chain, records)
}

// benchTrickle sends f.jobs() single-job enqueues, each at its own slot of a
// fixed schedule and in its own goroutine, so a slow enqueue delays none
// after it (an open loop, like independent clients). It returns when each
// job was sent, by job id.
func (c *cli) benchTrickle(ctx context.Context, client *http.Client, base, queue string, f benchLatencyFlags) (map[string]time.Time, error) {
	body, err := json.Marshal(map[string]any{"queue": queue, "payload": struct{}{}})
	if err != nil {
		return nil, fmt.Errorf("encode bench job: %w", err)
	}
	n := f.jobs()
	interval := time.Duration(float64(time.Second) / f.rate)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		sent = make(map[string]time.Time, n)
		errs []error
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	start, lastPrint := time.Now(), time.Now()
	for i := range n {
		timer.Reset(time.Until(start.Add(time.Duration(i) * interval)))
		select {
		case <-timer.C:
		case <-ctx.Done():
			wg.Wait()
			return nil, ctx.Err()
		}
		wg.Go(func() {
			at := time.Now()
			var created struct {
				ID string `json:"id"`
			}
			err := postJSON(ctx, client, base+"/v1/jobs", body, &created)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			sent[created.ID] = at
		})
		if time.Since(lastPrint) >= time.Second {
			c.progress("bench: enqueued %d/%d\n", i+1, n)
			lastPrint = time.Now()
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("%d of %d enqueues through the API failed, the first: %w", len(errs), n, errs[0])
	}
	c.progress("bench: enqueued %d/%d in %s\n", n, n, time.Since(start).Round(time.Millisecond))
	return sent, nil
}

// benchRunChain creates a workflow of steps jobs on queue, each depending on
// the one before, through the API.
func benchRunChain(ctx context.Context, client *http.Client, base, queue string, steps int) (benchChain, error) {
	def := workflow.Workflow{Name: "bench_chain"}
	names := make([]string, steps)
	for i := range steps {
		names[i] = fmt.Sprintf("step_%04d", i)
		st := workflow.Step{Name: names[i], Queue: queue, Payload: json.RawMessage(`{}`)}
		if i > 0 {
			st.DependsOn = []string{names[i-1]}
		}
		def.Steps = append(def.Steps, st)
	}
	body, err := json.Marshal(def)
	if err != nil {
		return benchChain{}, fmt.Errorf("encode bench chain: %w", err)
	}
	var created struct {
		Jobs map[string]string `json:"jobs"`
	}
	chain := benchChain{sent: time.Now()}
	if err := postJSON(ctx, client, base+"/v1/workflows", body, &created); err != nil {
		return benchChain{}, err
	}
	for _, name := range names {
		id, ok := created.Jobs[name]
		if !ok {
			return benchChain{}, fmt.Errorf("POST /v1/workflows answered no job id for step %s", name)
		}
		chain.jobs = append(chain.jobs, id)
	}
	return chain, nil
}

// postJSON POSTs body to url and decodes a 201 answer into out.
func postJSON(ctx context.Context, client *http.Client, url string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("POST %s: read answer: %w", url, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("POST %s: decode answer: %w", url, err)
	}
	return nil
}

// records reads what the recording app answered.
func (a *benchApp) records(ctx context.Context, client *http.Client) ([]appRecord, error) {
	url := "http://" + a.addr + "/records"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var recs []appRecord
	if err := json.NewDecoder(resp.Body).Decode(&recs); err != nil {
		return nil, fmt.Errorf("GET %s: decode: %w", url, err)
	}
	return recs, nil
}

// latencyResult matches the app's records to what was sent. A job the app
// saw twice (redelivered after a lost lease) counts by its first request.
func latencyResult(f benchLatencyFlags, sent map[string]time.Time, chain benchChain, records []appRecord) (*BenchLatency, error) {
	first := make(map[string]appRecord, len(records))
	for _, r := range records {
		if prev, ok := first[r.JobID]; !ok || r.Arrived < prev.Arrived {
			first[r.JobID] = r
		}
	}
	enqueueToApp := make([]time.Duration, 0, len(sent))
	for id, at := range sent {
		r, ok := first[id]
		if !ok {
			return nil, fmt.Errorf("job %s completed but the app has no request for it", id)
		}
		enqueueToApp = append(enqueueToApp, time.Unix(0, r.Arrived).Sub(at))
	}
	steps := make([]appRecord, len(chain.jobs))
	for i, id := range chain.jobs {
		r, ok := first[id]
		if !ok {
			return nil, fmt.Errorf("chain step %d (job %s) completed but the app has no request for it", i, id)
		}
		steps[i] = r
	}
	hops := make([]time.Duration, 0, len(steps)-1)
	for i := 1; i < len(steps); i++ {
		hops = append(hops, time.Duration(steps[i].Arrived-steps[i-1].Answered))
	}
	if len(enqueueToApp) == 0 || len(hops) == 0 {
		return nil, errors.New("bench measured no job or no hop")
	}
	slices.Sort(enqueueToApp)
	slices.Sort(hops)
	return &BenchLatency{
		RatePerSec:        f.rate,
		DurationSec:       f.duration.Seconds(),
		EnqueueToAppP50Ms: millis(percentile(enqueueToApp, 0.50)),
		EnqueueToAppP90Ms: millis(percentile(enqueueToApp, 0.90)),
		EnqueueToAppP99Ms: millis(percentile(enqueueToApp, 0.99)),
		EnqueueToAppMaxMs: millis(enqueueToApp[len(enqueueToApp)-1]),
		ChainSteps:        len(steps),
		ChainHops:         len(hops),
		HopP50Ms:          millis(percentile(hops, 0.50)),
		HopP90Ms:          millis(percentile(hops, 0.90)),
		HopP99Ms:          millis(percentile(hops, 0.99)),
		HopMaxMs:          millis(hops[len(hops)-1]),
		ChainMs:           millis(time.Unix(0, steps[len(steps)-1].Answered).Sub(chain.sent)),
	}, nil
}

// printLatency writes the latency bench's table.
func (c *cli) printLatency(res benchResult, f benchLatencyFlags) {
	l := res.BenchLatency
	fmt.Fprintf(c.stdout, "bench --latency on %s: %d single jobs at %g/s, then a %d-step chain\n", res.Backend, res.Jobs, f.rate, l.ChainSteps)
	fmt.Fprintf(c.stdout, "  enqueue -> app  p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms (POST /v1/jobs sent to request at the app)\n",
		l.EnqueueToAppP50Ms, l.EnqueueToAppP90Ms, l.EnqueueToAppP99Ms, l.EnqueueToAppMaxMs)
	fmt.Fprintf(c.stdout, "  workflow hop    p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms (step answered to next step's request at the app)\n",
		l.HopP50Ms, l.HopP90Ms, l.HopP99Ms, l.HopMaxMs)
	fmt.Fprintf(c.stdout, "  chain           %d steps in %.0f ms (POST /v1/workflows sent to the last step answered)\n", l.ChainSteps, l.ChainMs)
}
