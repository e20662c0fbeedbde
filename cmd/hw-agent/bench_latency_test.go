package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/internal/testkit"
)

// benchLatencyJSON runs a short `bench --latency --json` with extra
// arguments and returns its one JSON line.
func benchLatencyJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	r := hw(t, nil, append([]string{"bench", "--latency", "--rate", "20", "--duration", "1s", "--chain", "5", "--json"}, args...)...)
	requireOK(t, r)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 1, r.stdout)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &res), lines[0])
	return res
}

// requireLatencyResult checks what a user reads off a latency run: every
// job and every hop measured, and percentiles that are positive and ordered.
func requireLatencyResult(t *testing.T, res map[string]any, backend string) {
	t.Helper()
	require.Equal(t, backend, res["backend"])
	require.Equal(t, "latency", res["mode"])
	require.EqualValues(t, 20, res["jobs"])
	require.EqualValues(t, 5, res["chain_steps"])
	require.EqualValues(t, 4, res["chain_hops"])
	for _, m := range []string{"enqueue_to_app", "hop"} {
		p50, p90, p99 := res[m+"_p50_ms"], res[m+"_p90_ms"], res[m+"_p99_ms"]
		require.Greater(t, p50, 0.0, m)
		require.LessOrEqual(t, p50, p90, m)
		require.LessOrEqual(t, p90, p99, m)
		require.LessOrEqual(t, p99, res[m+"_max_ms"], m)
	}
	require.Greater(t, res["chain_ms"], 0.0)
	require.NotContains(t, res, "jobs_per_sec", "the throughput fields belong to the burn-down")
}

// requireCPUProfile checks that path holds a profile as runtime/pprof writes
// it: gzip-compressed protobuf, so it starts with the gzip magic.
func requireCPUProfile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Greater(t, len(b), 2)
	require.Equal(t, []byte{0x1f, 0x8b}, b[:2], "not gzip: not a pprof profile")
}

// profiling serialises the tests that pass --cpuprofile: the commands run
// in this test process, and Go has one CPU profiler per process.
var profiling sync.Mutex

// whileProfiling runs f holding the profiler, released even when f fails
// the test.
func whileProfiling(f func()) {
	profiling.Lock()
	defer profiling.Unlock()
	f()
}

func TestBenchLatencyMeasuresEveryJobAndHopAndWritesAProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("bench starts a child process")
	}
	t.Parallel()
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	var res map[string]any
	whileProfiling(func() { res = benchLatencyJSON(t, "--cpuprofile", prof) })
	requireLatencyResult(t, res, "sqlite")
	requireCPUProfile(t, prof)
}

func TestBenchLatencyOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("bench starts a child process")
	}
	t.Parallel()
	requireLatencyResult(t, benchLatencyJSON(t, "--database-url", testkit.PostgresURL(t)), "postgres")
}

func TestBenchLatencyOnMySQL(t *testing.T) {
	if testing.Short() {
		t.Skip("bench starts a child process")
	}
	t.Parallel()
	requireLatencyResult(t, benchLatencyJSON(t, "--database-url", testkit.MySQLURL(t)), "mysql")
}

func TestBenchThroughputWritesACPUProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("bench starts a child process")
	}
	t.Parallel()
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	var r cliResult
	whileProfiling(func() { r = hw(t, nil, "bench", "--jobs", "200", "--json", "--cpuprofile", prof) })
	requireOK(t, r)
	var res map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	require.Equal(t, "throughput", res["mode"])
	require.NotContains(t, res, "hop_p50_ms", "the latency fields belong to --latency")
	requireCPUProfile(t, prof)
}

func TestBenchFlagsBelongToTheirMode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "5"}, "--rate needs --latency"},
		{[]string{"--chain", "5"}, "--chain needs --latency"},
		{[]string{"--latency", "--jobs", "5"}, "--jobs is for the throughput bench"},
		{[]string{"--latency", "--webhook"}, "--webhook is for the throughput bench"},
		{[]string{"--latency", "--chain", "1"}, "--chain 1 must be at least 2"},
		{[]string{"--latency", "--rate", "0"}, "--rate 0 must be a positive"},
		{[]string{"--latency", "--duration", "0s"}, "--duration 0s must be positive"},
	} {
		r := hw(t, nil, append([]string{"bench"}, tc.args...)...)
		require.Equal(t, 1, r.code, "%v: stdout %s", tc.args, r.stdout)
		require.Contains(t, r.stderr, tc.want, tc.args)
	}
}
