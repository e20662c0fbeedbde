//go:build race

package storetest

// raceDetector is true under -race, where the pure-Go SQLite driver runs
// tens of times slower; the large workflow cases then shrink (see
// largeSizes) and run at full size in the plain test run.
const raceDetector = true
