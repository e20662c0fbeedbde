package maintenance

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A pass that comes back full is followed by another at once; a short one
// waits the interval (an hour here, so no fourth pass runs).
func TestServicePassesAgainWhileAPassComesBackFull(t *testing.T) {
	t.Parallel()
	done := []int{2, 2, 1}
	calls := 0
	svc := New(Config{Name: "test", Interval: time.Hour, Limit: 2, RunAtStart: true}, func(context.Context) (int, int, error) {
		n := done[calls]
		calls++
		return n, n, nil
	})
	passes := svc.Passed.Init()
	require.NoError(t, svc.Start(t.Context()))
	for _, want := range done {
		require.Equal(t, want, <-passes)
	}
	svc.Stop()
	require.Equal(t, 3, calls, "the short pass waits the interval")
}

// outage is a database outage whose state the test fixes.
type outage bool

func (o outage) Down() bool { return bool(o) }

// A failed pass is logged with the service's name at ERROR, or at DEBUG in
// an outage logged elsewhere, and retried at the next interval.
func TestServiceLogsAFailedPassAtDebugDuringAnOutage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		outage Outage
		level  string
	}{{nil, "level=ERROR"}, {outage(false), "level=ERROR"}, {outage(true), "level=DEBUG"}} {
		// The buffer is written only by the failed first pass, before the
		// second raises Passed; later passes write nothing.
		var logs bytes.Buffer
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		calls := 0
		svc := New(Config{Name: "test", Interval: time.Millisecond, Logger: log, Outage: tt.outage}, func(ctx context.Context) (int, int, error) {
			calls++
			switch calls {
			case 1:
				return 0, 0, errors.New("database unreachable")
			case 2:
				return calls, 0, nil
			}
			<-ctx.Done()
			return 0, 0, ctx.Err()
		})
		passes := svc.Passed.Init()
		require.NoError(t, svc.Start(t.Context()))
		require.Equal(t, 2, <-passes, "the failed pass raises nothing; the next interval tries again")
		line := logs.String()
		svc.Stop()
		require.Contains(t, line, tt.level+` msg="periodic pass failed; retrying at the next interval" service=test error="database unreachable"`)
		require.NotContains(t, logs.String(), "context canceled", "a pass cut short by Stop is not an error")
	}
}

func TestServiceStopsTwiceAndBeforeStart(t *testing.T) {
	t.Parallel()
	pass := func(context.Context) (int, int, error) { return 0, 0, nil }
	svc := New(Config{Interval: time.Hour}, pass)
	svc.Stop()
	svc.Stop()
	require.ErrorIs(t, svc.Start(t.Context()), ErrStarted, "a stopped service stays stopped")
	svc2 := New(Config{Interval: time.Hour}, pass)
	require.NoError(t, svc2.Start(t.Context()))
	require.ErrorIs(t, svc2.Start(t.Context()), ErrStarted)
	svc2.Stop()
	svc2.Stop()
}

func TestJitteredStaysWithinTheSpread(t *testing.T) {
	t.Parallel()
	require.Equal(t, time.Second, Jittered(time.Second, 0))
	require.Equal(t, time.Duration(0), Jittered(0, 0.5))
	for range 1000 {
		d := Jittered(time.Second, 0.1)
		require.GreaterOrEqual(t, d, 900*time.Millisecond)
		require.LessOrEqual(t, d, 1100*time.Millisecond)
	}
}
