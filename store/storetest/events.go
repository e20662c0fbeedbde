package storetest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/store"
)

// The outbox (store.Events): triggers write one event per committed state
// change while an enabled subscriber exists, SequenceEvents gives committed
// events a gapless seq, and subscribers are claimed, acknowledged and
// cleaned up under the rules of store/events.go. The suite names each
// event's type with events.TypeOf, as every sink does, so a backend is
// checked against what a user receives.

var eventTests = slices.Concat(outboxTests, subscriberTests, relayTests, cleanupEventTests)

var outboxTests = []struct {
	name string
	fn   func(t *testing.T, s store.Store)
}{
	{"OutboxWithoutSubscriberWritesNothing", testOutboxNoSubscriber},
	{"OutboxWithOnlyDisabledSubscribersWritesNothing", testOutboxDisabledSubscriber},
	{"OutboxEnqueueWritesOneEnqueuedPerJob", testOutboxEnqueue},
	{"OutboxJobLifeWritesStartedAndCompleted", testOutboxComplete},
	{"OutboxFailWritesRetryScheduledThenFailed", testOutboxFail},
	{"OutboxRescueWritesRescuedThenFailed", testOutboxRescue},
	{"OutboxReleaseWritesReleased", testOutboxRelease},
	{"OutboxCancelAndRetryWriteCancelledAndRetried", testOutboxCancelRetry},
	{"OutboxExtendWritesNothing", testOutboxExtend},
	{"OutboxEventsCarryTheJobsFields", testOutboxFields},
	{"OutboxPayloadOnlyWhileAnEnabledSubscriberAsks", testOutboxPayload},
	{"OutboxResultOnlyOnCompletionWhileAnEnabledSubscriberAsks", testOutboxResult},
	{"OutboxRolledBackEnqueueWritesNoEvent", testOutboxRolledBack},
	{"OutboxStaleAnswersWriteNoEvent", testOutboxStale},
	{"OutboxWorkflowWithSkippedStepCompletes", testOutboxWorkflow},
	{"OutboxFailFastWorkflowFailsAndCancelsTheRest", testOutboxWorkflowFailFast},
	{"OutboxCancelledWorkflow", testOutboxWorkflowCancel},
	{"OutboxManualWorkflowPausesAndResumesOnRetry", testOutboxWorkflowManual},
	{"OutboxRetriedFailFastWorkflowResumesAndRetriesTheCancelled", testOutboxWorkflowRetry},
	{"OutboxLargeBatchesWriteOneEventPerJob", testOutboxLargeBatch},
	{"OutboxBatchFinished", testOutboxBatch},
	{"OutboxScheduleFired", testOutboxScheduleFired},
	{"OutboxScheduleMissedCountsTheSlots", testOutboxScheduleMissed},
	{"OutboxQueuePausedAndResumed", testOutboxQueue},

	{"OutboxEventsAreInvisibleUntilSequenced", testOutboxInvisibleUntilSequenced},
	{"OutboxSequenceIsGaplessInPosOrder", testOutboxSequenceGapless},
	{"OutboxSequenceRespectsLimit", testOutboxSequenceLimit},
	{"OutboxReadEventsPagesBySeq", testOutboxReadPaging},
	{"OutboxGetEventUnknownIsNotFound", testOutboxGetEventNotFound},
	{"OutboxConcurrentWritersAndSequencersKeepSeqGapless", testOutboxConcurrentSequence},
}

// webhookDef is an enabled API webhook subscriber asking for neither
// payload nor result.
func webhookDef(name string) store.SubscriberDef {
	return store.SubscriberDef{
		Name: name, Kind: store.SubscriberWebhook, Source: store.SourceAPI,
		Config: json.RawMessage(`{"url":"https://example.test/` + name + `"}`), Enabled: true,
	}
}

func putSubscriber(t *testing.T, s store.Store, def store.SubscriberDef, now time.Time) *store.Subscriber {
	t.Helper()
	sub, _, err := s.PutSubscriber(t.Context(), store.PutSubscriberParams{Def: def, Now: now})
	require.NoError(t, err, "put subscriber %q", def.Name)
	require.NotNil(t, sub)
	return sub
}

func getSubscriber(t *testing.T, s store.Store, id uuid.UUID) *store.Subscriber {
	t.Helper()
	sub, err := s.GetSubscriber(t.Context(), id)
	require.NoError(t, err, "get subscriber %s", id)
	return sub
}

// sequenceAll sequences every waiting event and returns how many.
func sequenceAll(t *testing.T, s store.Store) int {
	t.Helper()
	total := 0
	for {
		n, err := s.SequenceEvents(t.Context(), store.SequenceEventsParams{})
		require.NoError(t, err, "sequence events")
		if n == 0 {
			return total
		}
		total += n
	}
}

