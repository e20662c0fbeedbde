package agent

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit caps a queue's dispatches on one agent: N per unit, written
// "100/s", "500/m", "20/h" or with any Go duration as the unit ("5/10s").
// Empty means no limit.
type RateLimit string

// Parse returns the limit's count and unit; n is 0 for an empty limit.
func (r RateLimit) Parse() (n int, per time.Duration, err error) {
	s := strings.TrimSpace(string(r))
	if s == "" {
		return 0, 0, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("rate limit %q must be N/unit, like \"100/s\" or \"500/m\"", s)
	}
	n, err = strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 1 {
		return 0, 0, fmt.Errorf("rate limit %q: %q must be a whole number of at least 1", s, num)
	}
	switch unit = strings.TrimSpace(unit); unit {
	case "s":
		per = time.Second
	case "m":
		per = time.Minute
	case "h":
		per = time.Hour
	default:
		if per, err = time.ParseDuration(unit); err != nil || per <= 0 {
			return 0, 0, fmt.Errorf("rate limit %q: unit %q must be s, m, h or a positive duration like 10s", s, unit)
		}
	}
	return n, per, nil
}

// dispatchGate holds a producer to its queue's rate limit. Tokens are
// checked before a lease and spent for the jobs it returned, rather than
// waited for after leasing: a job waiting for a token while leased would be
// held from every other agent, and its lease would run down for nothing.
// The producer is the gate's only user, so the tokens it sees before a lease
// are still there after it.
type dispatchGate struct {
	lim *rate.Limiter
}

// newDispatchGate returns nil (no limit) for an empty or invalid RateLimit
// (Config.Validate rejects the latter). A burst below 1 means 1:
// dispatches evenly spaced at the rate.
func newDispatchGate(r RateLimit, burst int) *dispatchGate {
	n, per, err := r.Parse()
	if err != nil || n == 0 {
		return nil
	}
	return &dispatchGate{lim: rate.NewLimiter(rate.Limit(float64(n)/per.Seconds()), max(burst, 1))}
}

// available returns how many of n dispatches the limit allows now and, when
// that is none, how long until one is allowed.
func (g *dispatchGate) available(now time.Time, n int) (int, time.Duration) {
	tokens := g.lim.TokensAt(now)
	if tokens >= 1 {
		return min(n, int(tokens)), 0
	}
	wait := time.Duration((1 - tokens) / float64(g.lim.Limit()) * float64(time.Second))
	return 0, max(wait, time.Millisecond)
}

// spend takes the tokens of n leased jobs.
func (g *dispatchGate) spend(now time.Time, n int) {
	if n > 0 {
		g.lim.ReserveN(now, n)
	}
}
