package storetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

func complete(t *testing.T, s store.Store, now time.Time, cs ...store.Completion) []uuid.UUID {
	t.Helper()
	stale, err := s.Complete(t.Context(), store.CompleteParams{Completions: cs, Now: now})
	require.NoError(t, err, "complete")
	return stale
}

func fail(t *testing.T, s store.Store, now time.Time, fs ...store.Failure) store.FailResult {
	t.Helper()
	res, err := s.Fail(t.Context(), store.FailParams{Failures: fs, Now: now})
	require.NoError(t, err, "fail")
	return res
}

func testCompleteMany(t *testing.T, s store.Store) {
	jobs := running(t, s, base, newJob("q"), newJob("q"), newJob("q"))
	now := base.Add(3 * time.Second)
	stale := complete(t, s, now,
		store.Completion{LeaseRef: ref(jobs[0]), Result: []byte(`{"ok":true,"n":[1,2]}`)},
		store.Completion{LeaseRef: ref(jobs[1])},
		store.Completion{LeaseRef: ref(jobs[2]), Result: []byte(`"small"`), Note: "result truncated"},
	)
	require.Empty(t, stale)

	for i, j := range jobs {
		got := get(t, s, j.ID)
		require.Equalf(t, job.StatusCompleted, got.Status, "job %d", i)
		requireTimePtr(t, now, got.CompletedAt, "completed_at")
		require.Equal(t, 1, got.Attempts, "completing does not change attempts")
		require.Nil(t, got.FailedAt)
		require.Nil(t, got.ResultExpiresAt, "no result_ttl, no expiry")
		requireNoLease(t, got)
	}
	require.JSONEq(t, `{"ok":true,"n":[1,2]}`, string(get(t, s, jobs[0].ID).Result))
	require.Empty(t, get(t, s, jobs[1].ID).Result, "a nil result stores no result")
	third := get(t, s, jobs[2].ID)
	require.JSONEq(t, `"small"`, string(third.Result))
	require.Equal(t, "result truncated", third.ErrorMessage, "a note is stored as error_message")
	require.Empty(t, get(t, s, jobs[0].ID).ErrorMessage)
}

func testCompleteStale(t *testing.T, s store.Store) {
	jobs := running(t, s, base, newJob("q"), newJob("q"), newJob("q"))
	done, wrongToken, again := jobs[0], jobs[1], jobs[2]
	require.Empty(t, complete(t, s, base.Add(time.Second), store.Completion{LeaseRef: ref(again), Result: []byte(`1`)}))
	againBefore := get(t, s, again.ID)
	pending := enqueue(t, s, base, newJob("q"))[0]
	unknown := ascendingIDs(t, 1)[0]

	stale := complete(t, s, base.Add(time.Minute),
		store.Completion{LeaseRef: ref(done), Result: []byte(`{"a":1}`)},
		store.Completion{LeaseRef: store.LeaseRef{ID: wrongToken.ID, Token: wrongToken.LeaseToken + "x"}, Result: []byte(`2`)},
		store.Completion{LeaseRef: ref(again), Result: []byte(`3`)},
		store.Completion{LeaseRef: store.LeaseRef{ID: pending.ID}, Result: []byte(`4`)},
		store.Completion{LeaseRef: store.LeaseRef{ID: unknown, Token: done.LeaseToken}, Result: []byte(`5`)},
	)
	require.ElementsMatch(t, []uuid.UUID{wrongToken.ID, again.ID, pending.ID, unknown}, stale)

	require.Equal(t, job.StatusCompleted, get(t, s, done.ID).Status, "the good completion in the batch still counts")
	requireSameJob(t, wrongToken, get(t, s, wrongToken.ID))
	requireSameJob(t, againBefore, get(t, s, again.ID))
	requireSameJob(t, pending, get(t, s, pending.ID))
}

func testCompleteResultTTL(t *testing.T, s store.Store) {
	withTTL := newJob("q")
	withTTL.ResultTTL = 90 * time.Minute
	jobs := running(t, s, base, withTTL, newJob("q"))
	now := base.Add(time.Minute)
	require.Empty(t, complete(t, s, now,
		store.Completion{LeaseRef: ref(jobs[0]), Result: []byte(`{"kept":"for a while"}`)},
		store.Completion{LeaseRef: ref(jobs[1]), Result: []byte(`{"kept":"forever"}`)},
	))

	got := get(t, s, jobs[0].ID)
	requireTimePtr(t, now.Add(90*time.Minute), got.ResultExpiresAt, "result_expires_at = Now + result_ttl")
	require.JSONEq(t, `{"kept":"for a while"}`, string(got.Result), "a result before its expiry reads back")
	forever := get(t, s, jobs[1].ID)
	require.Nil(t, forever.ResultExpiresAt)
	require.JSONEq(t, `{"kept":"forever"}`, string(forever.Result))
}

