package main

import (
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The demo opens with its "@every 1s" schedule: three runs, one second
// apart, whose jobs reach the sample app, before the jobs and the workflow
// run as before; the schedule's jobs show in the summary.
func TestDemoShowsAScheduleFiringEverySecond(t *testing.T) {
	if testing.Short() {
		t.Skip("demo runs jobs for a few seconds")
	}
	t.Parallel()
	r := hw(t, nil, "demo")
	requireOK(t, r)
	require.Contains(t, r.stdout, `schedule    heartbeat: "@every 1s"`)
	fired := regexp.MustCompile(`(?m)^  heartbeat fired for (\d\d:\d\d:\d\d): job [0-9a-f-]{36} reached the app \S+ after its time$`).
		FindAllStringSubmatch(r.stdout, -1)
	require.Len(t, fired, 3, r.stdout)
	var prev time.Time
	for i, m := range fired {
		at, err := time.Parse(time.TimeOnly, m[1])
		require.NoError(t, err)
		if i > 0 {
			day := 24 * time.Hour // the clock may pass midnight between two runs
			require.Equal(t, time.Second, (at.Sub(prev)+day)%day, "one run per second: %v", fired)
		}
		prev = at
	}
	require.Regexp(t, `heartbeats\s+[34]\s+0\s+0`, r.stdout, "a run fired just before the delete also completes")
	require.Contains(t, r.stdout, "All 27 jobs finished")
}
