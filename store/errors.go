package store

import (
	"errors"
	"fmt"

	"github.com/hammerwork-go/hw-agent/job"
)

// Sentinels callers branch on with errors.Is. The API maps them to status
// codes in one place.
var (
	ErrNotFound    = errors.New("not found")
	ErrStaleLease  = errors.New("stale lease: the job is no longer held by this lease token")
	ErrConflict    = errors.New("state conflict")
	ErrInvalid     = errors.New("invalid")
	ErrNotMigrated = errors.New("database is not migrated: run `hw-agent migrate` (or start with --migrate)")
	ErrUnsupported = errors.New("not supported")
)

// StateError is an ErrConflict that says which status the job was in.
type StateError struct {
	Op      string
	Current job.Status
}

func (e *StateError) Error() string {
	return fmt.Sprintf("cannot %s a %s job", e.Op, e.Current)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *StateError) Unwrap() error { return ErrConflict }
