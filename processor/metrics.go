package main

import (
	"context"
	"os"
	"time"

	"finonex/internal/prom"
	"finonex/internal/spool"
)

// metrics are the processor's counters, served in the Prometheus text format at /metrics
// when -addr is set. No user id or secret is ever a label or a value.
type metrics struct {
	reg         *prom.Registry
	files       *prom.Counter
	events      *prom.Counter
	rejected    *prom.Counter
	failures    *prom.Counter
	retries     *prom.Counter
	duration    *prom.Histogram
	lastApplied *prom.Gauge
	refused     *prom.CounterVec // requests to -addr answered with an error, by reason
}

// newMetrics registers every metric; ping tells PostgreSQL's state at scrape time.
func newMetrics(ping func(context.Context) error) *metrics {
	reg := prom.NewRegistry()
	reg.NewUpGauge("finonex_processor_postgres_up", "1 when PostgreSQL answered a ping at scrape time, else 0.", time.Second, ping)
	return &metrics{
		reg:         reg,
		files:       reg.NewCounter("finonex_processor_files_applied_total", "Events files applied to PostgreSQL."),
		events:      reg.NewCounter("finonex_processor_events_applied_total", "Valid events applied to users_revenue."),
		rejected:    reg.NewCounter("finonex_processor_rejected_lines_total", "Invalid lines set aside in _rejected files."),
		failures:    reg.NewCounter("finonex_processor_apply_failures_total", "Watch cycles that ended with an error (the files stay claimed and are retried)."),
		retries:     reg.NewCounter("finonex_processor_retries_total", "Attempts made again: a watch cycle after a failed one, or a transaction after a deadlock or serialization failure."),
		duration:    reg.NewHistogram("finonex_processor_apply_duration_seconds", "Time of each file's database transaction.", prom.SecondsBuckets()),
		lastApplied: reg.NewGauge("finonex_processor_last_applied_timestamp_seconds", "Unix time of the last applied file, or of the last look that found nothing waiting: time() - this is the lag."),
		refused:     reg.NewCounterVec("finonex_processor_http_refused_total", "Requests to -addr answered with an error, by reason: a scraper without the right credentials shows here.", "reason"),
	}
}

// applied records one applied file whose transaction ran from start to end.
func (m *metrics) applied(events, rejected int64, start, end time.Time) {
	m.files.Inc()
	m.events.Add(float64(events))
	m.rejected.Add(float64(rejected))
	m.duration.Observe(end.Sub(start).Seconds())
	m.lastApplied.Set(float64(end.UnixNano()) / 1e9)
}

// caughtUp says nothing is waiting: the lag is zero, so the last-applied time moves to now.
func (m *metrics) caughtUp(now time.Time) { m.lastApplied.Set(float64(now.UnixNano()) / 1e9) }

// watchBacklog adds the backlog gauge: bytes in the live file plus the claimed files not yet
// applied, read at scrape time.
func (m *metrics) watchBacklog(live string) {
	m.reg.NewGaugeFunc("finonex_processor_backlog_bytes", "Bytes waiting: the live events file plus claimed files not yet applied.", func() float64 {
		return float64(backlog(live))
	})
}

// backlog returns the bytes waiting beside and in the live file.
func backlog(live string) int64 {
	var n int64
	if fi, err := os.Stat(live); err == nil {
		n += fi.Size()
	}
	left, _ := spool.Leftovers(live)
	for _, f := range left {
		if fi, err := os.Stat(f); err == nil {
			n += fi.Size()
		}
	}
	return n
}
