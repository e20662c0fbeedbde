package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/mysql"
	"github.com/hammerwork-go/hw-agent/store/postgres"
	"github.com/hammerwork-go/hw-agent/store/sqlite"
)

// hookSecret signs the deliveries of the events tests; the agents read it
// from HW_WEBHOOK_ALL_SECRET, as the file's "env:" reference says.
const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// eventsBatch is the tests' events.batch: the most events a relay hands a
// webhook before acknowledging them.
const eventsBatch = 20

// slowReceiver is how long the slowed receiver takes to answer: slow enough
// that a workflow's events are still being delivered when it has
// completed, so a kill lands mid-batch.
const slowReceiver = 300 * time.Millisecond

// hookArrival is one delivery the receiver accepted: a verified signature
// over a well-formed event.
type hookArrival struct {
	events.Event
	hook      string // the webhook's path: which subscriber sent it
	msgID     string
	userAgent string
}

// hookReceiver is the webhook endpoint of the events tests: it verifies
// each delivery's Standard Webhooks signature with dispatch.Signature and
// records the events it accepted, in the order it answered them. It can
// be slowed down (each answer waits delay, so a batch is in flight when an
// agent is killed) or taken down (503 to everything). A delivery whose
// sender went away before the answer is not recorded: the receiver never
// acknowledged it, so it must come again.
type hookReceiver struct {
	srv *httptest.Server
	key []byte

	mu       sync.Mutex
	got      []hookArrival
	inFlight int
	refused  int // 503s answered while down
	forged   []string
	delay    time.Duration
	down     bool
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	key, err := dispatch.SigningKey(hookSecret)
	require.NoError(t, err)
	rc := &hookReceiver{key: key}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	id := r.Header.Get(dispatch.HeaderWebhookID)
	ts, tsErr := strconv.ParseInt(r.Header.Get(dispatch.HeaderWebhookTimestamp), 10, 64)
	want := dispatch.Signature(rc.key, id, ts, body)
	var e events.Event
	decodeErr := json.Unmarshal(body, &e)

	rc.mu.Lock()
	switch {
	case tsErr != nil || !slices.Contains(strings.Fields(r.Header.Get(dispatch.HeaderWebhookSignature)), want):
		rc.forged = append(rc.forged, fmt.Sprintf("%s %s", r.Header, body))
		rc.mu.Unlock()
		http.Error(w, "signature does not verify", http.StatusUnauthorized)
		return
	case decodeErr != nil:
		rc.forged = append(rc.forged, fmt.Sprintf("%v: %s", decodeErr, body))
		rc.mu.Unlock()
		http.Error(w, decodeErr.Error(), http.StatusBadRequest)
		return
	case rc.down:
		rc.refused++
		rc.mu.Unlock()
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	delay := rc.delay
	rc.inFlight++
	rc.mu.Unlock()

	gone := false
	if delay > 0 {
		select {
		case <-time.After(delay): // the receiver's own slowness
		case <-r.Context().Done():
			gone = true
		}
	}
	rc.mu.Lock()
	rc.inFlight--
	if !gone {
		rc.got = append(rc.got, hookArrival{Event: e, hook: strings.TrimPrefix(r.URL.Path, "/"), msgID: id, userAgent: r.UserAgent()})
	}
	rc.mu.Unlock()
	if !gone {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (rc *hookReceiver) set(f func(rc *hookReceiver)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	f(rc)
}

// arrivals returns what the receiver accepted from one webhook, in order.
func (rc *hookReceiver) arrivals(hook string) []hookArrival {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []hookArrival
	for _, a := range rc.got {
		if a.hook == hook {
			out = append(out, a)
		}
	}
	return out
}

func (rc *hookReceiver) stats() (accepted, inFlight, refused int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got), rc.inFlight, rc.refused
}

// eventsSetup is one database with the events tests' configuration.
type eventsSetup struct {
	t     *testing.T
	dbURL string
	cfg   string
	st    store.Store
	app   *workflowApp
	rc    *hookReceiver
}

// newEventsSetup migrates a database of the backend, writes a
// configuration subscribing the receiver to every event under each name of
// hooks (path /<name>), with a short relay interval and claim_ttl so a
// killed agent's subscriber is taken over within seconds, and retries
// that outlast any outage the tests make.
func newEventsSetup(t *testing.T, b testkit.Backend, hooks ...string) *eventsSetup {
	t.Helper()
	s := &eventsSetup{t: t, dbURL: b.URL(t), app: newWorkflowApp(t, nil, nil), rc: newHookReceiver(t)}
	migrate(t, s.dbURL)
	s.st = openTestStore(t, s.dbURL)
	var cfg strings.Builder
	cfg.WriteString(`
[events]
interval = "100ms"
claim_ttl = "2s"
batch = ` + strconv.Itoa(eventsBatch) + `
`)
	for _, h := range hooks {
		fmt.Fprintf(&cfg, `
[[webhook]]
name = %q
url = "%s/%s"
secrets = ["env:HW_WEBHOOK_ALL_SECRET"]
concurrency = 4
max_attempts = 1000
retry_initial = "100ms"
retry_max = "500ms"
max_failures = 1000
`, h, s.rc.srv.URL, h)
	}
	s.cfg = filepath.Join(t.TempDir(), "hw-agent.toml")
	require.NoError(t, os.WriteFile(s.cfg, []byte(cfg.String()), 0o600))
	return s
}

// start runs an agent on the setup's database and configuration and
// waits until it is ready: /readyz answers 200 only once the agent has
// written its [[webhook]] entries, so no change made after it precedes the
// webhook's cursor.
func (s *eventsSetup) start(id string) *agentProc {
	s.t.Helper()
	a := startAgent(s.t, map[string]string{
		"HW_CONFIG":              s.cfg,
		"HW_DATABASE_URL":        s.dbURL,
		"HW_DATABASE_MAX_CONNS":  "4",
		"HW_AGENT_ID":            id,
		"HW_APP_HANDLER_URL":     s.app.srv.URL + "/jobs/{queue}",
		"HW_API_LISTEN":          freeAddr(s.t),
		"HW_AGENT_POLL_INTERVAL": "50ms",
		"HW_WEBHOOK_ALL_SECRET":  hookSecret,
	})
	return a
}

// runFanOut posts a workflow of one step, n steps after it and one after
// those, and waits until it completed: n+2 jobs, each enqueued, started
// and completed.
func (s *eventsSetup) runFanOut(a *agentProc, n int) []string {
	s.t.Helper()
	steps := []map[string]any{step("begin", nil, "")}
	var chunks []string
	for i := range n {
		name := fmt.Sprintf("chunk-%d", i)
		chunks = append(chunks, name)
		steps = append(steps, step(name, []string{"begin"}, ""))
	}
	steps = append(steps, step("gather", chunks, ""))
	id, jobs := postWorkflow(s.t, a, map[string]any{"name": "fan-out", "jobs": steps})
	waitWorkflow(s.t, a, id, "completed")
	ids := make([]string, 0, len(jobs))
	for _, j := range jobs {
		ids = append(ids, j)
	}
	return ids
}

// outbox returns every sequenced event in the database, in seq order.
func (s *eventsSetup) outbox() []store.EventRecord {
	s.t.Helper()
	var out []store.EventRecord
	for {
		page, err := s.st.ReadEvents(context.Background(), store.ReadEventsParams{AfterSeq: lastSeq(out), Limit: 500})
		require.NoError(s.t, err)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
	}
}

func lastSeq(recs []store.EventRecord) int64 {
	if len(recs) == 0 {
		return 0
	}
	return recs[len(recs)-1].Seq
}

// waitAllDelivered polls until every job has its enqueued, started and
// completed events in the outbox and every outbox event has reached the
// receiver from hook, then checks the delivery guarantee: no event lost,
// a repeat is the same event (same id, seq and type), at most maxCopies
// arrivals of one event, each job's events first arriving in seq order,
// and the webhook-id being the event's id. It returns the arrivals.
func (s *eventsSetup) waitAllDelivered(hook string, jobs []string, maxCopies int) []hookArrival {
	s.t.Helper()
	var outbox []store.EventRecord
	var got []hookArrival
	poll(s.t, fmt.Sprintf("every event of %d jobs to reach webhook %q", len(jobs), hook), func() (bool, string) {
		outbox = s.outbox()
		got = s.rc.arrivals(hook)
		perJob := map[string]int{}
		for _, r := range outbox {
			if r.JobID != nil {
				perJob[r.JobID.String()]++
			}
		}
		for _, j := range jobs {
			if perJob[j] < 3 {
				return false, fmt.Sprintf("job %s has %d events in the outbox", j, perJob[j])
			}
		}
		seen := map[uuid.UUID]bool{}
		for _, a := range got {
			seen[a.ID] = true
		}
		missing := 0
		for _, r := range outbox {
			if !seen[r.ID] {
				missing++
			}
		}
		accepted, inFlight, refused := s.rc.stats()
		return missing == 0, fmt.Sprintf("%d of %d outbox events not received (receiver: %d accepted, %d in flight, %d refused)",
			missing, len(outbox), accepted, inFlight, refused)
	})

	s.rc.mu.Lock()
	forged := slices.Clone(s.rc.forged)
	s.rc.mu.Unlock()
	require.Empty(s.t, forged, "deliveries whose signature did not verify")

	byID := map[uuid.UUID]store.EventRecord{}
	for _, r := range outbox {
		byID[r.ID] = r
	}
	copies := map[uuid.UUID]int{}
	firsts := map[string][]hookArrival{} // by job, each event's first arrival
	for _, a := range got {
		require.Equal(s.t, a.ID.String(), a.msgID, "the webhook-id is the event's id")
		r, ok := byID[a.ID]
		require.True(s.t, ok, "event %s (%s, seq %d) arrived but is not in the outbox", a.ID, a.Type, a.Seq)
		require.Equal(s.t, r.Seq, a.Seq, "event %s: a repeat is the same event", a.ID)
		require.Equal(s.t, events.TypeOf(r), a.Type, "event %s", a.ID)
		copies[a.ID]++
		if copies[a.ID] == 1 && a.JobID != nil {
			firsts[a.JobID.String()] = append(firsts[a.JobID.String()], a)
		}
	}
	for id, n := range copies {
		require.LessOrEqual(s.t, n, maxCopies, "event %s (%s) arrived %d times", id, events.TypeOf(byID[id]), n)
	}
	for _, j := range jobs {
		var types []string
		var seqs []int64
		for _, a := range firsts[j] {
			types = append(types, a.Type)
			seqs = append(seqs, a.Seq)
		}
		require.True(s.t, slices.IsSorted(seqs), "job %s: events first arrived out of seq order: %v %v", j, types, seqs)
		require.Equal(s.t, []string{events.JobEnqueued, events.JobStarted, events.JobCompleted}, types, "job %s", j)
	}
	return got
}

// openTestStore opens the store of a database URL for the test to read
// the outbox, closed at cleanup.
func openTestStore(t *testing.T, dbURL string) store.Store {
	t.Helper()
	kind, err := store.ParseDatabaseURL(dbURL)
	require.NoError(t, err)
	ctx := context.Background()
	var st store.Store
	switch kind {
	case store.DatabasePostgres:
		st, err = postgres.Open(ctx, postgres.Config{URL: dbURL, MaxConns: 2})
	case store.DatabaseMySQL:
		st, err = mysql.Open(ctx, mysql.Config{URL: dbURL, MaxConns: 2})
	default:
		st, err = sqlite.Open(ctx, sqlite.Config{URL: dbURL})
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// kill9 ends an agent with SIGKILL, as a crash would, and waits for it.
func kill9(t *testing.T, a *agentProc) {
	t.Helper()
	require.NoError(t, a.cmd.Process.Kill())
	<-a.done
}

// A webhook from the configuration, subscribed to every event, receives
// each job of a workflow run through the app as enqueued, started and
// completed, in order, once each, signed; and the workflow's own start and
// end.
func TestWebhookReceivesEveryEventOfAWorkflow(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			s := newEventsSetup(t, b, "all")
			a := s.start("events-a")
			jobs := s.runFanOut(a, 4)
			s.waitAllDelivered("all", jobs, 1)
			var wf []string
			poll(t, "the workflow's start and completion events", func() (bool, string) {
				wf = wf[:0]
				for _, e := range s.rc.arrivals("all") {
					if e.JobID == nil && e.WorkflowID != nil {
						wf = append(wf, e.Type)
					}
				}
				return len(wf) >= 2, fmt.Sprintf("%v", wf)
			})
			require.Equal(t, []string{events.WorkflowStarted, events.WorkflowCompleted}, wf)
			require.NoError(t, a.stop(waitLimit))
		})
	}
}

// SIGKILL to the agent while a slow receiver has deliveries in flight, then
// a new agent: it takes the webhook over once the dead one's claim lapses
// and delivers from the last acknowledged event, so nothing is lost, a
// repeat carries the same id, and each job's events still arrive in order.
func TestWebhookDeliveryResumesAfterTheAgentIsKilled(t *testing.T) {
	t.Parallel()
	for _, b := range []testkit.Backend{testkit.PostgresBackend, testkit.MySQLBackend} {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			s := newEventsSetup(t, b, "all")
			s.rc.set(func(rc *hookReceiver) { rc.delay = slowReceiver })
			a := s.start("events-a")
			jobs := s.runFanOut(a, 20)
			poll(t, "deliveries in flight after some were acknowledged", func() (bool, string) {
				accepted, inFlight, _ := s.rc.stats()
				return accepted >= 10 && inFlight > 0, fmt.Sprintf("%d accepted, %d in flight", accepted, inFlight)
			})
			kill9(t, a)
			accepted, _, _ := s.rc.stats()
			require.Less(t, accepted, 3*len(jobs), "the kill landed before every job event was delivered")

			s.rc.set(func(rc *hookReceiver) { rc.delay = 0 })
			next := s.start("events-b")
			got := s.waitAllDelivered("all", jobs, 3)
			t.Logf("%d events, %d arrivals, %d before the kill", len(s.outbox()), len(got), accepted)
			require.NoError(t, next.stop(waitLimit))
		})
	}
}

