package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// These routes finish jobs the app answered with 202 Accepted. Each is
// fenced by the lease token the app received in Hammerwork-Lease-Token: once
// the lease has expired and the job was rescued, leased again, cancelled or
// finished, the token no longer matches and the answer is a 409 stale_lease
// that changed nothing.

// maxErrorBytes caps a reported error as dispatch caps a response body
// (the first 4 KiB), so one chatty app cannot bloat every row.
const maxErrorBytes = 4 << 10

// failOutcome labels, in the job's error history, an attempt the app itself
// reported as failed through the API.
const failOutcome = "app_failed"

type completeRequest struct {
	LeaseToken string          `json:"lease_token"`
	Result     json.RawMessage `json:"result"`
}

type failRequest struct {
	LeaseToken string `json:"lease_token"`
	Error      string `json:"error"`
	// Retry defaults to true: a failure is retried while attempts remain.
	Retry *bool `json:"retry"`
}

type heartbeatRequest struct {
	LeaseToken string  `json:"lease_token"`
	Extend     *string `json:"extend"`
}

type heartbeatResponse struct {
	LeaseExpiresAt time.Time `json:"lease_expires_at"`
}

func (s *Server) completeJob(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var req completeRequest
	if err := decodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	if req.LeaseToken == "" {
		return invalid("lease_token is required (the Hammerwork-Lease-Token header of the dispatch)")
	}
	completion := store.Completion{LeaseRef: store.LeaseRef{ID: id, Token: req.LeaseToken}}
	if !isNull(req.Result) {
		// A result no backend could refuse is stored; any other completes
		// the job without it and says why, as a dispatch answer does, so
		// the app's work is not lost to a value it cannot easily see.
		if err := store.CheckJSON(req.Result); err != nil {
			completion.Note = "result not stored: result " + err.Error()
		} else {
			completion.Result = req.Result
		}
	}
	ctx := c.Request().Context()
	stale, err := s.p.Store.Complete(ctx, store.CompleteParams{
		Completions: []store.Completion{completion},
		Now:         s.now(),
	})
	if err != nil {
		return fmt.Errorf("complete job %s: %w", id, err)
	}
	if len(stale) > 0 {
		return s.staleLease(ctx, id)
	}
	// The completion may have freed children on queues this request does
	// not know, so every producer looks once.
	s.wake()
	return s.respondJob(c, id, nil, settlement{outcome: "completed"}, "job completed through the API")
}

func (s *Server) failJob(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var req failRequest
	if err := decodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	if req.LeaseToken == "" {
		return invalid("lease_token is required (the Hammerwork-Lease-Token header of the dispatch)")
	}
	if strings.TrimSpace(req.Error) == "" {
		return invalid("error is required: say why the job failed")
	}
	retry := req.Retry == nil || *req.Retry
	msg := store.SafeText(truncateError(req.Error))

	// The job is read first because RetryDelay needs its attempt count and
	// policy; the token check here only saves a write, the store's guard
	// is what makes a stale answer harmless.
	ctx := c.Request().Context()
	j, err := s.p.Store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("get job %s: %w", id, err)
	}
	if j.Status != job.StatusRunning || j.LeaseToken != req.LeaseToken {
		return staleLeaseError(j)
	}
	var delay time.Duration
	if retry && s.p.RetryDelay != nil {
		delay = s.p.RetryDelay(j)
	}
	res, err := s.p.Store.Fail(ctx, store.FailParams{
		Failures: []store.Failure{{
			LeaseRef:   store.LeaseRef{ID: id, Token: req.LeaseToken},
			Error:      msg,
			Outcome:    failOutcome,
			Retry:      retry,
			RetryDelay: delay,
		}},
		Now: s.now(),
	})
	if err != nil {
		return fmt.Errorf("fail job %s: %w", id, err)
	}
	if len(res.Stale) > 0 {
		return s.staleLease(ctx, id)
	}
	st := settlement{outcome: "failed", errorType: failOutcome, message: msg}
	if len(res.Retried) > 0 {
		// The producer learns the retry's due time from its next lease.
		s.wake(j.Queue)
		st.outcome = "retry"
	}
	return s.respondJob(c, id, j, st, "job failed through the API")
}

