package main

import (
	"bufio"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/agent"
	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/store"
)

// tailWait bounds how long a test waits for a tail to print what
// committed: it polls every 250ms.
const tailWait = 10 * time.Second

// runningTail is an `events tail` running in-process until stopped.
type runningTail struct {
	stdout, stderr *testkit.Buffer
	stop           func() int
}

func startTail(t *testing.T, db string, args ...string) *runningTail {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rt := &runningTail{stdout: &testkit.Buffer{}, stderr: &testkit.Buffer{}}
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, append([]string{"events", "tail", "--database-url", db}, args...), rt.stdout, rt.stderr, nil)
	}()
	stopped := false
	code := 0
	rt.stop = func() int {
		if !stopped {
			cancel()
			code, stopped = <-done, true
		}
		return code
	}
	t.Cleanup(func() { rt.stop() })
	return rt
}

func tails(t *testing.T, st store.Store) []*store.Subscriber {
	t.Helper()
	page, err := st.ListSubscribers(context.Background(), store.ListSubscribersParams{Kind: store.SubscriberTail})
	require.NoError(t, err)
	return page.Subscribers
}

func waitForTails(t *testing.T, st store.Store, n int) []*store.Subscriber {
	t.Helper()
	var subs []*store.Subscriber
	testkit.Eventually(t, tailWait, "the tail's subscriber", func() bool {
		subs = tails(t, st)
		return len(subs) == n
	})
	return subs
}

// TestEventsTailFollowsTheOutboxWithoutAnAgent runs the tail on every
// backend with no agent running: it registers its own subscriber, prints
// the events of its queue as they commit, moves its cursor, and removes
// the subscriber when interrupted.
func TestEventsTailFollowsTheOutboxWithoutAnAgent(t *testing.T) {
	t.Parallel()
	for _, b := range []testkit.Backend{testkit.SQLiteBackend, testkit.PostgresBackend, testkit.MySQLBackend} {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			db := b.URL(t)
			requireOK(t, hw(t, nil, "migrate", "--database-url", db))
			st, err := openStore(context.Background(), agent.DatabaseConfig{URL: db})
			require.NoError(t, err)
			defer st.Close()

			tail := startTail(t, db, "--queue", "invoices")
			sub := waitForTails(t, st, 1)[0]
			require.True(t, strings.HasPrefix(sub.Name, "tail-"), sub.Name)
			require.True(t, sub.Enabled)
			require.Equal(t, store.SourceAPI, sub.Source)

			invoice := enqueueJSON(t, db, "--queue", "invoices")
			email := enqueueJSON(t, db, "--queue", "emails")
			requireOK(t, hw(t, nil, "job", "cancel", invoice.ID.String(), "--database-url", db))

			testkit.Poll(t, tailWait, 10*time.Millisecond, "the invoice's enqueue and cancel", func() (bool, string) {
				out := tail.stdout.String()
				return strings.Contains(out, "job.cancelled"), out
			})
			out := tail.stdout.String()
			require.Regexp(t, `^TIME\s+SEQ\s+TYPE\s+QUEUE\s+JOB\s+STATUS\s+ERROR\n`, out)
			require.Regexp(t, `\S+Z\s+\d+\s+job\.enqueued\s+invoices\s+`+invoice.ID.String()+`\s+pending\s+-\n`, out)
			require.Regexp(t, `\S+Z\s+\d+\s+job\.cancelled\s+invoices\s+`+invoice.ID.String()+`\s+cancelled\s+`, out)
			require.NotContains(t, out, email.ID.String(), "--queue filters")
			require.Less(t, strings.Index(out, "job.enqueued"), strings.Index(out, "job.cancelled"), "in commit order")

			latest, err := st.LatestSeq(context.Background())
			require.NoError(t, err)
			require.EqualValues(t, 3, latest, "three events were written while the tail ran")
			testkit.Eventually(t, tailWait, "the tail's cursor to pass every event", func() bool {
				got, err := st.GetSubscriber(context.Background(), sub.ID)
				return err == nil && got.Cursor == latest
			})

			require.Equal(t, 0, tail.stop(), tail.stderr.String())
			require.Empty(t, tails(t, st), "the tail removes its subscriber on exit")
		})
	}
}

// TestEventsTailFromSeqPrintsJSONLines starts a second tail at seq 1, after
// the first tail made the outbox write an event, and reads it as JSON.
func TestEventsTailFromSeqPrintsJSONLines(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	st := testkit.SQLiteAt(t, db)

	first := startTail(t, db)
	waitForTails(t, st, 1)
	j := enqueueJSON(t, db, "--queue", "emails", "--priority", "high")
	testkit.Poll(t, tailWait, 10*time.Millisecond, "the first tail's event", func() (bool, string) {
		out := first.stdout.String()
		return strings.Contains(out, j.ID.String()), out
	})

	second := startTail(t, db, "--from-seq", "1", "--type", "job.enqueued", "--output", "json")
	testkit.Poll(t, tailWait, 10*time.Millisecond, "the second tail's JSON line", func() (bool, string) {
		out := second.stdout.String()
		return strings.Contains(out, "\n"), out
	})
	require.Equal(t, 0, second.stop(), second.stderr.String())
	lines := bufio.NewScanner(strings.NewReader(second.stdout.String()))
	var got []events.Event
	for lines.Scan() {
		var e events.Event
		require.NoError(t, json.Unmarshal(lines.Bytes(), &e), lines.Text())
		got = append(got, e)
	}
	require.Len(t, got, 1)
	require.EqualValues(t, 1, got[0].Seq)
	require.Equal(t, events.JobEnqueued, got[0].Type)
	require.Equal(t, j.ID, *got[0].JobID)
	require.Equal(t, 3, *got[0].Priority)

	require.Equal(t, 0, first.stop(), first.stderr.String())
	require.Empty(t, tails(t, st))
}

func TestEventsTailRefusesAnUnknownType(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	r := hw(t, nil, "events", "tail", "--type", "job.exploded", "--database-url", db)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `--type: "job.exploded" matches no event type`)
	require.Empty(t, tails(t, testkit.SQLiteAt(t, db)), "nothing is registered")
}

// TestEventsTailRegistersAgainWhenCleanedUp: an agent's cleanup removes a
// tail that has not claimed its subscriber for a while (none while idle);
// the tail registers again and goes on printing.
func TestEventsTailRegistersAgainWhenCleanedUp(t *testing.T) {
	t.Parallel()
	db := newDB(t, true)
	st := testkit.SQLiteAt(t, db)
	tail := startTail(t, db)
	before := waitForTails(t, st, 1)[0]

	_, err := st.CleanupEvents(context.Background(), store.CleanupEventsParams{Retention: time.Hour, Now: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	// The tail learns of the removal when it next renews its claim.
	testkit.Eventually(t, tailRenew+tailWait, "the tail registered again", func() bool {
		subs := tails(t, st)
		return len(subs) == 1 && subs[0].ID != before.ID
	})

	j := enqueueJSON(t, db, "--queue", "emails")
	testkit.Poll(t, tailWait, 10*time.Millisecond, "the event after the cleanup", func() (bool, string) {
		out := tail.stdout.String()
		return strings.Contains(out, j.ID.String()), out
	})
	require.Equal(t, 0, tail.stop(), tail.stderr.String())
	require.Contains(t, tail.stderr.String(), "registering it again")
	require.Empty(t, tails(t, st))
}
