// Client sends the events of a JSON-lines file to the server, one POST /liveEvent per
// event, with at most -concurrency requests in flight.
//
// Usage:
//
//	client [flags]
//
// Each line is checked against the event contract first: an invalid line is reported on
// stderr with its line number and reason, and skipped; the rest of the file is still sent.
// Every request carries an Idempotency-Key made of a random run id and the line number, so
// retries after connection errors, timeouts, 409, 429 and 5xx answers (with capped
// exponential backoff and jitter) never count an event twice. A 401 stops the run: the
// secret is wrong for every line.
//
// While it sends, a progress line goes to stderr (redrawn on a terminal, a plain line every
// few seconds otherwise; -quiet turns it off). At the end a summary goes to stdout.
//
// Exit status: 0 when every valid line was accepted, 1 when some event failed (or the run was
// interrupted), 2 on bad flags or an unreadable file.
//
// Example:
//
//	client -file events.jsonl -url http://localhost:8000 -secret s3cret -concurrency 64
package main

import "finonex/internal/cli"

func main() { cli.Main(run) }
