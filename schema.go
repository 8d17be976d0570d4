// Package finonex holds what the whole module shares at its root: the database schema in
// db.sql, embedded so that the programs create exactly the schema a person reads there.
// The programs are in ./server, ./client and ./processor; see README.md.
package finonex

import _ "embed"

// Schema is the content of db.sql: idempotent statements that create every table.
//
//go:embed db.sql
var Schema string
