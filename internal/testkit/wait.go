package testkit

import (
	"testing"
	"time"
)

// Poll calls cond every interval on the test's goroutine (so cond may use
// require) until it reports done, and fails the test once limit has passed,
// with what was awaited and cond's last description of what it saw. A wait
// on a condition, never a sleep: the test goes on as soon as it holds.
func Poll(t testing.TB, limit, interval time.Duration, what string, cond func() (done bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		done, seen := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			if seen == "" {
				t.Fatalf("timed out after %s waiting for: %s", limit, what)
			}
			t.Fatalf("timed out after %s waiting for: %s; last seen: %s", limit, what, seen)
		}
		<-tick.C
	}
}

// EventuallyInterval is how often Eventually checks its condition: short,
// because the conditions are cheap reads of a local store or server.
const EventuallyInterval = 5 * time.Millisecond

// Eventually is Poll for a condition with nothing to report but whether it
// holds, checked every EventuallyInterval.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	Poll(t, limit, EventuallyInterval, what, func() (bool, string) { return cond(), "" })
}
