package schedule_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/schedule"
)

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	valid := schedule.Spec{Name: "nightly-etl", Cron: "0 2 * * *", Timezone: "Europe/Berlin"}
	with := func(f func(*schedule.Spec)) schedule.Spec {
		s := valid
		f(&s)
		return s
	}
	tests := []struct {
		name string
		spec schedule.Spec
		want []string // "field: message", in order
	}{
		{name: "DefaultsAreValid", spec: valid},
		{name: "FullPolicyIsValid", spec: with(func(s *schedule.Spec) {
			s.Policy = schedule.Policy{
				Overlap: schedule.OverlapBufferOne, Catchup: schedule.CatchupAll, CatchupWindow: 6 * time.Hour,
				Jitter: 30 * time.Minute, StartAt: at(t, "2026-01-01T00:00:00Z"), EndAt: at(t, "2027-01-01T00:00:00Z"),
			}
		})},
		{name: "EmptyName", spec: with(func(s *schedule.Spec) { s.Name = "" }), want: []string{"name: must not be empty"}},
		{name: "ControlCharacterInName", spec: with(func(s *schedule.Spec) { s.Name = "a\nb" }), want: []string{`name: "a\nb" holds a control character`}},
		{name: "SlashInName", spec: with(func(s *schedule.Spec) { s.Name = "etl/nightly" }), want: []string{`name: "etl/nightly" holds a "/"; the name is a path segment of /v1/schedules/{name}`}},
		{name: "LongName", spec: with(func(s *schedule.Spec) { s.Name = strings.Repeat("n", 129) }), want: []string{"name: is 129 bytes long, at most 128"}},
		{
			name: "BadZoneAndBadCronAreBothReported",
			spec: with(func(s *schedule.Spec) { s.Cron = "61 * * * *"; s.Timezone = "Europe/Atlantis" }),
			want: []string{
				`timezone: unknown time zone "Europe/Atlantis"; want an IANA name such as "Europe/Berlin" or "UTC"`,
				`cron: "61 * * * *": minute 61 out of range 0-59`,
			},
		},
		{name: "UnknownOverlap", spec: with(func(s *schedule.Spec) { s.Policy.Overlap = "sometimes" }), want: []string{`overlap: "sometimes" is not one of skip, allow, buffer_one`}},
		{name: "UnknownCatchup", spec: with(func(s *schedule.Spec) { s.Policy.Catchup = "maybe" }), want: []string{`catchup: "maybe" is not one of latest, none, all`}},
		{name: "NegativeCatchupWindow", spec: with(func(s *schedule.Spec) { s.Policy.CatchupWindow = -time.Minute }), want: []string{"catchup_window: -1m0s must be positive"}},
		{name: "NegativeJitter", spec: with(func(s *schedule.Spec) { s.Policy.Jitter = -time.Second }), want: []string{"jitter: -1s must not be negative"}},
		{
			name: "JitterAsLongAsTheInterval",
			spec: with(func(s *schedule.Spec) { s.Cron = "@hourly"; s.Policy.Jitter = time.Hour }),
			want: []string{"jitter: 1h0m0s must be shorter than the 1h0m0s between fire times"},
		},
		{
			name: "JitterAgainstTheShortestGapOfAnIrregularExpression",
			spec: with(func(s *schedule.Spec) { s.Cron = "0 9,10 * * *"; s.Policy.Jitter = 2 * time.Hour }),
			want: []string{"jitter: 2h0m0s must be shorter than the 1h0m0s between fire times"},
		},
		{
			name: "JitterAgainstEvery",
			spec: with(func(s *schedule.Spec) { s.Cron = "@every 90s"; s.Policy.Jitter = 90 * time.Second }),
			want: []string{"jitter: 1m30s must be shorter than the 1m30s between fire times"},
		},
		{
			name: "EndAtNotAfterStartAt",
			spec: with(func(s *schedule.Spec) {
				s.Policy.StartAt = at(t, "2026-06-01T00:00:00Z")
				s.Policy.EndAt = at(t, "2026-06-01T00:00:00Z")
			}),
			want: []string{"end_at: 2026-06-01T00:00:00Z must be after start_at 2026-06-01T00:00:00Z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.spec.Validate()
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, schedule.ErrInvalid)
			var verr *schedule.ValidationError
			require.True(t, errors.As(err, &verr))
			got := make([]string, len(verr.Problems))
			for i, p := range verr.Problems {
				got[i] = p.Error()
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, strings.Join(tt.want, "; "), err.Error())
		})
	}
}