// readAfter reads every sequenced event after seq, page by page.
func readAfter(t *testing.T, s store.Store, after int64) []store.EventRecord {
	t.Helper()
	out := []store.EventRecord{}
	for {
		page, err := s.ReadEvents(t.Context(), store.ReadEventsParams{AfterSeq: after, Limit: 500})
		require.NoError(t, err, "read events after %d", after)
		require.NotNil(t, page, "none is an empty slice")
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Seq
	}
}

func latestSeq(t *testing.T, s store.Store) int64 {
	t.Helper()
	seq, err := s.LatestSeq(t.Context())
	require.NoError(t, err, "latest seq")
	return seq
}

// requireNoEvents checks that nothing was written: nothing to sequence,
// nothing to read.
func requireNoEvents(t *testing.T, s store.Store) {
	t.Helper()
	require.Zero(t, sequenceAll(t, s), "no event waits to be sequenced")
	require.Empty(t, readAfter(t, s, 0), "no event")
	require.Zero(t, latestSeq(t, s), "latest seq")
}

// observer follows the outbox through one enabled subscriber, reading the
// events each step wrote.
type observer struct {
	t    *testing.T
	s    store.Store
	seen int64
}

// observe creates the enabled subscriber "observer" (def changes it) and
// starts reading after the events already sequenced.
func observe(t *testing.T, s store.Store, change ...func(*store.SubscriberDef)) *observer {
	t.Helper()
	def := webhookDef("observer")
	for _, c := range change {
		c(&def)
	}
	putSubscriber(t, s, def, base)
	sequenceAll(t, s)
	return &observer{t: t, s: s, seen: latestSeq(t, s)}
}

// next sequences and returns the events written since the last call.
func (o *observer) next() []store.EventRecord {
	o.t.Helper()
	sequenceAll(o.t, o.s)
	got := readAfter(o.t, o.s, o.seen)
	if len(got) > 0 {
		o.seen = got[len(got)-1].Seq
	}
	return got
}

// requireTypes reads the events since the last call and checks their types
// in seq order: exactly one event per transition.
func (o *observer) requireTypes(want ...string) []store.EventRecord {
	o.t.Helper()
	got := o.next()
	require.Equal(o.t, append([]string{}, want...), typesOf(got), "event types in seq order")
	return got
}

// requireTypeSet reads the events since the last call and checks their
// types regardless of order, for changes of several rows in one statement.
func (o *observer) requireTypeSet(want ...string) []store.EventRecord {
	o.t.Helper()
	got := o.next()
	require.ElementsMatch(o.t, want, typesOf(got), "event types")
	return got
}

// requireOne reads the events since the last call: exactly one, of typ.
func (o *observer) requireOne(typ string) store.EventRecord {
	o.t.Helper()
	return o.requireTypes(typ)[0]
}

func typesOf(recs []store.EventRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = events.TypeOf(r)
	}
	return out
}

// ofJob keeps the events of one job, in their order.
func ofJob(recs []store.EventRecord, id uuid.UUID) []store.EventRecord {
	var out []store.EventRecord
	for _, r := range recs {
		if r.JobID != nil && *r.JobID == id {
			out = append(out, r)
		}
	}
	return out
}

// ofType keeps the events of one type, in their order.
func ofType(recs []store.EventRecord, typ string) []store.EventRecord {
	var out []store.EventRecord
	for _, r := range recs {
		if events.TypeOf(r) == typ {
			out = append(out, r)
		}
	}
	return out
}

// requireJobEvent checks an event of a job: its type, id, queue and
// attempt, and that it was sequenced and stamped.
func requireJobEvent(t *testing.T, r store.EventRecord, typ string, id uuid.UUID, queue string, attempt int) {
	t.Helper()
	require.Equal(t, typ, events.TypeOf(r), "event type")
	require.Equal(t, store.EventKindJob, r.Kind)
	require.NotNil(t, r.JobID, "%s names its job", typ)
	require.Equal(t, id, *r.JobID, "%s job_id", typ)
	require.Equal(t, queue, r.Queue, "%s queue", typ)
	require.Equal(t, attempt, r.Attempt, "%s attempt", typ)
	requireStamped(t, r)
}

// requireStamped checks what every sequenced event has: an id, a seq, and
// the time its change committed, in UTC.
func requireStamped(t *testing.T, r store.EventRecord) {
	t.Helper()
	require.NotEqual(t, uuid.Nil, r.ID, "event id")
	require.Positive(t, r.Seq, "event seq")
	require.False(t, r.Time.IsZero(), "event time")
	require.Equal(t, "UTC", r.Time.Location().String(), "event time is in UTC")
}
