// Package storetest is the conformance suite of store.Store: the semantics
// documented in package store (the rules of its package doc and of each
// interface, the job states among them), written once as tests. Every backend's test calls Run with a factory for fresh, migrated
// stores; a backend is correct when the suite passes.
//
// Where the contract in package store leaves a choice open, the suite takes
// the reading a River or Sidekiq user would expect, and states it here:
//
//   - created_at is EnqueueParams.Now, like every other time the store writes.
//   - An empty Payload reads back as the JSON value null (the body the app
//     gets), not as an empty body.
//   - Lease returns the jobs it chose in no particular order, as River's
//     UPDATE ... RETURNING does; the suite checks which jobs are chosen, and
//     checks the lease order by leasing one job at a time.
//   - A leased job's started_at is the Now of its latest lease.
//   - An id that no job holds (or that no longer runs) in a batch call
//     (Complete, Fail, Extend, Release) comes back in the stale list; it is
//     not an error for the whole batch.
//   - A stored result whose result_expires_at is at or before the database's
//     current time reads as absent (Result is nil); ResultExpiresAt is still
//     reported. Get takes no Now, so this one rule uses the database's clock,
//     and the suite puts that expiry an hour in the past.
//   - RescueExpired stamps failed_at = Now on the jobs it fails, as Fail does,
//     and lists rescued jobs oldest lease expiry first (ties by id).
//   - A batch call's lists (stale, retried, failed, requeued) are empty,
//     never nil, when they hold nothing.
//   - Enqueueing an id that already exists is an error, and like an invalid
//     job it writes nothing of its batch.
//   - NextCursor is empty on the page that holds the last job, even when that
//     page is full: a listing never ends with an empty page. A cursor that is
//     not a job id is the caller's mistake: ErrInvalid (the API's 400).
//   - The suite may Close a store it was given; Close is safe to call twice,
//     so the factory's own cleanup must tolerate a closed store.
//   - Workflows (workflow.go): a skipped job and a job whose condition failed
//     to evaluate both read dependency_status 'satisfied' (their parents did
//     resolve); a job cancelled because an ancestor failed or was cancelled
//     reads 'failed'. A running workflow whose jobs are all finished ends
//     'failed' when any failed, 'cancelled' when some were cancelled but none
//     failed. Retrying one job of a failed, cancelled or paused workflow
//     (paused: once no failed job is left) sets the workflow running again.
//     WorkflowJobs lists jobs in step order.
//
// Every test supplies its own Now values, built from one fixed base time far
// in the future (so results with a TTL stay unexpired on the database's
// clock), except the clock tests (clock.go): they leave Now zero, as the
// agent does, so they run on the database's real clock and, where a job must
// fall due, poll for it with a deadline instead of sleeping a fixed time.
package storetest

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// Run runs every conformance test as a parallel subtest. newStore must return
// a fresh, migrated store that no other test uses, and clean it up with
// t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"MigrateIsIdempotentAndLeavesNothingPending", testMigrateIdempotent},
		{"PingAnswersAndCloseIsSafeTwice", testPingClose},

		{"EnqueueAppliesDefaults", testEnqueueDefaults},
		{"EnqueueManyReturnsJobsInInputOrder", testEnqueueManyInOrder},
		{"EnqueueRejectsInvalidJobsWithErrInvalid", testEnqueueRejectsInvalid},
		{"EnqueueWithOneInvalidJobWritesNothing", testEnqueueAtomicOnInvalid},
		{"EnqueueWithDuplicateIDWritesNothing", testEnqueueAtomicOnDuplicate},
		{"EnqueueEmptyPayloadIsJSONNull", testEnqueueEmptyPayload},
		{"GetRoundTripsEveryField", testRoundTrip},
		{"GetUnknownIDIsNotFound", testGetNotFound},

		{"LeaseOrdersByPriorityThenScheduledAtThenID", testLeaseOrder},
		{"LeaseLimitTakesTheFirstJobsInOrder", testLeaseLimit},
		{"LeaseSetsAttemptsLeaseFieldsAndStartedAt", testLeaseFields},
		{"LeaseTakesOnlyPendingJobs", testLeaseOnlyPending},
		{"LeaseWaitsForScheduledAt", testLeaseScheduledAt},
		{"LeaseFiltersByQueues", testLeaseQueues},
		{"LeaseSkipsExcludedQueues", testLeaseExcludeQueues},
		{"LeaseGivesEveryLeaseAFreshToken", testLeaseFreshToken},
		{"ConcurrentLeasesNeverHandOutAJobTwice", testLeaseConcurrent},

		{"CompleteManyStoresResultsAndClearsLeases", testCompleteMany},
		{"CompleteWithStaleTokenChangesNothing", testCompleteStale},
		{"CompleteSetsResultExpiryFromResultTTL", testCompleteResultTTL},
		{"ExpiredResultReadsAsAbsent", testExpiredResult},

		{"FailWithRetryAndAttemptsLeftRequeuesAtRetryAt", testFailRetry},
		{"FailWithoutRetryIsPermanent", testFailPermanent},
		{"FailWithAttemptsExhaustedIsPermanent", testFailExhausted},
		{"FailManySortsRetriedFromFailed", testFailMany},
		{"FailKeepsEveryAttemptsError", testFailHistory},
		{"FailWithStaleTokenChangesNothing", testFailStale},

		{"ExtendMovesLeaseExpiryAndReportsStale", testExtend},
		{"ReleaseGivesBackTheAttempt", testRelease},
		{"ReleaseWithStaleTokenChangesNothing", testReleaseStale},

		{"RescueExpiredRequeuesExpiredLeases", testRescueRequeues},
		{"RescueExpiredFailsJobsWithoutAttemptsLeft", testRescueFails},
		{"RescueExpiredLeavesLiveLeases", testRescueLeavesLive},
		{"RescueExpiredRespectsLimit", testRescueLimit},
		{"LateAnswerFromRescuedLeaseIsStale", testRescueLateAnswer},
		{"RescueExpiredListsOldestExpiryFirst", testRescueOrder},
		{"BatchCallsAnswerEmptyListsNotNil", testBatchResultsNeverNil},

		{"CancelPendingJob", testCancelPending},
		{"CancelRunningJobMakesItsTokenStale", testCancelRunning},
		{"CancelFinishedJobIsConflict", testCancelConflict},
		{"CancelUnknownJobIsNotFound", testCancelNotFound},
		{"RetryFailedJobRependsAndKeepsErrors", testRetryFailed},
		{"RetryCancelledJobRepends", testRetryCancelled},
		{"RetryOfUnfinishedOrCompletedJobIsConflict", testRetryConflict},
		{"RetryUnknownJobIsNotFound", testRetryNotFound},

		{"ListFiltersByQueueStatusAndDependencyStatus", testListFilters},
		{"ListIsNewestFirst", testListNewestFirst},
		{"ListCursorVisitsEveryJobOnce", testListCursor},
		{"ListLastPageHasNoCursor", testListLastPage},
		{"ListDefaultsToFiftyAndCapsAtAThousand", testListLimits},
		{"ListRejectsMalformedCursorWithErrInvalid", testListBadCursor},
		{"QueueStatsCountsByQueueAndStatus", testQueueStats},
	}
	tests = append(tests, workflowTests...)
	tests = append(tests, workflowRetryTests...)
	tests = append(tests, workflowDescendantTests...)
	tests = append(tests, queueTests...)
	tests = append(tests, cleanupTests...)
	tests = append(tests, uniqueTests...)
	tests = append(tests, scheduleTests...)
	tests = append(tests, batchTests...)
	tests = append(tests, batchStepTests...)
	tests = append(tests, traceStateTests...)
	tests = append(tests, clockTests...)
	tests = append(tests, eventTests...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// base is the fixed clock of the suite: microsecond precision, UTC, and far
// enough ahead that a result kept for a TTL is never expired on the database's
// own clock.
var base = time.Date(2099, time.March, 4, 5, 6, 7, 123456000, time.UTC)

const (
	agentID  = "storetest-agent"
	leaseFor = 5 * time.Minute
)

// newJob is a valid job with a small payload and normal priority.
func newJob(queue string) store.NewJob {
	return store.NewJob{Queue: queue, Payload: []byte(`{"n":1}`), Priority: job.PriorityNormal}
}

func enqueue(t *testing.T, s store.Store, now time.Time, jobs ...store.NewJob) []*job.Job {
	t.Helper()
	got, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: jobs, Now: now})
	require.NoError(t, err, "enqueue")
	require.Len(t, got, len(jobs), "enqueue returns one job per input")
	return got
}

