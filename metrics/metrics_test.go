package metrics

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/sqlite"
)

// scrape fetches m's /metrics as text and parses it.
func scrape(t *testing.T, m *Metrics) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body bytes.Buffer
	_, err = body.ReadFrom(resp.Body)
	require.NoError(t, err)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body.Bytes()))
	require.NoError(t, err, "the text format parses")
	return body.Bytes(), mfs
}

func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	require.True(t, ok, "metric %s missing", name)
	for _, m := range mf.GetMetric() {
		match := true
		for _, l := range m.GetLabel() {
			if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no series of %s with %v", name, labels)
	return 0
}

func TestMetricsPassPromlintAndTheTextParser(t *testing.T) {
	t.Parallel()
	m := New()
	m.Leased([]string{"emails", "emails", "reports"})
	m.Completed("emails")
	m.Retried("emails")
	m.Failed("reports")
	m.Cancelled("reports")
	m.Skipped("reports")
	m.Dispatched("emails", "completed", 30*time.Millisecond)
	m.InFlight(1)
	m.WorkflowFinished("completed")
	m.AppHealthy(false)
	m.DBError()
	m.DBDown()
	m.ScheduleRuns("nightly", "fired", 2)
	m.ScheduleRuns("nightly", "missed", 3)
	m.ScheduleRuns("nightly", "skipped", 0)
	m.ScheduleLag("nightly", 1500*time.Millisecond)
	m.depth.WithLabelValues("emails", string(job.StatusPending)).Set(3)

	body, mfs := scrape(t, m)
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	require.NoError(t, err)
	require.Empty(t, problems)
	// Every label is bounded: queues, outcomes, statuses and schedule
	// names, never a job id or anything else that grows with the traffic.
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "hammerwork_") {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				require.Contains(t, []string{"queue", "outcome", "status", "schedule"}, l.GetName(), "label of %s", name)
			}
		}
	}
	require.Equal(t, 3.0, value(t, mfs, "hammerwork_queue_depth", map[string]string{"queue": "emails", "status": "pending"}))

	require.Equal(t, 2.0, value(t, mfs, "hammerwork_jobs_leased_total", map[string]string{"queue": "emails"}))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_jobs_leased_total", map[string]string{"queue": "reports"}))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_jobs_completed_total", map[string]string{"queue": "emails"}))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_jobs_retried_total", map[string]string{"queue": "emails"}))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_jobs_failed_total", map[string]string{"queue": "reports"}))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_jobs_cancelled_total", map[string]string{"queue": "reports"}))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_jobs_skipped_total", map[string]string{"queue": "reports"}))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_dispatch_duration_seconds", map[string]string{"queue": "emails", "outcome": "completed"}))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_lease_batch_size", nil))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_jobs_in_flight", nil))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_workflows_finished_total", map[string]string{"status": "completed"}))
	require.Equal(t, 0.0, value(t, mfs, "hammerwork_app_healthy", nil))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_db_errors_total", nil))
	require.Equal(t, 0.0, value(t, mfs, "hammerwork_db_up", nil))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_db_outages_total", nil))
	require.Equal(t, 2.0, value(t, mfs, "hammerwork_schedule_runs_total", map[string]string{"schedule": "nightly", "outcome": "fired"}))
	require.Equal(t, 3.0, value(t, mfs, "hammerwork_schedule_runs_total", map[string]string{"schedule": "nightly", "outcome": "missed"}))
	require.Len(t, mfs["hammerwork_schedule_runs_total"].GetMetric(), 2, "a count of zero adds no series")
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_schedule_lag_seconds", map[string]string{"schedule": "nightly"}))
}

// The database is up until an outage begins, and up again when it ends;
// the outage stays counted.
func TestDBUpFollowsOutages(t *testing.T) {
	t.Parallel()
	m := New()
	_, mfs := scrape(t, m)
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_db_up", nil))
	require.Equal(t, 0.0, value(t, mfs, "hammerwork_db_outages_total", nil))
	m.DBDown()
	m.DBUp()
	_, mfs = scrape(t, m)
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_db_up", nil))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_db_outages_total", nil))
}

