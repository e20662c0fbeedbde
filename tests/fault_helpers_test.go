package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pgBinDir holds initdb and pg_ctl of the PostgreSQL the fault test runs
// privately; HW_TEST_PG_BIN overrides it.
const pgBinDir = "/usr/lib/postgresql/15/bin"

// privatePG is a PostgreSQL server of one test's own, on a free 127.0.0.1
// port in a temporary directory, so the test may crash and restart it
// without touching the shared server other tests use.
type privatePG struct {
	t    *testing.T
	bin  string
	dir  string // owned by the server's OS user
	data string
	port int
	// prefix runs a command as the server's OS user: initdb refuses root.
	prefix []string

	mu      sync.Mutex
	running bool
}

// startPrivatePG initdbs and starts a private server, and stops it and
// removes its files at cleanup. It skips when the PostgreSQL binaries are
// missing, unless HW_TEST_REQUIRE_DBS=1.
func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("HW_TEST_REQUIRE_DBS") == "1" {
			t.Fatalf("private PostgreSQL: %s (HW_TEST_REQUIRE_DBS=1)", msg)
		}
		t.Skipf("private PostgreSQL: %s; skipping", msg)
	}
	bin := pgBinDir
	if v := os.Getenv("HW_TEST_PG_BIN"); v != "" {
		bin = v
	}
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			unavailable("%s not found in %s (set HW_TEST_PG_BIN)", name, bin)
		}
	}

	// Directly under the system temp dir: t.TempDir's parents are private
	// to the test's user, and the server may run as another.
	dir, err := os.MkdirTemp("", "hw-fault-pg-")
	if err != nil {
		t.Fatalf("private PostgreSQL: %v", err)
	}
	pg := &privatePG{t: t, bin: bin, dir: dir, data: filepath.Join(dir, "data")}
	t.Cleanup(func() {
		pg.mu.Lock()
		running := pg.running
		pg.mu.Unlock()
		if running {
			if out, err := pg.ctl("-m", "immediate", "-w", "stop"); err != nil {
				t.Errorf("private PostgreSQL: pg_ctl stop at cleanup: %v\n%s", err, out)
			}
		}
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "server.log")); err == nil {
				t.Logf("private PostgreSQL server.log (last 4 KiB):\n%s", tail(log, 4096))
			}
		}
		_ = os.RemoveAll(dir)
	})

	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			unavailable("running as root, and there is no postgres OS user to run initdb as: %v", err)
		}
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			unavailable("running as root without runuser: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("private PostgreSQL: chown %s: %v", dir, err)
		}
		pg.prefix = []string{runuser, "-u", "postgres", "--"}
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("private PostgreSQL: find a free port: %v", err)
	}
	pg.port = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()

	if out, err := pg.run("initdb", "-D", pg.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--no-locale", "--no-sync", "--no-instructions"); err != nil {
		t.Fatalf("private PostgreSQL: initdb: %v\n%s", err, out)
	}
	if err := pg.start(); err != nil {
		t.Fatalf("%v", err)
	}
	return pg
}

// URL is the database URL of the server.
func (pg *privatePG) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

// run runs one PostgreSQL binary as the server's OS user.
func (pg *privatePG) run(name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string(nil), pg.prefix...), filepath.Join(pg.bin, name)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = pg.dir // the server's user may not enter the test's working directory
	return cmd.CombinedOutput()
}

func (pg *privatePG) ctl(args ...string) ([]byte, error) {
	return pg.run("pg_ctl", append([]string{"-D", pg.data}, args...)...)
}

// start starts the server and waits until it accepts connections. The log
// goes to a file, so the postmaster holds none of the test's pipes.
// fsync is off: the test crashes the server, never the machine.
func (pg *privatePG) start() error {
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off -c max_connections=200",
		pg.port, pg.dir)
	if out, err := pg.ctl("-l", filepath.Join(pg.dir, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		return fmt.Errorf("private PostgreSQL: pg_ctl start on port %d: %v\n%s", pg.port, err, out)
	}
	pg.mu.Lock()
	pg.running = true
	pg.mu.Unlock()
	return nil
}

// crash stops the server the way a crash would: `pg_ctl stop -m immediate`
// ends every backend at once, without a checkpoint; the next start recovers.
func (pg *privatePG) crash() error {
	out, err := pg.ctl("-m", "immediate", "-w", "stop")
	if err != nil {
		return fmt.Errorf("private PostgreSQL: pg_ctl stop -m immediate: %v\n%s", err, out)
	}
	pg.mu.Lock()
	pg.running = false
	pg.mu.Unlock()
	return nil
}

// tail returns the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// delivery is one request the fault app received for a job.
type delivery struct {
	Attempt int
	Token   string
	Proc    int // the fleet process that sent it (from the handler path /p/<n>/...)
	At      time.Time
	Status  int // what the app answered; 0 when the agent went away first
}

