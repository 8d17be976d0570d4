// Processor applies the server's events files to PostgreSQL: it sums each user's revenue
// in a file and adds the sums to users_revenue, exactly once per file.
//
// Usage:
//
//	processor [flags] [FILE...]
//
// With no FILE it first finishes what an interrupted run left behind (claimed files beside
// the events file), then claims the live events file by renaming it to
// NAME_<time>-<random>.jsonl, and applies it. With FILEs it claims and applies each of them
// instead (a claimed name is applied as it is).
//
// For each file it reads every line with a bufio.Scanner, sums revenue per user in a map
// (memory grows with users, not with the file), and in one transaction adds the sums to
// users_revenue and records the file in the processed_files ledger. A file already in the
// ledger is never applied again. Then the file is renamed to ..._processed.jsonl. Invalid
// lines are reported with their line numbers and copied to ..._rejected.jsonl beside it;
// they never stop the run and never reach the table. On any failure nothing of that file
// is applied, it keeps its claimed name, and the next run picks it up.
//
// Several processors may run at once, on the same or different files.
//
// With -watch it runs as a service until SIGINT or SIGTERM: every -interval (1s) it finishes
// what was left and applies the live file whenever it holds events, riding out PostgreSQL
// outages with capped backoff. -addr serves /healthz, /readyz and /metrics (Prometheus text
// format, behind -secret or a token with ops:read).
//
// Exit status: 0 when every file was applied (or there was nothing to do), and after a clean
// stop in watch mode; 1 when a file failed; 2 on bad flags.
//
// Example:
//
//	processor -events-file server_events.jsonl -db postgres://postgres@localhost:5432/finonex
//	processor -watch -interval 1s -addr 127.0.0.1:9100 -events-file server_events.jsonl
package main

import "finonex/internal/cli"

func main() { cli.Main(run) }
