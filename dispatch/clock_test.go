package dispatch

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
)

func TestUseClockDrivesTheDeadlineHeaderAndRetryAfterSeconds(t *testing.T) {
	t.Parallel()
	a := setup(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	skewed := fixedNow.Add(time.Hour)
	a.d.UseClock(func() time.Time { return skewed })
	res := a.d.Dispatch(t.Context(), minimalJob(), a.target())
	got := a.last(t)
	require.Equal(t, skewed.Add(30*time.Second).UTC().Format("2006-01-02T15:04:05.000Z07:00"), got.header.Get("Hammerwork-Deadline"))
	require.Equal(t, 7*time.Second, RetryIn(job.RetryPolicy{}, 1, skewed, res.RetryAfter),
		"a seconds-form Retry-After is the same delay whatever the clock")
}
