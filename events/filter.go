package events

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/hammerwork-go/hw-agent/store"
)

// Filter selects the events a subscriber receives. Every non-empty list
// must match (an empty list matches everything); within a list, any entry.
type Filter struct {
	// Types are event types or patterns with a trailing "*" ("job.*",
	// "*"), matched as path.Match patterns.
	Types []string `json:"events,omitempty" toml:"events"`
	// Queues are queue names. An event without a queue (a workflow's, a
	// batch's) does not match a queue filter.
	Queues []string `json:"queues,omitempty" toml:"queues"`
	// Priorities are job priority levels 0..4; events without a priority do
	// not match.
	Priorities []int `json:"priorities,omitempty" toml:"priorities"`
	// WorkflowNames are workflow names; events outside a workflow do not
	// match.
	WorkflowNames []string `json:"workflow_names,omitempty" toml:"workflow_names"`
}

// FieldError names the invalid field of a definition, for a 422's details
// and a config error's key.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Unwrap makes errors.Is(err, store.ErrInvalid) true: the API answers 422.
func (e *FieldError) Unwrap() error { return store.ErrInvalid }

// Validate checks every pattern names a known type (or several) and every
// priority is a level; the error's Field is prefix + the field's name.
func (f Filter) Validate(prefix string) error {
	for i, t := range f.Types {
		if !typePatternKnown(t) {
			return &FieldError{Field: fmt.Sprintf("%sevents[%d]", prefix, i), Message: fmt.Sprintf(
				"%q matches no event type; known types are %s, and a pattern may end in * (job.*)", t, strings.Join(Types, ", "))}
		}
	}
	for i, p := range f.Priorities {
		if p < 0 || p > 4 {
			return &FieldError{Field: fmt.Sprintf("%spriorities[%d]", prefix, i), Message: fmt.Sprintf("%d is not a priority level (0 background .. 4 critical)", p)}
		}
	}
	for i, q := range f.Queues {
		if q == "" {
			return &FieldError{Field: fmt.Sprintf("%squeues[%d]", prefix, i), Message: "queue name is empty"}
		}
	}
	for i, w := range f.WorkflowNames {
		if w == "" {
			return &FieldError{Field: fmt.Sprintf("%sworkflow_names[%d]", prefix, i), Message: "workflow name is empty"}
		}
	}
	return nil
}

func typePatternKnown(pattern string) bool {
	if _, err := path.Match(pattern, ""); err != nil || pattern == "" {
		return false
	}
	return slices.ContainsFunc(Types, func(t string) bool { return matchType(pattern, t) })
}

func matchType(pattern, t string) bool {
	ok, _ := path.Match(pattern, t)
	return ok || pattern == "*"
}

// Match reports whether e passes every list of f.
func (f Filter) Match(e Event) bool {
	if len(f.Types) > 0 && !slices.ContainsFunc(f.Types, func(p string) bool { return matchType(p, e.Type) }) {
		return false
	}
	if len(f.Queues) > 0 && (e.Queue == "" || !slices.Contains(f.Queues, e.Queue)) {
		return false
	}
	if len(f.Priorities) > 0 && (e.Priority == nil || !slices.Contains(f.Priorities, *e.Priority)) {
		return false
	}
	if len(f.WorkflowNames) > 0 && (e.WorkflowName == "" || !slices.Contains(f.WorkflowNames, e.WorkflowName)) {
		return false
	}
	return true
}
