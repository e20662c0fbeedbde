package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hammerwork-go/hw-agent/agent"
	"github.com/hammerwork-go/hw-agent/api"
	"github.com/hammerwork-go/hw-agent/dispatch"
	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/metrics"
	"github.com/hammerwork-go/hw-agent/store"
	"github.com/hammerwork-go/hw-agent/tracing"
)

// apiShutdownTimeout bounds the wait for in-flight API requests once the agent
// has drained; orchestrators kill the pod soon after their grace period.
const apiShutdownTimeout = 5 * time.Second

// traceFlushTimeout bounds the export of the last spans at shutdown.
const traceFlushTimeout = 5 * time.Second

// queueDepthInterval is how often hammerwork_queue_depth is read from the
// database: a count per interval, however often Prometheus scrapes.
const queueDepthInterval = 5 * time.Second

func (c *cli) runCommand() *cobra.Command {
	var migrate bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent: lease jobs, dispatch them to the app, serve the API",
		Long: `Run the agent until SIGTERM or SIGINT, then drain in-flight requests
(agent.drain_timeout) and stop. The API listens on api.listen ("off" disables it).
The database must be migrated: run "hw-agent migrate" first, or pass --migrate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return c.runAgent(ctx, migrate)
		},
	}
	cmd.Flags().BoolVar(&migrate, "migrate", false, "apply pending migrations before starting")
	return cmd
}

// runAgent runs until ctx is cancelled. A cancelled ctx is a normal stop and
// returns nil once the agent has drained and the API has shut down.
func (c *cli) runAgent(ctx context.Context, migrate bool) error {
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	log := c.newLogger(cfg.Log)
	st, err := openStore(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer st.Close()

	if migrate {
		applied, err := st.Migrate(ctx)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if len(applied) > 0 {
			log.Info("migrations applied", "versions", applied)
		}
	} else if err := checkMigrated(ctx, st, "run `hw-agent migrate` first, or start with --migrate"); err != nil {
		return err
	}

	traces, err := tracing.Setup(ctx, tracing.Config{Exporter: cfg.Tracing.Exporter, ServiceName: cfg.Tracing.ServiceName, Stdout: c.stdout})
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	// Flushed last, after the drain, so the final attempts' spans go out.
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), traceFlushTimeout)
		defer cancel()
		if err := traces.Shutdown(flushCtx); err != nil {
			log.Warn("spans lost at shutdown", "error", err)
		}
	}()
	tracer := tracing.NewTracer(traces.TracerProvider)
	mets := metrics.New()
	if r, ok := st.(metrics.TxRetrier); ok {
		mets.CountTxRetries(r)
	}

	ag, err := agent.New(agent.Params{Config: cfg, Store: st, Logger: log, Tracer: tracer, Metrics: mets})
	if err != nil {
		return fmt.Errorf("start agent: %w", err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var apiSrv *apiServer
	if cfg.API.Listen != "off" {
		if apiSrv, err = listenAPI(cfg, st, ag, log, tracer, mets); err != nil {
			return err
		}
		apiSrv.start(cancel)
	}
	depthDone := make(chan struct{})
	go func() {
		defer close(depthDone)
		mets.PollQueueDepth(runCtx, st, queueDepthInterval)
	}()
	defer func() { cancel(); <-depthDone }()

	log.Info("hw-agent starting", "version", buildVersion(), "database", store.RedactURL(cfg.Database.URL),
		"handler_url", cfg.App.HandlerURL, "api", cfg.API.Listen)
	runErr := ag.Run(runCtx)
	if apiSrv != nil {
		if err := apiSrv.shutdown(); err != nil {
			return err
		}
	}
	if runErr != nil {
		return fmt.Errorf("agent: %w", runErr)
	}
	return nil
}

// apiServer is the agent's HTTP API on its listener.
type apiServer struct {
	srv  *http.Server
	ln   net.Listener
	log  *slog.Logger
	done chan error
}

// listenAPI binds api.listen before the agent starts, so a taken port stops
// start-up instead of leaving an agent running without its API.
func listenAPI(cfg agent.Config, st store.Store, ag *agent.Agent, log *slog.Logger, tracer *tracing.Tracer, mets *metrics.Metrics) (*apiServer, error) {
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return nil, fmt.Errorf("api.listen %s: %w", cfg.API.Listen, err)
	}
	handler := api.New(api.Params{
		Store:             st,
		Token:             cfg.API.Token,
		MaxBodyBytes:      cfg.API.MaxBodyBytes,
		LeaseDuration:     cfg.Agent.LeaseDuration.D(),
		MaxLeaseExtension: cfg.Agent.MaxLeaseExtension.D(),
		RetryDelay: func(j *job.Job) time.Duration {
			return dispatch.RetryDelay(cfg.RetryPolicyFor(j), j.Attempts)
		},
		Ready: func(ctx context.Context) error {
			if !ag.Started() {
				return errors.New("agent starting")
			}
			if err := st.Ping(ctx); err != nil {
				return fmt.Errorf("database unreachable: %w", err)
			}
			if !ag.AppHealthy() {
				return errors.New("app health check failing")
			}
			return nil
		},
		Logger:   log,
		Tracer:   tracer,
		Metrics:  mets,
		Finished: ag.CountFinished,
		Wake:     ag.Wake,
		Webhooks: webhook.New(webhook.Config{AgentID: cfg.Agent.ID, Logger: log}),
		// The configured address and the bound one differ for port 0 or a
		// host name; a webhook must reach neither.
		Self:    []string{cfg.API.Listen, ln.Addr().String()},
		AgentID: cfg.Agent.ID,
	})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return &apiServer{srv: srv, ln: ln, log: log, done: make(chan error, 1)}, nil
}

// start serves in the background. A server that fails calls onFail, which
// stops the agent: an agent whose API is gone cannot finish 202 jobs.
func (s *apiServer) start(onFail func()) {
	go func() {
		err := s.srv.Serve(s.ln)
		if errors.Is(err, http.ErrServerClosed) {
			s.done <- nil
			return
		}
		s.done <- fmt.Errorf("api server on %s: %w", s.ln.Addr(), err)
		onFail()
	}()
	s.log.Info("api listening", "addr", s.ln.Addr().String())
}

// shutdown lets in-flight requests finish (up to apiShutdownTimeout) and
// returns the error that stopped the server early, if any.
func (s *apiServer) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), apiShutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.log.Warn("api shutdown", "err", err)
		s.srv.Close()
	}
	return <-s.done
}
