package dispatch

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
)

func ptr(f float64) *float64 { return &f }

func dur(d time.Duration) job.Duration { return job.Duration(d) }

func TestRetryDelayWithoutJitter(t *testing.T) {
	t.Parallel()
	s := time.Second
	tests := []struct {
		name   string
		policy job.RetryPolicy
		want   map[int]time.Duration // attempt -> delay
	}{
		{"defaults are exponential 1s x2 capped at 10m", job.RetryPolicy{Jitter: ptr(0)},
			map[int]time.Duration{-1: s, 0: s, 1: s, 2: 2 * s, 3: 4 * s, 4: 8 * s, 10: 512 * s, 11: 10 * time.Minute, 1_000_000: 10 * time.Minute}},
		{"exponential multiplier 3", job.RetryPolicy{Strategy: job.StrategyExponential, Initial: dur(100 * time.Millisecond), Multiplier: 3, Jitter: ptr(0)},
			map[int]time.Duration{1: 100 * time.Millisecond, 2: 300 * time.Millisecond, 3: 900 * time.Millisecond, 4: 2700 * time.Millisecond}},
		{"exponential multiplier 1 is constant", job.RetryPolicy{Strategy: job.StrategyExponential, Initial: dur(3 * s), Multiplier: 1, Jitter: ptr(0)},
			map[int]time.Duration{1: 3 * s, 7: 3 * s}},
		{"exponential capped by max", job.RetryPolicy{Initial: dur(s), Max: dur(5 * s), Jitter: ptr(0)},
			map[int]time.Duration{1: s, 3: 4 * s, 4: 5 * s, 50: 5 * s}},
		{"fixed", job.RetryPolicy{Strategy: job.StrategyFixed, Initial: dur(5 * s)},
			map[int]time.Duration{1: 5 * s, 2: 5 * s, 50: 5 * s}},
		{"fixed default initial", job.RetryPolicy{Strategy: job.StrategyFixed},
			map[int]time.Duration{1: s, 9: s}},
		{"linear with increment", job.RetryPolicy{Strategy: job.StrategyLinear, Initial: dur(s), Increment: dur(2 * s)},
			map[int]time.Duration{1: s, 2: 3 * s, 3: 5 * s, 10: 19 * s}},
		{"linear increment defaults to initial", job.RetryPolicy{Strategy: job.StrategyLinear, Initial: dur(2 * s)},
			map[int]time.Duration{1: 2 * s, 2: 4 * s, 3: 6 * s}},
		{"linear capped by max", job.RetryPolicy{Strategy: job.StrategyLinear, Initial: dur(s), Increment: dur(time.Minute), Max: dur(3 * time.Minute)},
			map[int]time.Duration{3: 121 * s, 4: 3 * time.Minute, 1 << 62: 3 * time.Minute}},
		{"fibonacci", job.RetryPolicy{Strategy: job.StrategyFibonacci, Initial: dur(s)},
			map[int]time.Duration{1: s, 2: s, 3: 2 * s, 4: 3 * s, 5: 5 * s, 6: 8 * s, 7: 13 * s}},
		{"fibonacci capped by max", job.RetryPolicy{Strategy: job.StrategyFibonacci, Initial: dur(s), Max: dur(10 * s)},
			map[int]time.Duration{6: 8 * s, 7: 10 * s, 10_000: 10 * s}},
		{"initial above max is capped", job.RetryPolicy{Strategy: job.StrategyFixed, Initial: dur(time.Hour), Max: dur(time.Minute)},
			map[int]time.Duration{1: time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for attempt, want := range tt.want {
				require.Equal(t, want, RetryDelay(tt.policy, attempt), "attempt %d", attempt)
			}
		})
	}
}

