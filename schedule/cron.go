// Package schedule is the time arithmetic of cron schedules: parsing an
// expression in a time zone, the next fire times, and the policies (overlap,
// catch-up, jitter, start and end) that decide which nominal slots fire when
// the scheduler looks at a schedule. It does no I/O and keeps no state: the
// store persists what a DuePlan says and feeds it back into the next Due.
package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	// Embedded zone data: the agent ships as a static binary and may run on an
	// image without /usr/share/zoneinfo, where every zone but UTC would fail.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed cron expression in its time zone.
type Schedule struct {
	expr string
	loc  *time.Location
	// spec matches wall-clock times; its Location is UTC so that it never
	// sees a daylight-saving change, which Next resolves itself.
	spec *cron.SpecSchedule
	// every is the interval of an "@every" schedule, which counts elapsed
	// time and ignores the calendar; spec is nil then.
	every time.Duration
}

// parser accepts 5 fields or 6 with a leading seconds field, and descriptors.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse reads a cron expression and an IANA time zone ("" is UTC). Errors are
// *FieldError naming "cron" or "timezone" and wrap ErrInvalid.
func Parse(expr, timezone string) (*Schedule, error) {
	loc, err := LoadTimezone(timezone)
	if err != nil {
		return nil, err
	}
	s := &Schedule{expr: expr, loc: loc}
	if err := s.parse(); err != nil {
		return nil, &FieldError{Field: "cron", Message: fmt.Sprintf("%q: %s", expr, err)}
	}
	return s, nil
}

// LoadTimezone resolves a schedule's time zone; "" is UTC. "Local" is refused:
// it would make fire times depend on the machine that computes them.
func LoadTimezone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if name == "Local" {
		return nil, &FieldError{Field: "timezone", Message: `"Local" depends on the machine; name an IANA zone such as "Europe/Berlin"`}
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, &FieldError{Field: "timezone", Message: fmt.Sprintf("unknown time zone %q; want an IANA name such as \"Europe/Berlin\" or \"UTC\"", name)}
	}
	return loc, nil
}

// descriptors robfig/cron knows besides "@every".
var descriptors = []string{"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}

func (s *Schedule) parse() error {
	expr := strings.TrimSpace(s.expr)
	switch {
	case expr == "":
		return fmt.Errorf("must not be empty")
	case strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ="):
		return fmt.Errorf("the time zone goes in the timezone field, not in the expression")
	case strings.HasPrefix(expr, "@every"):
		return s.parseEvery(strings.TrimSpace(strings.TrimPrefix(expr, "@every")))
	case strings.HasPrefix(expr, "@"):
		for _, d := range descriptors {
			if expr == d {
				return s.parseSpec(expr)
			}
		}
		return fmt.Errorf("unknown descriptor; want one of %s or \"@every <duration>\"", strings.Join(descriptors, ", "))
	}
	fields := strings.Fields(expr)
	if len(fields) != 5 && len(fields) != 6 {
		return fmt.Errorf("want 5 fields (minute hour day-of-month month day-of-week) or 6 with a leading seconds field, got %d", len(fields))
	}
	bounds := fieldBounds[6-len(fields):]
	for i, f := range fields {
		folded, err := checkField(bounds[i], f)
		if err != nil {
			return err
		}
		fields[i] = folded
	}
	if err := s.parseSpec(strings.Join(fields, " ")); err != nil {
		return err
	}
	// robfig/cron searches five years ahead: from 2000 that finds February
	// 29th, and a date that never exists (February 30th) not at all.
	if s.spec.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return fmt.Errorf("never fires: no date matches the day-of-month and month fields")
	}
	return nil
}

func (s *Schedule) parseEvery(text string) error {
	d, err := time.ParseDuration(text)
	switch {
	case err != nil:
		return fmt.Errorf("@every wants a duration such as \"15m\" or \"90s\", got %q", text)
	case d < time.Second:
		return fmt.Errorf("@every interval must be at least 1s")
	case d%time.Second != 0:
		return fmt.Errorf("@every interval must be a whole number of seconds")
	}
	s.every = d
	return nil
}

func (s *Schedule) parseSpec(text string) error {
	parsed, err := parser.Parse(text)
	if err != nil {
		return err
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return fmt.Errorf("unsupported expression")
	}
	spec.Location = time.UTC
	s.spec = spec
	return nil
}

type bounds struct {
	name     string
	min, max int
	names    map[string]int
}

// fieldBounds in expression order; day-of-week allows 7 for Sunday, which
// checkField folds into 0 because robfig/cron stops at 6.
var fieldBounds = []bounds{
	{name: "second", min: 0, max: 59},
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day-of-month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: map[string]int{
		"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
	}},
	{name: "day-of-week", min: 0, max: 7, names: map[string]int{
		"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
	}},
}

