//go:build race

package idempotency

// raceEnabled says the race detector is on: it makes TestBytesPerKey ten times slower, so
// that test measures fewer keys.
const raceEnabled = true
