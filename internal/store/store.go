// Package store is all of finonex's SQL: creating the database and schema, reading a user's
// revenue, and applying an events file's sums exactly once.
//
// Exactly once: a file's sums and its row in the processed_files ledger are written in one
// transaction, and the ledger row is inserted first with ON CONFLICT DO NOTHING. A second
// attempt at the same file, concurrent or later, inserts nothing there and rolls back.
// Users are upserted in sorted order, so processors touching the same users take row locks in
// the same order and cannot deadlock each other; a deadlock or serialization failure reported
// anyway is retried.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"finonex"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

// DefaultDSN is the database the server and the processor use when neither -db nor
// DATABASE_URL says otherwise.
const DefaultDSN = "postgres://postgres:1234@localhost:5432/finonex?sslmode=disable"

// ErrNotFound is returned by Revenue for a user with no row.
var ErrNotFound = errors.New("user not found")

// Store is a PostgreSQL database holding users_revenue and the ledger.
type Store struct {
	db   *sql.DB
	cfg  pq.Config
	name string // database name, created when missing

	ready    atomic.Bool             // Ensure succeeded; revenues is set
	mu       sync.Mutex              // held by the one caller connecting
	failure  atomic.Pointer[failure] // the last failed attempt
	revenues *sql.Stmt               // readsQuery, for Revenue and Reads
	retryGap time.Duration
}

// failure is a failed connection attempt, remembered to answer callers without retrying.
type failure struct {
	err error
	at  time.Time
}

// Open checks the DSN and returns a Store. It does not connect: Ensure does, so that a
// server can start while PostgreSQL is down.
func Open(dsn string) (*Store, error) {
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		// lib/pq bounds the startup handshake by connect_timeout only, not by the context: a
		// server that accepts and never answers would otherwise hang every caller.
		cfg.ConnectTimeout = 5 * time.Second
	}
	c, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	db := sql.OpenDB(c)
	// 32: most of PostgreSQL's default max_connections (100) stays for processors, psql and
	// other servers. 64 was measured about 5% faster on GET, not worth that.
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &Store{db: db, cfg: cfg, name: cfg.Database, retryGap: time.Second}, nil
}

// Close closes the connection pool.
func (s *Store) Close() error { return s.db.Close() }

// DB returns the underlying pool, for tests and benchmarks.
func (s *Store) DB() *sql.DB { return s.db }

// Ensure connects, creating the database when it does not exist, and applies the schema.
// Once it has succeeded it returns nil at once, without taking a lock. While one caller is
// connecting, the others do not queue behind it: they get the last failure (or
// ErrConnecting) at once. After a failure, no new attempt is made for a second, so that a
// flood of requests does not become a flood of connection attempts. An attempt runs to its
// own time limit even when the caller gives up, so that its outcome says something about
// PostgreSQL.
func (s *Store) Ensure(ctx context.Context) error {
	if s.ready.Load() {
		return nil
	}
	if !s.mu.TryLock() {
		if f := s.failure.Load(); f != nil {
			return f.err
		}
		return ErrConnecting
	}
	defer s.mu.Unlock()
	if s.ready.Load() {
		return nil
	}
	if f := s.failure.Load(); f != nil && time.Since(f.at) < s.retryGap {
		return f.err
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*s.cfg.ConnectTimeout)
	defer cancel()
	err := s.ensure(actx)
	if err != nil {
		s.failure.Store(&failure{err: err, at: time.Now()})
	} else {
		s.ready.Store(true)
	}
	if ctx.Err() != nil {
		return ctx.Err() // the caller gave up meanwhile
	}
	return err
}

// ErrConnecting is returned by Ensure while another caller is connecting for the first time.
var ErrConnecting = errors.New("connecting to PostgreSQL")

func (s *Store) ensure(ctx context.Context) error {
	err := s.db.PingContext(ctx)
	if sqlState(err) == pqerror.InvalidCatalogName {
		err = s.createDatabase(ctx)
	}
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	if err := s.applySchema(ctx); err != nil {
		return err
	}
	stmt, err := s.db.PrepareContext(ctx, readsQuery)
	if err != nil {
		return fmt.Errorf("prepare revenue query: %w", err)
	}
	s.revenues = stmt
	return nil
}

// createDatabase creates the Store's database through the server's "postgres" database.
func (s *Store) createDatabase(ctx context.Context) error {
	admin := s.cfg.Clone()
	admin.Database = "postgres"
	c, err := pq.NewConnectorConfig(admin)
	if err != nil {
		return err
	}
	db := sql.OpenDB(c)
	defer db.Close()
	_, err = db.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(s.name)+" ENCODING 'UTF8' TEMPLATE template0")
	// Another process may win the race: PostgreSQL reports that as duplicate_database, or as
	// a unique violation when both CREATE DATABASE statements ran at once.
	if code := sqlState(err); err != nil && code != pqerror.DuplicateDatabase && code != pqerror.UniqueViolation {
		return fmt.Errorf("create database %q: %w", s.name, err)
	}
	return s.db.PingContext(ctx)
}

// applySchema runs db.sql under an advisory lock: CREATE TABLE IF NOT EXISTS is not safe
// against itself in two sessions at once, and the server and processor may start together.
func (s *Store) applySchema(ctx context.Context) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7345090001)`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, finonex.Schema); err != nil {
			return fmt.Errorf("apply db.sql: %w", err)
		}
		return nil
	})
}

// Revenue returns the user's revenue, or ErrNotFound.
func (s *Store) Revenue(ctx context.Context, userID string) (int64, error) {
	if err := s.Ensure(ctx); err != nil {
		return 0, err
	}
	found, err := s.lookup(ctx, []string{userID})
	if err != nil {
		return 0, fmt.Errorf("query revenue: %w", err)
	}
	revenue, ok := found[userID]
	if !ok {
		return 0, ErrNotFound
	}
	return revenue, nil
}

// lookup asks for users' rows with readsQuery: the users that have one, with their revenue.
// Ensure must have succeeded.
func (s *Store) lookup(ctx context.Context, users []string) (map[string]int64, error) {
	rows, err := s.revenues.QueryContext(ctx, pq.StringArray(users))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[string]int64, len(users))
	for rows.Next() {
		var u string
		var rev int64
		if err := rows.Scan(&u, &rev); err != nil {
			return nil, err
		}
		found[u] = rev
	}
	return found, rows.Err()
}

// Ping checks that PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.Ensure(ctx); err != nil {
		return err
	}
	return s.db.PingContext(ctx)
}

func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func sqlState(err error) pqerror.Code {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
