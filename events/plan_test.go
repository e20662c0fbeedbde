package events

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

var planNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// batch is n events with seqs from+1 .. from+n.
func batch(from int64, n int) []Event {
	out := make([]Event, n)
	for i := range out {
		out[i] = Event{Seq: from + int64(i) + 1, ID: uuid.New(), Type: JobCompleted}
	}
	return out
}

func results(outcomes ...Outcome) []Result {
	out := make([]Result, len(outcomes))
	for i, o := range outcomes {
		out[i] = Result{Outcome: o, At: planNow}
		switch o {
		case Delivered:
			out[i].StatusCode = 200
		case Retry:
			out[i].StatusCode, out[i].Error, out[i].RetryAfter = 503, "503 Service Unavailable", time.Second
		case Rejected:
			out[i].StatusCode, out[i].Error = 400, "400 Bad Request"
		case Gone:
			out[i].StatusCode, out[i].Error = 410, "410 Gone"
		}
	}
	return out
}

func outcomes(ds []store.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%d:%s#%d", d.EventSeq, d.Outcome, d.Attempt))
	}
	return out
}

func at(d time.Duration) *time.Time {
	t := planNow.Add(d)
	return &t
}

// fixedPolicy gives up on the third attempt and disables at the second
// event given up on; the results' Retry-After of a second names retry_at.
var fixedPolicy = Policy{MaxAttempts: 3, MaxFailures: 2}

func TestPlanAckAdvancesOverTheDonePrefixAndRetriesTheHead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		state      store.SubscriberState
		batch      []Event
		dropped    []bool
		results    []Result
		want       store.SubscriberState
		deliveries []string
		counts     [3]int // delivered, failed, retried
		caughtUp   bool
	}{
		{
			name:  "all delivered: the cursor passes them and failures reset",
			state: store.SubscriberState{Cursor: 10, ConsecutiveFailures: 1, LastError: "old"},
			batch: batch(10, 3), results: results(Delivered, Delivered, Delivered),
			want:       store.SubscriberState{Cursor: 13, LastError: "old"},
			deliveries: []string{"11:delivered#1", "12:delivered#1", "13:delivered#1"},
			counts:     [3]int{3, 0, 0}, caughtUp: true,
		},
		{
			name:  "dropped events are done without an attempt",
			state: store.SubscriberState{Cursor: 10},
			batch: batch(10, 3), dropped: []bool{true, false, true}, results: results(NotTried, Delivered, NotTried),
			want:       store.SubscriberState{Cursor: 13},
			deliveries: []string{"12:delivered#1"},
			counts:     [3]int{1, 0, 0}, caughtUp: true,
		},
		{
			name:  "a retry stops the cursor before it; later attempts are logged as retrying",
			state: store.SubscriberState{Cursor: 10},
			batch: batch(10, 4), results: results(Delivered, Retry, Delivered, Rejected),
			want: store.SubscriberState{Cursor: 11, RetrySeq: 12, RetryAttempts: 1, RetryAt: at(time.Second),
				LastError: "400 Bad Request"},
			deliveries: []string{"11:delivered#1", "12:retrying#1", "13:delivered#1", "14:retrying#1"},
			counts:     [3]int{2, 0, 2},
		},
		{
			name:  "the head retried again counts its attempts",
			state: store.SubscriberState{Cursor: 11, RetrySeq: 12, RetryAttempts: 1, RetryAt: at(-time.Second)},
			batch: batch(11, 1), results: results(Retry),
			want: store.SubscriberState{Cursor: 11, RetrySeq: 12, RetryAttempts: 2, RetryAt: at(time.Second),
				LastError: "503 Service Unavailable"},
			deliveries: []string{"12:retrying#2"},
			counts:     [3]int{0, 0, 1},
		},
		{
			name:  "the head's last attempt gives it up and the cursor passes it",
			state: store.SubscriberState{Cursor: 11, RetrySeq: 12, RetryAttempts: 2, RetryAt: at(-time.Second)},
			batch: batch(11, 2), results: results(Retry, Delivered),
			want:       store.SubscriberState{Cursor: 13, LastError: "503 Service Unavailable"},
			deliveries: []string{"12:failed#3", "13:delivered#1"},
			counts:     [3]int{1, 1, 0}, caughtUp: true,
		},
		{
			name:  "a retried head delivered clears the retry",
			state: store.SubscriberState{Cursor: 11, RetrySeq: 12, RetryAttempts: 2, RetryAt: at(-time.Second), ConsecutiveFailures: 1},
			batch: batch(11, 1), results: results(Delivered),
			want:       store.SubscriberState{Cursor: 12},
			deliveries: []string{"12:delivered#3"},
			counts:     [3]int{1, 0, 0}, caughtUp: true,
		},
		{
			name:  "a rejected event is given up at once",
			state: store.SubscriberState{Cursor: 10},
			batch: batch(10, 2), results: results(Rejected, Delivered),
			want:       store.SubscriberState{Cursor: 12, LastError: "400 Bad Request"},
			deliveries: []string{"11:failed#1", "12:delivered#1"},
			counts:     [3]int{1, 1, 0}, caughtUp: true,
		},
		{
			name:  "max_failures events given up in a row disable the subscriber",
			state: store.SubscriberState{Cursor: 10, ConsecutiveFailures: 1},
			batch: batch(10, 2), results: results(Rejected, Delivered),
			want: store.SubscriberState{Cursor: 11, ConsecutiveFailures: 2, LastError: "400 Bad Request",
				Disabled: true, DisabledReason: "2 consecutive failed events"},
			deliveries: []string{"11:failed#1", "12:delivered#1"},
			counts:     [3]int{1, 1, 0},
		},
		{
			name:  "410 disables at once and keeps the event",
			state: store.SubscriberState{Cursor: 10, RetrySeq: 11, RetryAttempts: 1, RetryAt: at(-time.Second)},
			batch: batch(10, 1), results: results(Gone),
			want: store.SubscriberState{Cursor: 10, LastError: "410 Gone",
				Disabled: true, DisabledReason: "the receiver answered 410 Gone: it asked to be called no more"},
			deliveries: []string{"11:failed#2"},
		},
		{
			name:  "not tried events log nothing and hold the cursor; a pending retry stays",
			state: store.SubscriberState{Cursor: 10, RetrySeq: 11, RetryAttempts: 1, RetryAt: at(-time.Second)},
			batch: batch(10, 2), results: results(NotTried, NotTried),
			want: store.SubscriberState{Cursor: 10, RetrySeq: 11, RetryAttempts: 1, RetryAt: at(-time.Second)},
		},
		{
			name:  "missing results count as not tried",
			state: store.SubscriberState{Cursor: 10},
			batch: batch(10, 3), results: results(Delivered),
			want:       store.SubscriberState{Cursor: 11},
			deliveries: []string{"11:delivered#1"},
			counts:     [3]int{1, 0, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sub := uuid.New()
			plan := PlanAck(PlanAckParams{Subscriber: sub, AgentID: "a1", State: tt.state, Policy: fixedPolicy,
				Batch: tt.batch, Dropped: tt.dropped, Results: tt.results, Now: planNow})
			require.Equal(t, tt.want, plan.State)
			require.Equal(t, tt.deliveries, outcomes(plan.Deliveries))
			require.Equal(t, tt.counts, [3]int{plan.Delivered, plan.Failed, plan.Retried})
			require.Equal(t, tt.caughtUp, plan.CaughtUp)
			for _, d := range plan.Deliveries {
				require.Equal(t, sub, d.Subscriber)
				require.Equal(t, "a1", d.AgentID)
				require.Equal(t, uuid.Version(7), d.ID.Version())
				require.Equal(t, planNow, d.At)
			}
		})
	}
}

