package main

import (
	"log/slog"
	"net/http"
	"net/http/pprof"

	"finonex/internal/auth"
	"finonex/internal/idempotency"
	"finonex/internal/spool"
)

// database is what the routes need of PostgreSQL: a user's revenue, and a ping for /readyz.
type database interface {
	revenueReader
	pinger
}

// NewServer returns the server's HTTP handler: every route, in one place, each with what it
// needs and the credentials it asks for.
//
//	POST /liveEvent            events:write
//	GET  /userEvents/{userid}  revenue:read, or revenue:read:own for the token's own sub
//	GET  /metrics              ops:read (Prometheus text format)
//	GET  /debug/vars, pprof    ops:read
//	GET  /healthz, /readyz     open
func NewServer(log *slog.Logger, creds *auth.Credentials, w *spool.Writer, keys *idempotency.Window, db database, m *metrics) http.Handler {
	mux := http.NewServeMux()
	errs := &errorWriter{log: log, m: m}
	// route serves method on path, counted and timed, and answers any other method there
	// with a JSON 405.
	route := func(method, path string, h http.Handler) {
		pattern := method + " " + path
		mux.Handle(pattern, m.instrument(pattern, h))
		allow := method
		if method == http.MethodGet {
			allow = "GET, HEAD"
		}
		mux.Handle(path, handleWrongMethod(errs, allow))
	}
	need := func(ok allowed, h http.Handler) http.Handler { return require(creds, errs, ok, h) }
	ops := func(h http.HandlerFunc) http.Handler { return need(scope(auth.OpsRead), h) }

	route("POST", "/liveEvent", need(scope(auth.EventsWrite), handleLiveEvent(errs, w, keys, m)))
	route("GET", "/userEvents/{userid}", need(readsUser, handleUserEvents(errs, db, m)))
	route("GET", "/healthz", handleHealthz())
	route("GET", "/readyz", handleReadyz(w, db))
	route("GET", "/metrics", ops(m.reg.ServeHTTP))
	route("GET", "/debug/vars", ops(m.serveVars))
	route("GET", "/debug/pprof/", ops(pprof.Index))
	// Other methods on these two fall to the 405 of the /debug/pprof/ subtree above.
	mux.Handle("GET /debug/pprof/profile", ops(pprof.Profile))
	mux.Handle("GET /debug/pprof/trace", ops(pprof.Trace))
	mux.Handle("/", handleNotFound(errs)) // unknown paths: a JSON 404 like every other error
	return mux
}
