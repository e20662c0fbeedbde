package webhook_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/events"
	"github.com/hammerwork-go/hw-agent/events/webhook"
	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

// Each invalid field is refused with an error naming it (prefixed as the
// configuration names it) that the API answers as 422.
func TestDefValidateNamesTheBadField(t *testing.T) {
	t.Parallel()
	valid := func() webhook.Def {
		return webhook.Def{Name: "orders", URL: "https://hooks.example.com/in", Secrets: []string{specSecret},
			Policy: events.Policy{Filter: events.Filter{Types: []string{"job.*"}}}}
	}
	tests := []struct {
		name  string
		edit  func(d *webhook.Def)
		self  []string
		field string
	}{
		{"no name", func(d *webhook.Def) { d.Name = "" }, nil, "name"},
		{"long name", func(d *webhook.Def) { d.Name = strings.Repeat("n", 129) }, nil, "name"},
		{"control character", func(d *webhook.Def) { d.Name = "a\nb" }, nil, "name"},
		{"no url", func(d *webhook.Def) { d.URL = "" }, nil, "url"},
		{"malformed url", func(d *webhook.Def) { d.URL = "http://[::1" }, nil, "url"},
		{"not http", func(d *webhook.Def) { d.URL = "ftp://example.com/in" }, nil, "url"},
		{"no host", func(d *webhook.Def) { d.URL = "http:///in" }, nil, "url"},
		{"credentials", func(d *webhook.Def) { d.URL = "https://user:pw@example.com/in" }, nil, "url"},
		{"not a whsec secret", func(d *webhook.Def) { d.Secrets = []string{"hunter2"} }, nil, "secrets[0]"},
		{"secret not base64", func(d *webhook.Def) { d.Secrets = []string{specSecret, "whsec_!!"} }, nil, "secrets[1]"},
		{"unknown event type", func(d *webhook.Def) { d.Types = []string{"job.exploded"} }, nil, "events[0]"},
		{"priority out of range", func(d *webhook.Def) { d.Priorities = []int{7} }, nil, "priorities[0]"},
		{"negative max_attempts", func(d *webhook.Def) { d.MaxAttempts = -1 }, nil, "max_attempts"},
		{"retry_initial over retry_max", func(d *webhook.Def) {
			d.RetryInitial, d.RetryMax = job.Duration(time.Minute), job.Duration(time.Second)
		}, nil, "retry_initial"},
		{"negative concurrency", func(d *webhook.Def) { d.Concurrency = -1 }, nil, "concurrency"},
		{"negative timeout", func(d *webhook.Def) { d.Timeout = job.Duration(-time.Second) }, nil, "timeout"},
		{"the agent's own listener", func(d *webhook.Def) { d.URL = "http://127.0.0.1:9090/v1/jobs" }, []string{"127.0.0.1:9090"}, "url"},
		{"localhost to a listener on every address", func(d *webhook.Def) { d.URL = "http://localhost:9090/x" }, []string{"0.0.0.0:9090"}, "url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := valid()
			tt.edit(&d)
			err := d.Validate(context.Background(), webhook.ValidateParams{Prefix: "webhook[1].", Self: tt.self})
			var fe *events.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, "webhook[1]."+tt.field, fe.Field)
			require.ErrorIs(t, err, store.ErrInvalid)
		})
	}
	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		d := valid()
		d.URL = "http://127.0.0.1:8081/in"
		require.NoError(t, d.Validate(context.Background(), webhook.ValidateParams{Self: []string{"127.0.0.1:9090"}}))
	})
	t.Run("host that does not resolve", func(t *testing.T) {
		t.Parallel()
		// A DNS outage at start-up must not stop the agent: such a host is
		// not this agent, and its deliveries are retried.
		d := valid()
		d.URL = "http://hooks.example.invalid:9090/in"
		require.NoError(t, d.Validate(context.Background(), webhook.ValidateParams{Self: []string{"0.0.0.0:9090"}}))
	})
}

func TestDefDefaults(t *testing.T) {
	t.Parallel()
	d := webhook.Def{}.WithDefaults()
	require.Equal(t, job.Duration(webhook.DefaultTimeout), d.Timeout)
	require.Equal(t, webhook.DefaultConcurrency, d.Concurrency)
	require.Equal(t, events.DefaultMaxAttempts, d.MaxAttempts)
	require.Equal(t, events.DefaultMaxFailures, d.MaxFailures)
	require.True(t, webhook.Def{}.IsEnabled())
	off := false
	require.False(t, webhook.Def{Enabled: &off}.IsEnabled())
}
