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
	// route serves method on path, and answers any other method there with a JSON 405.
	route := func(method, path string, h http.Handler) {
		mux.Handle(method+" "+path, h)
		allow := method
		if method == http.MethodGet {
			allow = "GET, HEAD"
		}
		mux.Handle(path, handleWrongMethod(log, allow))
	}
	route("POST", "/liveEvent", auth(handleLiveEvent(log, w, keys, m)))
	route("GET", "/userEvents/{userid}", auth(handleUserEvents(log, db, m)))
	route("GET", "/healthz", handleHealthz())
	route("GET", "/readyz", handleReadyz(w, db, eventsFile))
	route("GET", "/debug/vars", auth(m))
	route("GET", "/debug/pprof/", auth(http.HandlerFunc(pprof.Index)))
	// Other methods on these two fall to the 405 of the /debug/pprof/ subtree above.
	mux.Handle("GET /debug/pprof/profile", auth(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", auth(http.HandlerFunc(pprof.Trace)))
	mux.Handle("/", handleNotFound(log)) // unknown paths: a JSON 404 like every other error
	if logRequests {
		return logEach(log, mux)
	}
	return mux
}
