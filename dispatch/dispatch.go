// Package dispatch delivers one leased job to the app over HTTP and turns
// the app's answer into an Outcome, following the app contract in the
// README ("Request headers", "Response -> outcome"). It records nothing itself: the agent stores the
// Result, so dispatch stays free of database concerns and easy to test.
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/hammerwork-go/hw-agent/job"
)

// Target is where and how one job is delivered.
type Target struct {
	URL            string        // handler_url with {queue} already substituted
	Timeout        time.Duration // per-request deadline; 0: none (the agent always sets one)
	Envelope       bool          // wrap the payload in {id, queue, attempt, payload, parents}
	SigningSecret  string        // Standard Webhooks secret ("whsec_..." base64 or raw); empty: unsigned
	MaxResultBytes int64         // 0: no result stored
	// Parents are the results of the job's parents keyed by step name, sent
	// as the envelope's "parents"; the agent reads them from the store only
	// when Envelope is set, since a bare payload has nowhere to carry them.
	Parents map[string]json.RawMessage
	// Header is added to the request after the standard headers: the
	// agent's trace context (traceparent and tracestate of its client span)
	// and baggage. A traceparent here replaces the one derived from the
	// job's span_context, so the app's span becomes the agent's child.
	Header http.Header
}

// Outcome is what the app's answer means for the job.
type Outcome string

const (
	OutcomeCompleted Outcome = "completed" // 2xx other than 202
	OutcomeAccepted  Outcome = "accepted"  // 202: stays running, app completes through the API
	OutcomeRetry     Outcome = "retry"     // 408, 409, 425, 429, 5xx, timeout, connection error, cancelled
	OutcomeFailed    Outcome = "failed"    // other 4xx, 3xx, Hammerwork-No-Retry: true
)

// Attempt labels recorded in a job's error history for answers that are not
// plain HTTP statuses ("http_503" and "redirect_302" carry the code).
const (
	LabelTimeout           = "timeout"
	LabelConnectionRefused = "connection_refused"
	LabelConnectionError   = "connection_error"
	LabelCancelled         = "cancelled"
	LabelNoRetry           = "no_retry"
	LabelInvalidRequest    = "invalid_request"
)

// Result is one attempt's outcome with what the agent records about it.
type Result struct {
	Outcome     Outcome
	StatusCode  int           // 0 when there was no response
	Result      []byte        // body to store on completion: JSON every backend can store (store.CheckJSON) within MaxResultBytes, else nil
	ResultNote  string        // why a body was not stored (too large, not JSON, refused by a backend: say what), else ""
	Error       string        // status line + first 4 KiB of the body, or the transport error
	Label       string        // short attempt label: "http_503", "timeout", "connection_refused", "connection_error", "redirect_302", "no_retry", "cancelled"; "" on success
	RetryAfter  time.Time     // zero unless a 429/503 carried Retry-After (seconds or HTTP date)
	ConnRefused bool          // the app was not listening
	Duration    time.Duration // from building the request to reading the answer
	TraceParent string        // the traceparent sent to the app (the dispatch span), "" when the job had no valid context
}

// Dispatcher sends jobs to the app. It is safe for concurrent use; one
// Dispatcher per agent shares one connection pool across all queues.
type Dispatcher struct {
	client *http.Client
	// now is the wall clock for the deadline header, the signature timestamp
	// and Retry-After; tests pin it to assert exact header values.
	now func() time.Time
	// log receives the warnings of a delivery that went out without a header
	// (WithLogger); they name the job, so they belong with the agent's logs.
	log *slog.Logger
}

// Option configures a Dispatcher built by New.
type Option func(*Dispatcher)

// WithLogger sends the dispatcher's warnings to log instead of discarding
// them; nil keeps discarding. The agent passes its own logger, so a warning
// carries its agent_id and goes where the operator reads the agent's logs.
func WithLogger(log *slog.Logger) Option {
	return func(d *Dispatcher) {
		if log != nil {
			d.log = log
		}
	}
}