// faultApp is the app of the fault test. It answers by the payload:
//
//	{"kind": "ok"}     200 {"proceed": <the payload's, default true>, "attempt": n, "token": t}
//	{"kind": "flaky"}  500 on the job's first delivery, then as ok
//	{"kind": "fail"}   422: the job fails at once, with no retry
//
// after working for the payload's "ms" milliseconds (the request's context
// ends it early when the agent goes away). Every delivery is recorded
// before the work, with its Hammerwork-Attempt and Hammerwork-Lease-Token
// and the process that sent it: each agent of a fleet is given its own
// handler path, /p/<n>/jobs/{queue}.
type faultApp struct {
	srv *httptest.Server

	mu    sync.Mutex
	byJob map[string][]delivery
}

func newFaultApp(t *testing.T) *faultApp {
	t.Helper()
	app := &faultApp{byJob: map[string][]delivery{}}
	app.srv = httptest.NewServer(http.HandlerFunc(app.serve))
	t.Cleanup(app.srv.Close)
	return app
}

func (app *faultApp) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var p struct {
		Kind    string `json:"kind"`
		Proceed *bool  `json:"proceed"`
		MS      int    `json:"ms"`
	}
	_ = json.Unmarshal(body, &p)
	id := r.Header.Get("Hammerwork-Job-Id")
	attempt, _ := strconv.Atoi(r.Header.Get("Hammerwork-Attempt"))
	token := r.Header.Get("Hammerwork-Lease-Token")
	proc := -1
	if rest, ok := strings.CutPrefix(r.URL.Path, "/p/"); ok {
		if n, _, ok := strings.Cut(rest, "/"); ok {
			proc, _ = strconv.Atoi(n)
		}
	}

	app.mu.Lock()
	seen := len(app.byJob[id])
	app.byJob[id] = append(app.byJob[id], delivery{Attempt: attempt, Token: token, Proc: proc, At: time.Now()})
	idx := len(app.byJob[id]) - 1
	app.mu.Unlock()

	if p.MS > 0 {
		work := time.NewTimer(time.Duration(p.MS) * time.Millisecond)
		select {
		case <-work.C:
		case <-r.Context().Done():
			work.Stop()
			return
		}
	}

	status := http.StatusOK
	var resp []byte
	switch {
	case p.Kind == "fail":
		status = http.StatusUnprocessableEntity
		resp = []byte(`{"error": "told to fail"}`)
	case p.Kind == "flaky" && seen == 0:
		status = http.StatusInternalServerError
		resp = []byte(`{"error": "first delivery of a flaky job"}`)
	default:
		proceed := p.Proceed == nil || *p.Proceed
		resp = fmt.Appendf(nil, `{"proceed": %t, "attempt": %d, "token": %q}`, proceed, attempt, token)
	}
	app.mu.Lock()
	app.byJob[id][idx].Status = status
	app.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(resp)
}

// deliveries returns a copy of every job's deliveries.
func (app *faultApp) deliveries() map[string][]delivery {
	app.mu.Lock()
	defer app.mu.Unlock()
	out := make(map[string][]delivery, len(app.byJob))
	for id, d := range app.byJob {
		out[id] = append([]delivery(nil), d...)
	}
	return out
}

// fleetProc is one `hw-agent run` process of a fleet.
type fleetProc struct {
	n       int // its number in the fleet, from 1
	cmd     *exec.Cmd
	logPath string
	started time.Time
	killed  bool          // set before the fleet sends SIGKILL
	done    chan struct{} // closed when the process has exited
	err     error         // set before done is closed
	ended   time.Time     // set before done is closed
}

