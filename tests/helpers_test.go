package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
)

// waitLimit bounds every wait for the agent: start-up, a job reaching a
// state, a shutdown. Generous, because CI machines are slow under -race.
const waitLimit = 30 * time.Second

// pollEvery is the pause between two polls of a condition.
const pollEvery = 25 * time.Millisecond

// freeAddr returns a 127.0.0.1 address that was free a moment ago. The agent
// binds it, so the port is chosen by listening on :0 and closing.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// childEnv is the test process's environment without any HW_ variable, plus
// extra. The agent rejects unknown HW_ variables, and a developer's own
// settings must not leak into a test.
func childEnv(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HW_") {
			env = append(env, kv)
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// cliResult is what one finished hw-agent command printed and how it ended.
type cliResult struct {
	stdout, stderr string
	err            error
}

// runCLI runs the binary to completion with args and env (HW_ variables of
// the test process removed), killing it after waitLimit.
func runCLI(t *testing.T, env map[string]string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = childEnv(env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("hw-agent %s did not finish within %s: %w", strings.Join(args, " "), waitLimit, ctx.Err())
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// migrate applies the schema with `hw-agent migrate --database-url`.
func migrate(t *testing.T, dbURL string) {
	t.Helper()
	res := runCLI(t, nil, "migrate", "--database-url", dbURL)
	require.NoError(t, res.err, "hw-agent migrate\nstdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
}

// agentProc is one `hw-agent run` child process and a client for its API.
type agentProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string // http://host:port of the API
	token  string
	client *http.Client
	stderr *testkit.Buffer

	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done is closed
}

// startAgent starts `hw-agent run` with env, waits until /readyz answers 200
// and kills the process at cleanup if it is still running. On failure the
// child's output goes to the test log.
func startAgent(t *testing.T, env map[string]string) *agentProc {
	t.Helper()
	listen := env["HW_API_LISTEN"]
	require.NotEmpty(t, listen, "startAgent needs HW_API_LISTEN")

	out := &testkit.Buffer{}
	cmd := exec.Command(binary(t), "run")
	cmd.Env = childEnv(env)
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())

	a := &agentProc{
		t:      t,
		cmd:    cmd,
		base:   "http://" + listen,
		token:  env["HW_API_TOKEN"],
		client: &http.Client{Timeout: 10 * time.Second},
		stderr: out,
		done:   make(chan struct{}),
	}
	go func() {
		a.waitErr = cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		select {
		case <-a.done:
		default:
			_ = a.cmd.Process.Kill()
			<-a.done
		}
		a.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("hw-agent run (pid %d) output:\n%s", a.cmd.Process.Pid, a.stderr.String())
		}
	})

	a.waitReady()
	return a
}