func lease(t *testing.T, s store.Store, p store.LeaseParams) []*job.Job {
	t.Helper()
	if p.AgentID == "" {
		p.AgentID = agentID
	}
	if p.Duration == 0 {
		p.Duration = leaseFor
	}
	got, err := s.Lease(t.Context(), p)
	require.NoError(t, err, "lease")
	return got
}

// leaseOne leases exactly one job at now.
func leaseOne(t *testing.T, s store.Store, now time.Time) *job.Job {
	t.Helper()
	got := lease(t, s, store.LeaseParams{Limit: 1, Now: now})
	require.Len(t, got, 1, "lease one job")
	return got[0]
}

// running enqueues jobs into a store holding no other pending job, leases
// all of them at now and returns them in input order.
func running(t *testing.T, s store.Store, now time.Time, jobs ...store.NewJob) []*job.Job {
	t.Helper()
	enqueued := enqueue(t, s, now, jobs...)
	got := lease(t, s, store.LeaseParams{Limit: len(jobs), Now: now})
	require.Len(t, got, len(jobs), "lease every enqueued job")
	byID := make(map[uuid.UUID]*job.Job, len(got))
	for _, j := range got {
		byID[j.ID] = j
	}
	out := make([]*job.Job, len(enqueued))
	for i, e := range enqueued {
		out[i] = byID[e.ID]
		require.NotNilf(t, out[i], "job %s was leased", e.ID)
	}
	return out
}

