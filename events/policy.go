package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hammerwork-go/hw-agent/job"
)

// Policy defaults.
const (
	DefaultMaxAttempts  = 10
	DefaultRetryInitial = time.Second
	DefaultRetryMax     = 10 * time.Minute
	DefaultMaxFailures  = 20
)

// Policy is what every subscriber's definition shares, whatever its sink:
// which events it takes and how the relay retries and gives up. A sink's
// definition embeds it, so its JSON and TOML keys are flat beside the
// sink's own.
type Policy struct {
	Filter
	// MaxAttempts bounds the attempts at one event before it is given up
	// on (counted as a failed event). Zero: DefaultMaxAttempts.
	MaxAttempts int `json:"max_attempts,omitempty" toml:"max_attempts"`
	// RetryInitial is the first retry's delay, doubling up to RetryMax
	// (cenkalti/backoff's exponential schedule, ±50% jitter); a receiver's
	// Retry-After replaces it, capped by RetryMax. Zero: the defaults.
	RetryInitial job.Duration `json:"retry_initial,omitempty" toml:"retry_initial"`
	RetryMax     job.Duration `json:"retry_max,omitempty" toml:"retry_max"`
	// MaxFailures disables the subscriber after that many consecutive
	// events given up on. Zero: DefaultMaxFailures.
	MaxFailures int `json:"max_failures,omitempty" toml:"max_failures"`
}

// WithDefaults fills zero fields with the defaults.
func (p Policy) WithDefaults() Policy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.RetryInitial == 0 {
		p.RetryInitial = job.Duration(DefaultRetryInitial)
	}
	if p.RetryMax == 0 {
		p.RetryMax = job.Duration(DefaultRetryMax)
	}
	if p.MaxFailures == 0 {
		p.MaxFailures = DefaultMaxFailures
	}
	return p
}

// Validate checks the filter and the bounds; the error's Field is prefix +
// the key.
func (p Policy) Validate(prefix string) error {
	if err := p.Filter.Validate(prefix); err != nil {
		return err
	}
	switch {
	case p.MaxAttempts < 0:
		return &FieldError{Field: prefix + "max_attempts", Message: "must not be negative"}
	case p.MaxFailures < 0:
		return &FieldError{Field: prefix + "max_failures", Message: "must not be negative"}
	case p.RetryMax != 0 && p.RetryInitial > p.RetryMax:
		return &FieldError{Field: prefix + "retry_initial", Message: fmt.Sprintf("%s exceeds retry_max %s", p.RetryInitial, p.RetryMax)}
	}
	return nil
}

// PolicyOf decodes the shared fields of a stored definition (defaults
// applied); unknown fields are the sink's.
func PolicyOf(config json.RawMessage) (Policy, error) {
	var p Policy
	if len(config) > 0 {
		if err := json.Unmarshal(config, &p); err != nil {
			return Policy{}, fmt.Errorf("decode subscriber policy: %w", err)
		}
	}
	return p.WithDefaults(), nil
}