// maxConnsPerHost covers the agent's default concurrency (50) with room for
// per-queue handler URLs on the same host, so a busy agent keeps its
// connections alive instead of churning through TIME_WAIT sockets.
const maxConnsPerHost = 256

// New returns a Dispatcher that sends through client. A nil client gets a
// pooled transport sized for many concurrent requests to one local app.
// Either way redirects are never followed: a 3xx is the app's answer and
// fails the job, because re-POSTing a job somewhere else is never what the
// app meant. Without WithLogger its warnings are discarded.
func New(client *http.Client, opts ...Option) *Dispatcher {
	var c http.Client
	if client != nil {
		c = *client
	} else {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = maxConnsPerHost
		t.MaxIdleConnsPerHost = maxConnsPerHost
		c.Transport = t
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	d := &Dispatcher{client: &c, now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(d)
	}
	return d
}

// CloseIdleConnections closes the pooled connections to the app; the agent
// calls it after draining so no keep-alive sockets outlive it.
func (d *Dispatcher) CloseIdleConnections() { d.client.CloseIdleConnections() }

// Dispatch POSTs j to t.URL and classifies the answer. It never returns an
// error: every failure is an Outcome with a Label and an Error message,
// because the agent records all of them the same way. A cancelled ctx (agent
// shutdown) yields OutcomeRetry with Label "cancelled", never "timeout", so
// the agent can release the job instead of charging the app for it.
func (d *Dispatcher) Dispatch(ctx context.Context, j *job.Job, t Target) Result {
	start := time.Now()
	res := d.dispatch(ctx, j, t)
	res.Duration = time.Since(start)
	return res
}

func (d *Dispatcher) dispatch(ctx context.Context, j *job.Job, t Target) Result {
	now := d.now()
	reqCtx := ctx
	var deadline time.Time
	if t.Timeout > 0 {
		deadline = now.Add(t.Timeout)
		var cancel context.CancelFunc
		reqCtx, cancel = context.WithTimeout(ctx, t.Timeout)
		defer cancel()
	}
	req, traceparent, err := d.newRequest(reqCtx, j, t, now, deadline)
	if err != nil {
		// A bad URL or signing secret is the agent's configuration, not the
		// job's fault; the config check should have caught it. Retrying
		// leaves the job for a fixed agent rather than failing it for good.
		return Result{Outcome: OutcomeRetry, Label: LabelInvalidRequest, Error: err.Error()}
	}
	resp, err := d.client.Do(req)
	if err != nil {
		res := transportFailure(ctx, reqCtx, t.Timeout, err)
		res.TraceParent = traceparent
		return res
	}
	res := d.classify(resp, t.MaxResultBytes)
	res.TraceParent = traceparent
	return res
}

// transportFailure classifies an attempt that got no response. The parent
// ctx is checked first: the agent shutting down is not the app being slow.
func transportFailure(ctx, reqCtx context.Context, timeout time.Duration, err error) Result {
	var netErr net.Error
	switch {
	case ctx.Err() != nil:
		return Result{Outcome: OutcomeRetry, Label: LabelCancelled, Error: fmt.Sprintf("agent stopped waiting: %v", err)}
	case errors.Is(reqCtx.Err(), context.DeadlineExceeded):
		return Result{Outcome: OutcomeRetry, Label: LabelTimeout, Error: fmt.Sprintf("timeout: no response within %s", timeout)}
	case errors.Is(err, syscall.ECONNREFUSED):
		return Result{Outcome: OutcomeRetry, Label: LabelConnectionRefused, ConnRefused: true, Error: err.Error()}
	case errors.As(err, &netErr) && netErr.Timeout():
		return Result{Outcome: OutcomeRetry, Label: LabelTimeout, Error: err.Error()}
	default:
		return Result{Outcome: OutcomeRetry, Label: LabelConnectionError, Error: err.Error()}
	}
}
