//go:build !race

package agent

// raceEnabled is true under -race; see race_test.go.
const raceEnabled = false