// testExpiredResult is the one rule on the database's clock: Get takes no
// Now, so the job completes an hour in the past with a one-minute TTL.
func testExpiredResult(t *testing.T, s store.Store) {
	past := store.UTC(time.Now().Add(-time.Hour))
	expiring := newJob("q")
	expiring.ResultTTL = time.Minute
	jobs := running(t, s, past, expiring)
	require.Empty(t, complete(t, s, past, store.Completion{LeaseRef: ref(jobs[0]), Result: []byte(`{"secret":1}`)}))

	got := get(t, s, jobs[0].ID)
	require.Equal(t, job.StatusCompleted, got.Status)
	requireTimePtr(t, past.Add(time.Minute), got.ResultExpiresAt, "result_expires_at")
	require.Empty(t, got.Result, "a result past its expiry reads as absent")
}

func testFailRetry(t *testing.T, s store.Store) {
	j := running(t, s, base, newJob("q"))[0]
	now := base.Add(2 * time.Second)
	retryAt := now.Add(30 * time.Second)
	res := fail(t, s, now, store.Failure{LeaseRef: ref(j), Error: "HTTP 500 Internal Server Error: oops", Outcome: "http_500", Retry: true, RetryAt: retryAt})
	require.Equal(t, []uuid.UUID{j.ID}, res.Retried)
	require.Empty(t, res.Failed)
	require.Empty(t, res.Stale)

	got := get(t, s, j.ID)
	require.Equal(t, job.StatusPending, got.Status)
	require.Equal(t, 1, got.Attempts, "the failed attempt stays spent")
	requireTime(t, retryAt, got.ScheduledAt, "scheduled_at = RetryAt")
	require.Equal(t, "HTTP 500 Internal Server Error: oops", got.ErrorMessage)
	require.Nil(t, got.FailedAt)
	requireNoLease(t, got)
	require.Len(t, got.Errors, 1)
	require.Equal(t, 1, got.Errors[0].Attempt)
	require.Equal(t, "http_500", got.Errors[0].Outcome)
	require.Equal(t, "HTTP 500 Internal Server Error: oops", got.Errors[0].Message)
	requireTime(t, now, got.Errors[0].At, "errors[0].at")

	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 1, Now: retryAt.Add(-time.Microsecond)}), "not before RetryAt")
	again := leaseOne(t, s, retryAt)
	require.Equal(t, j.ID, again.ID)
	require.Equal(t, 2, again.Attempts)
}

func testFailPermanent(t *testing.T, s store.Store) {
	j := running(t, s, base, newJob("q"))[0]
	now := base.Add(2 * time.Second)
	res := fail(t, s, now, store.Failure{LeaseRef: ref(j), Error: "HTTP 400 Bad Request", Outcome: "http_400", RetryAt: now.Add(time.Hour)})
	require.Equal(t, []uuid.UUID{j.ID}, res.Failed)
	require.Empty(t, res.Retried)
	require.Empty(t, res.Stale)

	got := get(t, s, j.ID)
	require.Equal(t, job.StatusFailed, got.Status, "Retry=false fails at once, attempts left or not")
	requireTimePtr(t, now, got.FailedAt, "failed_at")
	require.Equal(t, "HTTP 400 Bad Request", got.ErrorMessage)
	require.Nil(t, got.CompletedAt)
	requireNoLease(t, got)
	require.Len(t, got.Errors, 1)
	require.Equal(t, job.AttemptError{Attempt: 1, At: now, Outcome: "http_400", Message: "HTTP 400 Bad Request"}, canonical(got).Errors[0])
	require.Empty(t, lease(t, s, store.LeaseParams{Limit: 1, Now: now.Add(2 * time.Hour)}))
}

func testFailExhausted(t *testing.T, s store.Store) {
	last := newJob("q")
	last.MaxAttempts = 2
	j := running(t, s, base, last)[0]
	res := fail(t, s, base.Add(time.Second), store.Failure{LeaseRef: ref(j), Error: "first", Outcome: "timeout", Retry: true, RetryAt: base.Add(time.Minute)})
	require.Equal(t, []uuid.UUID{j.ID}, res.Retried)

	j = leaseOne(t, s, base.Add(time.Minute))
	require.Equal(t, 2, j.Attempts)
	now := base.Add(2 * time.Minute)
	res = fail(t, s, now, store.Failure{LeaseRef: ref(j), Error: "second", Outcome: "timeout", Retry: true, RetryAt: now.Add(time.Minute)})
	require.Equal(t, []uuid.UUID{j.ID}, res.Failed, "a retryable failure of the last attempt fails the job")
	require.Empty(t, res.Retried)

	got := get(t, s, j.ID)
	require.Equal(t, job.StatusFailed, got.Status)
	requireTimePtr(t, now, got.FailedAt, "failed_at")
	require.Equal(t, "second", got.ErrorMessage)
	requireNoLease(t, got)
}

