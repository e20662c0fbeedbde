package postgres_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/postgres"
)

func benchJobs(n int) []store.NewJob {
	jobs := make([]store.NewJob, n)
	for i := range jobs {
		jobs[i] = store.NewJob{Queue: "ev", Payload: []byte(`{"n":1}`)}
	}
	return jobs
}

// eventRows counts the outbox's rows, sequenced or not.
func eventRows(t *testing.T, s *postgres.Store) int {
	t.Helper()
	var n int
	require.NoError(t, s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM hammerwork_events`).Scan(&n))
	return n
}

func putWebhook(t *testing.T, s *postgres.Store, name string, enabled bool) *store.Subscriber {
	t.Helper()
	sub, created, err := s.PutSubscriber(t.Context(), store.PutSubscriberParams{Def: store.SubscriberDef{
		Name: name, Kind: store.SubscriberWebhook, Source: store.SourceAPI,
		Config: json.RawMessage(`{"url": "https://example.test"}`), IncludePayload: true, Enabled: enabled,
	}})
	require.NoError(t, err)
	require.True(t, created)
	return sub
}

// A COPY of 100+ jobs and the batch lease and completion that follow write
// one event per job each, through the statement triggers, and nothing at
// all while the only subscriber is disabled.
func TestEventTriggersCoverCopyAndBatches(t *testing.T) {
	t.Parallel()
	s := testkit.Postgres(t)
	ctx := t.Context()
	cycle := func(n int) {
		jobs, err := s.Enqueue(ctx, store.EnqueueParams{Jobs: benchJobs(n)})
		require.NoError(t, err)
		leased, err := s.Lease(ctx, store.LeaseParams{AgentID: "a", Queues: []string{"ev"}, Limit: n, Duration: time.Minute})
		require.NoError(t, err)
		require.Len(t, leased, len(jobs))
		done := make([]store.Completion, len(leased))
		for i, j := range leased {
			done[i] = store.Completion{LeaseRef: store.LeaseRef{ID: j.ID, Token: j.LeaseToken}, Result: []byte(`{}`)}
		}
		stale, err := s.Complete(ctx, store.CompleteParams{Completions: done})
		require.NoError(t, err)
		require.Empty(t, stale)
	}

	putWebhook(t, s, "off", false)
	cycle(150)
	require.Zero(t, eventRows(t, s), "no enabled subscriber: no event")

	putWebhook(t, s, "on", true)
	cycle(150)
	require.Equal(t, 450, eventRows(t, s))
	n, err := s.SequenceEvents(ctx, store.SequenceEventsParams{})
	require.NoError(t, err)
	require.Equal(t, 450, n)
	recs, err := s.ReadEvents(ctx, store.ReadEventsParams{Limit: 1000})
	require.NoError(t, err)
	count := map[string]int{}
	for i, r := range recs {
		require.Equal(t, int64(i+1), r.Seq, "seqs are 1..n")
		require.JSONEq(t, `{"n":1}`, string(r.Payload), "payload copied for the subscriber asking")
		count[events.TypeOf(r)]++
	}
	require.Equal(t, map[string]int{events.JobEnqueued: 150, events.JobStarted: 150, events.JobCompleted: 150}, count)
}

// Writers committing while two sequencers race leave a gapless prefix of
// seqs: every event numbered once, last_seq the highest.
func TestSequenceEventsRacingWritersStaysGapless(t *testing.T) {
	t.Parallel()
	s := testkit.Postgres(t)
	ctx := t.Context()
	putWebhook(t, s, "on", true)

	const writers, batches = 4, 10
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range batches {
				if _, err := s.Enqueue(ctx, store.EnqueueParams{Jobs: benchJobs(5)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var seqWG sync.WaitGroup
	for range 2 {
		seqWG.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.SequenceEvents(ctx, store.SequenceEventsParams{Limit: 7}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	seqWG.Wait()
	for {
		n, err := s.SequenceEvents(ctx, store.SequenceEventsParams{})
		require.NoError(t, err)
		if n == 0 {
			break
		}
	}
	recs, err := s.ReadEvents(ctx, store.ReadEventsParams{Limit: 1000})
	require.NoError(t, err)
	require.Len(t, recs, writers*batches*5)
	for i, r := range recs {
		require.Equal(t, int64(i+1), r.Seq)
	}
	last, err := s.LatestSeq(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(len(recs)), last)
}
