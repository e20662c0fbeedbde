package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
	"github.com/hammerwork-go/hw-agent/store"
)

func TestNewJobValidateNamesTheField(t *testing.T) {
	t.Parallel()
	ok := store.NewJob{Queue: "emails", Payload: []byte(`{"to":"a@b"}`), Priority: job.PriorityNormal}
	require.NoError(t, ok.Validate())

	tests := []struct {
		name string
		edit func(*store.NewJob)
		want string
	}{
		{"empty queue", func(n *store.NewJob) { n.Queue = "" }, "queue is required"},
		{"queue with space", func(n *store.NewJob) { n.Queue = "my queue" }, "not a valid name"},
		{"queue too long", func(n *store.NewJob) { n.Queue = strings.Repeat("q", 129) }, "not a valid name"},
		{"bad payload", func(n *store.NewJob) { n.Payload = []byte(`{"a":`) }, "payload is not valid JSON"},
		{"payload MariaDB refuses", func(n *store.NewJob) { n.Payload = []byte(`{"x":"\ud800"}`) }, `payload holds a lone UTF-16 surrogate escape \ud800`},
		{"payload PostgreSQL refuses", func(n *store.NewJob) { n.Payload = []byte(`"\u0000"`) }, `payload holds the escape \u0000`},
		{"correlation id with CRLF", func(n *store.NewJob) { n.CorrelationID = "abc\r\nX-Evil: 1" }, "correlation_id holds the control character U+000D at byte 3"},
		{"correlation id with NUL", func(n *store.NewJob) { n.CorrelationID = "a\x00" }, "correlation_id holds the control character U+0000"},
		{"correlation id with C1", func(n *store.NewJob) { n.CorrelationID = "a\u0085" }, "correlation_id holds the control character U+0085"},
		{"queue with LF", func(n *store.NewJob) { n.Queue = "emails\n" }, "not a valid name"},
		{"priority", func(n *store.NewJob) { n.Priority = 7 }, "priority 7"},
		{"max attempts", func(n *store.NewJob) { n.MaxAttempts = -1 }, "max_attempts"},
		{"timeout", func(n *store.NewJob) { n.Timeout = -time.Second }, "timeout"},
		{"result ttl", func(n *store.NewJob) { n.ResultTTL = -time.Second }, "result_ttl"},
		{"retry", func(n *store.NewJob) { n.RetryPolicy = &job.RetryPolicy{Strategy: "sometimes"} }, "retry.strategy"},
		{"unique key", func(n *store.NewJob) { n.UniqueKey = strings.Repeat("k", 256) }, "unique_key"},
		{"unique key not UTF-8", func(n *store.NewJob) { n.UniqueKey = "order-\xff" }, "unique_key is not valid UTF-8"},
		{"unique key with NUL", func(n *store.NewJob) { n.UniqueKey = "order\x00" }, "unique_key holds a NUL byte at byte 5"},
	}
	for _, tt := range tests {
		n := ok
		tt.edit(&n)
		err := n.Validate()
		require.ErrorContains(t, err, tt.want, tt.name)
		require.True(t, errors.Is(err, store.ErrInvalid), tt.name)
	}
}

func TestBatchNameWithControlCharacterIsInvalid(t *testing.T) {
	t.Parallel()
	p := store.EnqueueBatchParams{Name: "nightly\nimport", Jobs: []store.NewJob{{Queue: "q"}}}
	err := p.Validate()
	require.ErrorIs(t, err, store.ErrInvalid)
	require.ErrorContains(t, err, "name holds the control character U+000A at byte 7")
	p.Name = "nightly import"
	require.NoError(t, p.Validate())
}

func TestListLimitDefaultsAndCaps(t *testing.T) {
	t.Parallel()
	require.Equal(t, store.DefaultListLimit, store.ListParams{}.ListLimit())
	require.Equal(t, 7, store.ListParams{Limit: 7}.ListLimit())
	require.Equal(t, store.MaxListLimit, store.ListParams{Limit: 5000}.ListLimit())
}

func TestStateErrorIsConflict(t *testing.T) {
	t.Parallel()
	var err error = &store.StateError{Op: "cancel", Current: job.StatusCompleted}
	require.ErrorIs(t, err, store.ErrConflict)
	require.EqualError(t, err, "cannot cancel a completed job")
}
