package main

import (
	"context"
	"expvar"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"finonex/internal/idempotency"
	"finonex/internal/prom"
	"finonex/internal/spool"
	"finonex/internal/store"
)

// liveEventRoute is the route whose refusals are refused events.
const liveEventRoute = "POST /liveEvent"

// metrics are the server's counters. They are served in two forms: /metrics in the
// Prometheus text format (what to scrape), and /debug/vars as expvar JSON (Go's own memory
// figures and the same counters, for a person with curl). Neither holds a user id or a
// secret: labels are routes, status codes and fixed reasons.
type metrics struct {
	reg *prom.Registry

	accepted      *prom.Counter
	replayed      *prom.Counter
	eventsRefused *prom.CounterVec // by reason, POST /liveEvent only
	refused       *prom.CounterVec // by route and reason, every refused request
	requests      *prom.CounterVec // by route and status code
	latency       *prom.HistogramVec
	getErrors     *prom.Counter
	batchLines    *prom.Histogram
	syncSeconds   *prom.Histogram

	vars           expvar.Map
	expvarRejected expvar.Map // events refused, by reason
	writer         *spool.Writer
}

// newMetrics registers every metric. The writer's batch histograms are fed by observeBatch,
// which the caller hands to spool.Options.OnBatch.
func newMetrics(keys *idempotency.Window, dbUp func(context.Context) error) *metrics {
	reg := prom.NewRegistry()
	m := &metrics{
		reg:           reg,
		accepted:      reg.NewCounter("finonex_events_accepted_total", "Events written durably to the events file and acknowledged with 200."),
		replayed:      reg.NewCounter("finonex_events_replayed_total", "Retries answered from the idempotency window, not written again."),
		eventsRefused: reg.NewCounterVec("finonex_events_rejected_total", "Events refused on POST /liveEvent, by reason.", "reason"),
		refused:       reg.NewCounterVec("finonex_http_refused_total", "Requests answered with an error, by route and reason.", "route", "reason"),
		requests:      reg.NewCounterVec("finonex_http_requests_total", "Requests answered, by route and status code.", "route", "code"),
		latency:       reg.NewHistogramVec("finonex_http_request_duration_seconds", "Time to answer a request, by route.", prom.SecondsBuckets(), "route"),
		getErrors:     reg.NewCounter("finonex_revenue_query_errors_total", "GET /userEvents lookups that failed in PostgreSQL."),
		batchLines:    reg.NewHistogram("finonex_writer_batch_events", "Events per write and fdatasync of the events file.", prom.ExponentialBuckets(1, 2, 13)),
		syncSeconds:   reg.NewHistogram("finonex_writer_fdatasync_seconds", "Time of each fdatasync of the events file.", prom.SecondsBuckets()),
	}
	reg.NewGaugeFunc("finonex_idempotency_keys", "Idempotency-Keys held in the window.", func() float64 { return float64(keys.Len()) })
	reg.NewUpGauge("finonex_postgres_up", "1 when PostgreSQL answered a ping at scrape time, else 0.", time.Second, dbUp)
	m.vars.Init()
	m.expvarRejected.Init()
	m.vars.Set("events_rejected", &m.expvarRejected)
	m.vars.Set("events_accepted", expvar.Func(func() any { return int64(m.accepted.Value()) }))
	m.vars.Set("events_replayed", expvar.Func(func() any { return int64(m.replayed.Value()) }))
	m.vars.Set("get_errors", expvar.Func(func() any { return int64(m.getErrors.Value()) }))
	m.vars.Set("idempotency_keys", expvar.Func(func() any { return keys.Len() }))
	m.vars.Set("memstats", expvar.Func(func() any {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return map[string]any{"heap_alloc": ms.HeapAlloc, "sys": ms.Sys, "num_gc": ms.NumGC}
	}))
	return m
}

// watchWriter adds the writer's own counters, read at scrape time.
func (m *metrics) watchWriter(w *spool.Writer) {
	m.writer = w
	m.reg.NewCounterFunc("finonex_writer_batches_total", "Durable batches (one write and one fdatasync each).", func() float64 { return float64(w.Stats().Batches) })
	m.reg.NewCounterFunc("finonex_writer_failed_events_total", "Events answered with an error because their batch failed.", func() float64 { return float64(w.Stats().Failed) })
	m.reg.NewGaugeFunc("finonex_writer_queue_depth", "Events waiting for the writer.", func() float64 { return float64(w.Stats().QueueDepth) })
	m.vars.Set("writer", expvar.Func(func() any {
		s := w.Stats()
		return map[string]any{
			"batches": s.Batches, "lines": s.Lines, "failed": s.Failed, "queue_depth": s.QueueDepth,
			"avg_batch": ratio(s.Lines, s.Batches), "sync_seconds_total": s.SyncTime.Seconds(),
			"last_sync_seconds": s.LastSync.Seconds(),
		}
	}))
}

// watchReads adds the batched revenue lookups' counters, read at scrape time: lookups over
// queries is lookups queued per query sent (cancelled ones and dropped batches included).
func (m *metrics) watchReads(r *store.Reads) {
	m.reg.NewCounterFunc("finonex_revenue_lookups_total", "GET /userEvents lookups queued for a query.", func() float64 { return float64(r.Stats().Lookups) })
	m.reg.NewCounterFunc("finonex_revenue_queries_total", "Queries sent for lookups, each answering a batch of them.", func() float64 { return float64(r.Stats().Queries) })
	m.reg.NewCounterFunc("finonex_revenue_query_users_total", "Distinct users asked for, summed over queries.", func() float64 { return float64(r.Stats().Users) })
	m.vars.Set("reads", expvar.Func(func() any {
		s := r.Stats()
		return map[string]any{"lookups": s.Lookups, "queries": s.Queries, "users": s.Users, "failed": s.Failed,
			"dropped": s.Dropped, "cancelled": s.Cancelled, "full": s.Full, "queued": s.Queued, "in_flight": s.InFlight}
	}))
}

// observeBatch records one durable batch: spool.Options.OnBatch.
func (m *metrics) observeBatch(lines int, sync time.Duration) {
	m.batchLines.Observe(float64(lines))
	m.syncSeconds.Observe(sync.Seconds())
}

// rejected counts a refused request; errorWriter.write is its one caller.
func (m *metrics) rejected(route, reason string) {
	if route == "" {
		route = "unknown"
	}
	m.refused.With(route, reason).Inc()
	if route == liveEventRoute {
		m.eventsRefused.With(reason).Inc()
		m.expvarRejected.Add(reason, 1)
	}
}

// instrument counts and times every request to a route.
func (m *metrics) instrument(route string, next http.Handler) http.Handler {
	latency := m.latency.With(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		latency.Observe(time.Since(start).Seconds())
		m.requests.With(route, strconv.Itoa(rec.status)).Inc()
	})
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// serveVars serves the expvar JSON.
func (m *metrics) serveVars(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(m.vars.String() + "\n"))
}

// logStats logs one line of counters every interval until ctx ends.
func logStats(ctx context.Context, log *slog.Logger, m *metrics, every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s := m.writer.Stats()
			log.Info("stats", "accepted", m.accepted.Value(), "replayed", m.replayed.Value(),
				"rejected", m.expvarRejected.String(), "batches", s.Batches, "avg_batch", ratio(s.Lines, s.Batches),
				"queue_depth", s.QueueDepth, "write_failures", s.Failed, "get_errors", m.getErrors.Value())
		}
	}
}