// A receiver that answers 503 for a while: the relay keeps retrying the
// first event it owes (the rest of each job waits behind it) and, once the
// receiver is back, delivers everything in order.
func TestWebhookCatchesUpAfterTheReceiverWasDown(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			s := newEventsSetup(t, b, "all")
			s.rc.set(func(rc *hookReceiver) { rc.down = true })
			a := s.start("events-a")
			jobs := s.runFanOut(a, 5)
			poll(t, "the receiver to refuse several retries", func() (bool, string) {
				_, _, refused := s.rc.stats()
				return refused >= 5, fmt.Sprintf("%d refused", refused)
			})
			accepted, _, _ := s.rc.stats()
			require.Zero(t, accepted)
			s.rc.set(func(rc *hookReceiver) { rc.down = false })
			// Events of other jobs go beside the one being retried, so a batch
			// in flight as the receiver comes back may have some accepted while
			// its head still got a 503: those are sent again after it, with
			// their ids (at least once, never lost).
			s.waitAllDelivered("all", jobs, 2)
			require.NoError(t, a.stop(waitLimit))
		})
	}
}

// Two agents on one database with two webhooks: every event reaches each
// webhook, each delivery sent by one of the agents, with one of them killed
// mid-delivery and restarted: apart from the repeats of that crash (events
// the killed agent sent and never acknowledged), one arrival per event.
func TestTwoAgentsDeliverEveryEventOnce(t *testing.T) {
	t.Parallel()
	for _, b := range []testkit.Backend{testkit.PostgresBackend, testkit.MySQLBackend} {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			s := newEventsSetup(t, b, "left", "right")
			s.rc.set(func(rc *hookReceiver) { rc.delay = slowReceiver })
			agents := map[string]*agentProc{"events-a": s.start("events-a"), "events-b": s.start("events-b")}
			jobs := s.runFanOut(agents["events-a"], 20)

			var victim string
			poll(t, "a delivery in flight", func() (bool, string) {
				accepted, inFlight, _ := s.rc.stats()
				if accepted < 10 || inFlight == 0 {
					return false, fmt.Sprintf("%d accepted, %d in flight", accepted, inFlight)
				}
				got := s.rc.arrivals("left")
				if len(got) == 0 {
					return false, "nothing on the left webhook yet"
				}
				victim = senderOf(got[len(got)-1], []string{"events-a", "events-b"})
				return victim != "", fmt.Sprintf("user agent %q", got[len(got)-1].userAgent)
			})
			kill9(t, agents[victim])
			agents[victim] = s.start(victim + "-again")
			senders := []string{"events-a", "events-b", victim + "-again"}
			s.rc.set(func(rc *hookReceiver) { rc.delay = 0 })

			for _, hook := range []string{"left", "right"} {
				got := s.waitAllDelivered(hook, jobs, 3)
				perID := map[uuid.UUID]int{}
				first := map[uuid.UUID]string{}
				for _, a := range got {
					sender := senderOf(a, senders)
					require.NotEmpty(t, sender, "webhook %s: a delivery from an unknown sender %q", hook, a.userAgent)
					perID[a.ID]++
					if perID[a.ID] == 1 {
						first[a.ID] = sender
					}
				}
				for id, n := range perID {
					if n > 1 {
						require.Equal(t, victim, first[id], "webhook %s: event %s came %d times, first from a live agent; only the killed agent's unacknowledged deliveries repeat", hook, id, n)
					}
				}
				repeats := 0
				for _, n := range perID {
					repeats += n - 1
				}
				t.Logf("webhook %s: %d events, %d repeats after the kill", hook, len(perID), repeats)
				require.LessOrEqual(t, repeats, 2*eventsBatch, "webhook %s: repeats only of what the killed agent had not acknowledged", hook)
			}
			for _, a := range agents {
				require.NoError(t, a.stop(waitLimit))
			}
		})
	}
}

// senderOf is the one of ids the delivery's User-Agent names, or "".
func senderOf(a hookArrival, ids []string) string {
	for _, id := range ids {
		if strings.Contains(a.userAgent, "("+id+")") {
			return id
		}
	}
	return ""
}
