package job

import "fmt"

// Status is a job's place in its state machine (docs/ARCHITECTURE.md, "State
// machines").
type Status string

const (
	StatusPending   Status = "pending"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
	StatusSkipped   Status = "skipped"
)

// Statuses lists every status in state-machine order.
var Statuses = []Status{StatusPending, StatusRunning, StatusCompleted, StatusFailed, StatusCancelled, StatusSkipped}

// Terminal reports whether no further transition happens without an operator's retry.
func (s Status) Terminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCancelled, StatusSkipped:
		return true
	}
	return false
}

// ParseStatus accepts the lowercase status names.
func ParseStatus(s string) (Status, error) {
	for _, st := range Statuses {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown status %q (want one of pending, running, completed, failed, cancelled, skipped)", s)
}

// DependencyStatus tells whether a job still waits for parents.
type DependencyStatus string

const (
	DependencyNone      DependencyStatus = "none"
	DependencyWaiting   DependencyStatus = "waiting"
	DependencySatisfied DependencyStatus = "satisfied"
	DependencyFailed    DependencyStatus = "failed"
)

// ParseDependencyStatus accepts none, waiting, satisfied and failed.
func ParseDependencyStatus(s string) (DependencyStatus, error) {
	switch d := DependencyStatus(s); d {
	case DependencyNone, DependencyWaiting, DependencySatisfied, DependencyFailed:
		return d, nil
	}
	return "", fmt.Errorf("unknown dependency status %q (want one of none, waiting, satisfied, failed)", s)
}
