package schedule_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hammerwork-go/hw-agent/schedule"
)

// at parses an RFC 3339 time; tests write instants with their offset, as a
// user reading a preview would see them.
func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return v
}

func format(ts []time.Time) []string {
	out := make([]string, len(ts))
	for i, v := range ts {
		out[i] = v.Format(time.RFC3339)
	}
	return out
}

func TestNextFireTimes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cron     string
		timezone string
		after    string
		want     []string
	}{
		{
			name: "NewYorkSpringGapFiresOnceAtThree", cron: "30 2 * * *", timezone: "America/New_York",
			after: "2026-03-07T12:00:00-05:00",
			want:  []string{"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"},
		},
		{
			name: "NewYorkSpringGapEveryHalfHourFiresThreeOnce", cron: "*/30 * * * *", timezone: "America/New_York",
			after: "2026-03-08T01:00:00-05:00",
			want:  []string{"2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"},
		},
		{
			name: "NewYorkAutumnRepeatFiresOnce", cron: "30 1 * * *", timezone: "America/New_York",
			after: "2026-10-31T12:00:00-04:00",
			want:  []string{"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"},
		},
		{
			name: "NewYorkAutumnFromInsideTheRepeatWaitsForTomorrow", cron: "30 1 * * *", timezone: "America/New_York",
			after: "2026-11-01T01:10:00-05:00",
			want:  []string{"2026-11-02T01:30:00-05:00"},
		},
		{
			name: "NewYorkAutumnHourlySkipsTheRepeatedHour", cron: "0 * * * *", timezone: "America/New_York",
			after: "2026-11-01T00:30:00-04:00",
			want:  []string{"2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"},
		},
		{
			name: "LondonSpringGap", cron: "30 1 * * *", timezone: "Europe/London",
			after: "2026-03-28T12:00:00Z",
			want:  []string{"2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"},
		},
		{
			name: "LondonAutumnRepeat", cron: "30 1 * * *", timezone: "Europe/London",
			after: "2026-10-24T12:00:00+01:00",
			want:  []string{"2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00Z"},
		},
		{
			name: "LordHoweAutumnHalfHourRepeat", cron: "45 1 * * *", timezone: "Australia/Lord_Howe",
			after: "2026-04-04T12:00:00+11:00",
			want:  []string{"2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"},
		},
		{
			name: "LordHoweSpringHalfHourGap", cron: "15 2 * * *", timezone: "Australia/Lord_Howe",
			after: "2026-10-03T12:00:00+10:30",
			want:  []string{"2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"},
		},
		{
			name: "ThirtyFirstSkipsShortMonths", cron: "0 0 31 * *",
			after: "2026-01-31T00:00:00Z",
			want:  []string{"2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z"},
		},
		{
			name: "LeapDay", cron: "0 0 29 2 *",
			after: "2026-03-01T00:00:00Z",
			want:  []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"},
		},
		{
			name: "Every90sCountsFromTheWholeSecond", cron: "@every 90s",
			after: "2026-01-01T00:00:00.5Z",
			want:  []string{"2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z", "2026-01-01T00:04:30Z"},
		},
		{
			name: "LeadingSecondsField", cron: "15 30 * * * *",
			after: "2026-01-01T00:00:00Z",
			want:  []string{"2026-01-01T00:30:15Z", "2026-01-01T01:30:15Z"},
		},
		{
			name: "SundayAsSeven", cron: "0 9 * * 7",
			after: "2026-01-01T00:00:00Z", // a Thursday
			want:  []string{"2026-01-04T09:00:00Z", "2026-01-11T09:00:00Z"},
		},
		{
			name: "SundayAsZero", cron: "0 9 * * 0",
			after: "2026-01-01T00:00:00Z",
			want:  []string{"2026-01-04T09:00:00Z", "2026-01-11T09:00:00Z"},
		},
		{
			name: "RangeEndingOnSeven", cron: "0 9 * * 5-7",
			after: "2026-01-01T00:00:00Z",
			want:  []string{"2026-01-02T09:00:00Z", "2026-01-03T09:00:00Z", "2026-01-04T09:00:00Z", "2026-01-09T09:00:00Z"},
		},
		{
			name: "NamedMonthAndWeekdays", cron: "0 8 * feb mon-fri",
			after: "2026-01-30T00:00:00Z",
			want:  []string{"2026-02-02T08:00:00Z", "2026-02-03T08:00:00Z"},
		},
		{
			name: "WeeklyIsSundayMidnight", cron: "@weekly",
			after: "2026-01-01T00:00:00Z",
			want:  []string{"2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"},
		},
		{
			name: "DailyInTheZone", cron: "@daily", timezone: "Europe/Berlin",
			after: "2026-01-01T12:00:00Z",
			want:  []string{"2026-01-02T00:00:00+01:00", "2026-01-03T00:00:00+01:00"},
		},
		{
			name: "Yearly", cron: "@yearly",
			after: "2026-06-01T00:00:00Z",
			want:  []string{"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"},
		},
		{
			name: "Monthly", cron: "@monthly",
			after: "2026-01-15T00:00:00Z",
			want:  []string{"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"},
		},
		{
			name: "Hourly", cron: "@hourly",
			after: "2026-01-01T00:00:00Z",
			want:  []string{"2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := schedule.Parse(tt.cron, tt.timezone)
			require.NoError(t, err)
			got := s.NextN(at(t, tt.after), len(tt.want))
			require.Equal(t, tt.want, format(got))
			require.Equal(t, tt.want[0], s.Next(at(t, tt.after)).Format(time.RFC3339))
		})
	}
}

