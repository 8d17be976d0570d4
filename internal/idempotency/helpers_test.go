package idempotency

import (
	"strconv"
	"testing"
	"time"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// late is how much longer than its TTL a key may be kept: one generation's span.
func late(ttl time.Duration) time.Duration { return ttl / generations }

// key returns the i-th key of a test, as long as a client's (run id and line number).
func key(i int) string { return "run-0123456789abcdef-" + strconv.Itoa(i) }

// steadyWindow returns a window that has seen keys 0..next-1 arrive at a steady rate,
// every step, long enough that it holds about live keys acknowledged in the last TTL
// (and up to a span's worth more, not dropped yet), as in production at its peak.
func steadyWindow(tb testing.TB, ttl time.Duration, live int) (w *Window, next int, step time.Duration) {
	tb.Helper()
	w = New(ttl, 2*live)
	step = ttl / time.Duration(live)
	next = live + live/generations + 1 // a TTL and a span
	for i := 0; i < next; i++ {
		now := t0.Add(time.Duration(i) * step)
		if got := w.Begin(key(i), 1, now); got != First {
			tb.Fatalf("Begin(%s) = %v; want First", key(i), got)
		}
		w.Finish(key(i), true, now)
	}
	return w, next, step
}
