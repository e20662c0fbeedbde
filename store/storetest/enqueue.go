package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

func testMigrateIdempotent(t *testing.T, s store.Store) {
	pending, err := s.PendingMigrations(t.Context())
	require.NoError(t, err)
	require.Empty(t, pending, "a migrated store has no pending migrations")

	applied, err := s.Migrate(t.Context())
	require.NoError(t, err)
	require.Empty(t, applied, "migrating a migrated store applies nothing")

	pending, err = s.PendingMigrations(t.Context())
	require.NoError(t, err)
	require.Empty(t, pending)
}

func testPingClose(t *testing.T, s store.Store) {
	require.NoError(t, s.Ping(t.Context()))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "a second Close is harmless")
}

func testEnqueueDefaults(t *testing.T, s store.Store) {
	got := enqueue(t, s, base, store.NewJob{Queue: "default", Payload: []byte(`{"a":1}`), Priority: job.PriorityBackground})[0]

	require.Equal(t, uuid.Version(7), got.ID.Version(), "a zero id becomes a UUIDv7")
	require.Equal(t, "default", got.Queue)
	require.JSONEq(t, `{"a":1}`, string(got.Payload))
	require.Equal(t, job.StatusPending, got.Status)
	require.Equal(t, job.PriorityBackground, got.Priority, "priority is stored as given, zero included")
	require.Equal(t, 0, got.Attempts)
	require.Equal(t, job.DefaultMaxAttempts, got.MaxAttempts)
	requireTime(t, base, got.CreatedAt, "created_at")
	requireTime(t, base, got.ScheduledAt, "scheduled_at defaults to Now")
	require.Equal(t, job.DependencyNone, got.DependencyStatus)
	require.Zero(t, got.PendingDependencies)
	require.Nil(t, got.StartedAt)
	require.Nil(t, got.CompletedAt)
	require.Nil(t, got.FailedAt)
	require.Empty(t, got.ErrorMessage)
	require.Empty(t, got.Errors)
	require.Zero(t, got.Timeout)
	require.Nil(t, got.RetryPolicy)
	require.Empty(t, got.Result)
	require.Nil(t, got.ResultExpiresAt)
	require.Zero(t, got.ResultTTL)
	require.Nil(t, got.BatchID)
	require.Nil(t, got.WorkflowID)
	require.Empty(t, got.TraceID)
	require.Empty(t, got.CorrelationID)
	require.Empty(t, got.ParentSpanID)
	require.Empty(t, got.SpanContext)
	require.Empty(t, got.UniqueKey)
	requireNoLease(t, got)

	requireSameJob(t, got, get(t, s, got.ID))
}

func testEnqueueManyInOrder(t *testing.T, s store.Store) {
	given := ascendingIDs(t, 1)[0]
	in := []store.NewJob{
		{Queue: "q-a", Payload: []byte(`{"i":0}`), Priority: job.PriorityLow},
		{ID: given, Queue: "q-b", Payload: []byte(`{"i":1}`), Priority: job.PriorityCritical, MaxAttempts: 9},
		{Queue: "q-c", Payload: []byte(`{"i":2}`), Priority: job.PriorityHigh, ScheduledAt: base.Add(time.Hour)},
		{Queue: "q-a", Payload: []byte(`[3]`), Priority: job.PriorityNormal, MaxAttempts: 1},
	}
	got := enqueue(t, s, base, in...)

	seen := map[uuid.UUID]bool{}
	for i, j := range got {
		require.Equalf(t, in[i].Queue, j.Queue, "job %d", i)
		require.JSONEqf(t, string(in[i].Payload), string(j.Payload), "job %d", i)
		require.Equalf(t, in[i].Priority, j.Priority, "job %d", i)
		require.Equalf(t, job.StatusPending, j.Status, "job %d", i)
		require.NotEqualf(t, uuid.Nil, j.ID, "job %d", i)
		require.Falsef(t, seen[j.ID], "job %d has a fresh id", i)
		seen[j.ID] = true
		requireSameJob(t, j, get(t, s, j.ID))
	}
	require.Equal(t, given, got[1].ID, "a given id is kept")
	require.Equal(t, 9, got[1].MaxAttempts)
	require.Equal(t, job.DefaultMaxAttempts, got[0].MaxAttempts)
	require.Equal(t, 1, got[3].MaxAttempts)
	requireTime(t, base.Add(time.Hour), got[2].ScheduledAt, "scheduled_at as given")
	requireTime(t, base, got[0].ScheduledAt, "scheduled_at defaults to Now")
	require.Len(t, listAll(t, s, store.ListParams{}), len(in))
}

