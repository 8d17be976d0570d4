package main

import (
	"log/slog"
	"net/http"
	"net/http/pprof"

	"finonex/internal/idempotency"
	"finonex/internal/spool"
	"finonex/internal/store"
)

// NewServer returns the server's HTTP handler: every route, in one place.
func NewServer(log *slog.Logger, secrets []string, eventsFile string, logRequests bool, w *spool.Writer, keys *idempotency.Window, db *store.Store, m *metrics) http.Handler {
	mux := http.NewServeMux()
	auth := requireSecret(secrets)
	mux.Handle("POST /liveEvent", auth(handleLiveEvent(log, w, keys, m)))
	mux.Handle("GET /userEvents/{userid}", auth(handleUserEvents(log, db, m)))
	mux.Handle("GET /healthz", handleHealthz())
	mux.Handle("GET /readyz", handleReadyz(w, db, eventsFile))
	mux.Handle("GET /debug/vars", auth(m))
	mux.Handle("GET /debug/pprof/", auth(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", auth(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", auth(http.HandlerFunc(pprof.Trace)))
	// The same paths with any other method, and unknown paths: JSON errors like the rest.
	mux.Handle("/liveEvent", handleWrongMethod(log, "POST"))
	mux.Handle("/userEvents/{userid}", handleWrongMethod(log, "GET, HEAD"))
	mux.Handle("/", handleNotFound(log))
	if logRequests {
		return logEach(log, mux)
	}
	return mux
}
