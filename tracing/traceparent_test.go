package tracing

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

const (
	specTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	specSpanID  = "00f067aa0ba902b7"
	specHeader  = "00-" + specTraceID + "-" + specSpanID + "-01"
)

func TestParseTraceparentAcceptsValidHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		flags   byte
		traceID string
		spanID  string
		out     string // String() of the parsed value
	}{
		{"spec example sampled", specHeader, 0x01, specTraceID, specSpanID, specHeader},
		{"not sampled", "00-" + specTraceID + "-" + specSpanID + "-00", 0x00, specTraceID, specSpanID, "00-" + specTraceID + "-" + specSpanID + "-00"},
		{"unknown flags kept", "00-" + specTraceID + "-" + specSpanID + "-ff", 0xff, specTraceID, specSpanID, "00-" + specTraceID + "-" + specSpanID + "-ff"},
		{"future version exact length", "01-" + specTraceID + "-" + specSpanID + "-01", 0x01, specTraceID, specSpanID, specHeader},
		{"future version extra fields", "cc-" + specTraceID + "-" + specSpanID + "-01-what-the-future-holds", 0x01, specTraceID, specSpanID, specHeader},
		{"future version empty extra field", "fe-" + specTraceID + "-" + specSpanID + "-00-", 0x00, specTraceID, specSpanID, "00-" + specTraceID + "-" + specSpanID + "-00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tp, err := ParseTraceparent(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.flags, tp.Flags)
			require.Equal(t, tt.traceID, tp.TraceIDString())
			require.Equal(t, tt.spanID, tp.SpanIDString())
			require.Equal(t, tt.out, tp.String())
			require.Equal(t, tt.flags&FlagSampled != 0, tp.Sampled())
		})
	}
}

func TestParseTraceparentRejectsInvalidHeaders(t *testing.T) {
	t.Parallel()
	zeroTrace := strings.Repeat("0", 32)
	zeroSpan := strings.Repeat("0", 16)
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"too short", specHeader[:54]},
		{"version ff", "ff-" + specTraceID + "-" + specSpanID + "-01"},
		{"version 00 with extra fields", specHeader + "-extra"},
		{"version 00 one character too long", specHeader + "0"},
		{"future version extra without dash", "01-" + specTraceID + "-" + specSpanID + "-01x"},
		{"uppercase version", "0A-" + specTraceID + "-" + specSpanID + "-01"},
		{"non hex version", "0g-" + specTraceID + "-" + specSpanID + "-01"},
		{"uppercase trace id", "00-" + strings.ToUpper(specTraceID) + "-" + specSpanID + "-01"},
		{"uppercase span id", "00-" + specTraceID + "-00F067AA0BA902B7-01"},
		{"uppercase flags", "00-" + specTraceID + "-" + specSpanID + "-0A"},
		{"non hex trace id", "00-" + specTraceID[:31] + "z-" + specSpanID + "-01"},
		{"non hex span id", "00-" + specTraceID + "-" + specSpanID[:15] + "x-01"},
		{"non hex flags", "00-" + specTraceID + "-" + specSpanID + "-0x"},
		{"all-zero trace id", "00-" + zeroTrace + "-" + specSpanID + "-01"},
		{"all-zero span id", "00-" + specTraceID + "-" + zeroSpan + "-01"},
		{"wrong separator after version", "00_" + specTraceID + "-" + specSpanID + "-01"},
		{"wrong separator after trace id", "00-" + specTraceID + "_" + specSpanID + "-01"},
		{"wrong separator after span id", "00-" + specTraceID + "-" + specSpanID + "_01"},
		{"leading whitespace", " " + specHeader[:54]},
		{"short trace id shifted", "00-" + specTraceID[:31] + "-" + specSpanID + "-011"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseTraceparent(tt.in)
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrInvalidTraceparent), "error %v must wrap ErrInvalidTraceparent", err)
		})
	}
}

func TestValidTraceID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{specTraceID, true},
		{NewTraceID(), true},
		{strings.Repeat("0", 32), false},
		{strings.ToUpper(specTraceID), false},
		{specTraceID[:31], false},
		{specTraceID + "0", false},
		{strings.Repeat("g", 32), false},
		{"", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, ValidTraceID(tt.in), "ValidTraceID(%q)", tt.in)
	}
}

func TestValidSpanID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{specSpanID, true},
		{NewSpanID(), true},
		{strings.Repeat("0", 16), false},
		{strings.ToUpper(specSpanID), false},
		{specSpanID[:15], false},
		{specTraceID, false},
		{"", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, ValidSpanID(tt.in), "ValidSpanID(%q)", tt.in)
	}
}

func TestNewIDsAreWellFormedAndDistinct(t *testing.T) {
	t.Parallel()
	traces := map[string]bool{}
	spans := map[string]bool{}
	correlations := map[string]bool{}
	for range 100 {
		tr, sp, co := NewTraceID(), NewSpanID(), NewCorrelationID()
		require.True(t, ValidTraceID(tr), tr)
		require.True(t, ValidSpanID(sp), sp)
		_, err := uuid.Parse(co)
		require.NoError(t, err)
		require.False(t, traces[tr] || spans[sp] || correlations[co], "random id repeated")
		traces[tr], spans[sp], correlations[co] = true, true, true
	}
}

func TestChildKeepsTraceAndFlagsWithNewSpan(t *testing.T) {
	t.Parallel()
	for _, header := range []string{specHeader, "00-" + specTraceID + "-" + specSpanID + "-00"} {
		parent, err := ParseTraceparent(header)
		require.NoError(t, err)
		child := Child(parent)
		require.Equal(t, parent.TraceID, child.TraceID)
		require.Equal(t, parent.Flags, child.Flags)
		require.NotEqual(t, parent.SpanID, child.SpanID)
		require.True(t, ValidSpanID(child.SpanIDString()))
		again, err := ParseTraceparent(child.String())
		require.NoError(t, err)
		require.Equal(t, child, again)
		require.NotEqual(t, child.SpanID, Child(parent).SpanID, "each child gets its own span id")
	}
}

// FuzzParseTraceparentRoundTrip proves that whatever parses formats back to a
// version-00 header that parses to the same value, and that a version-00
// header formats back to itself.
func FuzzParseTraceparentRoundTrip(f *testing.F) {
	for _, s := range []string{
		specHeader,
		"00-" + specTraceID + "-" + specSpanID + "-00",
		"01-" + specTraceID + "-" + specSpanID + "-01-extra",
		"ff-" + specTraceID + "-" + specSpanID + "-01",
		"00-" + strings.Repeat("0", 32) + "-" + specSpanID + "-01",
		specHeader + "-",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := ParseTraceparent(s)
		if err != nil {
			return
		}
		out := tp.String()
		require.Len(t, out, 55)
		again, err := ParseTraceparent(out)
		require.NoError(t, err, "formatted %q from %q", out, s)
		require.Equal(t, tp, again)
		if strings.HasPrefix(s, "00-") {
			require.Equal(t, s, out)
		} else {
			require.Equal(t, "00-"+s[3:55], out)
		}
	})
}