func (s *Server) heartbeat(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var req heartbeatRequest
	if err := decodeJSON(c.Request().Body, &req); err != nil {
		return err
	}
	if req.LeaseToken == "" {
		return invalid("lease_token is required (the Hammerwork-Lease-Token header of the dispatch)")
	}
	extend := s.p.LeaseDuration
	if req.Extend != nil {
		if extend, err = parseDuration("extend", req.Extend); err != nil {
			return err
		}
		if extend <= 0 {
			return invalid("extend %q must be positive", *req.Extend)
		}
		if extend > s.p.MaxLeaseExtension {
			return invalid("extend %q exceeds the agent's max_lease_extension (%s): heartbeat again instead, so a job whose app died is still rescued", *req.Extend, s.p.MaxLeaseExtension)
		}
	}
	ctx := c.Request().Context()
	// The answered expiry counts from the store's clock read just before
	// Extend reads it again, so it is at most that moment earlier than the
	// stored one: an app that trusts it heartbeats in time.
	now, err := s.clock(ctx)
	if err != nil {
		return err
	}
	until := store.UTC(now.Add(extend))
	stale, err := s.p.Store.Extend(ctx, store.ExtendParams{
		Leases:   []store.LeaseRef{{ID: id, Token: req.LeaseToken}},
		Duration: extend,
		Now:      s.now(),
	})
	if err != nil {
		return fmt.Errorf("extend lease of job %s: %w", id, err)
	}
	if len(stale) > 0 {
		return s.staleLease(ctx, id)
	}
	return c.JSON(http.StatusOK, heartbeatResponse{LeaseExpiresAt: until})
}

// staleLease explains a token the store did not accept: the job is gone
// (404) or no longer held by that lease (409).
func (s *Server) staleLease(ctx context.Context, id uuid.UUID) error {
	j, err := s.p.Store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("get job %s: %w", id, err)
	}
	return staleLeaseError(j)
}

func staleLeaseError(j *job.Job) error {
	if j.Status == job.StatusRunning {
		return fmt.Errorf("job %s is running under another lease: %w", j.ID, store.ErrStaleLease)
	}
	return fmt.Errorf("job %s is %s: %w", j.ID, j.Status, store.ErrStaleLease)
}

// settlement is how the app ended an attempt through the API, in the
// agent's words for an attempt's outcome ("completed", "retry", "failed").
type settlement struct {
	outcome   string
	errorType string
	message   string
}

// respondJob answers with the job as stored after the app ended its
// attempt, once the attempt is counted and traced as the agent counts and
// traces the answers it receives itself: an app that answers 202 must not
// vanish from the metrics and the trace. attempt is the job as it was
// during the attempt when already read; nil uses the stored job, which
// keeps the attempt's number and start.
func (s *Server) respondJob(c echo.Context, id uuid.UUID, attempt *job.Job, st settlement, msg string) error {
	ctx := c.Request().Context()
	j, err := s.p.Store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("get job %s: %w", id, err)
	}
	if attempt == nil {
		attempt = j
	}
	s.tracer.RecordSettle(ctx, attempt, st.outcome, st.errorType, st.message)
	s.countFinished(ctx, j, st.outcome == "completed", st.outcome == "retry")
	s.log.Info(msg, append(jobAttrs(j), "status", j.Status)...)
	return c.JSON(http.StatusOK, j)
}

// countFinished counts an outcome the store accepted through the API; see
// Params.Finished.
func (s *Server) countFinished(ctx context.Context, j *job.Job, completed, retried bool) {
	if s.p.Finished != nil {
		s.p.Finished(ctx, j, completed, retried)
		return
	}
	switch {
	case completed:
		s.p.Metrics.Completed(j.Queue)
	case retried:
		s.p.Metrics.Retried(j.Queue)
	default:
		s.p.Metrics.Failed(j.Queue)
	}
}

// truncateError keeps the first maxErrorBytes of a message without
// splitting a UTF-8 sequence.
func truncateError(msg string) string {
	if len(msg) <= maxErrorBytes {
		return msg
	}
	return strings.ToValidUTF8(msg[:maxErrorBytes], "")
}