func testEnqueueRejectsInvalid(t *testing.T, s store.Store) {
	for name, bad := range map[string]store.NewJob{
		"EmptyQueue":           {Payload: []byte(`{}`)},
		"QueueWithSpace":       {Queue: "bad queue", Payload: []byte(`{}`)},
		"PayloadNotJSON":       {Queue: "q", Payload: []byte(`{"a":`)},
		"PriorityOutOfRange":   {Queue: "q", Priority: job.PriorityCritical + 1},
		"NegativeMaxAttempts":  {Queue: "q", MaxAttempts: -1},
		"NegativeTimeout":      {Queue: "q", Timeout: -time.Second},
		"NegativeResultTTL":    {Queue: "q", ResultTTL: -time.Second},
		"UnknownRetryStrategy": {Queue: "q", RetryPolicy: &job.RetryPolicy{Strategy: "sometimes"}},
		// What one backend refuses, every backend refuses, before writing.
		"PayloadLoneSurrogate":  {Queue: "q", Payload: []byte(`{"x":"\ud800"}`)},
		"PayloadNested32Levels": {Queue: "q", Payload: []byte(strings.Repeat("[", 32) + strings.Repeat("]", 32))},
		"PayloadNULEscape":      {Queue: "q", Payload: []byte(`"\u0000"`)},
		"PayloadBeyondNumeric":  {Queue: "q", Payload: []byte(`1e131072`)},
		"PayloadInvalidUTF8":    {Queue: "q", Payload: []byte("\"\xff\"")},
		"CorrelationIDWithCRLF": {Queue: "q", CorrelationID: "c\r\nX-Injected: 1"},
		"CorrelationIDWithNUL":  {Queue: "q", CorrelationID: "c\x00"},
		"QueueWithLineFeed":     {Queue: "q\n"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: []store.NewJob{bad}, Now: base})
			require.Error(t, err)
			require.ErrorIs(t, err, store.ErrInvalid)
		})
	}
	require.Empty(t, listAll(t, s, store.ListParams{}), "a rejected job writes nothing")

	// The limits themselves are stored byte for byte by every backend.
	limits := []string{
		strings.Repeat("[", store.MaxJSONDepth) + strings.Repeat("]", store.MaxJSONDepth),
		`{"emoji":"\ud83d\ude00","tab":"\t","e":"\u00e9"}`,
		`[1e131071,1e-16383,-0.5]`,
	}
	for _, payload := range limits {
		j := enqueue(t, s, base, store.NewJob{Queue: "q", Payload: []byte(payload)})[0]
		require.Equal(t, payload, string(get(t, s, j.ID).Payload))
	}
}

func testEnqueueAtomicOnInvalid(t *testing.T, s store.Store) {
	valid := ascendingIDs(t, 2)
	_, err := s.Enqueue(t.Context(), store.EnqueueParams{Now: base, Jobs: []store.NewJob{
		{ID: valid[0], Queue: "q", Payload: []byte(`{}`)},
		{Queue: "q", Payload: []byte(`not json`)},
		{ID: valid[1], Queue: "q", Payload: []byte(`{}`)},
	}})
	require.ErrorIs(t, err, store.ErrInvalid)
	require.Empty(t, listAll(t, s, store.ListParams{}), "one invalid job writes nothing of its batch")
	for _, id := range valid {
		_, err := s.Get(t.Context(), id)
		require.ErrorIs(t, err, store.ErrNotFound)
	}
}

// testEnqueueAtomicOnDuplicate proves the batch is one transaction, not just
// validated up front: the database itself refuses the second row.
func testEnqueueAtomicOnDuplicate(t *testing.T, s store.Store) {
	existing := enqueue(t, s, base, newJob("q"))[0]
	fresh := ascendingIDs(t, 1)[0]

	_, err := s.Enqueue(t.Context(), store.EnqueueParams{Now: base.Add(time.Second), Jobs: []store.NewJob{
		{ID: fresh, Queue: "q", Payload: []byte(`{}`)},
		{ID: existing.ID, Queue: "other", Payload: []byte(`{}`)},
	}})
	require.Error(t, err, "an id that already exists cannot be enqueued again")

	_, err = s.Get(t.Context(), fresh)
	require.ErrorIs(t, err, store.ErrNotFound, "the batch wrote nothing")
	requireSameJob(t, existing, get(t, s, existing.ID))
	require.Len(t, listAll(t, s, store.ListParams{}), 1)
}

