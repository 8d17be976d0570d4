package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	us := func(x float64) time.Duration { return time.Duration(math.Max(x, 0)) * time.Microsecond }
	dists := []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 1µs..100ms", func() time.Duration { return us(1 + rng.Float64()*100_000) }},
		{"exponential mean 2ms", func() time.Duration { return us(rng.ExpFloat64() * 2000) }},
		{"lognormal median 5ms", func() time.Duration { return us(math.Exp(math.Log(5000) + rng.NormFloat64())) }},
		{"constant 5ms", func() time.Duration { return 5 * time.Millisecond }},
		{"bimodal 300µs and 40ms", func() time.Duration {
			if rng.IntN(10) < 9 {
				return us(300 + rng.Float64()*50)
			}
			return us(40_000 + rng.Float64()*5000)
		}},
		{"small 0..15µs", func() time.Duration { return us(float64(rng.IntN(16))) }},
		{"seconds", func() time.Duration { return us(1e6 + rng.Float64()*59e6) }},
	}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			var h histogram
			const n = 20000
			samples := make([]time.Duration, n)
			for i := range samples {
				samples[i] = d.gen()
				h.observe(samples[i])
			}
			slices.Sort(samples)
			for _, q := range []float64{0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1} {
				exact := samples[int(q*float64(n-1))]
				got := h.quantile(q)
				if diff := math.Abs(float64(got - exact)); diff > 0.07*float64(exact) {
					t.Errorf("quantile(%v) = %v; exact %v, off by %.1f%% (want within 7%%)", q, got, exact, 100*diff/float64(exact))
				}
			}
		})
	}
}

func TestHistogramEdges(t *testing.T) {
	var h histogram
	if got := h.quantile(0.5); got != 0 {
		t.Errorf("quantile of an empty histogram = %v; want 0", got)
	}
	h.observe(-time.Second) // clock went backwards: counted as 0
	h.observe(0)
	h.observe(500 * time.Nanosecond)
	if got := h.quantile(1); got != 0 {
		t.Errorf("quantile(1) of sub-µs samples = %v; want 0", got)
	}
	var big histogram
	big.observe(24 * time.Hour)
	if got := big.quantile(0.5); math.Abs(float64(got-24*time.Hour)) > 0.07*float64(24*time.Hour) {
		t.Errorf("quantile of a 24h sample = %v; want within 7%% of 24h", got)
	}
}

// Every bucket's value falls in that bucket: the two functions agree.
func TestBucketRoundTrip(t *testing.T) {
	for i := 0; i < 36*16; i++ { // up to about 6 days
		if got := bucketOf(bucketValue(i)); got != i {
			t.Fatalf("bucketOf(bucketValue(%d) = %v) = %d", i, bucketValue(i), got)
		}
	}
	for _, us := range []int64{0, 1, 15, 16, 17, 31, 32, 33, 1000, 123456, 1 << 40} {
		d := time.Duration(us) * time.Microsecond
		lo := bucketValue(bucketOf(d))
		if lo > d || float64(d-lo) > float64(d)/16 {
			t.Errorf("bucket of %v starts at %v; want at most %v and within 1/16", d, lo, d)
		}
	}
}