// A workflow's skipped and cancelled jobs are counted when it ends, by queue.
func TestWorkflowEndCountsItsSkippedAndCancelledJobs(t *testing.T) {
	t.Parallel()
	m := New()
	m.WorkflowEnded("failed", []*job.Job{
		{Queue: "a", Status: job.StatusFailed},
		{Queue: "a", Status: job.StatusCancelled},
		{Queue: "b", Status: job.StatusCancelled},
		{Queue: "b", Status: job.StatusSkipped},
		{Queue: "b", Status: job.StatusCompleted},
	})
	_, mfs := scrape(t, m)
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_workflows_finished_total", map[string]string{"status": "failed"}))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_jobs_cancelled_total", map[string]string{"queue": "a"}))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_jobs_cancelled_total", map[string]string{"queue": "b"}))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_jobs_skipped_total", map[string]string{"queue": "b"}))
}

func TestNilMetricsRecordNothing(t *testing.T) {
	t.Parallel()
	var m *Metrics
	m.Leased([]string{"q"})
	m.Completed("q")
	m.Dispatched("q", "completed", time.Second)
	m.InFlight(1)
	m.AppHealthy(true)
	m.DBError()
	m.DBDown()
	m.DBUp()
	m.ScheduleRuns("nightly", "fired", 1)
	m.ScheduleLag("nightly", time.Second)
	require.NoError(t, m.RefreshQueueDepth(context.Background(), nil))
}

// newSQLite opens a migrated store in a fresh file.
func newSQLite(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), sqlite.Config{URL: "sqlite://" + filepath.Join(t.TempDir(), "m.db")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	_, err = s.Migrate(t.Context())
	require.NoError(t, err)
	return s
}

// depthSeries lists the statuses of queue's hammerwork_queue_depth series
// in a scrape, with their values.
func depthSeries(mfs map[string]*dto.MetricFamily, queue string) map[string]float64 {
	out := map[string]float64{}
	for _, mt := range mfs["hammerwork_queue_depth"].GetMetric() {
		labels := map[string]string{}
		for _, l := range mt.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["queue"] == queue {
			out[labels["status"]] = mt.GetGauge().GetValue()
		}
	}
	return out
}

// depthOf is every status of a queue the store lists, at the given counts
// and 0 for the others.
func depthOf(counts map[job.Status]float64) map[string]float64 {
	out := map[string]float64{}
	for _, st := range job.Statuses {
		out[string(st)] = counts[st]
	}
	return out
}

// Queue depth comes from the database, one series per status of every
// queue with jobs, zeros included.
func TestQueueDepthIsReadFromTheDatabase(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	_, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: []store.NewJob{{Queue: "a"}, {Queue: "a"}, {Queue: "b"}}, Now: time.Now()})
	require.NoError(t, err)

	m := New()
	require.NoError(t, m.RefreshQueueDepth(t.Context(), s))
	_, mfs := scrape(t, m)
	require.Equal(t, depthOf(map[job.Status]float64{job.StatusPending: 2}), depthSeries(mfs, "a"))
	require.Equal(t, depthOf(map[job.Status]float64{job.StatusPending: 1}), depthSeries(mfs, "b"))

	leased, err := s.Lease(t.Context(), store.LeaseParams{AgentID: "t", Queues: []string{"b"}, Limit: 1, Duration: time.Minute, Now: time.Now()})
	require.NoError(t, err)
	require.Len(t, leased, 1)
	require.NoError(t, m.RefreshQueueDepth(t.Context(), s))
	_, mfs = scrape(t, m)
	require.Equal(t, depthOf(map[job.Status]float64{job.StatusRunning: 1}), depthSeries(mfs, "b"))
}

