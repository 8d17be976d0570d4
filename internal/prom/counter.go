package prom

import (
	"math"
	"sync/atomic"
)

// Counter is a value that only goes up. It is safe for concurrent use.
type Counter struct {
	// Whole increments, Inc above all, go to n with one atomic add; only fractional ones pay
	// for the compare-and-swap loop of frac.
	n    atomic.Uint64
	frac atomicFloat
}

// Inc adds 1.
func (c *Counter) Inc() { c.n.Add(1) }

// Add adds v. A negative or NaN v is ignored: a counter that went down would read as a
// restart to Prometheus, and a metric is not worth stopping the program for.
func (c *Counter) Add(v float64) {
	switch {
	case !(v >= 0):
		return
	case v < 1<<53 && v == math.Trunc(v):
		c.n.Add(uint64(v))
	default:
		c.frac.add(v)
	}
}

// Value returns the current count.
func (c *Counter) Value() float64 { return float64(c.n.Load()) + c.frac.load() }

func (c *Counter) appendSamples(b []byte, name string) []byte {
	return appendSample(b, name, "", nil, nil, "", c.Value())
}

// NewCounter registers and returns a counter. Its name must end in "_total".
func (r *Registry) NewCounter(name, help string) *Counter {
	c := new(Counter)
	r.register("counter", name, help, nil, c, "")
	return c
}

// CounterVec is a counter family with fixed label names, one Counter per tuple of label
// values. It is safe for concurrent use.
type CounterVec struct{ v *vec[Counter] }

// With returns the counter of the series with these label values, one per label name in
// registration order, making it on first use. It panics if the number of values is wrong.
// Keep the result where the values are fixed: it saves a map lookup per increment.
func (cv *CounterVec) With(labelValues ...string) *Counter { return cv.v.with(labelValues) }

func (cv *CounterVec) appendSamples(b []byte, name string) []byte {
	for _, s := range cv.v.sorted() {
		b = appendSample(b, name, "", cv.v.labels, s.values, "", s.m.Value())
	}
	return b
}

// NewCounterVec registers and returns a counter family with the given label names (one at
// least). Its name must end in "_total".
func (r *Registry) NewCounterVec(name, help string, labels ...string) *CounterVec {
	cv := &CounterVec{v: newVec(name, labels, func() *Counter { return new(Counter) })}
	r.registerVec("counter", name, help, labels, cv, "")
	return cv
}

// funcValue is a family of one series whose value is read when scraped.
type funcValue func() float64

func (f funcValue) appendSamples(b []byte, name string) []byte {
	return appendSample(b, name, "", nil, nil, "", f())
}

// NewCounterFunc registers a counter whose value is f's at each scrape: for a count another
// package keeps. f must be safe for concurrent use, and its values must never go down.
func (r *Registry) NewCounterFunc(name, help string, f func() float64) {
	r.registerFunc("counter", name, help, f)
}
