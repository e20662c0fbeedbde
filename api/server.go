// Package api is the agent's HTTP API (the /v1 routes): apps and
// operators enqueue, inspect, cancel and retry jobs, and apps that answered a
// dispatch with 202 Accepted finish the job here with its lease token.
//
// Every /v1 response that is not a success is
// {"error": {"code": "...", "message": "...", "details": ...}}; the codes are
// bad_request (400), unauthorized (401), not_found (404), method_not_allowed
// (405), conflict and stale_lease (409), payload_too_large (413), invalid and
// not_supported (422), internal (500), not_ready and not_migrated (503).
// A rejected request writes nothing.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/metrics"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/tracing"
)

// Defaults for zero Params fields.
const (
	defaultMaxBodyBytes  = 10 << 20
	defaultLeaseDuration = 30 * time.Second
	// defaultMaxLeaseExtension is agent.max_lease_extension's default.
	defaultMaxLeaseExtension = time.Hour
	// readyTimeout bounds one readiness check, so a hung database makes
	// /readyz answer 503 instead of hanging the orchestrator's probe.
	readyTimeout = 5 * time.Second
)

// Params configures a Server.
type Params struct {
	Store store.Store
	// Token, when non-empty, is required on every /v1 route as
	// "Authorization: Bearer <token>". Health routes never need it, so
	// orchestrator probes work without the secret.
	Token string
	// MaxBodyBytes caps a request body; larger bodies get 413. Zero means
	// 10 MiB, the default of api.max_body_bytes.
	MaxBodyBytes int64
	// LeaseDuration is how far /heartbeat extends a lease when the request
	// names no extend. Zero means 30s.
	LeaseDuration time.Duration
	// MaxLeaseExtension caps the extend a /heartbeat may ask for; more is a
	// 422. Without a cap one heartbeat could make a job immune to rescue
	// for good. Zero means 1h, the default of agent.max_lease_extension.
	MaxLeaseExtension time.Duration
	// RetryDelay is how long after the database's now the next attempt of
	// j is due, for /fail with retry (the agent's retry policy for the job,
	// from its attempt count); nil retries at once.
	RetryDelay func(j *job.Job) time.Duration
	// Ready reports readiness for /readyz (database reachable, app
	// healthy): nil error means ready. Nil Ready pings the store.
	Ready func(ctx context.Context) error
	// Logger receives internal errors; nil discards.
	Logger *slog.Logger
	// Now replaces the database's clock, as the store's Now fields do;
	// injected for tests. Nil (production) leaves every store call's Now
	// zero, so the database's clock decides what is due or expired, and the
	// times the API computes itself (a delay's due time, a heartbeat's
	// expiry, a queue's oldest pending age) count from the database's now.
	Now func() time.Time
	// Tracer opens the producer span of each job and workflow created; nil
	// still stores a creation context, so the app sees one trace per
	// workflow, but records no spans.
	Tracer *tracing.Tracer
	// Metrics, when set, is served on GET /metrics (no token, like the
	// health routes, so scrapers need no secret) and counts API cancels.
	Metrics *metrics.Metrics
	// Finished counts a job the app finished through /complete or /fail
	// (completed, retried, or neither: failed). The agent passes its own
	// counting here, so that a workflow such an answer ends is counted
	// once; nil counts only the job, in Metrics.
	Finished func(ctx context.Context, j *job.Job, completed, retried bool)
	// Wake tells the agent's producers that jobs of queues (every queue
	// when none is named) may have become leasable, after an enqueue, a
	// retry or a resume this API wrote: the producers lease at once instead
	// of at their next poll, on every backend and without a database round
	// trip. Nil wakes nothing; producers then learn of the change by
	// LISTEN/NOTIFY (PostgreSQL) or their next poll.
	Wake func(queues ...string)
	// Webhooks sends the pings and redeliveries of /v1/webhooks; nil
	// answers those two routes 422 not_supported.
	Webhooks *webhook.Sink
	// Self are the API's own listen addresses (host:port): a webhook whose
	// URL resolves to one is refused, so the agent never calls itself.
	Self []string
	// AgentID is recorded as the sender of pings and redeliveries.
	AgentID string
}

// Server serves the agent API. It implements http.Handler.
type Server struct {
	p      Params
	echo   *echo.Echo
	log    *slog.Logger
	tracer *tracing.Tracer
	// tokenSum is the SHA-256 of Params.Token: comparing fixed-size digests
	// in constant time leaks neither the token's bytes nor its length.
	tokenSum [sha256.Size]byte
}

