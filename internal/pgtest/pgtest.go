// Package pgtest gives each test a fresh PostgreSQL database of its own, dropped when the
// test ends. Tests never touch a database they did not create.
//
// The server comes from FINONEX_TEST_DATABASE_URL (./run_test.sh sets it to a PostgreSQL it
// found or started), else postgres://postgres:1234@127.0.0.1:5432/postgres. That connection
// is used only to create and drop the test databases. A test that cannot reach PostgreSQL
// fails with a message saying how to provide one: it never skips silently.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/lib/pq"
)

// UnreachableDSN names a PostgreSQL that never answers: nothing listens on port 1. Tests
// that need no database, or a database that is down, use it.
const UnreachableDSN = "postgres://postgres@127.0.0.1:1/x?sslmode=disable"

// EnvVar names the variable holding the admin URL of the test PostgreSQL server.
const EnvVar = "FINONEX_TEST_DATABASE_URL"

const defaultURL = "postgres://postgres:1234@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL returns the URL of the test PostgreSQL server's admin connection.
func AdminURL(getenv func(string) string) string {
	if u := getenv(EnvVar); u != "" {
		return u
	}
	return defaultURL
}

// NewDatabase creates an empty database with a unique name and returns its URL. The
// database is dropped when the test and its subtests end. With create false it only picks the
// URL of a database that does not exist yet (to test creating it), and still drops it.
func NewDatabase(t testing.TB, getenv func(string) string, create bool) string {
	t.Helper()
	admin := AdminURL(getenv)
	db, err := sql.Open("postgres", admin)
	if err != nil {
		t.Fatalf("pgtest: %s=%q: %v", EnvVar, admin, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		t.Fatalf("pgtest: cannot reach the test PostgreSQL at %s: %v\n"+
			"Run the tests with ./run_test.sh (it finds or starts a PostgreSQL), or set %s to a server where this user may CREATE DATABASE.",
			admin, err, EnvVar)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "finonex_test_" + hex.EncodeToString(b[:])
	if create {
		if _, err := db.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name)); err != nil {
			db.Close()
			t.Fatalf("pgtest: create database %s: %v", name, err)
		}
	}
	t.Cleanup(func() {
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil || u.Scheme == "" {
		t.Fatalf("pgtest: %s must be a postgres:// URL, got %q", EnvVar, admin)
	}
	u.Path = "/" + name
	return u.String()
}

// Revenues returns every row of users_revenue in db, user to revenue: what the tests of every
// package compare with the events they sent.
func Revenues(t testing.TB, db *sql.DB) map[string]int64 {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT user_id, revenue FROM users_revenue`)
	if err != nil {
		t.Fatalf("read users_revenue: %v", err)
	}
	defer rows.Close()
	got := make(map[string]int64)
	for rows.Next() {
		var user string
		var revenue int64
		if err := rows.Scan(&user, &revenue); err != nil {
			t.Fatalf("scan users_revenue: %v", err)
		}
		got[user] = revenue
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read users_revenue: %v", err)
	}
	return got
}
