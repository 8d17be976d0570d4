package spool

import "time"

// SetNow gives a Writer a clock, for tests of how long a failure is reported.
func SetNow(w *Writer, now func() time.Time) {
	w.statsMu.Lock()
	w.now = now
	w.statsMu.Unlock()
}

// FailureShown is failureShown, for tests.
const FailureShown = failureShown
