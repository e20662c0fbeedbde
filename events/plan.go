package events

import (
	"fmt"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/store"
)

// retryJitter spreads each retry delay over ±50%, so the subscribers a
// receiver's outage failed together do not all come back at once.
const retryJitter = 0.5

// PlanAckParams is what a relay knows after one batch of one subscriber.
type PlanAckParams struct {
	Subscriber uuid.UUID
	AgentID    string
	// State is the subscriber's state as claimed, before this batch.
	State  store.SubscriberState
	Policy Policy
	// Batch is the events read after the cursor, in seq order, those the
	// filter dropped included.
	Batch []Event
	// Dropped marks, by index of Batch, the events the filter dropped:
	// they are done without an attempt. Nil: none.
	Dropped []bool
	// Results are the sink's, by index of Batch; a dropped event's is
	// ignored, and a missing one counts as NotTried.
	Results []Result
	// Now is the database's now, from which the next retry counts.
	Now time.Time
}

// AckPlan is what AckEvents writes for one batch, and what the relay
// counts.
type AckPlan struct {
	State store.SubscriberState
	// Deliveries are the attempts made, one each, for the delivery log.
	Deliveries []store.Delivery
	// Delivered counts events the receiver acknowledged; Failed events
	// given up on; Retried attempts that failed and will be made again.
	Delivered, Failed, Retried int
	// CaughtUp: the cursor passed every event of the batch.
	CaughtUp bool
}

// PlanAck decides a subscriber's new state from one batch's results, the
// relay's one rule for every sink. The cursor advances over the longest
// prefix of events that are done (delivered, dropped by the filter,
// rejected for good, or retried until MaxAttempts), so nothing after an
// event still owed is acknowledged and a job's events keep their order.
// The first event not done is the retry head: it is retried alone, after a
// backoff (or the receiver's Retry-After, capped by RetryMax), its attempts
// kept in the state so a retry survives the agent. Events given up on in a
// row disable the subscriber at MaxFailures; a 410 disables it at once.
// Events tried after the head are logged as retrying whatever they got:
// they are sent again once the head is done.
func PlanAck(p PlanAckParams) AckPlan {
	pol := p.Policy.WithDefaults()
	plan := AckPlan{State: p.State}
	st := &plan.State
	head := -1 // index of the first event not done
	for i, e := range p.Batch {
		if i < len(p.Dropped) && p.Dropped[i] {
			if head < 0 && !st.Disabled {
				st.Cursor = max(st.Cursor, e.Seq)
			}
			continue
		}
		var r Result
		if i < len(p.Results) {
			r = p.Results[i]
		}
		if r.Outcome == NotTried {
			if head < 0 {
				head = i
			}
			continue
		}
		attempt := 1
		if e.Seq == p.State.RetrySeq {
			attempt = p.State.RetryAttempts + 1
		}
		d := delivery(p, e, r, attempt)
		if r.Outcome != Delivered {
			st.LastError = failure(r)
		}
		inPrefix := head < 0 && !st.Disabled
		switch {
		case r.Outcome == Delivered:
			d.Outcome = store.DeliveryDelivered
			plan.Delivered++
			if inPrefix {
				st.ConsecutiveFailures = 0
			}
		case r.Outcome == Gone:
			d.Outcome = store.DeliveryFailed
			st.Disabled = true
			st.DisabledReason = fmt.Sprintf("the receiver answered %d %s: it asked to be called no more", http.StatusGone, http.StatusText(http.StatusGone))
			if head < 0 {
				head = i
			}
		case !inPrefix:
			d.Outcome = store.DeliveryRetrying
			plan.Retried++
		case r.Outcome == Retry && attempt < pol.MaxAttempts:
			d.Outcome = store.DeliveryRetrying
			plan.Retried++
			head = i
			at := p.Now.Add(RetryDelay(pol, attempt, r.RetryAfter))
			st.RetrySeq, st.RetryAttempts, st.RetryAt = e.Seq, attempt, &at
		default: // Rejected, or Retry with no attempt left
			d.Outcome = store.DeliveryFailed
			plan.Failed++
			st.ConsecutiveFailures++
			if st.ConsecutiveFailures >= pol.MaxFailures {
				st.Disabled = true
				st.DisabledReason = fmt.Sprintf("%d consecutive failed events", st.ConsecutiveFailures)
			}
		}
		if inPrefix && head < 0 {
			st.Cursor = max(st.Cursor, e.Seq)
		}
		plan.Deliveries = append(plan.Deliveries, d)
	}
	// A retry is pending only for a head that failed now, or for the event
	// already being retried when this batch did not get to it.
	keep := head >= 0 && !st.Disabled && p.Batch[head].Seq == st.RetrySeq
	if !keep {
		st.RetrySeq, st.RetryAttempts, st.RetryAt = 0, 0, nil
	}
	plan.CaughtUp = head < 0 && !st.Disabled
	if len(p.Batch) > 0 && st.Cursor < p.Batch[len(p.Batch)-1].Seq {
		plan.CaughtUp = false
	}
	return plan
}

// RetryDelay is the wait before attempt+1 after a failed attempt at one
// event: the receiver's Retry-After when it named one, else
// cenkalti/backoff's exponential schedule (RetryInitial doubling, ±50%
// jitter), both capped by RetryMax.
func RetryDelay(p Policy, attempt int, retryAfter time.Duration) time.Duration {
	p = p.WithDefaults()
	limit := p.RetryMax.D()
	if retryAfter > 0 {
		return min(retryAfter, limit)
	}
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(min(p.RetryInitial.D(), limit)),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(limit),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0),
	)
	// The earlier intervals only step the schedule: unjittered, and no
	// further once the cap is reached, so a large attempt costs nothing.
	for range max(attempt, 1) - 1 {
		if b.NextBackOff() >= limit {
			break
		}
	}
	b.RandomizationFactor = retryJitter
	return min(b.NextBackOff(), limit)
}

// delivery is the log row of one attempt; the caller sets its outcome.
func delivery(p PlanAckParams, e Event, r Result, attempt int) store.Delivery {
	return store.Delivery{
		ID: uuid.Must(uuid.NewV7()), Subscriber: p.Subscriber, EventID: e.ID, EventSeq: e.Seq, EventType: e.Type,
		Attempt: attempt, StatusCode: r.StatusCode, Error: r.Error, Response: r.Response, Duration: r.Duration,
		AgentID: p.AgentID, At: r.At,
	}
}

// failure is what last_error says of a failed attempt.
func failure(r Result) string {
	switch {
	case r.Error != "":
		return r.Error
	case r.StatusCode != 0:
		return fmt.Sprintf("%d %s", r.StatusCode, http.StatusText(r.StatusCode))
	}
	return "delivery failed"
}
