package agent

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/hammerwork-go/hw-agent/job"
)

// PriorityWeights turns strict priority order into weighted selection: under
// a backlog each level gets a share of the dispatches proportional to its
// weight, so a flood of critical jobs cannot starve background work for
// ever. Levels left out (or weighted 0) are leased only when no weighted
// level has a job due. Empty means strict order: the highest level first.
//
// In TOML it is a table, priority_weights = {critical = 20, high = 10, ...};
// in an environment variable, "critical=20,high=10,...". Levels are named or
// numbered (0..4).
type PriorityWeights map[job.Priority]int

// UnmarshalTOML reads the table form, rejecting unknown levels.
func (w *PriorityWeights) UnmarshalTOML(data any) error {
	table, ok := data.(map[string]any)
	if !ok {
		return fmt.Errorf("priority_weights must be a table like {critical = 20, high = 10}, got %T", data)
	}
	out := PriorityWeights{}
	for k, v := range table {
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("priority_weights.%s must be an integer, got %v", k, v)
		}
		if err := out.set(k, n); err != nil {
			return err
		}
	}
	*w = out
	return nil
}

// UnmarshalText reads the environment form "critical=20,high=10".
func (w *PriorityWeights) UnmarshalText(b []byte) error {
	out := PriorityWeights{}
	for item := range strings.SplitSeq(string(b), ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return fmt.Errorf("priority_weights item %q must be level=weight", item)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("priority_weights.%s: %q is not an integer", strings.TrimSpace(k), v)
		}
		if err := out.set(strings.TrimSpace(k), n); err != nil {
			return err
		}
	}
	*w = out
	return nil
}

func (w PriorityWeights) set(level string, n int64) error {
	l, err := job.ParsePriority(level)
	if err != nil {
		return fmt.Errorf("priority_weights: %w", err)
	}
	if n < 0 || n > 1_000_000 {
		return fmt.Errorf("priority_weights.%s (%d) must be between 0 and 1000000", l, n)
	}
	w[l] = int(n)
	return nil
}

// weighted reports whether any level has a weight, i.e. whether selection
// is weighted at all.
func (w PriorityWeights) weighted() bool {
	for _, n := range w {
		if n > 0 {
			return true
		}
	}
	return false
}

// levelCount is how many of a lease's slots go to one level.
type levelCount struct {
	level job.Priority
	n     int
}

// plan splits n slots among the ready levels that have a weight: each slot
// goes to a level drawn with probability weight / (sum of the ready levels'
// weights), so over many leases every level gets its share and none with a
// weight is starved. Only ready levels take part: a weight on a level with
// nothing due would otherwise waste its share on empty leases. The result is
// ordered highest level first; it is empty when no ready level has a weight.
func (w PriorityWeights) plan(ready []job.Priority, n int, rng *rand.Rand) []levelCount {
	var levels []job.Priority
	total := 0
	for _, l := range ready {
		if w[l] > 0 {
			levels = append(levels, l)
			total += w[l]
		}
	}
	if total == 0 || n <= 0 {
		return nil
	}
	counts := map[job.Priority]int{}
	for range n {
		r := rng.IntN(total)
		for _, l := range levels {
			if r < w[l] {
				counts[l]++
				break
			}
			r -= w[l]
		}
	}
	out := make([]levelCount, 0, len(counts))
	for l, c := range counts {
		out = append(out, levelCount{level: l, n: c})
	}
	slices.SortFunc(out, func(a, b levelCount) int { return int(b.level) - int(a.level) })
	return out
}

// validate checks weights built in code rather than parsed.
func (w PriorityWeights) validate() error {
	for l, n := range w {
		if l < job.PriorityBackground || l > job.PriorityCritical {
			return fmt.Errorf("priority_weights: level %d is out of range 0..4", l)
		}
		if n < 0 || n > 1_000_000 {
			return fmt.Errorf("priority_weights.%s (%d) must be between 0 and 1000000", l, n)
		}
	}
	return nil
}
