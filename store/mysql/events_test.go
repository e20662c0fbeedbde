package mysql_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/mysql"
)

func putWebhook(t *testing.T, s *mysql.Store, name string) *store.Subscriber {
	t.Helper()
	sub, created, err := s.PutSubscriber(t.Context(), store.PutSubscriberParams{Def: store.SubscriberDef{
		Name: name, Kind: store.SubscriberWebhook, Source: store.SourceAPI, Enabled: true,
		Config: json.RawMessage(`{"url":"https://example.test/` + name + `"}`),
	}})
	require.NoError(t, err)
	require.True(t, created)
	return sub
}

func enqueueOne(t *testing.T, s *mysql.Store) {
	t.Helper()
	_, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: []store.NewJob{{Queue: "events", Payload: []byte(`{}`)}}})
	require.NoError(t, err)
}

// TestOpenEnqueueLeavesSubscribersClaimable holds an enqueue's transaction
// open while a relay claims and acknowledges: InnoDB reads a trigger's
// tables with shared locks during an INSERT, so triggers that read the
// subscribers would hide every subscriber from SKIP LOCKED claims and make
// acks wait for the enqueue.
func TestOpenEnqueueLeavesSubscribersClaimable(t *testing.T) {
	t.Parallel()
	s := testkit.MySQL(t)
	ctx := t.Context()
	putWebhook(t, s, "hook")
	enqueueOne(t, s)
	n, err := s.SequenceEvents(ctx, store.SequenceEventsParams{})
	require.NoError(t, err)
	require.Equal(t, 1, n)

	tx, err := s.DB().BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, `INSERT INTO hammerwork_jobs (id, queue_name, payload, errors, depends_on)
VALUES (UUID(), 'events', '{}', '[]', '[]')`)
	require.NoError(t, err)

	quick, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := s.ClaimSubscribers(quick, store.ClaimSubscribersParams{AgentID: "relay", Kinds: []string{store.SubscriberWebhook},
		Limit: 1, Duration: time.Minute})
	require.NoError(t, err)
	require.Len(t, got, 1, "the open enqueue holds no subscriber row")
	require.NoError(t, s.AckEvents(quick, store.AckEventsParams{Subscriber: got[0].ID, AgentID: "relay",
		ClaimToken: got[0].ClaimToken, State: store.SubscriberState{Cursor: 1}, Release: true}))

	require.NoError(t, tx.Rollback())
	n, err = s.SequenceEvents(ctx, store.SequenceEventsParams{})
	require.NoError(t, err)
	require.Zero(t, n, "the rolled-back insert wrote no event")
}

// TestEventsMigrationReRuns forgets that 0009 was applied, as if its
// migrator died before recording it: the tables and the flags row are kept,
// the triggers are replaced, and an enqueue still writes one event.
func TestEventsMigrationReRuns(t *testing.T) {
	t.Parallel()
	s := testkit.MySQL(t)
	ctx := t.Context()
	putWebhook(t, s, "hook")
	_, err := s.DB().ExecContext(ctx, `DELETE FROM hammerwork_migrations WHERE version = '0009_events'`)
	require.NoError(t, err)
	applied, err := s.Migrate(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"0009_events"}, applied)

	enqueueOne(t, s)
	n, err := s.SequenceEvents(ctx, store.SequenceEventsParams{})
	require.NoError(t, err)
	require.Equal(t, 1, n, "one event per enqueued job, from the enabled subscriber kept across the re-run")
	latest, err := s.LatestSeq(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), latest)
}
