package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/store"
)

// Sequencing: committed events get seq 1..n without gaps, in pos order, one
// sequencer at a time; readers see only sequenced events.

func testOutboxInvisibleUntilSequenced(t *testing.T, s store.Store) {
	putSubscriber(t, s, webhookDef("observer"), base)
	before := dbNow(t, s)
	enqueue(t, s, base, newJob("q"))
	after := dbNow(t, s)
	require.Empty(t, readAfter(t, s, 0), "an unsequenced event is not read")
	require.Zero(t, latestSeq(t, s))

	n, err := s.SequenceEvents(t.Context(), store.SequenceEventsParams{})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, int64(1), latestSeq(t, s))
	got := readAfter(t, s, 0)
	require.Len(t, got, 1)
	require.Equal(t, int64(1), got[0].Seq)
	require.WithinRange(t, got[0].Time, before.Add(-time.Second), after.Add(time.Second),
		"an event's time is the database's when it was written, not the change's Now")

	ev, err := s.GetEvent(t.Context(), got[0].ID)
	require.NoError(t, err, "a sequenced event is found by id")
	requireSameEvent(t, got[0], *ev)

	enqueue(t, s, base, newJob("q"))
	require.Empty(t, readAfter(t, s, 1), "the next event waits for the sequencer")
	require.Equal(t, int64(1), latestSeq(t, s))
	n, err = s.SequenceEvents(t.Context(), store.SequenceEventsParams{})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = s.SequenceEvents(t.Context(), store.SequenceEventsParams{})
	require.NoError(t, err)
	require.Zero(t, n, "nothing waits")
	require.Len(t, readAfter(t, s, 1), 1)
}

func testOutboxSequenceGapless(t *testing.T, s store.Store) {
	putSubscriber(t, s, webhookDef("observer"), base)
	jobs := running(t, s, base, newJob("q"), newJob("q"), newJob("q"))
	for _, j := range jobs {
		require.Empty(t, complete(t, s, base.Add(time.Second), store.Completion{LeaseRef: ref(j)}))
	}
	require.Equal(t, 9, sequenceAll(t, s))
	got := readAfter(t, s, 0)
	require.Len(t, got, 9)
	for i, r := range got {
		require.Equal(t, int64(i+1), r.Seq, "seq is gapless from 1")
		requireStamped(t, r)
		if i > 0 {
			require.Greater(t, r.Pos, got[i-1].Pos, "seq follows pos")
		}
	}
	require.Equal(t, int64(9), latestSeq(t, s))
	for _, j := range jobs {
		require.Equal(t, []string{events.JobEnqueued, events.JobStarted, events.JobCompleted},
			typesOf(ofJob(got, j.ID)), "a job's events in commit order")
	}
}

func testOutboxSequenceLimit(t *testing.T, s store.Store) {
	putSubscriber(t, s, webhookDef("observer"), base)
	enqueue(t, s, base, newJob("q"), newJob("q"), newJob("q"), newJob("q"), newJob("q"))
	sequenced := 0
	for _, want := range []int{2, 2, 1, 0} {
		n, err := s.SequenceEvents(t.Context(), store.SequenceEventsParams{Limit: 2})
		require.NoError(t, err)
		require.Equal(t, want, n, "a pass sequences at most Limit")
		sequenced += n
		require.Equal(t, int64(sequenced), latestSeq(t, s))
		require.Len(t, readAfter(t, s, 0), sequenced, "only sequenced events are read")
	}
	require.Equal(t, int64(5), latestSeq(t, s))
	got := readAfter(t, s, 0)
	require.Len(t, got, 5)
	for i, r := range got {
		require.Equal(t, int64(i+1), r.Seq)
	}
}

