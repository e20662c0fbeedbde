package job

import "fmt"

// RetryPolicy decides the delay before the next attempt. It is persisted with
// the job, so a job's own policy survives a restart of every agent.
type RetryPolicy struct {
	// Strategy is "exponential" (default), "fixed", "linear" or "fibonacci".
	Strategy string `json:"strategy,omitempty" toml:"strategy"`
	// Initial is the first delay. Defaults to 1s.
	Initial Duration `json:"initial,omitempty" toml:"initial"`
	// Increment is added per attempt by the linear strategy. Defaults to Initial.
	Increment Duration `json:"increment,omitempty" toml:"increment"`
	// Multiplier grows the exponential delay. Defaults to 2.
	Multiplier float64 `json:"multiplier,omitempty" toml:"multiplier"`
	// Max caps every delay, including one named by the app's Retry-After. Defaults to 10m.
	Max Duration `json:"max,omitempty" toml:"max"`
	// Jitter randomises each delay (0..1). Defaults to 0.1 for exponential,
	// 0 for the other strategies.
	Jitter *float64 `json:"jitter,omitempty" toml:"jitter"`
	// JitterMode says how Jitter applies. "multiplicative" (the default)
	// spreads a delay d over d ± Jitter×d, so the spread grows with the
	// delay. "additive" spreads it over d ± Jitter×Initial, a spread that
	// stays the same for every attempt: what a fixed or linear schedule
	// wants when many jobs fail together. Either way the delay is never
	// negative and never above Max.
	JitterMode string `json:"jitter_mode,omitempty" toml:"jitter_mode"`
}

// Retry strategies.
const (
	StrategyExponential = "exponential"
	StrategyFixed       = "fixed"
	StrategyLinear      = "linear"
	StrategyFibonacci   = "fibonacci"
)

// Jitter modes.
const (
	JitterMultiplicative = "multiplicative"
	JitterAdditive       = "additive"
)

// Validate names the field that is wrong.
func (p RetryPolicy) Validate() error {
	switch p.Strategy {
	case "", StrategyExponential, StrategyFixed, StrategyLinear, StrategyFibonacci:
	default:
		return fmt.Errorf("retry.strategy %q is unknown (want exponential, fixed, linear or fibonacci)", p.Strategy)
	}
	if p.Multiplier != 0 && p.Multiplier < 1 {
		return fmt.Errorf("retry.multiplier %v must be at least 1", p.Multiplier)
	}
	if p.Jitter != nil && (*p.Jitter < 0 || *p.Jitter > 1) {
		return fmt.Errorf("retry.jitter %v must be between 0 and 1", *p.Jitter)
	}
	switch p.JitterMode {
	case "", JitterMultiplicative, JitterAdditive:
	default:
		return fmt.Errorf("retry.jitter_mode %q is unknown (want multiplicative or additive)", p.JitterMode)
	}
	if p.Max != 0 && p.Initial > p.Max {
		return fmt.Errorf("retry.initial (%s) must not exceed retry.max (%s)", p.Initial, p.Max)
	}
	return nil
}
