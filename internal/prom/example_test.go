package prom_test

import (
	"fmt"
	"os"
	"strings"

	"finonex/internal/prom"
)

func Example() {
	reg := prom.NewRegistry()
	accepted := reg.NewCounterVec("events_accepted_total", "Events accepted, by route.", "route")
	latency := reg.NewHistogram("request_seconds", "Time to answer a request.", []float64{0.01, 0.1})
	reg.NewGaugeFunc("queue_depth", "Lines waiting.", func() float64 { return 3 })

	accepted.With("/liveEvent").Inc()
	latency.Observe(0.02)
	if _, err := reg.WriteTo(os.Stdout); err != nil {
		fmt.Println(err)
	}
	// Output:
	// # HELP events_accepted_total Events accepted, by route.
	// # TYPE events_accepted_total counter
	// events_accepted_total{route="/liveEvent"} 1
	// # HELP queue_depth Lines waiting.
	// # TYPE queue_depth gauge
	// queue_depth 3
	// # HELP request_seconds Time to answer a request.
	// # TYPE request_seconds histogram
	// request_seconds_bucket{le="0.01"} 0
	// request_seconds_bucket{le="0.1"} 1
	// request_seconds_bucket{le="+Inf"} 1
	// request_seconds_sum 0.02
	// request_seconds_count 1
}

// A test of a server scrapes its /metrics and looks samples up.
func ExampleParse() {
	page := `# HELP events_accepted_total Events accepted, by route.
# TYPE events_accepted_total counter
events_accepted_total{route="/liveEvent"} 41
`
	fams, err := prom.Parse(strings.NewReader(page))
	if err != nil {
		fmt.Println(err)
		return
	}
	v, ok := fams["events_accepted_total"].Value("route", "/liveEvent")
	fmt.Println(v, ok)
	_, ok = fams["events_rejected_total"].Value("reason", "bad_json")
	fmt.Println(ok)
	// Output:
	// 41 true
	// false
}
