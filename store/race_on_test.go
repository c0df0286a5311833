//go:build race

package store_test

// raceDetector tells tests that the race detector slows this build down
// several times: byte-heavy cases run in .ci/test's separate plain run.
const raceDetector = true