func testOutboxReadPaging(t *testing.T, s store.Store) {
	putSubscriber(t, s, webhookDef("observer"), base)
	enqueue(t, s, base, newJob("q"), newJob("q"), newJob("q"), newJob("q"), newJob("q"))
	sequenceAll(t, s)

	page, err := s.ReadEvents(t.Context(), store.ReadEventsParams{AfterSeq: 0, Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, seqsOf(page))
	page, err = s.ReadEvents(t.Context(), store.ReadEventsParams{AfterSeq: 2, Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []int64{3, 4}, seqsOf(page))
	page, err = s.ReadEvents(t.Context(), store.ReadEventsParams{AfterSeq: 3})
	require.NoError(t, err)
	require.Equal(t, []int64{4, 5}, seqsOf(page), "zero Limit reads the default")
	page, err = s.ReadEvents(t.Context(), store.ReadEventsParams{AfterSeq: 5})
	require.NoError(t, err)
	require.NotNil(t, page, "none is an empty slice")
	require.Empty(t, page)
}

func seqsOf(recs []store.EventRecord) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func testOutboxGetEventNotFound(t *testing.T, s store.Store) {
	_, err := s.GetEvent(t.Context(), uuid.New())
	requireNotFound(t, err, "an event never written")
}

// testOutboxConcurrentSequence races writers (each enqueues, leases and
// completes its own jobs) against sequencers: the seqs end as 1..N with
// every event once and each job's events in their order.
func testOutboxConcurrentSequence(t *testing.T, s store.Store) {
	const writers, sequencers, perWriter = 4, 2, 10
	putSubscriber(t, s, webhookDef("observer"), base)

	var (
		mu       sync.Mutex
		failures []error
		done     = make(chan struct{})
		writing  sync.WaitGroup
		seqs     sync.WaitGroup
	)
	failed := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, err)
	}
	for w := range writers {
		queue := fmt.Sprintf("w%d", w)
		writing.Go(func() {
			for range perWriter {
				if err := enqueueLeaseComplete(t, s, queue); err != nil {
					failed(fmt.Errorf("writer %s: %w", queue, err))
					return
				}
			}
		})
	}
	for range sequencers {
		seqs.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := s.SequenceEvents(t.Context(), store.SequenceEventsParams{Limit: 7}); err != nil {
					failed(fmt.Errorf("sequencer: %w", err))
					return
				}
			}
		})
	}
	writing.Wait()
	close(done)
	seqs.Wait()
	require.Empty(t, failures)

	sequenceAll(t, s)
	const total = writers * perWriter * 3
	got := readAfter(t, s, 0)
	require.Len(t, got, total, "every event once")
	require.Equal(t, int64(total), latestSeq(t, s))
	seen := map[uuid.UUID]bool{}
	perJob := map[uuid.UUID][]string{}
	for i, r := range got {
		require.Equal(t, int64(i+1), r.Seq, "seq is gapless")
		require.False(t, seen[r.ID], "event %s read twice", r.ID)
		seen[r.ID] = true
		perJob[*r.JobID] = append(perJob[*r.JobID], events.TypeOf(r))
	}
	require.Len(t, perJob, writers*perWriter)
	for id, types := range perJob {
		require.Equal(t, []string{events.JobEnqueued, events.JobStarted, events.JobCompleted}, types, "events of job %s in order", id)
	}
}

// enqueueLeaseComplete runs one job of its own queue to completion,
// returning errors rather than failing, for use in goroutines.
func enqueueLeaseComplete(t *testing.T, s store.Store, queue string) error {
	if _, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: []store.NewJob{newJob(queue)}, Now: base}); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	got, err := s.Lease(t.Context(), store.LeaseParams{AgentID: agentID, Queues: []string{queue}, Limit: 1, Duration: leaseFor, Now: base})
	if err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	if len(got) != 1 {
		return fmt.Errorf("lease: got %d jobs, want 1", len(got))
	}
	stale, err := s.Complete(t.Context(), store.CompleteParams{Completions: []store.Completion{{LeaseRef: ref(got[0])}}, Now: base.Add(time.Second)})
	if err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	if len(stale) != 0 {
		return fmt.Errorf("complete: %s stale", got[0].ID)
	}
	return nil
}
