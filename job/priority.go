package job

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Priority orders leasing: higher first. Stored as 0..4 in the database.
type Priority int

const (
	PriorityBackground Priority = 0
	PriorityLow        Priority = 1
	PriorityNormal     Priority = 2
	PriorityHigh       Priority = 3
	PriorityCritical   Priority = 4
)

var priorityNames = [...]string{"background", "low", "normal", "high", "critical"}

// String returns the level's name ("normal").
func (p Priority) String() string {
	if p < PriorityBackground || p > PriorityCritical {
		return strconv.Itoa(int(p))
	}
	return priorityNames[p]
}

// ParsePriority accepts a level's name, in any case, or its number 0..4.
// The error quotes the input as given, not as normalised for matching.
func ParsePriority(s string) (Priority, error) {
	norm := strings.TrimSpace(strings.ToLower(s))
	for i, n := range priorityNames {
		if n == norm {
			return Priority(i), nil
		}
	}
	if n, err := strconv.Atoi(norm); err == nil && n >= 0 && n <= int(PriorityCritical) {
		return Priority(n), nil
	}
	return 0, fmt.Errorf("unknown priority %q (want background, low, normal, high, critical or 0..4)", s)
}

// MarshalJSON writes the level's name.
func (p Priority) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// UnmarshalJSON accepts a name ("high") or a number (3).
func (p *Priority) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("priority must be a name or a number 0..4, got %s", b)
		}
		s = strconv.Itoa(n)
	}
	v, err := ParsePriority(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// UnmarshalText lets configuration files and flags name a priority.
func (p *Priority) UnmarshalText(b []byte) error {
	v, err := ParsePriority(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
