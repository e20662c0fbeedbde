package dispatch

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
)

func TestAdditiveJitterSpreadsByAFractionOfInitialAtEveryAttempt(t *testing.T) {
	t.Parallel()
	s := time.Second
	tests := []struct {
		name     string
		policy   job.RetryPolicy
		attempt  int
		min, max time.Duration
	}{
		{"fixed", job.RetryPolicy{Strategy: job.StrategyFixed, Initial: dur(10 * s), Jitter: ptr(0.2), JitterMode: job.JitterAdditive}, 7, 8 * s, 12 * s},
		{"linear keeps the spread of initial", job.RetryPolicy{Strategy: job.StrategyLinear, Initial: dur(s), Increment: dur(10 * s), Jitter: ptr(0.5), JitterMode: job.JitterAdditive},
			4, 30500 * time.Millisecond, 31500 * time.Millisecond},
		{"exponential keeps the spread of initial", job.RetryPolicy{Initial: dur(s), Jitter: ptr(0.5), JitterMode: job.JitterAdditive},
			5, 15500 * time.Millisecond, 16500 * time.Millisecond},
		{"never above max", job.RetryPolicy{Strategy: job.StrategyFixed, Initial: dur(time.Minute), Max: dur(time.Minute), Jitter: ptr(1), JitterMode: job.JitterAdditive},
			1, 0, time.Minute},
		{"never negative", job.RetryPolicy{Strategy: job.StrategyFixed, Initial: dur(s), Jitter: ptr(1), JitterMode: job.JitterAdditive}, 1, 0, 2 * s},
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

func TestMultiplicativeJitterIsTheDefaultMode(t *testing.T) {
	t.Parallel()
	require.Equal(t, job.JitterMultiplicative, WithDefaults(job.RetryPolicy{}).JitterMode)
	require.Equal(t, job.JitterAdditive, WithDefaults(job.RetryPolicy{JitterMode: job.JitterAdditive}).JitterMode)
	p := job.RetryPolicy{Strategy: job.StrategyFixed, Initial: dur(10 * time.Second), Jitter: ptr(0.5)}
	for range 200 {
		d := RetryDelay(p, 3)
		require.GreaterOrEqual(t, d, 5*time.Second)
		require.LessOrEqual(t, d, 15*time.Second)
	}
	exact := job.RetryPolicy{Strategy: job.StrategyFixed, Initial: dur(time.Second), JitterMode: job.JitterAdditive}
	require.Equal(t, time.Second, RetryDelay(exact, 4), "additive mode without jitter is the exact schedule")
}
