package prom

import (
	"fmt"
	"math"
	"slices"
	"sync/atomic"
)

// Histogram counts observations in buckets with fixed upper bounds, and keeps their sum. It is
// safe for concurrent use.
//
// A scrape reads the buckets one by one while Observe goes on, and takes the count as the sum
// of the buckets it read, so the +Inf bucket always equals _count and the buckets are always
// cumulative. Only _sum may be a few observations ahead of or behind them.
type Histogram struct {
	bounds *bounds
	counts []atomic.Uint64 // counts[i]: observations in (upper[i-1], upper[i]]; the last, above every bound
	sum    atomicFloat
}

// bounds are a histogram family's upper bounds, shared read-only by its series.
type bounds struct {
	upper []float64 // increasing and finite; +Inf is implied
	le    []string  // upper as the le label spells them, then "+Inf"
}

func (bs *bounds) newHistogram() *Histogram {
	return &Histogram{bounds: bs, counts: make([]atomic.Uint64, len(bs.le))}
}

// Observe adds one observation. It costs a binary search over the bounds and two atomic
// updates. A NaN v is ignored: it would turn _sum into NaN for good.
func (h *Histogram) Observe(v float64) {
	if math.IsNaN(v) {
		return
	}
	i, _ := slices.BinarySearch(h.bounds.upper, v) // the first bound >= v: v is "le" it
	h.counts[i].Add(1)
	h.sum.add(v)
}

func (h *Histogram) appendSamples(b []byte, name string) []byte {
	return h.appendSeries(b, name, nil, nil)
}

func (h *Histogram) appendSeries(b []byte, name string, labels, values []string) []byte {
	var n uint64
	for i, le := range h.bounds.le {
		n += h.counts[i].Load()
		b = appendSample(b, name, "_bucket", labels, values, le, float64(n))
	}
	b = appendSample(b, name, "_sum", labels, values, "", h.sum.load())
	return appendSample(b, name, "_count", labels, values, "", float64(n))
}

// NewHistogram registers and returns a histogram with the given bucket upper bounds, which
// must be increasing; a last bound of +Inf may be given or left out, it is always there.
func (r *Registry) NewHistogram(name, help string, buckets []float64) *Histogram {
	h := checkBuckets(name, buckets).newHistogram()
	// The family's own name is reserved with its samples', so that no other family takes it.
	r.register("histogram", name, help, nil, h, "", "_bucket", "_sum", "_count")
	return h
}

// HistogramVec is a histogram family with fixed label names and shared buckets, one Histogram
// per tuple of label values. It is safe for concurrent use.
type HistogramVec struct{ v *vec[Histogram] }

// With returns the histogram of the series with these label values, as CounterVec.With does.
func (hv *HistogramVec) With(labelValues ...string) *Histogram { return hv.v.with(labelValues) }

func (hv *HistogramVec) appendSamples(b []byte, name string) []byte {
	for _, s := range hv.v.sorted() {
		b = s.m.appendSeries(b, name, hv.v.labels, s.values)
	}
	return b
}

// NewHistogramVec registers and returns a histogram family with the given buckets, as
// NewHistogram takes them, and label names (one at least; not "le").
func (r *Registry) NewHistogramVec(name, help string, buckets []float64, labels ...string) *HistogramVec {
	bs := checkBuckets(name, buckets)
	hv := &HistogramVec{v: newVec(name, labels, bs.newHistogram)}
	r.registerVec("histogram", name, help, labels, hv, "", "_bucket", "_sum", "_count")
	return hv
}

// checkBuckets returns the bounds of buckets, panicking if they are not increasing and
// finite, but for a last +Inf, which it drops.
func checkBuckets(name string, buckets []float64) *bounds {
	upper := slices.Clone(buckets) // the caller's slice may change later
	if n := len(upper); n > 0 && math.IsInf(upper[n-1], +1) {
		upper = upper[:n-1]
	}
	if len(upper) == 0 {
		panic(fmt.Sprintf("prom: register histogram %q: no buckets", name))
	}
	bs := &bounds{upper: upper}
	for i, u := range upper {
		if math.IsInf(u, 0) || math.IsNaN(u) || i > 0 && !(u > upper[i-1]) {
			panic(fmt.Sprintf("prom: register histogram %q: buckets %v are not increasing and finite", name, buckets))
		}
		bs.le = append(bs.le, formatFloat(u))
	}
	bs.le = append(bs.le, "+Inf")
	return bs
}

// SecondsBuckets returns bounds for durations in seconds, from 100µs to 10s in steps of 1,
// 2.5 and 5: request latencies, database round trips, batch commits.
func SecondsBuckets() []float64 {
	return []float64{
		0.0001, 0.00025, 0.0005,
		0.001, 0.0025, 0.005,
		0.01, 0.025, 0.05,
		0.1, 0.25, 0.5,
		1, 2.5, 5,
		10,
	}
}

// ExponentialBuckets returns n bounds, the first start and each next one factor times the
// last. It panics unless start > 0, factor > 1 and n >= 1.
func ExponentialBuckets(start, factor float64, n int) []float64 {
	if !(start > 0) || !(factor > 1) || n < 1 {
		panic(fmt.Sprintf("prom: ExponentialBuckets(%v, %v, %d): want start > 0, factor > 1, n >= 1", start, factor, n))
	}
	b := make([]float64, n)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}

// LinearBuckets returns n bounds, the first start and each next one width more than the last.
// It panics unless width > 0 and n >= 1.
func LinearBuckets(start, width float64, n int) []float64 {
	if !(width > 0) || n < 1 {
		panic(fmt.Sprintf("prom: LinearBuckets(%v, %v, %d): want width > 0, n >= 1", start, width, n))
	}
	b := make([]float64, n)
	for i := range b {
		b[i] = start + float64(i)*width
	}
	return b
}
