package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/net/http/httpguts"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/tracing"
)

// Request headers the app receives. Their names are the app contract: apps
// read them, so they never change.
const (
	HeaderJobID         = "Hammerwork-Job-Id"
	HeaderQueue         = "Hammerwork-Queue"
	HeaderAttempt       = "Hammerwork-Attempt"
	HeaderMaxAttempts   = "Hammerwork-Max-Attempts"
	HeaderPriority      = "Hammerwork-Priority"
	HeaderDeadline      = "Hammerwork-Deadline"
	HeaderLeaseToken    = "Hammerwork-Lease-Token"
	HeaderWorkflowID    = "Hammerwork-Workflow-Id"
	HeaderWorkflowName  = "Hammerwork-Workflow-Name"
	HeaderStep          = "Hammerwork-Step"
	HeaderParentIDs     = "Hammerwork-Parent-Ids"
	HeaderBatchID       = "Hammerwork-Batch-Id"
	HeaderCorrelationID = "Hammerwork-Correlation-Id"
	HeaderTraceparent   = "traceparent"
	HeaderTracestate    = "tracestate"
	// HeaderNoRetry in a non-2xx response fails the job at once.
	HeaderNoRetry = "Hammerwork-No-Retry"
)

// DeadlineFormat is RFC 3339 in UTC with milliseconds: precise enough for an
// app to budget its work, and parseable by every RFC 3339 parser.
const DeadlineFormat = "2006-01-02T15:04:05.000Z07:00"

// userAgent names the sender in the app's access logs.
const userAgent = "hw-agent"

// HandlerURL substitutes {queue} in a handler_url template, path-escaped so
// a queue name can never change the URL's structure.
func HandlerURL(template, queue string) string {
	return strings.ReplaceAll(template, "{queue}", url.PathEscape(queue))
}

// envelope is the body sent when Target.Envelope is set.
type envelope struct {
	ID      uuid.UUID                  `json:"id"`
	Queue   string                     `json:"queue"`
	Attempt int                        `json:"attempt"`
	Payload json.RawMessage            `json:"payload"`
	Parents map[string]json.RawMessage `json:"parents"`
}

var nullJSON = []byte("null")

// requestBody is the payload as enqueued, or the envelope around it.
func requestBody(j *job.Job, t Target) ([]byte, error) {
	payload := []byte(j.Payload)
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = nullJSON
	}
	if !t.Envelope {
		return payload, nil
	}
	parents := t.Parents
	if parents == nil {
		parents = map[string]json.RawMessage{}
	}
	b, err := json.Marshal(envelope{
		ID:      j.ID,
		Queue:   j.Queue,
		Attempt: j.Attempts,
		Payload: payload,
		Parents: parents,
	})
	if err != nil {
		return nil, fmt.Errorf("build envelope for job %s: %w", j.ID, err)
	}
	return b, nil
}

// newRequest builds the POST for one attempt. It returns the traceparent it
// sent so the caller can report the dispatch span.
func (d *Dispatcher) newRequest(ctx context.Context, j *job.Job, t Target, now, deadline time.Time) (*http.Request, string, error) {
	body, err := requestBody(j, t)
	if err != nil {
		return nil, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return nil, "", fmt.Errorf("build request to %q: %w", t.URL, err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", userAgent)
	h.Set(HeaderJobID, j.ID.String())
	d.setIf(h, j, HeaderQueue, j.Queue)
	h.Set(HeaderAttempt, strconv.Itoa(j.Attempts))
	h.Set(HeaderMaxAttempts, strconv.Itoa(j.MaxAttempts))
	h.Set(HeaderPriority, j.Priority.String())
	if !deadline.IsZero() {
		h.Set(HeaderDeadline, deadline.UTC().Format(DeadlineFormat))
	}
	d.setIf(h, j, HeaderLeaseToken, j.LeaseToken)
	if j.WorkflowID != nil {
		h.Set(HeaderWorkflowID, j.WorkflowID.String())
	}
	d.setIf(h, j, HeaderWorkflowName, j.WorkflowName)
	d.setIf(h, j, HeaderStep, j.StepName)
	if len(j.DependsOn) > 0 {
		ids := make([]string, len(j.DependsOn))
		for i, id := range j.DependsOn {
			ids[i] = id.String()
		}
		h.Set(HeaderParentIDs, strings.Join(ids, ","))
	}
	if j.BatchID != nil {
		h.Set(HeaderBatchID, j.BatchID.String())
	}
	d.setIf(h, j, HeaderCorrelationID, j.CorrelationID)
	var traceparent string
	if parent, err := tracing.ParseTraceparent(j.SpanContext); err == nil {
		traceparent = tracing.Child(parent).String()
		h.Set(HeaderTraceparent, traceparent)
		// The caller's tracestate travels with the trace it belongs to;
		// the agent's own client span (t.Header) carries the same one.
		if ts, err := tracing.JobTraceState(j); err != nil {
			d.omitted(j, HeaderTracestate, err)
		} else {
			d.setIf(h, j, HeaderTracestate, ts.String())
		}
	}
	for k, vs := range t.Header {
		key := http.CanonicalHeaderKey(k)
		delete(h, key)
		for _, v := range vs {
			if d.validHeaderValue(j, key, v) {
				h.Add(key, v)
			}
		}
	}
	if tp := h.Get(HeaderTraceparent); tp != "" {
		traceparent = tp
	}
	if t.SigningSecret != "" {
		if err := sign(h, t.SigningSecret, j.ID.String(), now, body); err != nil {
			return nil, "", err
		}
	}
	return req, traceparent, nil
}

// setIf sets a header only when the job has the value: an empty header tells
// the app nothing and costs bytes on every request. A value net/http would
// refuse is left out (validHeaderValue).
func (d *Dispatcher) setIf(h http.Header, j *job.Job, key, value string) {
	if value != "" && d.validHeaderValue(j, key, value) {
		h.Set(key, value)
	}
}

// validHeaderValue reports whether net/http will send value as a header
// field, and logs the header it is about to leave out when not. A job stored
// with a CR, LF or other control character in a field that becomes a header
// (written before enqueue checked them, or by another writer) would
// otherwise fail every attempt as a connection error without the app ever
// seeing it: delivering it without that one header is what the app can act on.
func (d *Dispatcher) validHeaderValue(j *job.Job, key, value string) bool {
	if httpguts.ValidHeaderFieldValue(value) {
		return true
	}
	d.omitted(j, key, errControlCharacter)
	return false
}

var errControlCharacter = errors.New("the value holds a control character (CR, LF, NUL, ...)")

// omitted logs a header left out of j's request and why.
func (d *Dispatcher) omitted(j *job.Job, key string, why error) {
	d.log.Warn("job delivered without a header whose stored value cannot be sent",
		"job_id", j.ID, "header", key, "reason", why.Error())
}