// Each attempt's row carries what the sink saw of it.
func TestPlanAckLogsEachAttemptAsTheSinkSawIt(t *testing.T) {
	t.Parallel()
	b := batch(0, 1)
	r := Result{Outcome: Retry, StatusCode: 503, Error: "503 Service Unavailable", Response: "busy",
		Duration: 42 * time.Millisecond, At: planNow}
	plan := PlanAck(PlanAckParams{Policy: fixedPolicy, Batch: b, Results: []Result{r}, Now: planNow})
	require.Len(t, plan.Deliveries, 1)
	d := plan.Deliveries[0]
	require.Equal(t, b[0].ID, d.EventID)
	require.Equal(t, JobCompleted, d.EventType)
	require.Equal(t, 503, d.StatusCode)
	require.Equal(t, "503 Service Unavailable", d.Error)
	require.Equal(t, "busy", d.Response)
	require.Equal(t, 42*time.Millisecond, d.Duration)
}

// A receiver's Retry-After names the wait, capped by retry_max.
func TestPlanAckHonoursRetryAfterUpToRetryMax(t *testing.T) {
	t.Parallel()
	pol := Policy{RetryInitial: job.Duration(time.Second), RetryMax: job.Duration(time.Minute)}
	for _, tt := range []struct {
		after, want time.Duration
	}{{30 * time.Second, 30 * time.Second}, {time.Hour, time.Minute}} {
		plan := PlanAck(PlanAckParams{Policy: pol, Batch: batch(0, 1),
			Results: []Result{{Outcome: Retry, StatusCode: 429, RetryAfter: tt.after}}, Now: planNow})
		require.Equal(t, at(tt.want), plan.State.RetryAt, "Retry-After %s", tt.after)
	}
}

// The backoff doubles from retry_initial with ±50% jitter and never passes
// retry_max.
func TestRetryDelayDoublesWithJitterUpToRetryMax(t *testing.T) {
	t.Parallel()
	pol := Policy{RetryInitial: job.Duration(time.Second), RetryMax: job.Duration(20 * time.Second)}
	for attempt, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second} {
		for range 50 {
			d := RetryDelay(pol, attempt, 0)
			require.GreaterOrEqual(t, d, base/2, "attempt %d", attempt)
			require.LessOrEqual(t, d, base*3/2, "attempt %d", attempt)
		}
	}
	for range 50 {
		require.LessOrEqual(t, RetryDelay(pol, 40, 0), 20*time.Second)
		require.GreaterOrEqual(t, RetryDelay(pol, 40, 0), 10*time.Second)
	}
}

// Without a Retry-After the head waits the backoff's attempt-th interval.
func TestPlanAckRetriesAfterTheBackoff(t *testing.T) {
	t.Parallel()
	pol := Policy{RetryInitial: job.Duration(time.Second), RetryMax: job.Duration(time.Minute)}
	b := batch(0, 1)
	plan := PlanAck(PlanAckParams{Policy: pol, Batch: b, Now: planNow,
		State:   store.SubscriberState{RetrySeq: 1, RetryAttempts: 2},
		Results: []Result{{Outcome: Retry, StatusCode: 500}}})
	require.Equal(t, 3, plan.State.RetryAttempts)
	require.Equal(t, "500 Internal Server Error", plan.State.LastError)
	wait := plan.State.RetryAt.Sub(planNow)
	require.GreaterOrEqual(t, wait, 2*time.Second, "the third interval: 4s, give or take half")
	require.LessOrEqual(t, wait, 6*time.Second)
}
