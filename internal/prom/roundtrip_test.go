package prom

import (
	"finonex/internal/testenv"

	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestRoundTrip updates one registry of every kind of metric from several goroutines while it
// is scraped again and again, under the race detector: every scrape must parse, no counter
// may go down between scrapes, and the last scrape must hold exactly what the goroutines did.
func TestRoundTrip(t *testing.T) {
	seed := testenv.Seed(t)
	const workers, scrapes = 4, 40
	bounds := []float64{0.5, 1, 2, 3}
	routes := []string{"/a", `/b"\`, "/c\n"}

	reg := NewRegistry()
	count := reg.NewCounter("rt_events_total", "Events.")
	byRoute := reg.NewCounterVec("rt_requests_total", "Requests, by route and code.", "route", "code")
	var kept atomic.Int64 // a count another package would keep
	reg.NewCounterFunc("rt_kept_total", "Kept elsewhere.", func() float64 { return float64(kept.Load()) })
	level := reg.NewGauge("rt_level", "Goes up and down.")
	inFlight := reg.NewGaugeVec("rt_in_flight", "In flight, by route.", "route")
	var running atomic.Int64
	reg.NewGaugeFunc("rt_running", "Workers running.", func() float64 { return float64(running.Load()) })
	latency := reg.NewHistogram("rt_seconds", "Latency.", bounds)
	byOp := reg.NewHistogramVec("rt_op_seconds", "Latency, by op.", bounds, "op")

	// What each worker did, to check the last scrape against.
	type tally struct {
		n, requests int
		sum         float64 // of observations, exact: they are multiples of 1/1024
		le          [5]int  // observations at or under each bound, and in all
	}
	tallies := make([]tally, workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		running.Add(1)
		go func() {
			defer wg.Done()
			defer running.Add(-1)
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			tl := &tallies[w]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if w == 0 && i < 20 { // registration goes on during scrapes too
					reg.NewGauge(fmt.Sprintf("rt_extra_%02d", i), "Registered late.").Set(float64(i))
				}
				count.Inc()
				count.Add(0.25)
				route := routes[rng.IntN(len(routes))]
				byRoute.With(route, "200").Inc()
				kept.Add(1)
				level.Add(float64(rng.IntN(3) - 1))
				g := inFlight.With(route)
				g.Inc()
				v := float64(rng.IntN(4096)) / 1024
				latency.Observe(v)
				byOp.With("insert").Observe(v)
				g.Dec()
				runtime.Gosched() // let the scraper in: the test machine may have fewer cores than workers
				tl.n++
				tl.requests++
				tl.sum += v
				for j, b := range bounds {
					if v <= b {
						tl.le[j]++
					}
				}
				tl.le[len(bounds)]++
			}
		}()
	}

	srv := httptest.NewServer(reg)
	defer srv.Close()
	last := map[string]float64{} // by sample name and labels: every counter-like sample
	for i := range scrapes {
		var text string
		var fams map[string]*Family
		if i%2 == 0 {
			text, fams = scrape(t, reg)
		} else {
			text, fams = scrapeHTTP(t, srv.URL+"/metrics")
		}
		for _, f := range fams {
			for _, s := range f.Samples {
				if f.Type != "counter" && f.Type != "histogram" {
					continue
				}
				// _sum too: every observation is >= 0.
				key := s.Name + labelsText(s.Labels, "")
				if prev, ok := last[key]; ok && s.Value < prev {
					t.Fatalf("scrape %d: %s = %v, down from %v\n%s", i, key, s.Value, prev, text)
				}
				last[key] = s.Value
			}
		}
	}
	close(stop)
	wg.Wait()

	var all tally
	for _, tl := range tallies {
		all.n += tl.n
		all.requests += tl.requests
		all.sum += tl.sum
		for j := range tl.le {
			all.le[j] += tl.le[j]
		}
	}
	t.Logf("%d rounds over %d scrapes", all.n, scrapes)
	_, fams := scrape(t, reg)
	n := float64(all.n)
	checks := []struct {
		fam, name string
		labels    []string
		want      float64
	}{
		{"rt_events_total", "rt_events_total", nil, n * 1.25},
		{"rt_kept_total", "rt_kept_total", nil, n},
		{"rt_running", "rt_running", nil, 0},
		{"rt_seconds", "rt_seconds_count", nil, n},
		{"rt_seconds", "rt_seconds_sum", nil, all.sum},
		{"rt_op_seconds", "rt_op_seconds_count", []string{"op", "insert"}, n},
		{"rt_op_seconds", "rt_op_seconds_sum", []string{"op", "insert"}, all.sum},
		{"rt_extra_19", "rt_extra_19", nil, 19},
	}
	for j, b := range append(bounds, 0) {
		le := "+Inf"
		if j < len(bounds) {
			le = formatFloat(b)
		}
		checks = append(checks,
			struct {
				fam, name string
				labels    []string
				want      float64
			}{"rt_seconds", "rt_seconds_bucket", []string{"le", le}, float64(all.le[j])})
	}
	for _, c := range checks {
		if got, ok := fams[c.fam].Sample(c.name, c.labels...); !ok || got != c.want {
			t.Errorf("after %d rounds, %s%q = %v, %v; want %v, true", all.n, c.name, c.labels, got, ok, c.want)
		}
	}
	var requests float64
	for _, route := range routes {
		v, _ := fams["rt_requests_total"].Value("route", route, "code", "200")
		requests += v
		if g, ok := fams["rt_in_flight"].Value("route", route); ok && g != 0 {
			t.Errorf("rt_in_flight{route=%q} = %v at rest; want 0", route, g)
		}
	}
	if requests != float64(all.requests) {
		t.Errorf("rt_requests_total sums to %v; want %d", requests, all.requests)
	}
}

// scrapeHTTP is scrape through a real server.
func scrapeHTTP(t *testing.T, url string) (string, map[string]*Family) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatalf("GET /metrics: read body: %v", err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != ContentType {
		t.Fatalf("GET /metrics = %d, Content-Type %q; want 200, %q", resp.StatusCode, ct, ContentType)
	}
	fams, err := Parse(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatalf("Parse(GET /metrics) = %v; want nil\n%s", err, buf.String())
	}
	return buf.String(), fams
}
