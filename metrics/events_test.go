package metrics

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/maintenance"
)

var _ maintenance.RelayMetrics = (*Metrics)(nil)

// The relay's counts reach /metrics per subscriber; a disabled subscriber
// loses its lag series; a nil *Metrics counts nothing.
func TestRelayMetricsBySubscriber(t *testing.T) {
	t.Parallel()
	m := New()
	m.EventsDelivered("orders", 3)
	m.EventsDelivered("orders", 2)
	m.EventsDelivered("audit", 0)
	m.EventsFailed("orders", 1)
	m.DeliveryDuration("orders", 20*time.Millisecond)
	m.DeliveryDuration("orders", 40*time.Millisecond)
	m.SubscriberLag("orders", 12, 90*time.Second)
	m.SubscriberLag("audit", 4, time.Second)
	m.EventsWritten(7)
	m.EventsWritten(0)

	_, mfs := scrape(t, m)
	require.Equal(t, 7.0, value(t, mfs, "hammerwork_events_written_total", nil))
	orders := map[string]string{"subscriber": "orders"}
	require.Equal(t, 5.0, value(t, mfs, "hammerwork_events_delivered_total", orders))
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_events_failed_total", orders))
	require.Len(t, mfs["hammerwork_events_delivered_total"].GetMetric(), 1, "a count of zero makes no series")
	h := mfs["hammerwork_event_delivery_duration_seconds"].GetMetric()[0].GetHistogram()
	require.Equal(t, uint64(2), h.GetSampleCount())
	require.InDelta(t, 0.06, h.GetSampleSum(), 1e-9)
	require.Equal(t, 12.0, value(t, mfs, "hammerwork_subscriber_lag_events", orders))
	require.Equal(t, 90.0, value(t, mfs, "hammerwork_subscriber_lag_seconds", orders))

	m.SubscriberDisabled("orders")
	_, mfs = scrape(t, m)
	require.Equal(t, 1.0, value(t, mfs, "hammerwork_subscribers_disabled_total", orders))
	require.Len(t, mfs["hammerwork_subscriber_lag_events"].GetMetric(), 1)
	require.Equal(t, 4.0, value(t, mfs, "hammerwork_subscriber_lag_events", map[string]string{"subscriber": "audit"}))

	var none *Metrics
	none.EventsWritten(1)
	none.EventsDelivered("x", 1)
	none.EventsFailed("x", 1)
	none.DeliveryDuration("x", time.Second)
	none.SubscriberLag("x", 1, time.Second)
	none.SubscriberDisabled("x")
}
