package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/events"
)

const (
	// responseBytes is how much of an answer the delivery log keeps.
	responseBytes = 4 << 10
	// drainBytes bounds how much of an unread answer is discarded to keep
	// the connection alive; past it, closing and redialing is cheaper.
	drainBytes = 64 << 10
	userAgent  = "hw-agent"
)

// Config configures a Sink.
type Config struct {
	// Client sends the requests; nil is a client that follows no
	// redirects. Each attempt is bounded by the definition's Timeout.
	// Redirects are never followed, whichever client: a 3xx is the
	// receiver's answer, and re-POSTing an event elsewhere is not what it
	// meant.
	Client *http.Client
	// AgentID names the sender in the User-Agent header.
	AgentID string
	Logger  *slog.Logger
	// Now is the clock of the signature's timestamp and of an HTTP-date
	// Retry-After: the receiver's side of time, so the agent's own; nil is
	// time.Now.
	Now func() time.Time
}

// Sink POSTs events to webhook subscribers. It implements events.Sink.
type Sink struct {
	cfg    Config
	client *http.Client
	ua     string
	log    *slog.Logger
}

// New returns a Sink.
func New(cfg Config) *Sink {
	var c http.Client
	if cfg.Client != nil {
		c = *cfg.Client
	} else {
		c.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ua := userAgent
	if cfg.AgentID != "" {
		ua += " (" + cfg.AgentID + ")"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{cfg: cfg, client: &c, ua: ua, log: log}
}

// CloseIdleConnections closes the pooled connections to receivers; the
// agent calls it once its relay has stopped.
func (s *Sink) CloseIdleConnections() { s.client.CloseIdleConnections() }

// Deliver implements events.Sink: the events of one job (or of one
// workflow, batch, schedule or queue, for events without a job) go one
// after another, and one that does not succeed leaves the rest of its job
// NotTried; different jobs go concurrently, at most Def.Concurrency
// requests at once. An event not attempted before ctx ended is NotTried.
func (s *Sink) Deliver(ctx context.Context, sub events.Subscription, batch []events.Event) []events.Result {
	res := make([]events.Result, len(batch))
	def, err := decode(sub)
	if err != nil {
		for i := range res {
			res[i] = events.Result{Outcome: events.Retry, Error: err.Error(), At: s.cfg.Now()}
		}
		return res
	}
	var order []string
	groups := map[string][]int{}
	for i, e := range batch {
		k := orderKey(e)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	slots := make(chan struct{}, def.Concurrency)
	var wg sync.WaitGroup
	for _, k := range order {
		wg.Add(1)
		go func(idx []int) {
			defer wg.Done()
			for _, i := range idx {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				res[i] = s.attempt(ctx, def, batch[i])
				<-slots
				if res[i].Outcome != events.Delivered {
					return
				}
			}
		}(groups[k])
	}
	wg.Wait()
	return res
}

// Send makes one attempt at one event outside the relay (a test ping, a
// redelivery).
func (s *Sink) Send(ctx context.Context, sub events.Subscription, e events.Event) events.Result {
	def, err := decode(sub)
	if err != nil {
		return events.Result{Outcome: events.Retry, Error: err.Error(), At: s.cfg.Now()}
	}
	return s.attempt(ctx, def, e)
}

// decode reads the subscriber's stored definition, defaults applied.
func decode(sub events.Subscription) (Def, error) {
	var def Def
	if err := json.Unmarshal(sub.Config, &def); err != nil {
		return Def{}, fmt.Errorf("decode webhook %q's definition: %w", sub.Name, err)
	}
	return def.WithDefaults(), nil
}

// orderKey groups the events that must arrive in order: a job's, else a
// workflow's, a batch's, a schedule's or a queue's.
func orderKey(e events.Event) string {
	switch {
	case e.JobID != nil:
		return "job:" + e.JobID.String()
	case e.WorkflowID != nil:
		return "workflow:" + e.WorkflowID.String()
	case e.BatchID != nil:
		return "batch:" + e.BatchID.String()
	case e.Schedule != "":
		return "schedule:" + e.Schedule
	}
	return "queue:" + e.Queue
}

// attempt POSTs one event and classifies the answer.
func (s *Sink) attempt(ctx context.Context, def Def, e events.Event) events.Result {
	now := s.cfg.Now()
	start := time.Now()
	res := s.post(ctx, def, e, now)
	res.At, res.Duration = now, time.Since(start)
	s.log.Debug("webhook attempt", "webhook", def.Name, "event_id", e.ID, "event_type", e.Type,
		"status", res.StatusCode, "outcome", res.Outcome, "duration", res.Duration, "error", res.Error)
	return res
}

func (s *Sink) post(ctx context.Context, def Def, e events.Event, now time.Time) events.Result {
	if !def.IncludePayload {
		e.Payload = nil
	}
	if !def.IncludeResult {
		e.Result = nil
	}
	body, err := json.Marshal(e)
	if err != nil {
		return events.Result{Outcome: events.Rejected, Error: fmt.Sprintf("encode event %s: %v", e.ID, err)}
	}
	reqCtx, cancel := context.WithTimeout(ctx, def.Timeout.D())
	defer cancel()
	req, err := s.request(reqCtx, def, e.ID, now, body)
	if err != nil {
		// A URL or secret the validation should have refused: retrying
		// leaves the events for a fixed definition instead of dropping them.
		return events.Result{Outcome: events.Retry, Error: err.Error()}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return transportFailure(ctx, reqCtx, def.Timeout.D(), err)
	}
	return classify(resp, now)
}

// request builds the POST with the Standard Webhooks headers: the event id
// is the message id, so a receiver deduplicates redeliveries by it, and
// each secret signs, so a receiver knowing any of them verifies.
func (s *Sink) request(ctx context.Context, def Def, id uuid.UUID, now time.Time, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, def.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request to webhook %q: %w", def.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.ua)
	ts := now.Unix()
	req.Header.Set(dispatch.HeaderWebhookID, id.String())
	req.Header.Set(dispatch.HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	if len(def.Secrets) > 0 {
		sigs := make([]string, len(def.Secrets))
		for i, secret := range def.Secrets {
			key, err := dispatch.SigningKey(secret)
			if err != nil {
				return nil, fmt.Errorf("webhook %q secrets[%d]: %w", def.Name, i, err)
			}
			sigs[i] = dispatch.Signature(key, id.String(), ts, body)
		}
		req.Header.Set(dispatch.HeaderWebhookSignature, strings.Join(sigs, " "))
	}
	return req, nil
}

// classify turns an answer into a Result: 2xx delivered; 410 gone; 408,
// 409, 425, 429 and 5xx retried (at the Retry-After when given); other 4xx
// and 3xx rejected.
func classify(resp *http.Response, now time.Time) events.Result {
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, drainBytes)
		_ = resp.Body.Close()
	}()
	code := resp.StatusCode
	head, _ := io.ReadAll(io.LimitReader(resp.Body, responseBytes))
	res := events.Result{StatusCode: code, Response: safeText(head)}
	switch {
	case code >= 200 && code < 300:
		res.Outcome = events.Delivered
		return res
	case code == http.StatusGone:
		res.Outcome = events.Gone
	case dispatch.Retryable(code):
		res.Outcome = events.Retry
		res.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
	default:
		res.Outcome = events.Rejected
	}
	res.Error = resp.Status
	if res.Error == "" {
		res.Error = strconv.Itoa(code) + " " + http.StatusText(code)
	}
	return res
}

// retryAfter is how long the receiver asked to wait, never negative; the
// relay caps it by the policy's retry_max.
func retryAfter(v string, now time.Time) time.Duration {
	t := dispatch.ParseRetryAfter(v, now)
	if t.IsZero() {
		return 0
	}
	return max(t.Sub(now), 0)
}

// transportFailure classifies an attempt that got no answer. The relay
// stopping is not the receiver's fault: the event was not tried.
func transportFailure(ctx, reqCtx context.Context, timeout time.Duration, err error) events.Result {
	var netErr net.Error
	switch {
	case ctx.Err() != nil:
		return events.Result{Outcome: events.NotTried, Error: fmt.Sprintf("the relay stopped waiting: %v", err)}
	case errors.Is(reqCtx.Err(), context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return events.Result{Outcome: events.Retry, Error: fmt.Sprintf("timeout: no answer within %s", timeout)}
	}
	return events.Result{Outcome: events.Retry, Error: err.Error()}
}

// safeText makes an answer storable in a text column on every backend:
// valid UTF-8 (a rune cut by the 4 KiB limit is dropped) and no NUL.
func safeText(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return strings.ReplaceAll(strings.TrimRight(s, "\uFFFD"), "\x00", "\uFFFD")
}