// checkField validates one field with a message that names it, which
// robfig/cron's errors do not, and returns the field as robfig should read it.
// A day-of-week item that names 7 is spelled out as a list with 7 as 0.
func checkField(b bounds, field string) (string, error) {
	items := strings.Split(field, ",")
	for i, item := range items {
		rng, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n <= 0 {
				return "", fmt.Errorf("%s %q: step must be a positive number", b.name, item)
			}
			step = n
		}
		if rng == "*" || rng == "?" {
			continue
		}
		loText, hiText, isRange := strings.Cut(rng, "-")
		lo, err := b.value(item, loText)
		if err != nil {
			return "", err
		}
		hi := lo
		if isRange {
			if hi, err = b.value(item, hiText); err != nil {
				return "", err
			}
		}
		if lo > hi {
			return "", fmt.Errorf("%s range %q runs backwards", b.name, item)
		}
		if b.max == 7 && (lo == 7 || hi == 7) {
			if hasStep && !isRange {
				hi = 7
			}
			items[i] = sundayAsZero(lo, hi, step)
		}
	}
	return strings.Join(items, ","), nil
}

func (b bounds) value(item, text string) (int, error) {
	if n, ok := b.names[strings.ToLower(text)]; ok {
		return n, nil
	}
	n, err := strconv.Atoi(text)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %q is not a number", b.name, item, text)
	}
	if n < b.min || n > b.max {
		return 0, fmt.Errorf("%s %d out of range %d-%d", b.name, n, b.min, b.max)
	}
	return n, nil
}

// sundayAsZero lists the days lo..hi by step with 7 written as 0.
func sundayAsZero(lo, hi, step int) string {
	var days []string
	for d := lo; d <= hi; d += step {
		days = append(days, strconv.Itoa(d%7))
	}
	return strings.Join(days, ",")
}

// String is the expression as given.
func (s *Schedule) String() string { return s.expr }

// Location is the zone the expression is read in.
func (s *Schedule) Location() *time.Location { return s.loc }

// Next is the first fire time strictly after after, in the schedule's zone,
// or the zero time when there is none within five years.
//
// Cron fields match wall-clock times. A wall time that a spring change skips
// fires once at the first instant after the gap (02:30 on a night that jumps
// from 02:00 to 03:00 fires at 03:00); a wall time that an autumn change
// repeats fires once, at its first occurrence. robfig/cron alone would miss
// the first and fire the second twice.
func (s *Schedule) Next(after time.Time) time.Time {
	if s.every > 0 {
		return after.Truncate(time.Second).Add(s.every).In(s.loc)
	}
	wall := wallClock(after.In(s.loc))
	for {
		wall = s.spec.Next(wall)
		if wall.IsZero() {
			return time.Time{}
		}
		// A wall time whose first occurrence is not after after has fired or
		// been passed already: skipping it makes a repeated hour fire once.
		if at := s.instant(wall); at.After(after) {
			return at
		}
	}
}

// NextN is the next n fire times after after, fewer when the schedule stops.
func (s *Schedule) NextN(after time.Time, n int) []time.Time {
	var out []time.Time
	for len(out) < n {
		after = s.Next(after)
		if after.IsZero() {
			break
		}
		out = append(out, after)
	}
	return out
}

// wallClock is t's wall-clock reading as a UTC time, a calendar without
// daylight-saving changes.
func wallClock(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// instant is the first instant whose wall clock in the schedule's zone reads
// wall, or where the zone resumes when a change skips wall. time.Date leaves
// both cases unspecified, so the offsets a day either side are tried; zones
// do not change twice within two days.
func (s *Schedule) instant(wall time.Time) time.Time {
	var first time.Time
	for _, probe := range []time.Duration{-24 * time.Hour, 24 * time.Hour} {
		_, offset := wall.Add(probe).In(s.loc).Zone()
		at := wall.Add(-time.Duration(offset) * time.Second)
		if wallClock(at.In(s.loc)).Equal(wall) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	if !first.IsZero() {
		return first.In(s.loc)
	}
	_, before := wall.Add(-24 * time.Hour).In(s.loc).Zone()
	resumed, _ := wall.Add(-time.Duration(before) * time.Second).In(s.loc).ZoneBounds()
	return resumed.In(s.loc)
}

// shortestInterval is the smallest gap between consecutive fire times among
// the first sampleSlots from a fixed date, which Spec.Validate compares the
// jitter with. It is exact for "@every" and for expressions whose pattern
// repeats within the sample, which is all but the most irregular ones.
func (s *Schedule) shortestInterval() time.Duration {
	if s.every > 0 {
		return s.every
	}
	const sampleSlots = 1000
	slots := s.NextN(time.Date(2026, 1, 1, 0, 0, 0, 0, s.loc), sampleSlots)
	var shortest time.Duration
	for i := 1; i < len(slots); i++ {
		if gap := slots[i].Sub(slots[i-1]); shortest == 0 || gap < shortest {
			shortest = gap
		}
	}
	return shortest
}
