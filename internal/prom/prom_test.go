package prom

import (
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestGolden pins the exact text of a small registry, so that the formatting cannot drift.
func TestGolden(t *testing.T) {
	reg := NewRegistry()
	// Registered out of order: the exposition sorts families by name.
	h := reg.NewHistogram("req_seconds", "Time to answer.", []float64{0.1, 1, 2.5})
	for _, v := range []float64{0.05, 0.1, 0.7, 3, math.NaN()} {
		h.Observe(v)
	}
	c := reg.NewCounter("events_total", `Events seen, with a \ and a "quote"`+"\nand a second line.")
	c.Inc()
	c.Add(2)
	c.Add(0.5)
	c.Add(-7) // ignored
	cv := reg.NewCounterVec("errors_total", "Errors, by reason and route.", "reason", "route")
	cv.With("timeout", "/b").Add(3)
	cv.With("bad \"json\"\n", `C:\x`).Inc()
	cv.With("timeout", "/a").Inc()
	reg.NewCounterVec("unused_total", "Never incremented.", "reason")
	g := reg.NewGauge("temperature", "Degrees.")
	g.Set(-1.5e-7)
	reg.NewGaugeFunc("queue_depth", "Lines waiting.", func() float64 { return 1e6 })
	reg.NewCounterFunc("batches_total", "Batches written.", func() float64 { return math.Inf(+1) })
	gv := reg.NewGaugeVec("workers", "Workers, by state.", "state")
	gv.With("idle").Set(2)
	gv.With("busy").Dec()
	hv := reg.NewHistogramVec("db_seconds", "Database round trips.", []float64{1e-5, 0.001}, "op")
	hv.With("insert").Observe(0.002)
	hv.With("begin").Observe(0.0005)

	const want = `# HELP batches_total Batches written.
# TYPE batches_total counter
batches_total +Inf
# HELP db_seconds Database round trips.
# TYPE db_seconds histogram
db_seconds_bucket{op="begin",le="1e-05"} 0
db_seconds_bucket{op="begin",le="0.001"} 1
db_seconds_bucket{op="begin",le="+Inf"} 1
db_seconds_sum{op="begin"} 0.0005
db_seconds_count{op="begin"} 1
db_seconds_bucket{op="insert",le="1e-05"} 0
db_seconds_bucket{op="insert",le="0.001"} 0
db_seconds_bucket{op="insert",le="+Inf"} 1
db_seconds_sum{op="insert"} 0.002
db_seconds_count{op="insert"} 1
# HELP errors_total Errors, by reason and route.
# TYPE errors_total counter
errors_total{reason="bad \"json\"\n",route="C:\\x"} 1
errors_total{reason="timeout",route="/a"} 1
errors_total{reason="timeout",route="/b"} 3
# HELP events_total Events seen, with a \\ and a "quote"\nand a second line.
# TYPE events_total counter
events_total 3.5
# HELP queue_depth Lines waiting.
# TYPE queue_depth gauge
queue_depth 1e+06
# HELP req_seconds Time to answer.
# TYPE req_seconds histogram
req_seconds_bucket{le="0.1"} 2
req_seconds_bucket{le="1"} 3
req_seconds_bucket{le="2.5"} 3
req_seconds_bucket{le="+Inf"} 4
req_seconds_sum 3.85
req_seconds_count 4
# HELP temperature Degrees.
# TYPE temperature gauge
temperature -1.5e-07
# HELP unused_total Never incremented.
# TYPE unused_total counter
# HELP workers Workers, by state.
# TYPE workers gauge
workers{state="busy"} -1
workers{state="idle"} 2
`
	got, fams := scrape(t, reg)
	if got != want {
		t.Errorf("WriteTo wrote\n%s\nwant\n%s", got, want)
	}
	if v, ok := fams["errors_total"].Value("route", `C:\x`, "reason", "bad \"json\"\n"); !ok || v != 1 {
		t.Errorf(`errors_total{reason="bad \"json\"\n",route="C:\\x"} = %v, %v; want 1, true`, v, ok)
	}
	if f := fams["events_total"]; f.Help != `Events seen, with a \ and a "quote"`+"\nand a second line." {
		t.Errorf("events_total help = %q; want it unescaped", f.Help)
	}
}

func TestServeHTTP(t *testing.T) {
	reg := NewRegistry()
	reg.NewCounter("hits_total", "Hits.").Inc()
	rec := httptest.NewRecorder()
	reg.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	const want = "# HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total 1\n"
	if rec.Code != http.StatusOK || rec.Body.String() != want {
		t.Errorf("ServeHTTP = %d %q; want 200 %q", rec.Code, rec.Body.String(), want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != ContentType {
		t.Errorf("Content-Type = %q; want %q", ct, ContentType)
	}
	if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(len(want)) {
		t.Errorf("Content-Length = %q; want %d", cl, len(want))
	}
}

func TestEmptyRegistry(t *testing.T) {
	var reg Registry // the zero value works
	if got, fams := scrape(t, &reg); got != "" || len(fams) != 0 {
		t.Errorf("empty registry wrote %q, parsed %v; want nothing", got, fams)
	}
}

func TestRegisterPanics(t *testing.T) {
	f := func() float64 { return 0 }
	tests := []struct {
		name     string
		want     string
		register func(r *Registry)
	}{
		{"duplicate", "already written by family", func(r *Registry) {
			r.NewGauge("x", "X.")
			r.NewGauge("x", "X.")
		}},
		{"duplicate across types", "already written by family", func(r *Registry) {
			r.NewCounter("x_total", "X.")
			r.NewGaugeFunc("x_total", "X.", f)
		}},
		{"histogram sample taken", `"x_count" is already written by family "x_count"`, func(r *Registry) {
			r.NewGauge("x_count", "X.")
			r.NewHistogram("x", "X.", []float64{1})
		}},
		{"histogram takes sample", `"x_sum" is already written by family "x"`, func(r *Registry) {
			r.NewHistogramVec("x", "X.", []float64{1}, "a")
			r.NewGauge("x_sum", "X.")
		}},
		{"metric name", "invalid metric name", func(r *Registry) { r.NewGauge("1x", "X.") }},
		{"metric name dash", "invalid metric name", func(r *Registry) { r.NewGauge("a-b", "X.") }},
		{"empty name", "invalid metric name", func(r *Registry) { r.NewGauge("", "X.") }},
		{"label name", "invalid label name", func(r *Registry) { r.NewGaugeVec("x", "X.", "a.b") }},
		{"reserved label", "invalid label name", func(r *Registry) { r.NewCounterVec("x_total", "X.", "__name__") }},
		{"label colon", "invalid label name", func(r *Registry) { r.NewCounterVec("x_total", "X.", "a:b") }},
		{"label twice", "given twice", func(r *Registry) { r.NewGaugeVec("x", "X.", "a", "b", "a") }},
		{"le on histogram", "le is the histogram's own", func(r *Registry) {
			r.NewHistogramVec("x", "X.", []float64{1}, "le")
		}},
		{"no labels", "no label names", func(r *Registry) { r.NewCounterVec("x_total", "X.") }},
		{"counter name", "must end in _total", func(r *Registry) { r.NewCounter("x", "X.") }},
		{"counter vec name", "must end in _total", func(r *Registry) { r.NewCounterVec("x", "X.", "a") }},
		{"counter func name", "must end in _total", func(r *Registry) { r.NewCounterFunc("x", "X.", f) }},
		{"empty help", "help", func(r *Registry) { r.NewGauge("x", "") }},
		{"invalid UTF-8 help", "help", func(r *Registry) { r.NewGauge("x", "\xff") }},
		{"nil func", "nil func", func(r *Registry) { r.NewGaugeFunc("x", "X.", nil) }},
		{"no buckets", "no buckets", func(r *Registry) { r.NewHistogram("x", "X.", nil) }},
		{"only +Inf", "no buckets", func(r *Registry) { r.NewHistogram("x", "X.", []float64{math.Inf(1)}) }},
		{"unsorted buckets", "not increasing", func(r *Registry) { r.NewHistogram("x", "X.", []float64{1, 0.5}) }},
		{"equal buckets", "not increasing", func(r *Registry) { r.NewHistogram("x", "X.", []float64{1, 1}) }},
		{"NaN bucket", "not increasing", func(r *Registry) { r.NewHistogram("x", "X.", []float64{math.NaN()}) }},
		{"-Inf bucket", "finite", func(r *Registry) { r.NewHistogram("x", "X.", []float64{math.Inf(-1), 1}) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantPanic(t, tc.want, func() { tc.register(NewRegistry()) })
		})
	}
}

func TestWithArity(t *testing.T) {
	cv := NewRegistry().NewCounterVec("x_total", "X.", "a", "b")
	wantPanic(t, "With got 1 label values, want 2 (a, b)", func() { cv.With("1") })
	wantPanic(t, "With got 3 label values, want 2", func() { cv.With("1", "2", "3") })
}

func TestWithKeepsSeries(t *testing.T) {
	reg := NewRegistry()
	cv := reg.NewCounterVec("x_total", "X.", "a", "b")
	values := []string{"1", "2"}
	c := cv.With(values...)
	values[0] = "changed" // the series keeps its own copy
	if cv.With("1", "2") != c {
		t.Errorf("With(1, 2) twice gave two counters; want one")
	}
	// The separator of the key cannot be forged by values: these are distinct series.
	cv.With("1\xff2", "").Inc()
	cv.With("1", "2\xff").Inc()
	if cv.With("1", "2").Value() != 0 {
		t.Errorf("With(1, 2) was incremented by another series")
	}
	// Invalid UTF-8 becomes U+FFFD, so the page stays UTF-8 and parses.
	_, fams := scrape(t, reg)
	if v, ok := fams["x_total"].Value("a", "1\uFFFD2", "b", ""); !ok || v != 1 {
		t.Errorf(`x_total{a="1\uFFFD2",b=""} = %v, %v; want 1, true`, v, ok)
	}
}

func TestCounterAdd(t *testing.T) {
	var c Counter
	for _, v := range []float64{1, 0.25, -1, math.NaN(), 0, 1 << 60, math.Copysign(0, -1)} {
		c.Add(v)
	}
	if want := 1.25 + (1 << 60); c.Value() != want {
		t.Errorf("Value() = %v; want %v", c.Value(), want)
	}
	c.Add(math.Inf(1))
	if !math.IsInf(c.Value(), 1) {
		t.Errorf("Value() after Add(+Inf) = %v; want +Inf", c.Value())
	}
}

func TestGauge(t *testing.T) {
	var g Gauge
	g.Set(3)
	g.Add(-0.5)
	g.Inc()
	g.Dec()
	g.Dec()
	if g.Value() != 1.5 {
		t.Errorf("Value() = %v; want 1.5", g.Value())
	}
}

// TestHistogramBounds checks that a value on a bound counts in that bound's bucket ("le").
func TestHistogramBounds(t *testing.T) {
	reg := NewRegistry()
	h := reg.NewHistogram("x", "X.", []float64{-1, 0, 1, math.Inf(1)})
	for _, v := range []float64{math.Inf(-1), -1, -0.5, 0, 1, 1.0000001, math.Inf(1)} {
		h.Observe(v)
	}
	_, fams := scrape(t, reg)
	for le, want := range map[string]float64{"-1": 2, "0": 4, "1": 5, "+Inf": 7} {
		if got, ok := fams["x"].Sample("x_bucket", "le", le); !ok || got != want {
			t.Errorf("x_bucket{le=%q} = %v, %v; want %v, true", le, got, ok, want)
		}
	}
}

func TestBuckets(t *testing.T) {
	tests := []struct {
		name string
		got  []float64
		want []float64
	}{
		{"ExponentialBuckets", ExponentialBuckets(1, 2, 4), []float64{1, 2, 4, 8}},
		{"LinearBuckets", LinearBuckets(-1, 0.5, 5), []float64{-1, -0.5, 0, 0.5, 1}},
	}
	for _, tc := range tests {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s = %v; want %v", tc.name, tc.got, tc.want)
		}
	}
	s := SecondsBuckets()
	if s[0] != 0.0001 || s[len(s)-1] != 10 || !slices.IsSorted(s) {
		t.Errorf("SecondsBuckets() = %v; want 0.0001 .. 10, increasing", s)
	}
	s[0] = 42 // a fresh slice each call
	if SecondsBuckets()[0] != 0.0001 {
		t.Errorf("SecondsBuckets() shares its slice between calls")
	}
	wantPanic(t, "factor > 1", func() { ExponentialBuckets(1, 1, 3) })
	wantPanic(t, "start > 0", func() { ExponentialBuckets(0, 2, 3) })
	wantPanic(t, "n >= 1", func() { LinearBuckets(0, 1, 0) })
	wantPanic(t, "width > 0", func() { LinearBuckets(0, -1, 3) })
}

// TestNoSharedBuckets checks that a histogram keeps its own copy of the bounds it was given.
func TestNoSharedBuckets(t *testing.T) {
	reg := NewRegistry()
	b := []float64{1, 2}
	reg.NewHistogram("x", "X.", b)
	b[0] = 5
	if got, _ := scrape(t, reg); !strings.Contains(got, `x_bucket{le="1"} 0`) {
		t.Errorf("after changing the caller's slice, WriteTo wrote\n%s\nwant le=\"1\" still", got)
	}
}
