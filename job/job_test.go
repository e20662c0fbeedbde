package job_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/job"
)

func TestParsePriorityAcceptsNamesAndNumbers(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]job.Priority{
		"background": job.PriorityBackground, "low": job.PriorityLow, "normal": job.PriorityNormal,
		"HIGH": job.PriorityHigh, " critical ": job.PriorityCritical, "0": job.PriorityBackground, "4": job.PriorityCritical,
	} {
		got, err := job.ParsePriority(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "urgent", "5", "-1"} {
		_, err := job.ParsePriority(in)
		require.ErrorContains(t, err, "unknown priority", in)
	}
}

func TestPriorityJSONWritesNameReadsBoth(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(job.PriorityHigh)
	require.NoError(t, err)
	require.JSONEq(t, `"high"`, string(b))

	var p job.Priority
	require.NoError(t, json.Unmarshal([]byte(`"critical"`), &p))
	require.Equal(t, job.PriorityCritical, p)
	require.NoError(t, json.Unmarshal([]byte(`1`), &p))
	require.Equal(t, job.PriorityLow, p)
	require.Error(t, json.Unmarshal([]byte(`9`), &p))
	require.Error(t, json.Unmarshal([]byte(`{}`), &p))
}

func TestDurationReadsGoStrings(t *testing.T) {
	t.Parallel()
	var v struct {
		D job.Duration `json:"d"`
	}
	require.NoError(t, json.Unmarshal([]byte(`{"d":"1m30s"}`), &v))
	require.Equal(t, 90*time.Second, v.D.D())
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.JSONEq(t, `{"d":"1m30s"}`, string(b))
	require.ErrorContains(t, json.Unmarshal([]byte(`{"d":"soon"}`), &v), `invalid duration "soon"`)
	require.ErrorContains(t, json.Unmarshal([]byte(`{"d":"-1s"}`), &v), "negative")
}

func TestStatusParsingAndTerminality(t *testing.T) {
	t.Parallel()
	for _, s := range job.Statuses {
		got, err := job.ParseStatus(string(s))
		require.NoError(t, err)
		require.Equal(t, s, got)
	}
	_, err := job.ParseStatus("done")
	require.ErrorContains(t, err, `unknown status "done"`)
	require.False(t, job.StatusPending.Terminal())
	require.False(t, job.StatusRunning.Terminal())
	require.True(t, job.StatusCompleted.Terminal())
	require.True(t, job.StatusSkipped.Terminal())

	d, err := job.ParseDependencyStatus("waiting")
	require.NoError(t, err)
	require.Equal(t, job.DependencyWaiting, d)
	_, err = job.ParseDependencyStatus("blocked")
	require.Error(t, err)
}

func TestRetryPolicyValidateNamesTheField(t *testing.T) {
	t.Parallel()
	neg, big := -0.5, 1.5
	tests := []struct {
		p    job.RetryPolicy
		want string
	}{
		{job.RetryPolicy{Strategy: "random"}, "retry.strategy"},
		{job.RetryPolicy{Multiplier: 0.5}, "retry.multiplier"},
		{job.RetryPolicy{Jitter: &neg}, "retry.jitter"},
		{job.RetryPolicy{Jitter: &big}, "retry.jitter"},
		{job.RetryPolicy{JitterMode: "random"}, "retry.jitter_mode"},
		{job.RetryPolicy{Initial: job.Duration(time.Minute), Max: job.Duration(time.Second)}, "retry.initial"},
	}
	for _, tt := range tests {
		require.ErrorContains(t, tt.p.Validate(), tt.want)
	}
	require.NoError(t, job.RetryPolicy{Strategy: "fibonacci", Initial: job.Duration(time.Second), Max: job.Duration(time.Minute)}.Validate())
	require.NoError(t, job.RetryPolicy{Strategy: "fixed", JitterMode: job.JitterAdditive}.Validate())
}