// A drained queue keeps reporting pending at 0, so a dashboard shows 0
// rather than a gap; a queue with only a pause reports every status at 0;
// a queue that is gone entirely (no jobs, no pause) loses its series.
func TestDrainedQueueReportsZeroDepthUntilItIsGone(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	_, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: []store.NewJob{{Queue: "a"}, {Queue: "a"}}, Now: time.Now()})
	require.NoError(t, err)
	require.NoError(t, s.PauseQueue(t.Context(), store.PauseQueueParams{Queue: "idle", By: "test", Now: time.Now()}))
	m := New()
	require.NoError(t, m.RefreshQueueDepth(t.Context(), s))
	_, mfs := scrape(t, m)
	require.Equal(t, depthOf(map[job.Status]float64{job.StatusPending: 2}), depthSeries(mfs, "a"))
	require.Equal(t, depthOf(nil), depthSeries(mfs, "idle"), "a paused queue without jobs reports zeros")

	leased, err := s.Lease(t.Context(), store.LeaseParams{AgentID: "t", Queues: []string{"a"}, Limit: 2, Duration: time.Minute, Now: time.Now()})
	require.NoError(t, err)
	require.Len(t, leased, 2)
	completions := make([]store.Completion, len(leased))
	for i, j := range leased {
		completions[i] = store.Completion{LeaseRef: store.LeaseRef{ID: j.ID, Token: j.LeaseToken}}
	}
	stale, err := s.Complete(t.Context(), store.CompleteParams{Completions: completions, Now: time.Now()})
	require.NoError(t, err)
	require.Empty(t, stale)
	require.NoError(t, s.ResumeQueue(t.Context(), store.ResumeQueueParams{Queue: "idle"}))

	require.NoError(t, m.RefreshQueueDepth(t.Context(), s))
	_, mfs = scrape(t, m)
	require.Equal(t, depthOf(map[job.Status]float64{job.StatusCompleted: 2}), depthSeries(mfs, "a"), "the drained queue's pending is 0, not absent")
	require.Empty(t, depthSeries(mfs, "idle"), "a resumed queue without jobs is gone")
}

// retrier stands in for a store's transaction-retry count.
type retrier struct{ n atomic.Int64 }

func (r *retrier) RetriedTransactions() int64 { return r.n.Load() }

func TestTxRetriesAreReadFromTheStoreAtScrape(t *testing.T) {
	t.Parallel()
	m := New()
	r := &retrier{}
	r.n.Store(2)
	m.CountTxRetries(r)
	body, mfs := scrape(t, m)
	require.Equal(t, 2.0, value(t, mfs, "hammerwork_db_transaction_retries_total", nil))
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	require.NoError(t, err)
	require.Empty(t, problems)

	r.n.Store(5)
	_, mfs = scrape(t, m)
	require.Equal(t, 5.0, value(t, mfs, "hammerwork_db_transaction_retries_total", nil))
}

// countingStats counts the depth queries made to a real store.
type countingStats struct {
	QueueLister
	calls atomic.Int64
}

func (c *countingStats) Queues(ctx context.Context, p store.QueuesParams) ([]store.QueueInfo, error) {
	c.calls.Add(1)
	return c.QueueLister.Queues(ctx, p)
}

// The depth is read when polling starts and then on the timer: scrapes,
// however many, never query the database.
func TestQueueDepthIsPolledOnATimerNotPerScrape(t *testing.T) {
	t.Parallel()
	s := newSQLite(t)
	_, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: []store.NewJob{{Queue: "a"}}, Now: time.Now()})
	require.NoError(t, err)

	m := New()
	src := &countingStats{QueueLister: s}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.PollQueueDepth(ctx, src, time.Hour)
	}()
	t.Cleanup(func() { cancel(); <-done })
	// The first poll has landed once a scrape shows its value.
	require.Eventually(t, func() bool {
		_, mfs := scrape(t, m)
		return len(mfs["hammerwork_queue_depth"].GetMetric()) > 0
	}, 10*time.Second, 5*time.Millisecond)
	for range 3 {
		_, mfs := scrape(t, m)
		require.Equal(t, 1.0, value(t, mfs, "hammerwork_queue_depth", map[string]string{"queue": "a", "status": string(job.StatusPending)}))
	}
	require.Equal(t, int64(1), src.calls.Load(), "scrapes read the last polled value")

	fast := &countingStats{QueueLister: s}
	ctx2, cancel2 := context.WithCancel(t.Context())
	done2 := make(chan struct{})
	go func() {
		defer close(done2)
		m.PollQueueDepth(ctx2, fast, time.Millisecond)
	}()
	t.Cleanup(func() { cancel2(); <-done2 })
	require.Eventually(t, func() bool { return fast.calls.Load() >= 3 }, 10*time.Second, time.Millisecond, "the timer polls again")
}