// waitReady polls /readyz until it answers 200, failing at once if the
// process exits first.
func (a *agentProc) waitReady() {
	a.t.Helper()
	poll(a.t, "GET /readyz to answer 200", func() (bool, string) {
		select {
		case <-a.done:
			a.t.Fatalf("hw-agent run exited before it was ready: %v", a.waitErr)
		default:
		}
		resp, err := a.client.Get(a.base + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%s: %s", resp.Status, body)
	})
}

// poll calls cond every pollEvery until it reports done, failing the test
// with cond's last description of what it saw once waitLimit has passed.
func poll(t *testing.T, what string, cond func() (done bool, seen string)) {
	t.Helper()
	testkit.Poll(t, waitLimit, pollEvery, what, cond)
}

// call sends a JSON request to the agent's API with the bearer token and
// returns the status and body.
func (a *agentProc) call(method, path string, body any) (int, []byte) {
	a.t.Helper()
	return a.callAs(a.token, method, path, body)
}

func (a *agentProc) callAs(token, method, path string, body any) (int, []byte) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(a.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	require.NoError(a.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.client.Do(req)
	require.NoError(a.t, err, "%s %s", method, path)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	return resp.StatusCode, out
}

// jobView is the part of GET /v1/jobs/{id} the end-to-end tests check.
type jobView struct {
	ID           string            `json:"id"`
	Queue        string            `json:"queue"`
	Status       string            `json:"status"`
	Attempts     int               `json:"attempts"`
	MaxAttempts  int               `json:"max_attempts"`
	ErrorMessage string            `json:"error_message"`
	Errors       []json.RawMessage `json:"errors"`
	Result       json.RawMessage   `json:"result"`
}

// getJob reads one job through the API.
func (a *agentProc) getJob(id string) jobView {
	a.t.Helper()
	status, body := a.call(http.MethodGet, "/v1/jobs/"+id, nil)
	require.Equal(a.t, http.StatusOK, status, "GET /v1/jobs/%s: %s", id, body)
	var j jobView
	require.NoError(a.t, json.Unmarshal(body, &j), "GET /v1/jobs/%s: %s", id, body)
	return j
}

// waitStatus polls the job until it has status.
func (a *agentProc) waitStatus(id, status string) jobView {
	a.t.Helper()
	var j jobView
	poll(a.t, fmt.Sprintf("job %s to become %s", id, status), func() (bool, string) {
		j = a.getJob(id)
		return j.Status == status, fmt.Sprintf("%+v", j)
	})
	return j
}

// stop sends SIGTERM and returns the exit error, failing if the process is
// still running after limit.
func (a *agentProc) stop(limit time.Duration) error {
	a.t.Helper()
	require.NoError(a.t, a.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-a.done:
		return a.waitErr
	case <-time.After(limit):
		a.t.Fatalf("hw-agent run did not exit within %s of SIGTERM", limit)
		return nil
	}
}

// exitCode returns the exit status in err, or -1 when the process did not
// exit on its own.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// appRequest is one request the fake app received, with the answer it gave.
type appRequest struct {
	Path     string
	Header   http.Header
	Body     []byte
	At       time.Time
	Status   int
	Response []byte
}

// fakeApp is the local app of the sidecar: a real HTTP server that records
// every request and answers by the payload's "kind":
//
//	ok       200 with a JSON body naming the job
//	flaky    500 on the first request for a job, then 200 with a JSON body
//	missing  404 with a text body
//	async    202 with no body; the request is also sent on accepted
type fakeApp struct {
	srv *httptest.Server

	mu    sync.Mutex
	byJob map[string][]appRequest

	accepted chan appRequest
}

func newFakeApp(t *testing.T) *fakeApp {
	t.Helper()
	app := &fakeApp{byJob: map[string][]appRequest{}, accepted: make(chan appRequest, 16)}
	app.srv = httptest.NewServer(http.HandlerFunc(app.serve))
	t.Cleanup(app.srv.Close)
	return app
}

func (app *fakeApp) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec := appRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()}
	id := r.Header.Get("Hammerwork-Job-Id")

	var p struct {
		Kind string `json:"kind"`
	}
	_ = json.Unmarshal(body, &p)

	app.mu.Lock()
	seen := len(app.byJob[id])
	switch {
	case p.Kind == "ok", p.Kind == "flaky" && seen > 0:
		rec.Status = http.StatusOK
		rec.Response = fmt.Appendf(nil, `{"job_id": %q, "kind": %q, "attempt": %d, "tags": ["e2e"]}`, id, p.Kind, seen+1)
	case p.Kind == "flaky":
		rec.Status = http.StatusInternalServerError
		rec.Response = []byte("temporarily broken")
	case p.Kind == "async":
		rec.Status = http.StatusAccepted
	default:
		rec.Status = http.StatusNotFound
		rec.Response = []byte("no handler for this job")
	}
	app.byJob[id] = append(app.byJob[id], rec)
	app.mu.Unlock()

	if rec.Status == http.StatusOK {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rec.Status)
	_, _ = w.Write(rec.Response)
	if rec.Status == http.StatusAccepted {
		select {
		case app.accepted <- rec:
		default: // a redelivery nobody waits for; it is still recorded
		}
	}
}

// requests returns what the app received for one job, in arrival order.
func (app *fakeApp) requests(id string) []appRequest {
	app.mu.Lock()
	defer app.mu.Unlock()
	return append([]appRequest(nil), app.byJob[id]...)
}

// jobIDs returns every job id the app was called for.
func (app *fakeApp) jobIDs() []string {
	app.mu.Lock()
	defer app.mu.Unlock()
	ids := make([]string, 0, len(app.byJob))
	for id := range app.byJob {
		ids = append(ids, id)
	}
	return ids
}
