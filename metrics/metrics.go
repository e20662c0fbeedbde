// Package metrics holds hw-agent's Prometheus metrics, served on /metrics.
// Every label has a bounded set of values (queue names, statuses, outcome
// classes, schedule names); job and workflow ids never become labels, since each new value
// is a new time series kept for the life of the process.
//
// All methods are safe on a nil *Metrics, so code paths that run without
// metrics (tests, admin commands) need no checks.
package metrics

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

const namespace = "hammerwork"

// Metrics are one agent's collectors on their own registry, so that tests
// and several agents in one process never share counters.
type Metrics struct {
	reg *prometheus.Registry

	leased, completed, failed, retried, cancelled, skipped *prometheus.CounterVec

	dispatch          *prometheus.HistogramVec
	inFlight          prometheus.Gauge
	depth             *prometheus.GaugeVec
	leaseBatch        prometheus.Histogram
	workflowsFinished *prometheus.CounterVec
	appHealthy        prometheus.Gauge
	dbErrors          prometheus.Counter
	dbUp              prometheus.Gauge
	dbOutages         prometheus.Counter
	scheduleRuns      *prometheus.CounterVec
	scheduleLag       *prometheus.HistogramVec

	eventsWritten                                      prometheus.Counter
	eventsDelivered, eventsFailed, subscribersDisabled *prometheus.CounterVec
	eventDelivery                                      *prometheus.HistogramVec
	subscriberLagEvents, subscriberLagSeconds          *prometheus.GaugeVec

	// depthMu serialises depth refreshes; depthQueues are the queues the
	// last one reported, whose series the next removes if they are gone.
	depthMu     sync.Mutex
	depthQueues map[string]bool
}

// New registers every collector, plus the Go runtime and process
// collectors, on a fresh registry.
func New() *Metrics {
	jobs := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "jobs_" + name + "_total", Help: help,
		}, []string{"queue"})
	}
	m := &Metrics{
		reg:       prometheus.NewRegistry(),
		leased:    jobs("leased", "Jobs leased by this agent."),
		completed: jobs("completed", "Jobs completed: a 2xx answer other than 202, or a 202 job finished through this agent's API."),
		failed:    jobs("failed", "Jobs that ended failed: a permanent failure or attempts exhausted."),
		retried:   jobs("retried", "Attempts that failed and were scheduled again."),
		cancelled: jobs("cancelled", "Jobs cancelled: alone through this agent's API, or in a workflow this agent saw end."),
		skipped:   jobs("skipped", "Jobs skipped by a false condition, in workflows this agent saw end."),
		dispatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "dispatch_duration_seconds",
			Help:    "Time from building a job's request to reading the app's answer, by outcome (completed, accepted, retry, failed, cancelled).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"queue", "outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "jobs_in_flight", Help: "Requests to the app in progress.",
		}),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "queue_depth",
			Help: "Jobs by queue and status, read from the database on a timer, not per scrape.",
		}, []string{"queue", "status"}),
		leaseBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "lease_batch_size",
			Help:    "Jobs returned by one lease call.",
			Buckets: []float64{0, 1, 2, 5, 10, 20, 50, 100, 200},
		}),
		workflowsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "workflows_finished_total",
			Help: "Workflows that reached a final status, by status, as seen by this agent.",
		}, []string{"status"}),
		appHealthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "app_healthy",
			Help: "1 while the app's health check passes (always 1 without app.health_url), else 0.",
		}),
		dbErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "db_errors_total", Help: "Database calls of the agent that failed.",
		}),
		dbUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "db_up",
			Help: "0 during a database outage (the agent's lease calls fail), else 1.",
		}),
		dbOutages: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "db_outages_total",
			Help: "Database outages the agent saw begin: a failed lease call after a successful one.",
		}),
		scheduleRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "schedule_runs_total",
			Help: "Schedule slots this agent's scheduler handled, by schedule and outcome (fired, skipped, missed).",
		}, []string{"schedule", "outcome"}),
		scheduleLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "schedule_lag_seconds",
			Help:    "Time from a slot's nominal time to the run this agent fired for it, jitter included; triggered runs are left out.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"schedule"}),
	}
	m.newRelayCollectors()
	m.appHealthy.Set(1)
	m.dbUp.Set(1)
	m.reg.MustRegister(
		m.eventsWritten, m.eventsDelivered, m.eventsFailed, m.subscribersDisabled, m.eventDelivery,
		m.subscriberLagEvents, m.subscriberLagSeconds,
		m.leased, m.completed, m.failed, m.retried, m.cancelled, m.skipped,
		m.dispatch, m.inFlight, m.depth, m.leaseBatch, m.workflowsFinished, m.appHealthy,
		m.dbErrors, m.dbUp, m.dbOutages, m.scheduleRuns, m.scheduleLag,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// TxRetrier is a store that runs a transaction again after a deadlock or
// lock wait timeout (PostgreSQL, MySQL/MariaDB) and counts how often.
type TxRetrier interface {
	RetriedTransactions() int64
}

// CountTxRetries exports src's count as
// hammerwork_db_transaction_retries_total, read at scrape time: the count
// lives in the store, so there is nothing to keep in step.
func (m *Metrics) CountTxRetries(src TxRetrier) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: namespace, Name: "db_transaction_retries_total",
		Help: "Transactions the store ran again after a deadlock or lock wait timeout.",
	}, func() float64 { return float64(src.RetriedTransactions()) }))
}

