// Server accepts revenue events over HTTP, appends each durably to an events file for the
// processor, and answers each user's revenue from PostgreSQL.
//
// Usage:
//
//	server [flags]
//
// Endpoints (all but /healthz and /readyz need "Authorization: <secret>"):
//
//	POST /liveEvent            one event, e.g. {"userId":"user1","name":"add_revenue","value":98};
//	                           200 once it is on disk; an Idempotency-Key header makes retries safe
//	GET  /userEvents/{userid}  {"user_id":"user1","revenue":27}, or 404
//	GET  /healthz              200 while the process is up
//	GET  /readyz               200 when the events file is writable and PostgreSQL answers
//	GET  /debug/vars           counters (expvar format)
//	GET  /debug/pprof/         profiles (net/http/pprof), e.g. /debug/pprof/profile?seconds=10
//
// The server needs no database to accept events: when PostgreSQL is down it still writes
// them, and GET /userEvents answers 503 until it is back. It creates the database and the
// schema (db.sql) when they are missing. SIGINT or SIGTERM stops it gracefully: it stops
// accepting, finishes the requests in flight, syncs and closes the file.
//
// Example:
//
//	server -addr :8000 -events-file server_events.jsonl -secret s3cret
package main

import "finonex/internal/cli"

func main() { cli.Main(run) }
