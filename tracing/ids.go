package tracing

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// idGenerator is the SDK's random generator with two overrides carried by
// the context: a trace id chosen by the user (an explicit trace_id on a job
// or workflow) for a new root span, and a span id computed from a job
// attempt, so a later job can link to its parents' process spans without
// any column to store them in.
type idGenerator struct{}

// NewIDGenerator returns the generator Setup installs. A tracer provider
// built elsewhere (tests) needs it for explicit trace ids and parent links
// to hold: sdktrace.WithIDGenerator(tracing.NewIDGenerator()).
func NewIDGenerator() sdktrace.IDGenerator { return idGenerator{} }

type (
	traceIDKey struct{}
	spanIDKey  struct{}
)

func withTraceID(ctx context.Context, id trace.TraceID) context.Context {
	return context.WithValue(ctx, traceIDKey{}, id)
}

func withSpanID(ctx context.Context, id trace.SpanID) context.Context {
	return context.WithValue(ctx, spanIDKey{}, id)
}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	tid, ok := ctx.Value(traceIDKey{}).(trace.TraceID)
	if !ok || !tid.IsValid() {
		tid = randomTraceID()
	}
	return tid, spanIDFrom(ctx)
}

func (idGenerator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	return spanIDFrom(ctx)
}

func spanIDFrom(ctx context.Context) trace.SpanID {
	if sid, ok := ctx.Value(spanIDKey{}).(trace.SpanID); ok && sid.IsValid() {
		return sid
	}
	return randomSpanID()
}

func randomTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
		binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func randomSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}

// ProcessSpanID is the span id of the process span of one attempt: a hash
// of the job id, the attempt number and the second the attempt's lease
// began (started_at). Anyone holding the job's row can compute it, which
// is how a fan-in job links to its parents' last attempts. started_at is
// rounded to the second so that every backend's timestamp precision gives
// the same id; it tells apart attempts that reuse a number after a manual
// retry resets the count.
func ProcessSpanID(jobID uuid.UUID, attempt int, startedAt time.Time) trace.SpanID {
	var b [16 + 8 + 8]byte
	copy(b[:16], jobID[:])
	binary.BigEndian.PutUint64(b[16:24], uint64(attempt))
	binary.BigEndian.PutUint64(b[24:], uint64(startedAt.Unix()))
	sum := sha256.Sum256(b[:])
	var id trace.SpanID
	copy(id[:], sum[:8])
	if !id.IsValid() {
		id[7] = 1
	}
	return id
}
