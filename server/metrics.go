package main

import (
	"context"
	"errors"
	"expvar"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"finonex/internal/idempotency"
	"finonex/internal/spool"
)

// metrics are the server's counters, served as JSON at /debug/vars in expvar's format. They
// belong to one server rather than to expvar's global registry.
type metrics struct {
	vars        expvar.Map
	accepted    expvar.Int
	replayed    expvar.Int
	rejected    expvar.Map // by reason
	getRequests expvar.Int
	getErrors   expvar.Int
	writer      *spool.Writer
}

func newMetrics(w *spool.Writer, keys *idempotency.Window) *metrics {
	m := &metrics{writer: w}
	m.vars.Init()
	m.rejected.Init()
	m.vars.Set("events_accepted", &m.accepted)
	m.vars.Set("events_replayed", &m.replayed)
	m.vars.Set("events_rejected", &m.rejected)
	m.vars.Set("get_requests", &m.getRequests)
	m.vars.Set("get_errors", &m.getErrors)
	m.vars.Set("writer", expvar.Func(func() any {
		s := w.Stats()
		return map[string]any{
			"batches": s.Batches, "lines": s.Lines, "failed": s.Failed, "queue_depth": s.QueueDepth,
			"avg_batch": ratio(s.Lines, s.Batches), "sync_seconds_total": s.SyncTime.Seconds(),
			"last_sync_seconds": s.LastSync.Seconds(),
		}
	}))
	m.vars.Set("idempotency_keys", expvar.Func(func() any { return keys.Len() }))
	m.vars.Set("memstats", expvar.Func(func() any {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return map[string]any{"heap_alloc": ms.HeapAlloc, "sys": ms.Sys, "num_gc": ms.NumGC}
	}))
	return m
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// reject counts a request refused before it reached the writer.
func (m *metrics) reject(err error) {
	reason := "invalid_event"
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusRequestEntityTooLarge {
		reason = "too_large"
	}
	m.rejected.Add(reason, 1)
}

// ServeHTTP serves the counters as JSON.
func (m *metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
				"rejected", m.rejected.String(), "batches", s.Batches, "avg_batch", ratio(s.Lines, s.Batches),
				"queue_depth", s.QueueDepth, "write_failures", s.Failed, "get_requests", m.getRequests.Value(),
				"get_errors", m.getErrors.Value())
		}
	}
}