func testFailMany(t *testing.T, s store.Store) {
	last := newJob("q")
	last.MaxAttempts = 1
	jobs := running(t, s, base, newJob("q"), newJob("q"), last)
	retried, permanent, exhausted := jobs[0], jobs[1], jobs[2]
	now := base.Add(time.Second)
	res := fail(t, s, now,
		store.Failure{LeaseRef: ref(retried), Error: "HTTP 502", Outcome: "http_502", Retry: true, RetryAt: now.Add(time.Minute)},
		store.Failure{LeaseRef: ref(permanent), Error: "HTTP 410", Outcome: "http_410", RetryAt: now.Add(time.Minute)},
		store.Failure{LeaseRef: ref(exhausted), Error: "HTTP 502", Outcome: "http_502", Retry: true, RetryAt: now.Add(time.Minute)},
	)
	require.Equal(t, []uuid.UUID{retried.ID}, res.Retried)
	require.ElementsMatch(t, []uuid.UUID{permanent.ID, exhausted.ID}, res.Failed)
	require.Empty(t, res.Stale)

	require.Equal(t, job.StatusPending, get(t, s, retried.ID).Status)
	for _, j := range []*job.Job{permanent, exhausted} {
		got := get(t, s, j.ID)
		require.Equal(t, job.StatusFailed, got.Status)
		requireTimePtr(t, now, got.FailedAt, "failed_at")
	}
}

func testFailHistory(t *testing.T, s store.Store) {
	j := running(t, s, base, newJob("q"))[0]
	first := base.Add(time.Second)
	fail(t, s, first, store.Failure{LeaseRef: ref(j), Error: "connection refused", Outcome: "connection_error", Retry: true, RetryAt: first})
	j = leaseOne(t, s, first)
	second := first.Add(time.Second)
	fail(t, s, second, store.Failure{LeaseRef: ref(j), Error: "HTTP 503", Outcome: "http_503", Retry: true, RetryAt: second})

	got := get(t, s, j.ID)
	require.Equal(t, "HTTP 503", got.ErrorMessage, "error_message is the last attempt's")
	require.Equal(t, []job.AttemptError{
		{Attempt: 1, At: first, Outcome: "connection_error", Message: "connection refused"},
		{Attempt: 2, At: second, Outcome: "http_503", Message: "HTTP 503"},
	}, canonical(got).Errors, "every attempt's error is kept, oldest first")
}

func testFailStale(t *testing.T, s store.Store) {
	jobs := running(t, s, base, newJob("q"), newJob("q"), newJob("q"))
	good, wrongToken, done := jobs[0], jobs[1], jobs[2]
	require.Empty(t, complete(t, s, base.Add(time.Second), store.Completion{LeaseRef: ref(done)}))
	doneBefore := get(t, s, done.ID)
	pending := enqueue(t, s, base, newJob("q"))[0]
	unknown := ascendingIDs(t, 1)[0]

	now := base.Add(time.Minute)
	res := fail(t, s, now,
		store.Failure{LeaseRef: ref(good), Error: "e", Outcome: "http_500", Retry: true, RetryAt: now},
		store.Failure{LeaseRef: store.LeaseRef{ID: wrongToken.ID, Token: "not-" + wrongToken.LeaseToken}, Error: "e", Outcome: "http_500", Retry: true, RetryAt: now},
		store.Failure{LeaseRef: ref(done), Error: "e", Outcome: "http_500"},
		store.Failure{LeaseRef: store.LeaseRef{ID: pending.ID}, Error: "e", Outcome: "http_500"},
		store.Failure{LeaseRef: store.LeaseRef{ID: unknown, Token: good.LeaseToken}, Error: "e", Outcome: "http_500"},
	)
	require.Equal(t, []uuid.UUID{good.ID}, res.Retried)
	require.Empty(t, res.Failed)
	require.ElementsMatch(t, []uuid.UUID{wrongToken.ID, done.ID, pending.ID, unknown}, res.Stale)

	requireSameJob(t, wrongToken, get(t, s, wrongToken.ID))
	requireSameJob(t, doneBefore, get(t, s, done.ID))
	requireSameJob(t, pending, get(t, s, pending.ID))
}
