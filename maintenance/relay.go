package maintenance

import (
	"log/slog"
	"time"

	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/store"
)

// Relay defaults.
const (
	DefaultRelayInterval  = 250 * time.Millisecond
	DefaultRelayBatch     = 500
	DefaultRelayClaimTTL  = 30 * time.Second
	DefaultEventRetention = 24 * time.Hour
)

// RelayMetrics counts what the relay did; *metrics.Metrics is one.
type RelayMetrics interface {
	EventsDelivered(subscriber string, n int)
	EventsFailed(subscriber string, n int)
	DeliveryDuration(subscriber string, d time.Duration)
	SubscriberLag(subscriber string, events int64, lag time.Duration)
	SubscriberDisabled(subscriber string)
}

// RelayConfig configures a Relay.
type RelayConfig struct {
	Store   store.Events
	AgentID string
	// Sinks deliver by subscriber kind (store.SubscriberWebhook: the
	// webhook sink). A kind without a sink is never claimed here.
	Sinks map[string]events.Sink
	// Streams names the stream subscribers this agent has sinks for: only
	// they are claimed among kind "stream" (streams are configured per agent).
	Streams map[string]events.Sink
	// Interval between passes; zero is DefaultRelayInterval.
	Interval time.Duration
	// Batch bounds the events read per subscriber per pass; zero is DefaultRelayBatch.
	Batch int
	// ClaimTTL is how long a claim holds; another agent takes a subscriber
	// over this long after its relay died. Zero is DefaultRelayClaimTTL.
	ClaimTTL time.Duration
	// Retention keeps delivered events this long; zero is DefaultEventRetention.
	Retention time.Duration
	// Metrics: nil counts nothing.
	Metrics RelayMetrics
	Logger  *slog.Logger
	// Outage quiets the logs of passes failing in a database outage.
	Outage Outage
}
