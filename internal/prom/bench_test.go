package prom

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

func BenchmarkCounterInc(b *testing.B) {
	c := NewRegistry().NewCounter("x_total", "X.")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Inc()
		}
	})
}

func BenchmarkCounterVecWithInc(b *testing.B) {
	cv := NewRegistry().NewCounterVec("x_total", "X.", "route")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cv.With("/liveEvent").Inc()
		}
	})
}

// BenchmarkCounterVecWithTwoLabels is the server's per-request count, by route and code.
func BenchmarkCounterVecWithTwoLabels(b *testing.B) {
	cv := NewRegistry().NewCounterVec("x_total", "X.", "route", "code")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cv.With("POST /liveEvent", "200").Inc()
		}
	})
}

func BenchmarkHistogramObserve(b *testing.B) {
	h := NewRegistry().NewHistogram("x_seconds", "X.", SecondsBuckets())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		v := 0.0
		for pb.Next() {
			h.Observe(v)
			if v += 0.0003; v > 12 { // walk every bucket
				v = 0
			}
		}
	})
}

// benchRegistry is a registry the size of a service's: a few dozen series.
func benchRegistry() *Registry {
	reg := NewRegistry()
	cv := reg.NewCounterVec("requests_total", "Requests.", "route", "code")
	hv := reg.NewHistogramVec("request_seconds", "Latency.", SecondsBuckets(), "route")
	for i := range 4 {
		route := fmt.Sprintf("/route%d", i)
		for _, code := range []string{"200", "400", "500"} {
			cv.With(route, code).Add(12345)
		}
		hv.With(route).Observe(0.003)
	}
	reg.NewGauge("queue_depth", "Queue.").Set(17)
	return reg
}

func BenchmarkWriteTo(b *testing.B) {
	reg := benchRegistry()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	var buf bytes.Buffer
	if _, err := benchRegistry().WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
}
