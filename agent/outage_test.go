package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/metrics"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/store/postgres"
)

// dbProxy forwards TCP connections to the database while up; down closes
// its listener and every connection through it, so clients see what a
// stopped server gives them: broken connections, then connection refused.
type dbProxy struct {
	target, addr string

	mu     sync.Mutex
	ln     net.Listener // nil while down
	conns  map[net.Conn]bool
	serves sync.WaitGroup
}

func newDBProxy(t *testing.T, target string) *dbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &dbProxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(func() {
		p.down()
		p.serves.Wait()
	})
	return p
}

func (p *dbProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.serves.Add(1)
	go func() {
		defer p.serves.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.pipe(c)
		}
	}()
}

// pipe joins c to a new connection to the target, both closed when
// either side ends.
func (p *dbProxy) pipe(c net.Conn) {
	back, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil {
		p.mu.Unlock()
		_ = c.Close()
		_ = back.Close()
		return
	}
	p.conns[c], p.conns[back] = true, true
	p.mu.Unlock()
	end := func() {
		_ = c.Close()
		_ = back.Close()
		p.mu.Lock()
		delete(p.conns, c)
		delete(p.conns, back)
		p.mu.Unlock()
	}
	p.serves.Add(2)
	go func() { defer p.serves.Done(); defer end(); _, _ = io.Copy(back, c) }()
	go func() { defer p.serves.Done(); defer end(); _, _ = io.Copy(c, back) }()
}

// down refuses new connections and breaks the open ones.
func (p *dbProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
}

// up listens again on the same address.
func (p *dbProxy) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	require.NoError(t, err)
	p.serve(ln)
}

// leaseCalls is a PostgreSQL store that remembers when each lease call
// failed, by the queues it selected, so a test can see the gaps each
// producer leaves between them.
type leaseCalls struct {
	*postgres.Store
	mu     sync.Mutex
	failed map[string][]time.Time
}

func (s *leaseCalls) Lease(ctx context.Context, p store.LeaseParams) ([]*job.Job, error) {
	jobs, err := s.Store.Lease(ctx, p)
	if err != nil {
		s.mu.Lock()
		sel := fmt.Sprint(p.Queues, p.ExcludeQueues)
		s.failed[sel] = append(s.failed[sel], time.Now())
		s.mu.Unlock()
	}
	return jobs, err
}

// failures returns the times of the failed lease calls of each selection.
func (s *leaseCalls) failures() map[string][]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]time.Time, len(s.failed))
	for sel, at := range s.failed {
		out[sel] = slices.Clone(at)
	}
	return out
}

// proxiedPostgres opens a migrated store on a fresh schema, reached
// through a proxy the test can take down, and a direct store on the same
// schema.
func proxiedPostgres(t *testing.T) (*dbProxy, *leaseCalls, store.Store) {
	t.Helper()
	direct := testkit.PostgresURL(t)
	u, err := url.Parse(direct)
	if err != nil || u.Host == "" {
		t.Skip("needs HW_TEST_POSTGRES_URL as a postgres:// URL to put a proxy in front of it")
	}
	proxy := newDBProxy(t, u.Host)
	u.Host = proxy.addr
	open := func(dsn string) *postgres.Store {
		s, err := postgres.Open(t.Context(), postgres.Config{URL: dsn, MaxConns: 4})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	viaProxy := open(u.String())
	_, err = viaProxy.Migrate(t.Context())
	require.NoError(t, err)
	return proxy, &leaseCalls{Store: viaProxy, failed: map[string][]time.Time{}}, open(direct)
}

// startLogged runs an agent built from p until the test ends and returns
// it with its debug logs.
func startLogged(t *testing.T, p Params) *running {
	t.Helper()
	logs := &testkit.Buffer{}
	p.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(p)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Agent: a, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		require.NoError(t, r.stop(t))
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})
	return r
}

// gaugeValue reads an unlabelled gauge or counter from m's registry.
func gaugeValue(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		mt := mf.GetMetric()[0]
		if mt.Gauge != nil {
			return mt.GetGauge().GetValue()
		}
		return mt.GetCounter().GetValue()
	}
	t.Fatalf("metric %s missing", name)
	return 0
}