// New builds a Server with its routes.
func New(p Params) *Server {
	if p.MaxBodyBytes <= 0 {
		p.MaxBodyBytes = defaultMaxBodyBytes
	}
	if p.LeaseDuration <= 0 {
		p.LeaseDuration = defaultLeaseDuration
	}
	if p.MaxLeaseExtension <= 0 {
		p.MaxLeaseExtension = defaultMaxLeaseExtension
	}
	s := &Server{p: p, log: p.Logger, tracer: p.Tracer}
	if s.tracer == nil {
		s.tracer = tracing.NewTracer(nil)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if p.Token != "" {
		s.tokenSum = sha256.Sum256([]byte(p.Token))
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		// The stack rides on the error to handleError, which logs it once.
		LogErrorFunc: func(_ echo.Context, err error, stack []byte) error {
			return fmt.Errorf("panic: %w\n%s", err, stack)
		},
	}))
	e.Use(s.limitBody)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	if p.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(p.Metrics.Handler()))
	}

	v1 := e.Group("/v1")
	if p.Token != "" {
		v1.Use(s.requireToken)
	}
	v1.POST("/jobs", s.enqueue)
	v1.POST("/jobs/batch", s.enqueueBatch)
	v1.GET("/jobs", s.listJobs)
	v1.GET("/jobs/:id", s.getJob)
	v1.POST("/jobs/:id/cancel", s.cancelJob)
	v1.POST("/jobs/:id/retry", s.retryJob)
	v1.POST("/jobs/:id/complete", s.completeJob)
	v1.POST("/jobs/:id/fail", s.failJob)
	v1.POST("/jobs/:id/heartbeat", s.heartbeat)
	v1.GET("/batches/:id", s.getBatch)
	v1.POST("/workflows", s.createWorkflow)
	v1.GET("/workflows", s.listWorkflows)
	v1.GET("/workflows/:id", s.getWorkflow)
	v1.GET("/workflows/:id/graph", s.workflowGraph)
	v1.POST("/workflows/:id/cancel", s.cancelWorkflow)
	v1.POST("/workflows/:id/retry", s.retryWorkflow)
	v1.GET("/queues", s.listQueues)
	v1.GET("/queues/:name", s.getQueue)
	v1.POST("/queues/:name/pause", s.pauseQueue)
	v1.POST("/queues/:name/resume", s.resumeQueue)
	v1.GET("/schedules", s.listSchedules)
	v1.POST("/schedules", s.createSchedule)
	v1.GET("/schedules/:name", s.getSchedule)
	v1.PUT("/schedules/:name", s.putSchedule)
	v1.DELETE("/schedules/:name", s.deleteSchedule)
	v1.POST("/schedules/:name/pause", s.pauseSchedule)
	v1.POST("/schedules/:name/resume", s.resumeSchedule)
	v1.POST("/schedules/:name/trigger", s.triggerSchedule)
	v1.GET("/schedules/:name/runs", s.scheduleRuns)
	v1.GET("/schedules/:name/next", s.scheduleNext)
	v1.GET("/webhooks", s.listWebhooks)
	v1.POST("/webhooks", s.createWebhook)
	v1.GET("/webhooks/:id", s.getWebhook)
	v1.PUT("/webhooks/:id", s.putWebhook)
	v1.DELETE("/webhooks/:id", s.deleteWebhook)
	v1.POST("/webhooks/:id/test", s.testWebhook)
	v1.GET("/webhooks/:id/deliveries", s.webhookDeliveries)
	v1.GET("/webhooks/:id/deliveries/:delivery", s.webhookDelivery)
	v1.POST("/webhooks/:id/deliveries/:delivery/redeliver", s.redeliverWebhook)

	s.echo = e
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// now is the injected clock's time, or zero for the database's clock: what
// the handlers pass as a store call's Now.
func (s *Server) now() time.Time {
	if s.p.Now == nil {
		return time.Time{}
	}
	return store.UTC(s.p.Now())
}

// clock is the time the API counts from where it computes a time itself:
// the injected clock's, else the database's, so that a delay or an age
// agrees with the clock that decides the same question in the store.
func (s *Server) clock(ctx context.Context) (time.Time, error) {
	if t := s.now(); !t.IsZero() {
		return t, nil
	}
	t, err := s.p.Store.DatabaseNow(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the database's time: %w", err)
	}
	return t, nil
}

// wake passes queues to Params.Wake, when set.
func (s *Server) wake(queues ...string) {
	if s.p.Wake != nil {
		s.p.Wake(queues...)
	}
}

// limitBody rejects bodies over MaxBodyBytes: at once when Content-Length
// says so, otherwise when reading crosses the limit (chunked uploads), which
// decodeJSON turns into 413.
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > s.p.MaxBodyBytes {
			return tooLarge(s.p.MaxBodyBytes)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, s.p.MaxBodyBytes)
		return next(c)
	}
}

func (s *Server) requireToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return &apiError{Status: http.StatusUnauthorized, Code: codeUnauthorized,
				Message: "missing bearer token: send \"Authorization: Bearer <token>\""}
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
			return &apiError{Status: http.StatusUnauthorized, Code: codeUnauthorized, Message: "invalid bearer token"}
		}
		return next(c)
	}
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
	defer cancel()
	var err error
	if s.p.Ready != nil {
		err = s.p.Ready(ctx)
	} else {
		err = s.p.Store.Ping(ctx)
	}
	if err != nil {
		s.log.Warn("not ready", "err", err)
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeNotReady, Message: err.Error()}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// isClientGone reports an error caused by the client hanging up, which is
// neither the server's fault nor worth an error log.
func isClientGone(c echo.Context, err error) bool {
	return errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil
}
