package prom

import (
	"context"
	"time"
)

// Gauge is a value that goes up and down. It is safe for concurrent use.
type Gauge struct{ v atomicFloat }

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.v.store(v) }

// Add adds v, which may be negative.
func (g *Gauge) Add(v float64) { g.v.add(v) }

// Inc adds 1.
func (g *Gauge) Inc() { g.v.add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.v.add(-1) }

// Value returns the gauge's value.
func (g *Gauge) Value() float64 { return g.v.load() }

func (g *Gauge) appendSamples(b []byte, name string) []byte {
	return appendSample(b, name, "", nil, nil, "", g.Value())
}

// NewGauge registers and returns a gauge.
func (r *Registry) NewGauge(name, help string) *Gauge {
	g := new(Gauge)
	r.register("gauge", name, help, nil, g, "")
	return g
}

// GaugeVec is a gauge family with fixed label names, one Gauge per tuple of label values.
// It is safe for concurrent use.
type GaugeVec struct{ v *vec[Gauge] }

// With returns the gauge of the series with these label values, as CounterVec.With does.
func (gv *GaugeVec) With(labelValues ...string) *Gauge { return gv.v.with(labelValues) }

func (gv *GaugeVec) appendSamples(b []byte, name string) []byte {
	for _, s := range gv.v.sorted() {
		b = appendSample(b, name, "", gv.v.labels, s.values, "", s.m.Value())
	}
	return b
}

// NewGaugeVec registers and returns a gauge family with the given label names (one at least).
func (r *Registry) NewGaugeVec(name, help string, labels ...string) *GaugeVec {
	gv := &GaugeVec{v: newVec(name, labels, func() *Gauge { return new(Gauge) })}
	r.registerVec("gauge", name, help, labels, gv, "")
	return gv
}

// NewGaugeFunc registers a gauge whose value is f's at each scrape: a queue's depth, the
// keys a cache holds. f must be safe for concurrent use.
func (r *Registry) NewGaugeFunc(name, help string, f func() float64) {
	r.registerFunc("gauge", name, help, f)
}

// NewUpGauge registers a gauge that is 1 when check succeeds at scrape time and 0 when it
// fails or takes longer than timeout: the "_up" of a dependency, such as a database ping.
func (r *Registry) NewUpGauge(name, help string, timeout time.Duration, check func(context.Context) error) {
	r.NewGaugeFunc(name, help, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if check(ctx) != nil {
			return 0
		}
		return 1
	})
}