func testEnqueueEmptyPayload(t *testing.T, s store.Store) {
	got := enqueue(t, s, base, store.NewJob{Queue: "q"})[0]
	require.JSONEq(t, `null`, string(got.Payload))
	require.JSONEq(t, `null`, string(get(t, s, got.ID).Payload))
}

func testRoundTrip(t *testing.T, s store.Store) {
	zone := time.FixedZone("UTC+5", 5*60*60)
	now := base.Add(321 * time.Nanosecond).In(zone)
	scheduledAt := base.Add(90*time.Minute + 789*time.Nanosecond).In(zone)
	id := ascendingIDs(t, 1)[0]
	batch := uuid.New()
	jitter := 0.25
	policy := &job.RetryPolicy{
		Strategy:   job.StrategyLinear,
		Initial:    job.Duration(2 * time.Second),
		Increment:  job.Duration(3 * time.Second),
		Multiplier: 1.5,
		Max:        job.Duration(10 * time.Minute),
		Jitter:     &jitter,
		JitterMode: job.JitterAdditive,
	}
	in := store.NewJob{
		ID:            id,
		Queue:         "emails.v2:eu-1_x",
		Payload:       []byte(`{"to":"a@example.com","n":[1,2.5,-3],"nested":{"ok":true,"none":null,"s":"ü \"q\""}}`),
		Priority:      job.PriorityHigh,
		ScheduledAt:   scheduledAt,
		MaxAttempts:   7,
		Timeout:       45 * time.Second,
		RetryPolicy:   policy,
		ResultTTL:     2 * time.Hour,
		BatchID:       &batch,
		TraceID:       "4bf92f3577b34da6a3ce929d0e0e4736",
		CorrelationID: "order-42",
		ParentSpanID:  "00f067aa0ba902b7",
		SpanContext:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		UniqueKey:     "order-42-email",
	}
	enqueued := enqueue(t, s, now, in)[0]
	got := get(t, s, id)
	requireSameJob(t, enqueued, got)

	require.Equal(t, id, got.ID)
	require.Equal(t, in.Queue, got.Queue)
	require.JSONEq(t, string(in.Payload), string(got.Payload))
	require.Equal(t, job.StatusPending, got.Status)
	require.Equal(t, job.PriorityHigh, got.Priority)
	require.Equal(t, 7, got.MaxAttempts)
	requireTime(t, now, got.CreatedAt, "created_at")
	requireTime(t, scheduledAt, got.ScheduledAt, "scheduled_at")
	require.Equal(t, job.Duration(45*time.Second), got.Timeout)
	require.Equal(t, policy, got.RetryPolicy)
	require.Equal(t, job.Duration(2*time.Hour), got.ResultTTL)
	require.Equal(t, &batch, got.BatchID)
	require.Equal(t, in.TraceID, got.TraceID)
	require.Equal(t, in.CorrelationID, got.CorrelationID)
	require.Equal(t, in.ParentSpanID, got.ParentSpanID)
	require.Equal(t, in.SpanContext, got.SpanContext)
	require.Equal(t, in.UniqueKey, got.UniqueKey)
	require.Empty(t, got.DependsOn)
	require.Empty(t, got.Dependents)
	require.Equal(t, job.DependencyNone, got.DependencyStatus)

	// The times the store writes later keep the same precision and zone.
	leased := leaseOne(t, s, scheduledAt)
	requireTimePtr(t, scheduledAt, leased.StartedAt, "started_at")
	requireTimePtr(t, scheduledAt.Add(leaseFor), leased.LeaseExpiresAt, "lease_expires_at")
	doneAt := scheduledAt.Add(time.Second)
	stale, err := s.Complete(t.Context(), store.CompleteParams{Now: doneAt, Completions: []store.Completion{
		{LeaseRef: ref(leased), Result: []byte(`{"sent":true,"ids":[1,2]}`)},
	}})
	require.NoError(t, err)
	require.Empty(t, stale)
	done := get(t, s, id)
	requireTimePtr(t, doneAt, done.CompletedAt, "completed_at")
	requireTimePtr(t, doneAt.Add(2*time.Hour), done.ResultExpiresAt, "result_expires_at")
	require.JSONEq(t, `{"sent":true,"ids":[1,2]}`, string(done.Result))
}

func testGetNotFound(t *testing.T, s store.Store) {
	enqueue(t, s, base, newJob("q"))
	_, err := s.Get(t.Context(), ascendingIDs(t, 1)[0])
	require.ErrorIs(t, err, store.ErrNotFound)
	require.False(t, errors.Is(err, store.ErrConflict))
}
