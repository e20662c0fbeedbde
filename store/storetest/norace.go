//go:build !race

package storetest

// raceDetector is true under -race; see race.go.
const raceDetector = false
