package dispatch

import (
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/hammerwork-go/hw-agent/job"
)

// Retry policy defaults, as job.RetryPolicy documents them.
const (
	DefaultInitial    = time.Second
	DefaultMultiplier = 2.0
	DefaultMax        = 10 * time.Minute
	DefaultJitter     = 0.1
)

// WithDefaults fills the zero fields of p: strategy exponential, initial 1s,
// multiplier 2, max 10m, increment = initial, jitter 0.1 for the
// exponential strategy (0 for the others, whose users expect the exact
// schedule they wrote) and jitter mode multiplicative. The returned policy
// shares no memory with p.
func WithDefaults(p job.RetryPolicy) job.RetryPolicy {
	if p.Strategy == "" {
		p.Strategy = job.StrategyExponential
	}
	if p.Initial <= 0 {
		p.Initial = job.Duration(DefaultInitial)
	}
	if p.Multiplier == 0 {
		p.Multiplier = DefaultMultiplier
	}
	if p.Max <= 0 {
		p.Max = job.Duration(DefaultMax)
	}
	if p.Increment <= 0 {
		p.Increment = p.Initial
	}
	jitter := 0.0
	switch {
	case p.Jitter != nil:
		jitter = *p.Jitter
	case p.Strategy == job.StrategyExponential:
		jitter = DefaultJitter
	}
	p.Jitter = &jitter
	if p.JitterMode == "" {
		p.JitterMode = job.JitterMultiplicative
	}
	return p
}

// RetryDelay is the delay after the given 1-based attempt failed: attempt 1's
// delay is Initial for every strategy. Every delay, jitter included, is
// capped at the policy's Max.
func RetryDelay(p job.RetryPolicy, attempt int) time.Duration {
	p = WithDefaults(p)
	attempt = max(attempt, 1)
	limit := p.Max.D()
	initial := min(p.Initial.D(), limit)
	jitter := min(max(*p.Jitter, 0), 1)

	additive := p.JitterMode == job.JitterAdditive
	var base time.Duration
	switch p.Strategy {
	case job.StrategyFixed:
		base = initial
	case job.StrategyLinear:
		base = linearDelay(initial, p.Increment.D(), attempt, limit)
	case job.StrategyFibonacci:
		base = fibonacciDelay(initial, attempt, limit)
	default:
		if !additive {
			return exponentialDelay(initial, max(p.Multiplier, 1), jitter, attempt, limit)
		}
		base = exponentialDelay(initial, max(p.Multiplier, 1), 0, attempt, limit)
	}
	if additive {
		return min(max(base+spread(time.Duration(jitter*float64(initial))), 0), limit)
	}
	return min(jittered(base, jitter), limit)
}

// RetryIn is how long to wait before the next attempt: RetryDelay, or until
// the time an app's Retry-After named, never negative and never more than
// Max, so a misbehaving app cannot park a job for a year. now is the clock
// that read the answer: an HTTP date is the app's clock, which agrees with
// its own host's far better than with the database's. The agent sends this
// delay, and the database adds it to its own now.
func RetryIn(p job.RetryPolicy, attempt int, now, retryAfter time.Time) time.Duration {
	p = WithDefaults(p)
	if retryAfter.IsZero() {
		return RetryDelay(p, attempt)
	}
	return min(max(retryAfter.Sub(now), 0), p.Max.D())
}

// exponentialDelay asks backoff.ExponentialBackOff for its attempt-th
// interval. The earlier intervals are stepped through without randomisation
// (they are never used) and the loop stops once the cap is reached, so a
// large attempt number costs nothing.
func exponentialDelay(initial time.Duration, multiplier, jitter float64, attempt int, limit time.Duration) time.Duration {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(initial),
		backoff.WithMultiplier(multiplier),
		backoff.WithMaxInterval(limit),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxElapsedTime(0),
	)
	for range attempt - 1 {
		if b.NextBackOff() >= limit {
			break
		}
	}
	b.RandomizationFactor = jitter
	return min(b.NextBackOff(), limit)
}

// linearDelay is initial + increment*(attempt-1), saturating at limit.
func linearDelay(initial, increment time.Duration, attempt int, limit time.Duration) time.Duration {
	steps := time.Duration(attempt - 1)
	if increment > 0 && steps > (limit-initial)/increment {
		return limit
	}
	return initial + increment*steps
}

// fibonacciDelay is initial * F(attempt) with F = 1, 1, 2, 3, 5, 8, ...,
// saturating at limit.
func fibonacciDelay(initial time.Duration, attempt int, limit time.Duration) time.Duration {
	if initial <= 0 {
		return 0
	}
	prev, cur := time.Duration(0), time.Duration(1)
	for range attempt - 1 {
		prev, cur = cur, prev+cur
		if cur > limit/initial {
			return limit
		}
	}
	return initial * cur
}

// spread is uniform over ±width: the additive jitter.
func spread(width time.Duration) time.Duration {
	if width <= 0 {
		return 0
	}
	return time.Duration(float64(width) * (2*rand.Float64() - 1))
}

// jittered spreads d uniformly over d ± jitter*d so retries of many jobs
// that failed together do not hit the app together.
func jittered(d time.Duration, jitter float64) time.Duration {
	if jitter == 0 || d <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + jitter*(2*rand.Float64()-1)))
}
