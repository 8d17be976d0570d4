package main

import (
	"finonex/internal/console"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"
)

// progressLine renders the sender's counters: bytes read of the file, percent, rate,
// elapsed, ETA, in flight, retried, skipped and failed.
func (s *sender) progressLine(size int64) string {
	elapsed := time.Since(s.start)
	sent := s.sent.Load()
	return fmt.Sprintf("progress: %s, %d sent, %.0f events/s, in flight %d, retried %d, skipped %d, failed %d",
		console.Fraction(s.bytesRead.Load(), size, elapsed), sent, float64(sent)/max(elapsed.Seconds(), 1e-9),
		s.inFlight.Load(), s.retried.Load(), s.skipped.Load(), s.failed.Load())
}

// histogram counts request latencies in log-linear buckets (16 per power of two, so a
// quantile is within about 6%), without locks and in constant memory.
type histogram struct {
	buckets [64 * 16]atomic.Int64
}

func bucketOf(d time.Duration) int {
	us := uint64(max(d.Microseconds(), 0))
	if us < 16 {
		return int(us)
	}
	exp := bits.Len64(us) - 5 // us >> exp is in [16, 32)
	return exp*16 + int(us>>exp)
}

func bucketValue(i int) time.Duration {
	if i < 16 {
		return time.Duration(i) * time.Microsecond
	}
	exp := i/16 - 1
	mant := uint64(i%16 + 16)
	return time.Duration(mant<<exp) * time.Microsecond
}

func (h *histogram) observe(d time.Duration) { h.buckets[bucketOf(d)].Add(1) }

// quantile returns the latency below which a fraction q of requests fell.
func (h *histogram) quantile(q float64) time.Duration {
	var total int64
	for i := range h.buckets {
		total += h.buckets[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := int64(q*float64(total-1)) + 1
	var seen int64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			return bucketValue(i)
		}
	}
	return 0
}