// Registry is where the collectors live; tests gather from it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text or OpenMetrics format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Leased counts one lease call that returned the jobs of queues.
func (m *Metrics) Leased(queues []string) {
	if m == nil {
		return
	}
	m.leaseBatch.Observe(float64(len(queues)))
	for _, q := range queues {
		m.leased.WithLabelValues(q).Inc()
	}
}

// Completed counts a job completed by the app.
func (m *Metrics) Completed(queue string) {
	m.inc(func() *prometheus.CounterVec { return m.completed }, queue)
}

// Failed counts a job that ended failed.
func (m *Metrics) Failed(queue string) {
	m.inc(func() *prometheus.CounterVec { return m.failed }, queue)
}

// Retried counts an attempt rescheduled after a retryable failure.
func (m *Metrics) Retried(queue string) {
	m.inc(func() *prometheus.CounterVec { return m.retried }, queue)
}

// Cancelled counts a cancelled job.
func (m *Metrics) Cancelled(queue string) {
	m.inc(func() *prometheus.CounterVec { return m.cancelled }, queue)
}

// Skipped counts a job skipped by its condition.
func (m *Metrics) Skipped(queue string) {
	m.inc(func() *prometheus.CounterVec { return m.skipped }, queue)
}

// inc takes the counter through a func so that a nil m is never dereferenced.
func (m *Metrics) inc(counter func() *prometheus.CounterVec, queue string) {
	if m == nil {
		return
	}
	counter().WithLabelValues(queue).Inc()
}

// Dispatched records one request's duration and outcome class.
func (m *Metrics) Dispatched(queue, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.dispatch.WithLabelValues(queue, outcome).Observe(d.Seconds())
}

// InFlight moves the in-flight gauge by delta (+1 at start, -1 at the end).
func (m *Metrics) InFlight(delta int) {
	if m == nil {
		return
	}
	m.inFlight.Add(float64(delta))
}

// WorkflowFinished counts a workflow that reached status.
func (m *Metrics) WorkflowFinished(status string) {
	if m == nil {
		return
	}
	m.workflowsFinished.WithLabelValues(status).Inc()
}

// WorkflowEnded counts a workflow that reached a final status, and its
// jobs that ended skipped or cancelled, by queue. Those jobs change state
// inside the store's transactions (a false condition, fail_fast), where no
// agent sees them one by one; the workflow's end is where they are known.
func (m *Metrics) WorkflowEnded(status string, jobs []*job.Job) {
	if m == nil {
		return
	}
	m.workflowsFinished.WithLabelValues(status).Inc()
	for _, j := range jobs {
		switch j.Status {
		case job.StatusSkipped:
			m.skipped.WithLabelValues(j.Queue).Inc()
		case job.StatusCancelled:
			m.cancelled.WithLabelValues(j.Queue).Inc()
		}
	}
}

// AppHealthy sets the app health gauge.
func (m *Metrics) AppHealthy(ok bool) {
	if m == nil {
		return
	}
	v := 0.0
	if ok {
		v = 1
	}
	m.appHealthy.Set(v)
}

// DBError counts a failed database call.
func (m *Metrics) DBError() {
	if m == nil {
		return
	}
	m.dbErrors.Inc()
}

// DBDown marks the start of a database outage: hammerwork_db_up drops to 0
// and the outage is counted.
func (m *Metrics) DBDown() {
	if m == nil {
		return
	}
	m.dbUp.Set(0)
	m.dbOutages.Inc()
}

// DBUp marks the end of a database outage.
func (m *Metrics) DBUp() {
	if m == nil {
		return
	}
	m.dbUp.Set(1)
}

// ScheduleRuns counts n slots of a schedule that ended with outcome: fired,
// skipped or missed. Schedule names are a bounded set, the schedules an
// operator defined, so they may be a label.
func (m *Metrics) ScheduleRuns(schedule, outcome string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.scheduleRuns.WithLabelValues(schedule, outcome).Add(float64(n))
}

// ScheduleLag observes how late a schedule's slot fired after its nominal
// time: a lag that grows says the agents are too few or too slow to keep
// up, or were down.
func (m *Metrics) ScheduleLag(schedule string, lag time.Duration) {
	if m == nil {
		return
	}
	m.scheduleLag.WithLabelValues(schedule).Observe(lag.Seconds())
}

// QueueLister is the part of the store the depth poller reads: every
// queue that has jobs or a pause, with a count for every status.
type QueueLister interface {
	Queues(ctx context.Context, p store.QueuesParams) ([]store.QueueInfo, error)
}

