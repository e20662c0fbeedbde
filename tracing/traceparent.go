// Package tracing carries W3C trace context and correlation ids through jobs
// and workflows, so that a whole workflow reads as one trace in any backend
// that understands traceparent.
package tracing

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// TraceParent is a parsed W3C traceparent header
// (https://www.w3.org/TR/trace-context/#traceparent-header). It always
// formats as version 00, the only version this program emits.
type TraceParent struct {
	TraceID [16]byte
	SpanID  [8]byte
	Flags   byte
}

// FlagSampled is the trace-flags bit saying the caller may have recorded its span.
const FlagSampled byte = 0x01

// ErrInvalidTraceparent wraps every reason ParseTraceparent rejects a header.
var ErrInvalidTraceparent = errors.New("invalid traceparent")

// Lengths of the fixed version-00 layout "vv-<32 hex>-<16 hex>-ff".
const (
	traceparentLen = 55
	traceIDHexLen  = 32
	spanIDHexLen   = 16
)

// ParseTraceparent parses a traceparent header as the W3C spec tells a
// receiver to: lowercase hex only; version ff, an all-zero trace id and an
// all-zero parent id are invalid; version 00 is exactly 55 characters; a
// higher version may carry more fields after a dash, which are ignored, so a
// newer sender's context still continues the trace.
func ParseTraceparent(s string) (TraceParent, error) {
	var tp TraceParent
	if len(s) < traceparentLen {
		return tp, fmt.Errorf("%w: %q is shorter than %d characters", ErrInvalidTraceparent, s, traceparentLen)
	}
	version, ok := decodeLowerHex(s[0:2])
	if !ok || s[2] != '-' {
		return tp, fmt.Errorf("%w: %q does not start with a two-digit lowercase hex version and a dash", ErrInvalidTraceparent, s)
	}
	switch {
	case version == 0xff:
		return tp, fmt.Errorf("%w: version ff is forbidden", ErrInvalidTraceparent)
	case version == 0x00 && len(s) != traceparentLen:
		return tp, fmt.Errorf("%w: version 00 must be exactly %d characters, got %d", ErrInvalidTraceparent, traceparentLen, len(s))
	case len(s) > traceparentLen && s[traceparentLen] != '-':
		return tp, fmt.Errorf("%w: fields after trace-flags must follow a dash", ErrInvalidTraceparent)
	}
	if s[35] != '-' || s[52] != '-' {
		return tp, fmt.Errorf("%w: %q is not version-trace_id-parent_id-flags", ErrInvalidTraceparent, s)
	}
	if !decodeLowerHexInto(tp.TraceID[:], s[3:35]) {
		return tp, fmt.Errorf("%w: trace id %q is not 32 lowercase hex digits", ErrInvalidTraceparent, s[3:35])
	}
	if !decodeLowerHexInto(tp.SpanID[:], s[36:52]) {
		return tp, fmt.Errorf("%w: parent id %q is not 16 lowercase hex digits", ErrInvalidTraceparent, s[36:52])
	}
	flags, ok := decodeLowerHex(s[53:55])
	if !ok {
		return tp, fmt.Errorf("%w: trace flags %q are not two lowercase hex digits", ErrInvalidTraceparent, s[53:55])
	}
	tp.Flags = flags
	if isZero(tp.TraceID[:]) {
		return tp, fmt.Errorf("%w: trace id is all zeros", ErrInvalidTraceparent)
	}
	if isZero(tp.SpanID[:]) {
		return tp, fmt.Errorf("%w: parent id is all zeros", ErrInvalidTraceparent)
	}
	return tp, nil
}

// String formats the header as version 00.
func (tp TraceParent) String() string {
	b := make([]byte, 0, traceparentLen)
	b = append(b, "00-"...)
	b = hex.AppendEncode(b, tp.TraceID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, tp.SpanID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, []byte{tp.Flags})
	return string(b)
}

// TraceIDString is the trace id as 32 lowercase hex digits, the form stored
// in hammerwork_jobs.trace_id and logged as trace_id.
func (tp TraceParent) TraceIDString() string { return hex.EncodeToString(tp.TraceID[:]) }

// SpanIDString is the span id as 16 lowercase hex digits, the form stored in
// hammerwork_jobs.parent_span_id.
func (tp TraceParent) SpanIDString() string { return hex.EncodeToString(tp.SpanID[:]) }

// Sampled reports whether the sampled flag is set.
func (tp TraceParent) Sampled() bool { return tp.Flags&FlagSampled != 0 }

// Child is the context of a new span inside the parent's trace: the same
// trace id and flags with a fresh span id. The agent sends a child, not the
// job's own context, so the app's spans hang under the agent's dispatch span.
func Child(parent TraceParent) TraceParent {
	return TraceParent{TraceID: parent.TraceID, SpanID: newSpanID(), Flags: parent.Flags}
}

// ValidTraceID reports whether s is a W3C trace id: 32 lowercase hex digits,
// not all zeros.
func ValidTraceID(s string) bool {
	var id [16]byte
	return len(s) == traceIDHexLen && decodeLowerHexInto(id[:], s) && !isZero(id[:])
}

// ValidSpanID reports whether s is a W3C span (parent) id: 16 lowercase hex
// digits, not all zeros.
func ValidSpanID(s string) bool {
	var id [8]byte
	return len(s) == spanIDHexLen && decodeLowerHexInto(id[:], s) && !isZero(id[:])
}

// NewTraceID returns a random trace id as 32 lowercase hex digits.
func NewTraceID() string {
	id := newTraceID()
	return hex.EncodeToString(id[:])
}

// NewSpanID returns a random span id as 16 lowercase hex digits.
func NewSpanID() string {
	id := newSpanID()
	return hex.EncodeToString(id[:])
}

// NewCorrelationID returns a random UUID string. Correlation ids are
// business identifiers chosen by users; ours only fill the gap when a job or
// workflow arrives without one.
func NewCorrelationID() string { return uuid.NewString() }

// newTraceID draws from crypto/rand, which never fails (it crashes the
// program instead), and redraws the all-zero id the spec forbids.
func newTraceID() [16]byte {
	var id [16]byte
	for isZero(id[:]) {
		_, _ = rand.Read(id[:])
	}
	return id
}

func newSpanID() [8]byte {
	var id [8]byte
	for isZero(id[:]) {
		_, _ = rand.Read(id[:])
	}
	return id
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// decodeLowerHexInto decodes s into dst (len(s) == 2*len(dst)), rejecting the
// uppercase digits encoding/hex would accept but the W3C grammar forbids.
func decodeLowerHexInto(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := lowerHexDigit(s[2*i])
		lo, ok2 := lowerHexDigit(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func decodeLowerHex(s string) (byte, bool) {
	var b [1]byte
	ok := decodeLowerHexInto(b[:], s)
	return b[0], ok
}

func lowerHexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
