package schedule

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLength bounds a schedule's name, which is its id in URLs, CLI
// arguments, metric labels and the runs table.
const MaxNameLength = 128

// Spec is a schedule as the API, the CLI and the configuration file give it,
// without its target, which the job and workflow validation check.
type Spec struct {
	Name     string
	Cron     string
	Timezone string
	Policy   Policy
}

// Validate checks every field and reports all problems in a
// *ValidationError, so nothing is written for a schedule that cannot fire.
func (s Spec) Validate() error {
	var problems []*FieldError
	add := func(field, format string, a ...any) {
		problems = append(problems, &FieldError{Field: field, Message: fmt.Sprintf(format, a...)})
	}
	switch {
	case s.Name == "":
		add("name", "must not be empty")
	case !utf8.ValidString(s.Name):
		add("name", "%q is not valid UTF-8", s.Name)
	case strings.IndexFunc(s.Name, unicode.IsControl) >= 0:
		add("name", "%q holds a control character", s.Name)
	case strings.Contains(s.Name, "/"):
		add("name", "%q holds a \"/\"; the name is a path segment of /v1/schedules/{name}", s.Name)
	case len(s.Name) > MaxNameLength:
		add("name", "is %d bytes long, at most %d", len(s.Name), MaxNameLength)
	}

	// A bad zone is reported and the expression still checked, in UTC.
	timezone := s.Timezone
	var fe *FieldError
	if _, err := LoadTimezone(timezone); errors.As(err, &fe) {
		problems = append(problems, fe)
		timezone = ""
	}
	sched, err := Parse(s.Cron, timezone)
	if errors.As(err, &fe) {
		problems = append(problems, fe)
	}

	p := s.Policy.WithDefaults()
	switch p.Overlap {
	case OverlapSkip, OverlapAllow, OverlapBufferOne:
	default:
		add("overlap", "%q is not one of skip, allow, buffer_one", p.Overlap)
	}
	switch p.Catchup {
	case CatchupLatest, CatchupNone, CatchupAll:
	default:
		add("catchup", "%q is not one of latest, none, all", p.Catchup)
	}
	if p.CatchupWindow < 0 {
		add("catchup_window", "%s must be positive", p.CatchupWindow)
	}
	if p.Jitter < 0 {
		add("jitter", "%s must not be negative", p.Jitter)
	}
	if sched != nil && p.Jitter > 0 {
		if gap := sched.shortestInterval(); gap > 0 && p.Jitter >= gap {
			add("jitter", "%s must be shorter than the %s between fire times", p.Jitter, gap)
		}
	}
	if !p.StartAt.IsZero() && !p.EndAt.IsZero() && !p.StartAt.Before(p.EndAt) {
		add("end_at", "%s must be after start_at %s", p.EndAt.Format(timeLayout), p.StartAt.Format(timeLayout))
	}
	if len(problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: problems}
}

const timeLayout = "2006-01-02T15:04:05Z07:00"