func TestNextIsInTheSchedulesZone(t *testing.T) {
	t.Parallel()
	s, err := schedule.Parse("0 9 * * *", "Asia/Tokyo")
	require.NoError(t, err)
	next := s.Next(at(t, "2025-12-31T23:00:00Z"))
	require.Equal(t, "Asia/Tokyo", next.Location().String())
	require.Equal(t, "2026-01-01T09:00:00+09:00", next.Format(time.RFC3339))
}

func TestDescriptorsParse(t *testing.T) {
	t.Parallel()
	for _, expr := range []string{"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly", "@every 15m", "@every 1h30m"} {
		_, err := schedule.Parse(expr, "")
		require.NoError(t, err, expr)
	}
}

func TestParseErrorsNameTheFieldAndTheProblem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cron, timezone string
		want           string
	}{
		{cron: "61 * * * *", want: `cron: "61 * * * *": minute 61 out of range 0-59`},
		{cron: "* 24 * * *", want: `cron: "* 24 * * *": hour 24 out of range 0-23`},
		{cron: "* * 0 * *", want: `cron: "* * 0 * *": day-of-month 0 out of range 1-31`},
		{cron: "* * * 13 *", want: `cron: "* * * 13 *": month 13 out of range 1-12`},
		{cron: "* * * * 8", want: `cron: "* * * * 8": day-of-week 8 out of range 0-7`},
		{cron: "60 * * * * *", want: `cron: "60 * * * * *": second 60 out of range 0-59`},
		{cron: "*/0 * * * *", want: `cron: "*/0 * * * *": minute "*/0": step must be a positive number`},
		{cron: "5-1 * * * *", want: `cron: "5-1 * * * *": minute range "5-1" runs backwards`},
		{cron: "x * * * *", want: `cron: "x * * * *": minute "x": "x" is not a number`},
		{cron: "0 0 1 * funday", want: `cron: "0 0 1 * funday": day-of-week "funday": "funday" is not a number`},
		{cron: "* * * *", want: `cron: "* * * *": want 5 fields (minute hour day-of-month month day-of-week) or 6 with a leading seconds field, got 4`},
		{cron: "", want: `cron: "": must not be empty`},
		{cron: "@fortnightly", want: `cron: "@fortnightly": unknown descriptor; want one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or "@every <duration>"`},
		{cron: "@every soon", want: `cron: "@every soon": @every wants a duration such as "15m" or "90s", got "soon"`},
		{cron: "@every 500ms", want: `cron: "@every 500ms": @every interval must be at least 1s`},
		{cron: "@every 1.5s", want: `cron: "@every 1.5s": @every interval must be a whole number of seconds`},
		{cron: "0 0 30 2 *", want: `cron: "0 0 30 2 *": never fires: no date matches the day-of-month and month fields`},
		{cron: "CRON_TZ=UTC 0 * * * *", want: `cron: "CRON_TZ=UTC 0 * * * *": the time zone goes in the timezone field, not in the expression`},
		{cron: "0 * * * *", timezone: "Mars/Olympus", want: `timezone: unknown time zone "Mars/Olympus"; want an IANA name such as "Europe/Berlin" or "UTC"`},
		{cron: "0 * * * *", timezone: "Local", want: `timezone: "Local" depends on the machine; name an IANA zone such as "Europe/Berlin"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			s, err := schedule.Parse(tt.cron, tt.timezone)
			require.Nil(t, s)
			require.EqualError(t, err, tt.want)
			require.ErrorIs(t, err, schedule.ErrInvalid)
			var fe *schedule.FieldError
			require.True(t, errors.As(err, &fe))
		})
	}
}
