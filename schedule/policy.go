package schedule

import (
	"math/rand/v2"
	"time"
)

// Overlap says what a slot does while the schedule's previous run is live
// (its job or workflow has not finished).
type Overlap string

const (
	// OverlapSkip fires no new run while the previous one is live; the
	// slot is recorded as skipped. The default.
	OverlapSkip Overlap = "skip"
	// OverlapAllow fires every slot, however many runs are live.
	OverlapAllow Overlap = "allow"
	// OverlapBufferOne holds the first slot that comes while the previous
	// run is live and fires it when that run ends; further slots are skipped.
	OverlapBufferOne Overlap = "buffer_one"
)

// Catchup says which slots missed while no agent ran (or the schedule's
// polling fell behind) still fire.
type Catchup string

const (
	// CatchupLatest fires the newest missed slot if it is within the
	// catch-up window. The default.
	CatchupLatest Catchup = "latest"
	// CatchupNone fires a slot only if it is noticed within OnTimeGrace.
	CatchupNone Catchup = "none"
	// CatchupAll fires every missed slot, the newest MaxCatchupRuns of them.
	CatchupAll Catchup = "all"
)

const (
	// DefaultCatchupWindow is how late the newest slot may fire under
	// CatchupLatest when the schedule sets no window.
	DefaultCatchupWindow = time.Hour
	// MaxCatchupRuns bounds the runs one CatchupAll pass fires, so an outage
	// of an "@every 1s" schedule does not flood the queue.
	MaxCatchupRuns = 100
	// OnTimeGrace is how late CatchupNone still counts a slot as on time:
	// enough for scheduler passes and a slow database, not for an outage.
	OnTimeGrace = time.Minute
	// maxScan bounds the slots one Due call steps through; beyond it the
	// count of missed slots is a lower bound.
	maxScan = 100_000
)

// Policy is how a schedule's slots become runs. The zero value of each field
// is its default.
type Policy struct {
	Overlap Overlap
	Catchup Catchup
	// CatchupWindow is how late the newest slot may fire under CatchupLatest.
	CatchupWindow time.Duration
	// Jitter delays each slot's run by a random duration in [0, Jitter], so
	// many schedules on the same minute do not start in the same instant.
	Jitter time.Duration
	// StartAt and EndAt bound the nominal slots that fire, both inclusive;
	// the zero time leaves that side open.
	StartAt, EndAt time.Time
}

// WithDefaults fills the fields left at their zero value.
func (p Policy) WithDefaults() Policy {
	if p.Overlap == "" {
		p.Overlap = OverlapSkip
	}
	if p.Catchup == "" {
		p.Catchup = CatchupLatest
	}
	if p.CatchupWindow == 0 {
		p.CatchupWindow = DefaultCatchupWindow
	}
	return p
}

// DueParams is what the scheduler knows about a schedule when it takes it.
type DueParams struct {
	Schedule *Schedule
	Policy   Policy // defaults are applied
	// Last is the nominal time of the newest slot already handled (fired,
	// skipped or missed), or the time the schedule was created or resumed.
	// Slots at or before it are never returned again.
	Last time.Time
	// Buffered is the slot OverlapBufferOne holds, from the previous plan.
	Buffered time.Time
	// Live reports that the schedule's previous run has not finished.
	Live bool
	Now  time.Time
	// Rand draws the jitter; nil uses math/rand/v2's global source.
	Rand *rand.Rand
}

// DuePlan is what the store writes, in one transaction, after taking a schedule.
type DuePlan struct {
	// Fire are the nominal times to create runs for now, oldest first.
	Fire []time.Time
	// Skipped are slots not fired because a run was live (OverlapSkip,
	// OverlapBufferOne); the store records them as skipped runs.
	Skipped []time.Time
	// Missed counts slots the catch-up policy let pass without a run.
	Missed int
	// Buffered is the slot OverlapBufferOne now holds, for the next DueParams.
	Buffered time.Time
	// Last is the cursor for the next DueParams.
	Last time.Time
	// NextRunAt is when the scheduler should take the schedule again: the next
	// slot plus jitter, or Now while a slot is buffered so that every pass
	// checks whether the previous run has ended. Zero when the schedule has
	// no slot left (past EndAt): the store stops taking it.
	NextRunAt time.Time
}

