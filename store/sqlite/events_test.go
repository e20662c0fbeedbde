package sqlite

import (
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/store"
)

func putWebhook(t *testing.T, s *Store, name string, enabled bool) *store.Subscriber {
	t.Helper()
	sub, _, err := s.PutSubscriber(t.Context(), store.PutSubscriberParams{Def: store.SubscriberDef{
		Name: name, Kind: store.SubscriberWebhook, Source: store.SourceAPI,
		Config: json.RawMessage(`{"url":"https://example.test"}`), Enabled: enabled,
	}})
	require.NoError(t, err)
	return sub
}

func countEvents(t *testing.T, s *Store) (all, unsequenced int) {
	t.Helper()
	require.NoError(t, s.read.QueryRowContext(t.Context(),
		`SELECT count(*), count(*) - count(seq) FROM hammerwork_events`).Scan(&all, &unsequenced))
	return all, unsequenced
}

func TestTriggersWriteOnlyWhileASubscriberIsEnabled(t *testing.T) {
	t.Parallel()
	s := openMigrated(t, MemoryURL)
	enqueue := func() {
		_, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: []store.NewJob{{Queue: "q"}}})
		require.NoError(t, err)
	}
	enqueue()
	putWebhook(t, s, "off", false)
	enqueue()
	all, _ := countEvents(t, s)
	require.Zero(t, all, "no enabled subscriber: the triggers write nothing")

	putWebhook(t, s, "on", true)
	enqueue()
	all, unsequenced := countEvents(t, s)
	require.Equal(t, 1, all)
	require.Equal(t, 1, unsequenced, "the trigger leaves seq to SequenceEvents")
}

func TestTriggerStampsAV4IDAndTheFixedTimeFormat(t *testing.T) {
	t.Parallel()
	s := openMigrated(t, MemoryURL)
	putWebhook(t, s, "w", true)
	news := make([]store.NewJob, 200)
	for i := range news {
		news[i].Queue = "q"
	}
	_, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: news})
	require.NoError(t, err)

	ids, err := store.QueryStrings(t.Context(), s.read, `SELECT id FROM hammerwork_events`)
	require.NoError(t, err)
	require.Len(t, ids, len(news))
	v4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	variants := map[byte]bool{}
	for _, id := range ids {
		require.Regexp(t, v4, id)
		variants[id[19]] = true
	}
	require.Len(t, variants, 4, "the variant nibble takes all of 8, 9, a and b")

	times, err := store.QueryStrings(t.Context(), s.read, `SELECT DISTINCT occurred_at FROM hammerwork_events`)
	require.NoError(t, err)
	for _, at := range times {
		require.Regexp(t, `^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$`, at)
		parsed, err := store.ParseTextTime(at)
		require.NoError(t, err)
		require.WithinDuration(t, time.Now(), parsed, time.Minute)
	}
}

func TestUpdatesThatKeepTheStatusWriteNoEvent(t *testing.T) {
	t.Parallel()
	s := openMigrated(t, MemoryURL)
	putWebhook(t, s, "w", true)
	jobs, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: []store.NewJob{{Queue: "q"}}})
	require.NoError(t, err)
	for _, q := range []string{
		`UPDATE hammerwork_jobs SET priority = 3 WHERE id = ?`,
		`UPDATE hammerwork_jobs SET status = 'pending', attempts = attempts + 1 WHERE id = ?`,
	} {
		_, err := s.write.ExecContext(t.Context(), q, jobs[0].ID.String())
		require.NoError(t, err)
	}
	all, _ := countEvents(t, s)
	require.Equal(t, 1, all, "only the enqueue wrote an event")
}

func TestSequenceEventsNumbersInPosOrderUpToTheLimit(t *testing.T) {
	t.Parallel()
	s := openMigrated(t, MemoryURL)
	putWebhook(t, s, "w", true)
	for range 5 {
		_, err := s.Enqueue(t.Context(), store.EnqueueParams{Jobs: []store.NewJob{{Queue: "q"}}})
		require.NoError(t, err)
	}
	n, err := s.SequenceEvents(t.Context(), store.SequenceEventsParams{Limit: 3})
	require.NoError(t, err)
	require.Equal(t, 3, n)
	n, err = s.SequenceEvents(t.Context(), store.SequenceEventsParams{Limit: 3})
	require.NoError(t, err)
	require.Equal(t, 2, n, "the rest")
	n, err = s.SequenceEvents(t.Context(), store.SequenceEventsParams{})
	require.NoError(t, err)
	require.Zero(t, n, "nothing left")

	rows, err := s.read.QueryContext(t.Context(), `SELECT pos, seq FROM hammerwork_events ORDER BY pos`)
	require.NoError(t, err)
	defer rows.Close()
	var seqs []int64
	for rows.Next() {
		var pos, seq int64
		require.NoError(t, rows.Scan(&pos, &seq))
		seqs = append(seqs, seq)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []int64{1, 2, 3, 4, 5}, seqs, "seq follows pos")
	latest, err := s.LatestSeq(t.Context())
	require.NoError(t, err)
	require.Equal(t, int64(5), latest)
}
