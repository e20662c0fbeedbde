package webhook

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/hammerwork-go/hw-agent/events"
)

// Config configures a Sink.
type Config struct {
	// Client sends the requests; nil is a client that follows no
	// redirects. Each attempt is bounded by the definition's Timeout.
	Client *http.Client
	// AgentID names the sender in the User-Agent header.
	AgentID string
	Logger  *slog.Logger
}

// Sink POSTs events to webhook subscribers. It implements events.Sink.
type Sink struct {
	cfg Config
}

// New returns a Sink.
func New(cfg Config) *Sink { return &Sink{cfg: cfg} }

// Deliver implements events.Sink.
func (s *Sink) Deliver(ctx context.Context, sub events.Subscription, batch []events.Event) []events.Result {
	return make([]events.Result, len(batch))
}

// Send makes one attempt at one event outside the relay (a test ping, a
// redelivery).
func (s *Sink) Send(ctx context.Context, sub events.Subscription, e events.Event) events.Result {
	return events.Result{}
}
