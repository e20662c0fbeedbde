package job_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/hammerwork-go/hw-agent/job"
)

// FuzzParsePriority: a priority is accepted only as one of the five levels,
// and then reads back the same from its name; anything else is an error
// that quotes what was given and says what is wanted.
func FuzzParsePriority(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		p, err := job.ParsePriority(s)
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, "priority "+strconv.Quote(s)) || !strings.Contains(msg, "0..4") {
				t.Fatalf("ParsePriority(%q): error %q does not quote the input and name the accepted values", s, msg)
			}
			return
		}
		if p < job.PriorityBackground || p > job.PriorityCritical {
			t.Fatalf("ParsePriority(%q) = %d, outside 0..4", s, p)
		}
		back, err := job.ParsePriority(p.String())
		if err != nil || back != p {
			t.Fatalf("ParsePriority(%q) = %v, but its name %q reads back as %v, %v", s, p, p.String(), back, err)
		}
	})
}

// FuzzPriorityJSON: what UnmarshalJSON accepts is a level that MarshalJSON
// writes as its name and that name decodes to the same level; a rejected
// value is an error that mentions priority.
func FuzzPriorityJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var p job.Priority
		if err := p.UnmarshalJSON(b); err != nil {
			if !strings.Contains(err.Error(), "priority") {
				t.Fatalf("UnmarshalJSON(%q): error %q does not say it is about a priority", b, err)
			}
			return
		}
		if p < job.PriorityBackground || p > job.PriorityCritical {
			t.Fatalf("UnmarshalJSON(%q) = %d, outside 0..4", b, p)
		}
		out, err := p.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON(%d): %v", p, err)
		}
		if want := strconv.Quote(p.String()); string(out) != want {
			t.Fatalf("MarshalJSON(%d) = %s, want the name %s", p, out, want)
		}
		var back job.Priority
		if err := back.UnmarshalJSON(out); err != nil || back != p {
			t.Fatalf("UnmarshalJSON(%q) = %v, but %s reads back as %v, %v", b, p, out, back, err)
		}
	})
}

// FuzzDurationText: an accepted duration is never negative and its text
// reads back as the same duration; a rejected one is an error that quotes
// the input.
func FuzzDurationText(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		var d job.Duration
		if err := d.UnmarshalText([]byte(s)); err != nil {
			if !strings.Contains(err.Error(), "invalid duration "+strconv.Quote(s)) {
				t.Fatalf("UnmarshalText(%q): error %q does not quote the input", s, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("UnmarshalText(%q) = %v, negative", s, d)
		}
		text, err := d.MarshalText()
		if err != nil {
			t.Fatalf("MarshalText(%v): %v", d, err)
		}
		var back job.Duration
		if err := back.UnmarshalText(text); err != nil || back != d {
			t.Fatalf("UnmarshalText(%q) = %v, but %q reads back as %v, %v", s, d, text, back, err)
		}
	})
}