func TestRetryDelayJitterStaysInBoundsAndCap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		policy   job.RetryPolicy
		attempt  int
		min, max time.Duration
	}{
		{"exponential default jitter 0.1", job.RetryPolicy{}, 3, 3600 * time.Millisecond, 4400 * time.Millisecond},
		{"fixed with explicit jitter", job.RetryPolicy{Strategy: job.StrategyFixed, Initial: dur(10 * time.Second), Jitter: ptr(0.5)}, 4, 5 * time.Second, 15 * time.Second},
		{"linear with explicit jitter", job.RetryPolicy{Strategy: job.StrategyLinear, Initial: dur(time.Second), Jitter: ptr(0.2)}, 5, 4 * time.Second, 6 * time.Second},
		{"jitter never exceeds max", job.RetryPolicy{Max: dur(time.Minute), Jitter: ptr(1)}, 40, 0, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			seen := map[time.Duration]bool{}
			for range 500 {
				d := RetryDelay(tt.policy, tt.attempt)
				require.GreaterOrEqual(t, d, tt.min)
				require.LessOrEqual(t, d, tt.max)
				seen[d] = true
			}
			require.Greater(t, len(seen), 1, "jitter spreads the delays")
		})
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	got := WithDefaults(job.RetryPolicy{})
	require.Equal(t, job.StrategyExponential, got.Strategy)
	require.Equal(t, dur(time.Second), got.Initial)
	require.Equal(t, dur(time.Second), got.Increment)
	require.Equal(t, 2.0, got.Multiplier)
	require.Equal(t, dur(10*time.Minute), got.Max)
	require.Equal(t, 0.1, *got.Jitter)

	for _, s := range []string{job.StrategyFixed, job.StrategyLinear, job.StrategyFibonacci} {
		require.Equal(t, 0.0, *WithDefaults(job.RetryPolicy{Strategy: s}).Jitter, "strategy %s has no default jitter", s)
	}

	jitter := 0.3
	in := job.RetryPolicy{Strategy: job.StrategyLinear, Initial: dur(2 * time.Second), Increment: dur(5 * time.Second),
		Multiplier: 1.5, Max: dur(time.Hour), Jitter: &jitter}
	got = WithDefaults(in)
	require.Equal(t, in.Strategy, got.Strategy)
	require.Equal(t, in.Initial, got.Initial)
	require.Equal(t, in.Increment, got.Increment)
	require.Equal(t, in.Multiplier, got.Multiplier)
	require.Equal(t, in.Max, got.Max)
	require.Equal(t, 0.3, *got.Jitter)
	*got.Jitter = 0.9
	require.Equal(t, 0.3, jitter, "the result does not alias the caller's jitter")

	require.Equal(t, dur(7*time.Second), WithDefaults(job.RetryPolicy{Initial: dur(7 * time.Second)}).Increment)
}

func TestRetryInHonoursRetryAfterWithinMax(t *testing.T) {
	t.Parallel()
	now := fixedNow
	policy := job.RetryPolicy{Strategy: job.StrategyFixed, Initial: dur(30 * time.Second), Max: dur(5 * time.Minute)}
	tests := []struct {
		name       string
		retryAfter time.Time
		want       time.Time
	}{
		{"no Retry-After uses the policy", time.Time{}, now.Add(30 * time.Second)},
		{"Retry-After within max wins", now.Add(2 * time.Minute), now.Add(2 * time.Minute)},
		{"Retry-After shorter than the delay wins", now.Add(time.Second), now.Add(time.Second)},
		{"Retry-After beyond max is capped", now.Add(time.Hour), now.Add(5 * time.Minute)},
		{"Retry-After in the past means now", now.Add(-time.Hour), now},
	}
	for _, tt := range tests {
		require.True(t, tt.want.Equal(now.Add(RetryIn(policy, 3, now, tt.retryAfter))), tt.name)
	}
	require.Equal(t, now.Add(10*time.Minute), now.Add(RetryIn(job.RetryPolicy{}, 1, now, now.Add(24*time.Hour))), "default max caps Retry-After")
}

func TestRetryInIsADelayMeasuredOnTheClockThatReadTheAnswer(t *testing.T) {
	t.Parallel()
	policy := job.RetryPolicy{Strategy: job.StrategyFixed, Initial: dur(30 * time.Second), Max: dur(5 * time.Minute)}
	// The agent's clock is an hour off; the app's Retry-After date was
	// written on the same (skewed) host clock, so the delay is unaffected.
	received := fixedNow.Add(time.Hour)
	tests := []struct {
		name       string
		retryAfter time.Time
		want       time.Duration
	}{
		{"no Retry-After is the policy's delay", time.Time{}, 30 * time.Second},
		{"Retry-After within max is the delay it names", received.Add(2 * time.Minute), 2 * time.Minute},
		{"Retry-After beyond max is capped", received.Add(time.Hour), 5 * time.Minute},
		{"Retry-After in the past is no delay", received.Add(-time.Minute), 0},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, RetryIn(policy, 3, received, tt.retryAfter), tt.name)
	}
}