// logLines returns the lines of logs that match pattern.
func logLines(logs *testkit.Buffer, pattern string) []string {
	re := regexp.MustCompile(pattern)
	var out []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

// An agent whose database goes away logs the outage once, with its cause,
// however many polls it lasts and however many producers see it; each
// producer spaces its lease calls further and further apart instead of
// calling every poll_interval; the agent shows the outage in
// hammerwork_db_up and hammerwork_db_outages_total; and logs once, with
// the outage's length, that the database is back, then works again.
func TestDatabaseOutageIsLoggedOnceAndLeasesBackOff(t *testing.T) {
	t.Parallel()
	proxy, s, direct := proxiedPostgres(t)
	a := newApp(t, ok)
	cfg := testConfig(t, a)
	// Only the producers call the database on their own during the
	// outage: no rescue, workflow expiry or retention pass falls in it.
	cfg.Agent.RescueInterval = job.Duration(time.Hour)
	cfg.Retention.Interval = 0
	// Two producers: one for "q", one for every other queue.
	cfg.Queues = []QueueConfig{{Name: "q", Concurrency: 2}}
	poll := cfg.Agent.PollInterval.D()
	mets := metrics.New()
	r := startLogged(t, Params{Config: cfg, Store: s, Metrics: mets})
	waitStatus(t, direct, enqueue(t, direct, store.NewJob{Queue: "q"}, store.NewJob{Queue: "other"}), job.StatusCompleted)

	proxy.down()
	downAt := time.Now()
	eventually(t, "six failed lease calls of each producer", func() bool {
		f := s.failures()
		for _, failed := range f {
			if len(failed) < 6 {
				return false
			}
		}
		return len(f) == 2
	})
	failures := s.failures()
	outage := time.Since(downAt)

	unavailable := logLines(r.logs, `level=ERROR msg="database unavailable`)
	require.Len(t, unavailable, 1, "one ERROR line for an outage of %s (%d poll intervals)", outage, outage/poll)
	require.Contains(t, unavailable[0], "error=", "the line names the cause")
	require.Empty(t, logLines(r.logs, `level=ERROR msg="lease failed`), "no ERROR line per failed poll")
	// The enqueue listener (LISTEN on PostgreSQL) lost its connection too:
	// it reports to the same outage and re-listens with the same backoff,
	// not once per poll_interval, logging its attempts at DEBUG only.
	require.Empty(t, logLines(r.logs, `level=(WARN|ERROR) msg="listening for enqueued jobs failed`), "no listener line above DEBUG during the outage")
	listens := logLines(r.logs, `level=DEBUG msg="listening for enqueued jobs failed`)
	require.NotEmpty(t, listens, "the listener tried to listen again during the outage")
	require.Less(t, len(listens), int(outage/poll)/2, "the listener backs off instead of following poll_interval: %d attempts in %s", len(listens), outage)
	total := 0
	var first, last time.Time
	for sel, failed := range failures {
		total += len(failed)
		require.Less(t, len(failed), int(outage/poll)/2, "%s: lease calls back off instead of following poll_interval", sel)
		var gaps []time.Duration
		for i := 1; i < len(failed); i++ {
			gaps = append(gaps, failed[i].Sub(failed[i-1]))
		}
		require.Greater(t, gaps[len(gaps)-1], 4*gaps[0], "%s: the gaps between failed lease calls grow: %v", sel, gaps)
		require.GreaterOrEqual(t, gaps[len(gaps)-1], 4*poll, "%s: gaps %v", sel, gaps)
		if first.IsZero() || failed[0].Before(first) {
			first = failed[0]
		}
		if end := failed[len(failed)-1]; end.After(last) {
			last = end
		}
	}
	require.Equal(t, 0.0, gaugeValue(t, mets, "hammerwork_db_up"))
	require.Equal(t, 1.0, gaugeValue(t, mets, "hammerwork_db_outages_total"))
	require.GreaterOrEqual(t, gaugeValue(t, mets, "hammerwork_db_errors_total"), float64(total))

	proxy.up(t)
	eventually(t, "the agent sees the database again", func() bool {
		return len(logLines(r.logs, `msg="database available again`)) > 0
	})
	back := logLines(r.logs, `level=INFO msg="database available again`)
	require.Len(t, back, 1)
	m := regexp.MustCompile(` duration=(\S+)`).FindStringSubmatch(back[0])
	require.NotNil(t, m, "the recovery line says how long the outage lasted: %s", back[0])
	lasted, err := time.ParseDuration(m[1])
	require.NoError(t, err)
	require.GreaterOrEqual(t, lasted, last.Sub(first))
	require.Equal(t, 1.0, gaugeValue(t, mets, "hammerwork_db_up"))
	require.Equal(t, 1.0, gaugeValue(t, mets, "hammerwork_db_outages_total"))
	waitStatus(t, direct, enqueue(t, direct, store.NewJob{Queue: "q"}, store.NewJob{Queue: "other"}), job.StatusCompleted)
	require.Len(t, logLines(r.logs, `msg="database unavailable`), 1, "still one outage")
}