func (p *fleetProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// selfExit is a fleet process that ended without being killed.
type selfExit struct {
	started, ended time.Time
	msg            string
}

// fleet runs several agents on one database and kills and restarts them.
// It never calls t.Fatal off the test goroutine: what goes wrong in the
// kill loop is returned by stop.
type fleet struct {
	t      *testing.T
	bin    string
	logDir string
	env    func(n int) map[string]string // the environment of process number n

	mu        sync.Mutex
	slots     []*fleetProc
	all       []*fleetProc // every process started, for cleanup and logs
	kills     int
	starts    int
	selfExits []selfExit // processes that ended without being killed
	errs      []error
}

func newFleet(t *testing.T, n int, env func(n int) map[string]string) *fleet {
	t.Helper()
	f := &fleet{t: t, bin: binary(t), logDir: t.TempDir(), env: env, slots: make([]*fleetProc, n)}
	t.Cleanup(func() {
		f.killAll()
		if t.Failed() {
			f.logTails()
		}
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.slots {
		if err := f.startLocked(i); err != nil {
			t.Fatalf("start agent %d: %v", i, err)
		}
	}
	return f
}

// startLocked starts a new process in slot i. f.mu is held.
func (f *fleet) startLocked(i int) error {
	f.starts++
	logPath := filepath.Join(f.logDir, fmt.Sprintf("agent-%d-%03d.log", i, f.starts))
	out, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(f.bin, "run")
	cmd.Env = childEnv(f.env(f.starts))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start hw-agent run: %w", err)
	}
	p := &fleetProc{n: f.starts, cmd: cmd, logPath: logPath, started: time.Now(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.ended = time.Now()
		out.Close()
		close(p.done)
	}()
	f.slots[i] = p
	f.all = append(f.all, p)
	return nil
}

// killLocked sends SIGKILL to slot i's process and waits for it to exit.
func (f *fleet) killLocked(i int) error {
	p := f.slots[i]
	if p.exited() {
		return nil
	}
	p.killed = true
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL pid %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		f.kills++
		return nil
	case <-time.After(waitLimit):
		return fmt.Errorf("pid %d still running %s after SIGKILL", p.cmd.Process.Pid, waitLimit)
	}
}

// reviveLocked restarts every process that ended on its own, noting why.
func (f *fleet) reviveLocked() {
	for i, p := range f.slots {
		if !p.exited() || p.killed {
			continue
		}
		log, _ := os.ReadFile(p.logPath)
		f.selfExits = append(f.selfExits, selfExit{started: p.started, ended: p.ended,
			msg: fmt.Sprintf("agent %d (process %d, pid %d, up %s) exited on its own: %v; last output: %s",
				i, p.n, p.cmd.Process.Pid, p.ended.Sub(p.started).Round(time.Millisecond), p.err, lastLines(log, 2))})
		p.killed = true // counted once
		if err := f.startLocked(i); err != nil {
			f.errs = append(f.errs, err)
		}
	}
}

// revive restarts every process that ended on its own.
func (f *fleet) revive() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reviveLocked()
}

// chaos kills a random agent with SIGKILL and starts a new one in its place,
// every minGap to maxGap, until stop is closed; done is closed when it has
// returned. Processes that ended on their own are restarted at each round.
func (f *fleet) chaos(rng *rand.Rand, minGap, maxGap time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		gap := minGap + time.Duration(rng.Int64N(int64(maxGap-minGap)+1))
		timer := time.NewTimer(gap)
		select {
		case <-stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		f.mu.Lock()
		f.reviveLocked()
		// Mostly one agent at a time; now and then all of them at once, so
		// that no agent is left to rescue until the new ones are up.
		victims := []int{rng.IntN(len(f.slots))}
		if rng.IntN(6) == 0 {
			victims = victims[:0]
			for i := range f.slots {
				victims = append(victims, i)
			}
		}
		for _, i := range victims {
			if err := f.killLocked(i); err != nil {
				f.errs = append(f.errs, err)
			}
		}
		for _, i := range victims {
			if err := f.startLocked(i); err != nil {
				f.errs = append(f.errs, err)
			}
		}
		f.mu.Unlock()
	}
}

// killAll sends SIGKILL to every process still running and waits for each.
func (f *fleet) killAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.all {
		if !p.exited() {
			p.killed = true
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// endedAt returns when each process ended, by number; call it after
// killAll.
func (f *fleet) endedAt() map[int]time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int]time.Time{}
	for _, p := range f.all {
		<-p.done
		out[p.n] = p.ended
	}
	return out
}

// logTails puts the last lines of every process's log in the test log.
func (f *fleet) logTails() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.all {
		log, _ := os.ReadFile(p.logPath)
		f.t.Logf("%s (pid %d, killed %t, exit %v):\n%s", filepath.Base(p.logPath), p.cmd.Process.Pid, p.killed, p.err, lastLines(log, 15))
	}
}

// grepLogs returns the log lines of every process that contain s, at most
// max of them.
func (f *fleet) grepLogs(s string, max int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, p := range f.all {
		log, _ := os.ReadFile(p.logPath)
		for _, line := range bytes.Split(log, []byte("\n")) {
			if bytes.Contains(line, []byte(s)) {
				out = append(out, filepath.Base(p.logPath)+": "+string(line))
				if len(out) >= max {
					return out
				}
			}
		}
	}
	return out
}

// lastLines returns the last n lines of log.
func lastLines(log []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// apiClient calls an agent's API without failing the test, for calls that
// may meet a database outage.
type apiClient struct {
	base   string
	client *http.Client
}

func newAPIClient(t *testing.T, base string) *apiClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &apiClient{base: base, client: &http.Client{Timeout: 10 * time.Second, Transport: tr}}
}

// do sends a JSON request and decodes a 2xx answer into out.
func (c *apiClient) do(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, tail(b, 512))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode %s: %w", method, path, tail(b, 512), err)
		}
	}
	return resp.StatusCode, nil
}
