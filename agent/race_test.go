//go:build race

package agent

// raceEnabled is true under -race, where the large workflow tests shrink
// (see largeWorkflowSizes); .ci/run runs them at full size without -race.
const raceEnabled = true