// Due decides which nominal slots fire when the scheduler takes a schedule at
// Now. Call it when the schedule's next_run_at has come; to compute the first
// NextRunAt of a new or resumed schedule, call it with Last = Now.
//
// Runs created by one plan count as live for the slots after them, so with
// OverlapSkip a CatchupAll backlog fires one run and skips the rest; only
// OverlapAllow fires a backlog at once.
func Due(p DueParams) DuePlan {
	pol := p.Policy.WithDefaults()
	plan := DuePlan{Last: p.Last}

	from, to := p.Last, p.Now
	if !pol.StartAt.IsZero() && from.Before(pol.StartAt) {
		from = pol.StartAt.Add(-time.Nanosecond)
	}
	if !pol.EndAt.IsZero() && pol.EndAt.Before(to) {
		to = pol.EndAt
	}

	due, older := newestSlots(p.Schedule, from, to, MaxCatchupRuns)
	plan.Missed = older
	if len(due) > 0 {
		plan.Last = due[len(due)-1]
	}
	if pol.Catchup != CatchupAll {
		var late []time.Time
		due, late = splitOnTime(p.Schedule, due, p.Now, pol.Jitter)
		plan.Missed += len(late)
		if pol.Catchup == CatchupLatest && len(due) == 0 && len(late) > 0 &&
			p.Now.Sub(late[len(late)-1]) <= pol.CatchupWindow+pol.Jitter {
			due = late[len(late)-1:]
			plan.Missed--
		}
	}

	if !p.Buffered.IsZero() {
		due = append([]time.Time{p.Buffered}, due...)
	}
	live := p.Live
	for _, slot := range due {
		switch {
		case pol.Overlap == OverlapAllow || !live:
			plan.Fire = append(plan.Fire, slot)
			live = true
		case pol.Overlap == OverlapBufferOne && plan.Buffered.IsZero():
			plan.Buffered = slot
		default:
			plan.Skipped = append(plan.Skipped, slot)
		}
	}

	if !plan.Buffered.IsZero() {
		plan.NextRunAt = p.Now
		return plan
	}
	after := p.Now
	if from.After(after) {
		after = from
	}
	next := p.Schedule.Next(after)
	if next.IsZero() || (!pol.EndAt.IsZero() && next.After(pol.EndAt)) {
		return plan
	}
	plan.NextRunAt = next.Add(jitter(pol.Jitter, p.Rand))
	return plan
}

// splitOnTime separates the slots a scheduler pass reaches on time from
// those an outage made late. A slot is on time within OnTimeGrace, and for
// frequent schedules within two of its intervals, so that a pass delayed
// past the next slot of an "@every 1s" schedule (a slow database, a busy
// host) fires both slots instead of counting one missed, while after a real
// outage only the slots of the last moments count as on time.
func splitOnTime(s *Schedule, slots []time.Time, now time.Time, jitter time.Duration) (onTime, late []time.Time) {
	for _, t := range slots {
		grace := OnTimeGrace
		if next := s.Next(t); !next.IsZero() && 2*next.Sub(t) < grace {
			grace = 2 * next.Sub(t)
		}
		if now.Sub(t) <= grace+jitter {
			onTime = append(onTime, t)
		} else {
			late = append(late, t)
		}
	}
	return onTime, late
}

// newestSlots returns the newest keep slots in (from, to], oldest first, and
// how many older ones there were. Past maxScan slots it skips ahead to a
// little before to, judged by the average gap so far, and stops counting.
func newestSlots(s *Schedule, from, to time.Time, keep int) (newest []time.Time, older int) {
	var first time.Time
	scanned := 0
	for t := s.Next(from); !t.IsZero() && !t.After(to); t = s.Next(t) {
		if first.IsZero() {
			first = t
		}
		newest = append(newest, t)
		if len(newest) > keep {
			newest = newest[1:]
			older++
		}
		if scanned++; scanned == maxScan {
			gap := t.Sub(first) / time.Duration(scanned-1)
			if ahead := to.Add(-2 * time.Duration(keep) * gap); ahead.After(t) {
				older += len(newest)
				newest = nil
				t = ahead
			}
		}
	}
	return newest, older
}

// jitter draws a delay in [0, max], in whole milliseconds as the store keeps times.
func jitter(max time.Duration, r *rand.Rand) time.Duration {
	if max <= 0 {
		return 0
	}
	var n int64
	if r == nil {
		n = rand.Int64N(int64(max) + 1)
	} else {
		n = r.Int64N(int64(max) + 1)
	}
	return time.Duration(n).Truncate(time.Millisecond)
}

// maxAnchorSteps bounds how far Preview steps from a schedule's cursor to
// now; a cursor further back (agents down for long) previews from now.
const maxAnchorSteps = 10_000

// Preview is the next n nominal fire times after now, within p's StartAt
// and EndAt; fewer when the schedule ends. Slots count from cursor, the
// newest slot handled (zero for a schedule not stored): stepping from it
// keeps an "@every" schedule's phase, which counts from when it was created
// or resumed, not from now. Jitter is not applied: these are the nominal
// times the runs are named after.
func (s *Schedule) Preview(p Policy, cursor, now time.Time, n int) []time.Time {
	after := now
	if !cursor.IsZero() && cursor.Before(now) {
		t := cursor
		for range maxAnchorSteps {
			next := s.Next(t)
			if next.IsZero() || next.After(now) {
				after = t
				break
			}
			t = next
		}
	}
	if !p.StartAt.IsZero() && after.Before(p.StartAt) {
		after = p.StartAt.Add(-time.Nanosecond)
	}
	out := []time.Time{}
	for _, t := range s.NextN(after, n) {
		if !p.EndAt.IsZero() && t.After(p.EndAt) {
			break
		}
		out = append(out, t)
	}
	return out
}