func get(t *testing.T, s store.Store, id uuid.UUID) *job.Job {
	t.Helper()
	j, err := s.Get(t.Context(), id)
	require.NoError(t, err, "get %s", id)
	return j
}

func listAll(t *testing.T, s store.Store, p store.ListParams) []*job.Job {
	t.Helper()
	p.Limit = store.MaxListLimit
	page, err := s.List(t.Context(), p)
	require.NoError(t, err, "list")
	require.Empty(t, page.NextCursor, "the suite never lists more than one full page")
	return page.Jobs
}

func ref(j *job.Job) store.LeaseRef { return store.LeaseRef{ID: j.ID, Token: j.LeaseToken} }

func ids(jobs []*job.Job) []uuid.UUID {
	out := make([]uuid.UUID, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// ascendingIDs returns n UUIDv7s in ascending byte order, the order in which
// every backend compares ids.
func ascendingIDs(t *testing.T, n int) []uuid.UUID {
	t.Helper()
	out := make([]uuid.UUID, n)
	for i := range out {
		id, err := uuid.NewV7()
		require.NoError(t, err)
		out[i] = id
	}
	slices.SortFunc(out, compareIDs)
	return out
}

func compareIDs(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

// requireTime checks a stored time: the same instant at microsecond precision,
// in UTC.
func requireTime(t *testing.T, want, got time.Time, field string) {
	t.Helper()
	require.Truef(t, store.UTC(want).Equal(got), "%s: want %s, got %s", field, store.UTC(want), got)
	require.Equalf(t, "UTC", got.Location().String(), "%s is stored and read in UTC", field)
}

func requireTimePtr(t *testing.T, want time.Time, got *time.Time, field string) {
	t.Helper()
	require.NotNilf(t, got, "%s is set", field)
	requireTime(t, want, *got, field)
}

// requireNoLease checks that a job holds no lease, so any late answer is stale.
func requireNoLease(t *testing.T, j *job.Job) {
	t.Helper()
	require.Empty(t, j.LeasedBy, "leased_by cleared")
	require.Empty(t, j.LeaseToken, "lease_token cleared")
	require.Nil(t, j.LeaseExpiresAt, "lease_expires_at cleared")
}

// requireSameJob checks that two reads of a job agree, ignoring the
// representation choices the contract leaves open: nil or empty lists, JSON
// spacing and key order, and a time's location.
func requireSameJob(t *testing.T, want, got *job.Job) {
	t.Helper()
	require.Equal(t, canonical(want), canonical(got), "job %s", want.ID)
}

func canonical(j *job.Job) job.Job {
	c := *j
	c.Payload = canonicalJSON(j.Payload)
	c.Result = canonicalJSON(j.Result)
	c.CreatedAt = c.CreatedAt.UTC()
	c.ScheduledAt = c.ScheduledAt.UTC()
	for _, p := range []**time.Time{&c.StartedAt, &c.CompletedAt, &c.FailedAt, &c.ResultExpiresAt, &c.LeaseExpiresAt} {
		if *p != nil {
			u := (**p).UTC()
			*p = &u
		}
	}
	c.Errors = nil
	for _, e := range j.Errors {
		e.At = e.At.UTC()
		c.Errors = append(c.Errors, e)
	}
	if len(c.DependsOn) == 0 {
		c.DependsOn = nil
	}
	if len(c.Dependents) == 0 {
		c.Dependents = nil
	}
	return c
}

func canonicalJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
}
