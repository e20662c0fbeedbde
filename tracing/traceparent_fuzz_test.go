package tracing_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hammerwork-go/hw-agent/tracing"
)

// FuzzParseTraceparent: a rejected header is an ErrInvalidTraceparent that
// says more than the sentinel; an accepted one has non-zero ids, formats as
// the same header when it was version 00 (else as its version-00 form with
// the same ids and flags), and that form parses back to the same context.
func FuzzParseTraceparent(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := tracing.ParseTraceparent(s)
		if err != nil {
			if !errors.Is(err, tracing.ErrInvalidTraceparent) {
				t.Fatalf("ParseTraceparent(%q): error %q does not match ErrInvalidTraceparent", s, err)
			}
			if reason, _ := strings.CutPrefix(err.Error(), tracing.ErrInvalidTraceparent.Error()+": "); strings.TrimSpace(reason) == "" || reason == err.Error() {
				t.Fatalf("ParseTraceparent(%q): error %q gives no reason", s, err)
			}
			return
		}
		if !tracing.ValidTraceID(tp.TraceIDString()) || !tracing.ValidSpanID(tp.SpanIDString()) {
			t.Fatalf("ParseTraceparent(%q) accepted ids %s/%s", s, tp.TraceIDString(), tp.SpanIDString())
		}
		out := tp.String()
		if want := "-" + tp.TraceIDString() + "-" + tp.SpanIDString() + "-"; s[2:len(want)+2] != want {
			t.Fatalf("ParseTraceparent(%q) = %s: ids differ from the header's", s, out)
		}
		if strings.HasPrefix(s, "00-") && out != s {
			t.Fatalf("ParseTraceparent(%q) formats as %q", s, out)
		}
		back, err := tracing.ParseTraceparent(out)
		if err != nil || back != tp {
			t.Fatalf("ParseTraceparent(%q) = %s, which parses back as %+v, %v", s, out, back, err)
		}
	})
}
