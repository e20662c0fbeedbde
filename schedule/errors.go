package schedule

import (
	"errors"
	"strings"
)

// ErrInvalid is matched by every error of this package, so the API can answer
// all of them with 422 in one check.
var ErrInvalid = errors.New("invalid schedule")

// FieldError is one problem with one field of a schedule. Field is the name
// the API, the CLI and the configuration file use ("cron", "timezone",
// "catchup_window"), so a user can find it whichever way the schedule came.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// ValidationError lists every problem Spec.Validate found, not just the first,
// so one round trip is enough to fix a schedule.
type ValidationError struct {
	Problems []*FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) true and lets errors.As find the
// first FieldError.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// Details is the list of {field, message} the API puts in a 422's details.
func (e *ValidationError) Details() any {
	out := make([]FieldError, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = *p
	}
	return out
}