// RefreshQueueDepth reads the depth of every queue by status once. A queue
// the store lists (it has jobs or a pause) reports every status, zeros
// included, so a drained queue's pending reads 0 on a dashboard instead of
// leaving a gap; only a queue the store no longer lists loses its series.
// Series are overwritten in place, never reset, so a scrape during a
// refresh sees old or new values, not none.
func (m *Metrics) RefreshQueueDepth(ctx context.Context, src QueueLister) error {
	if m == nil {
		return nil
	}
	infos, err := src.Queues(ctx, store.QueuesParams{})
	if err != nil {
		m.dbErrors.Inc()
		return fmt.Errorf("read queue depth: %w", err)
	}
	m.depthMu.Lock()
	defer m.depthMu.Unlock()
	seen := make(map[string]bool, len(infos))
	for _, q := range infos {
		seen[q.Name] = true
		for _, st := range job.Statuses {
			m.depth.WithLabelValues(q.Name, string(st)).Set(float64(q.Depth[st]))
		}
	}
	for q := range m.depthQueues {
		if !seen[q] {
			m.depth.DeletePartialMatch(prometheus.Labels{"queue": q})
		}
	}
	m.depthQueues = seen
	return nil
}

// PollQueueDepth refreshes the queue depth every interval until ctx ends.
// The count is a query per interval, not per scrape, so a scraper polling
// fast (or several of them) never adds load to the database. Errors are
// counted in hammerwork_db_errors_total and the last values are kept.
func (m *Metrics) PollQueueDepth(ctx context.Context, src QueueLister, interval time.Duration) {
	if m == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_ = m.RefreshQueueDepth(ctx, src)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// newRelayCollectors makes the event relay's collectors, labelled by
// subscriber name: the webhooks and streams an operator defined, a bounded
// set.
func (m *Metrics) newRelayCollectors() {
	subscribers := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, []string{"subscriber"})
	}
	m.eventsWritten = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "events_written_total",
		Help: "Outbox events this agent's relay sequenced: every event is written once, whatever its subscribers."})
	m.eventsDelivered = subscribers("events_delivered_total", "Outbox events this agent's relay delivered, by subscriber.")
	m.eventsFailed = subscribers("events_failed_total", "Outbox events given up on (rejected, or retried to max_attempts), by subscriber.")
	m.subscribersDisabled = subscribers("subscribers_disabled_total",
		"Subscribers this agent's relay disabled: max_failures events failed in a row, or the receiver answered 410.")
	m.eventDelivery = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "event_delivery_duration_seconds",
		Help:    "Time of one attempt at delivering one event, by subscriber.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"subscriber"})
	m.subscriberLagEvents = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "subscriber_lag_events",
		Help: "Sequenced events after an enabled subscriber's cursor, read by the relay each pass.",
	}, []string{"subscriber"})
	m.subscriberLagSeconds = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "subscriber_lag_seconds",
		Help: "Age of the oldest event an enabled subscriber has not had (0 when caught up), read by the relay each pass.",
	}, []string{"subscriber"})
}

// EventsDelivered counts n events a subscriber's receiver acknowledged.
func (m *Metrics) EventsDelivered(subscriber string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.eventsDelivered.WithLabelValues(subscriber).Add(float64(n))
}

// EventsWritten counts n outbox events this agent's relay sequenced (put in
// commit order): the events committed, counted once across agents.
func (m *Metrics) EventsWritten(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.eventsWritten.Add(float64(n))
}

// EventsFailed counts n events given up on for a subscriber.
func (m *Metrics) EventsFailed(subscriber string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.eventsFailed.WithLabelValues(subscriber).Add(float64(n))
}

// DeliveryDuration observes one attempt at one event.
func (m *Metrics) DeliveryDuration(subscriber string, d time.Duration) {
	if m == nil {
		return
	}
	m.eventDelivery.WithLabelValues(subscriber).Observe(d.Seconds())
}

// SubscriberLag sets how far a subscriber is behind: a lag that grows
// while others stay at zero is a receiver that is down or too slow.
func (m *Metrics) SubscriberLag(subscriber string, events int64, lag time.Duration) {
	if m == nil {
		return
	}
	m.subscriberLagEvents.WithLabelValues(subscriber).Set(float64(events))
	m.subscriberLagSeconds.WithLabelValues(subscriber).Set(max(lag, 0).Seconds())
}

// SubscriberDisabled counts a subscriber the relay turned off; its lag
// series go, since a disabled subscriber is no longer reported.
func (m *Metrics) SubscriberDisabled(subscriber string) {
	if m == nil {
		return
	}
	m.subscribersDisabled.WithLabelValues(subscriber).Inc()
	m.subscriberLagEvents.DeleteLabelValues(subscriber)
	m.subscriberLagSeconds.DeleteLabelValues(subscriber)
}
