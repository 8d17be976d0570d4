package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"finonex"
	"finonex/internal/pgtest"
)

// openStore opens a Store on dsn and closes it when the test ends, before pgtest drops the
// database (cleanups run last registered first).
func openStore(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(dsn)
	if err != nil {
		t.Fatalf("Open(%q) = %v; want nil error", dsn, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

// newStore returns a ready Store on a fresh database of its own.
func newStore(t testing.TB) *Store {
	t.Helper()
	s := openStore(t, pgtest.NewDatabase(t, os.Getenv, true))
	if err := s.Ensure(t.Context()); err != nil {
		t.Fatalf("Ensure() = %v; want nil", err)
	}
	return s
}

// revenues reads the whole users_revenue table.
func revenues(t testing.TB, s *Store) map[string]int64 {
	t.Helper()
	return pgtest.Revenues(t, s.DB())
}

type ledgerRow struct {
	Events, Users int64
	Net, SHA256   string
}

// tables is what users_revenue and processed_files held at one moment.
type tables struct {
	revenue map[string]int64
	ledger  map[string]ledgerRow
}

func snapshot(t testing.TB, s *Store) tables {
	t.Helper()
	return tables{revenues(t, s), ledger(t, s)}
}

// wantSame fails the test when either table no longer holds what it held at the snapshot;
// after says what happened since.
func (before tables) wantSame(t testing.TB, s *Store, after string) {
	t.Helper()
	if got := revenues(t, s); !maps.Equal(got, before.revenue) {
		if len(got)+len(before.revenue) <= 20 {
			t.Errorf("users_revenue after %s = %v; want it unchanged, %v", after, got, before.revenue)
		} else {
			t.Errorf("users_revenue after %s: %d rows, changed; want the %d rows before", after, len(got), len(before.revenue))
		}
	}
	if got := ledger(t, s); !maps.Equal(got, before.ledger) {
		t.Errorf("processed_files after %s = %+v; want it unchanged, %+v", after, got, before.ledger)
	}
}

// ledger reads the whole processed_files table.
func ledger(t testing.TB, s *Store) map[string]ledgerRow {
	t.Helper()
	rows, err := s.DB().QueryContext(t.Context(),
		`SELECT file_name, events, users, net_revenue::text, sha256 FROM processed_files`)
	if err != nil {
		t.Fatalf("read processed_files: %v", err)
	}
	defer rows.Close()
	m := make(map[string]ledgerRow)
	for rows.Next() {
		var f string
		var r ledgerRow
		if err := rows.Scan(&f, &r.Events, &r.Users, &r.Net, &r.SHA256); err != nil {
			t.Fatalf("scan processed_files: %v", err)
		}
		m[f] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read processed_files: %v", err)
	}
	return m
}

// mustApply applies b and fails the test unless it was applied.
func mustApply(t testing.TB, s *Store, b Batch) {
	t.Helper()
	applied, err := s.Apply(t.Context(), b)
	if err != nil || !applied {
		t.Fatalf("Apply(%s) = %v, %v; want true, nil", b.File, applied, err)
	}
}

func batchOf(file string, m map[string]int64) Batch {
	b := Batch{File: file, Events: int64(len(m)), SHA256: strings.Repeat("ab", 32)}
	for u, d := range m {
		b.Users = append(b.Users, u)
		b.Deltas = append(b.Deltas, d)
	}
	return b
}

func dbName(t testing.TB, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("url.Parse(%q) = %v", dsn, err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func TestOpenMalformedDSN(t *testing.T) {
	for _, dsn := range []string{
		"postgres://%zz",
		"postgres://u@h:notaport/db",
		"host='unterminated",
		"nonsense",
		"port=abc",
		"postgres://h/db?sslmode=nope",
	} {
		s, err := Open(dsn)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) = nil error; want an error", dsn)
		}
	}
}

func TestEnsureCreatesDatabase(t *testing.T) {
	dsn := pgtest.NewDatabase(t, os.Getenv, false)
	s := openStore(t, dsn)
	ctx := t.Context()
	if err := s.Ensure(ctx); err != nil {
		t.Fatalf("Ensure() on a missing database = %v; want nil", err)
	}
	var name, enc string
	err := s.DB().QueryRowContext(ctx, `SELECT d.datname, pg_encoding_to_char(d.encoding)
FROM pg_database d WHERE d.datname = current_database()`).Scan(&name, &enc)
	if err != nil {
		t.Fatalf("query current database: %v", err)
	}
	if want := dbName(t, dsn); name != want || enc != "UTF8" {
		t.Errorf("database = %q encoding %q; want %q encoding UTF8", name, enc, want)
	}
	for _, table := range []string{"users_revenue", "processed_files"} {
		var ok bool
		if err := s.DB().QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s exists = %v, %v; want true", table, ok, err)
		}
	}
	if _, err := s.Revenue(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Revenue(nobody) = %v; want ErrNotFound", err)
	}
	mustApply(t, s, batchOf("before-second-ensure", map[string]int64{"u": 42}))

	// Idempotent: the same Store again, and a second Store re-applying db.sql over the
	// existing tables, which must keep their rows.
	if err := s.Ensure(ctx); err != nil {
		t.Errorf("second Ensure() = %v; want nil", err)
	}
	s2 := openStore(t, dsn)
	if err := s2.Ensure(ctx); err != nil {
		t.Errorf("Ensure() of a second Store on an existing database = %v; want nil", err)
	}
	if got, err := s2.Revenue(ctx, "u"); err != nil || got != 42 {
		t.Errorf("Revenue(u) after re-applying the schema = %d, %v; want 42, nil", got, err)
	}
}

// ensureConcurrently opens n Stores on dsn and calls Ensure on all of them at once.
func ensureConcurrently(t *testing.T, dsn string, n int) ([]*Store, []error) {
	t.Helper()
	ss := make([]*Store, n)
	for i := range ss {
		ss[i] = openStore(t, dsn)
	}
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = s.Ensure(t.Context())
		}()
	}
	close(start)
	wg.Wait()
	return ss, errs
}

// TestEnsureConcurrentOnNewDatabase: a server and a processor starting together on a fresh
// PostgreSQL both create the database. Both must succeed.
func TestEnsureConcurrentOnNewDatabase(t *testing.T) {
	for r := range 3 {
		t.Run(fmt.Sprint("round", r), func(t *testing.T) {
			ss, errs := ensureConcurrently(t, pgtest.NewDatabase(t, os.Getenv, false), 2)
			for i, err := range errs {
				if err != nil {
					t.Errorf("store %d: concurrent Ensure() on a missing database = %v; want nil", i, err)
				}
			}
			// Whatever happened, the database is there once the retry gap has passed.
			for i, s := range ss {
				s.mu.Lock()
				s.retryGap = 0
				s.mu.Unlock()
				if _, err := s.Revenue(t.Context(), "nobody"); !errors.Is(err, ErrNotFound) {
					t.Errorf("store %d: Revenue(nobody) after the retry gap = %v; want ErrNotFound", i, err)
				}
			}
		})
	}
}

// TestEnsureConcurrentOnEmptyDatabase: the database exists, the schema does not; many
// Stores apply db.sql at once (the advisory lock serialises them).
func TestEnsureConcurrentOnEmptyDatabase(t *testing.T) {
	for r := range 3 {
		t.Run(fmt.Sprint("round", r), func(t *testing.T) {
			ss, errs := ensureConcurrently(t, pgtest.NewDatabase(t, os.Getenv, true), 8)
			for i, err := range errs {
				if err != nil {
					t.Errorf("store %d: concurrent Ensure() on an empty database = %v; want nil", i, err)
				}
			}
			if _, err := ss[0].Revenue(t.Context(), "nobody"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Revenue(nobody) = %v; want ErrNotFound", err)
			}
		})
	}
}

// TestSchema checks the column types of db.sql, and that the file run twice the way psql -f
// runs it (plain statements, simple query protocol) is harmless, before and under Ensure.
func TestSchema(t *testing.T) {
	dsn := pgtest.NewDatabase(t, os.Getenv, true)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	defer db.Close()
	ctx := t.Context()
	for i := range 2 {
		if _, err := db.ExecContext(ctx, finonex.Schema); err != nil {
			t.Fatalf("db.sql run %d = %v; want nil", i+1, err)
		}
	}
	s := openStore(t, dsn)
	if err := s.Ensure(ctx); err != nil {
		t.Fatalf("Ensure() on a database that already has the tables = %v; want nil", err)
	}
	if _, err := db.ExecContext(ctx, finonex.Schema); err != nil {
		t.Fatalf("db.sql after Ensure = %v; want nil", err)
	}

	want := map[string]string{
		"users_revenue.user_id":       "text",
		"users_revenue.revenue":       "bigint",
		"processed_files.file_name":   "text",
		"processed_files.events":      "bigint",
		"processed_files.users":       "bigint",
		"processed_files.net_revenue": "numeric",
		"processed_files.sha256":      "text",
		"processed_files.applied_at":  "timestamp with time zone",
	}
	rows, err := db.QueryContext(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name IN ('users_revenue', 'processed_files')`)
	if err != nil {
		t.Fatalf("query columns: %v", err)
	}
	defer rows.Close()
	got := make(map[string]string)
	for rows.Next() {
		var table, col, typ string
		if err := rows.Scan(&table, &col, &typ); err != nil {
			t.Fatalf("scan columns: %v", err)
		}
		got[table+"."+col] = typ
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("query columns: %v", err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("columns = %v; want %v", got, want)
	}
	var pk []string
	prows, err := db.QueryContext(ctx, `SELECT tc.table_name || '.' || kcu.column_name
FROM information_schema.table_constraints tc
JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name)
WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = current_schema()
ORDER BY 1`)
	if err != nil {
		t.Fatalf("query primary keys: %v", err)
	}
	defer prows.Close()
	for prows.Next() {
		var c string
		if err := prows.Scan(&c); err != nil {
			t.Fatalf("scan primary keys: %v", err)
		}
		pk = append(pk, c)
	}
	if err := prows.Err(); err != nil {
		t.Fatalf("query primary keys: %v", err)
	}
	if got, want := strings.Join(pk, " "), "processed_files.file_name users_revenue.user_id"; got != want {
		t.Errorf("primary keys = %q; want %q", got, want)
	}
}

func TestEnsureUnreachable(t *testing.T) {
	s := openStore(t, pgtest.UnreachableDSN)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	first := s.Ensure(ctx)
	if first == nil {
		t.Fatalf("Ensure() against %s = nil; want an error", pgtest.UnreachableDSN)
	}
	start := time.Now()
	second := s.Ensure(ctx)
	t.Logf("first error: %v; cached error returned in %v", first, time.Since(start))
	if second != first {
		t.Errorf("second Ensure() within a second = %v; want the cached error %v", second, first)
	}
	// Every operation reports the same cached error.
	if _, err := s.Revenue(ctx, "u"); err != first {
		t.Errorf("Revenue() = %v; want the cached error", err)
	}
	if _, err := s.Apply(ctx, Batch{File: "f"}); err != first {
		t.Errorf("Apply() = %v; want the cached error", err)
	}
	if err := s.Ping(ctx); err != first {
		t.Errorf("Ping() = %v; want the cached error", err)
	}
	if _, _, err := s.Applied(ctx, "f"); err != first {
		t.Errorf("Applied() = %v; want the cached error", err)
	}

	// Once the gap has passed it tries again, and fails again with a new error.
	s.mu.Lock()
	s.retryGap = 0
	s.mu.Unlock()
	third := s.Ensure(ctx)
	if third == nil || third == first {
		t.Errorf("Ensure() after the retry gap = %v; want a fresh error", third)
	}
}

// fakeServer listens on 127.0.0.1 and counts connections. Each accepted connection is
// counted before handle runs, so a client that waits for an answer sees the count first.
type fakeServer struct {
	addr  string
	mu    sync.Mutex
	n     int
	conns []net.Conn
}

func (f *fakeServer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// TestEnsureCachedErrorDoesNotReconnect counts the connections a failed Ensure makes: the
// cached error must come without a new one.
func TestEnsureCachedErrorDoesNotReconnect(t *testing.T) {
	f := startFakeServer(t, false)
	s := openStore(t, "postgres://postgres@"+f.addr+"/x?sslmode=disable&connect_timeout=10")
	first := s.Ensure(t.Context())
	if first == nil {
		t.Fatalf("Ensure() against a server that hangs up = nil; want an error")
	}
	n := f.count()
	if n == 0 {
		t.Fatalf("Ensure() made no connection; want at least one")
	}
	for range 20 {
		if err := s.Ensure(t.Context()); err != first {
			t.Fatalf("Ensure() within the retry gap = %v; want the cached %v", err, first)
		}
	}
	if got := f.count(); got != n {
		t.Errorf("connections after 20 cached Ensure() calls = %d; want %d (no retry)", got, n)
	}
}

// TestEnsureHonoursContextAgainstSilentServer: a server that accepts the TCP connection and
// never answers (a stopped PostgreSQL, a proxy without a backend). lib/pq applies the
// context to the TCP dial only, not to the startup handshake, so Open sets a
// connect_timeout, and callers behind a connecting Ensure get an answer within their own
// context instead of blocking on s.mu.
func TestEnsureHonoursContextAgainstSilentServer(t *testing.T) {
	f := startFakeServer(t, true)
	s := openStore(t, "postgres://postgres@"+f.addr+"/x?sslmode=disable")
	const timeout = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Ensure(ctx) }()
	const patience = 10 * time.Second
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("Ensure() against a server that never answers = nil; want an error")
		}
	case <-time.After(patience):
		t.Errorf("Ensure() with a %v context against a server that accepts and never answers has not returned after %v; want it to give up when its context ends",
			timeout, patience)
		f.hangUp() // lets the blocked Ensure return
		<-done
	}
}

// TestEnsureSlowFailureIsCachedToo: the retry gap counts from the failure, not from the
// start of the attempt, so an attempt that takes longer than the gap (here a connect_timeout
// of 1s against a server that never answers) is still not retried by the very next caller.
func TestEnsureSlowFailureIsCachedToo(t *testing.T) {
	f := startFakeServer(t, true)
	s := openStore(t, "postgres://postgres@"+f.addr+"/x?sslmode=disable&connect_timeout=1")
	const gap = 500 * time.Millisecond // shorter than the 1s attempt
	s.mu.Lock()
	s.retryGap = gap
	s.mu.Unlock()

	first := s.Ensure(t.Context())
	if first == nil {
		t.Fatalf("Ensure() against a server that never answers = nil; want an error")
	}
	n := f.count()
	second := s.Ensure(t.Context()) // immediately after the failure
	if got := f.count(); got != n || second != first {
		t.Errorf("Ensure() right after a slow failure: connections %d -> %d, error %v; want no new connection and the cached error %v",
			n, got, second, first)
	}
}

// TestEnsureDoesNotCacheCallerCancellation: one caller's cancelled context is not cached as
// the Store's error; the next caller, with a live context and a healthy PostgreSQL,
// connects (the attempt runs to its own time limit whoever gave up).
func TestEnsureDoesNotCacheCallerCancellation(t *testing.T) {
	s := openStore(t, pgtest.NewDatabase(t, os.Getenv, true))
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Ensure(cancelled); err == nil {
		t.Fatalf("Ensure(cancelled context) = nil; want an error")
	}
	if err := s.Ensure(t.Context()); err != nil {
		t.Errorf("Ensure(live context) right after another caller's cancelled Ensure = %v; want nil (PostgreSQL is up)", err)
	}
}

func TestRevenueUnknownUser(t *testing.T) {
	s := newStore(t)
	if got, err := s.Revenue(t.Context(), "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Revenue(nobody) = %d, %v; want ErrNotFound", got, err)
	}
	mustApply(t, s, batchOf("f1", map[string]int64{"somebody": 5}))
	if got, err := s.Revenue(t.Context(), "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Revenue(nobody) = %d, %v; want ErrNotFound", got, err)
	}
	if got, err := s.Revenue(t.Context(), "somebody"); err != nil || got != 5 {
		t.Errorf("Revenue(somebody) = %d, %v; want 5, nil", got, err)
	}
}

func TestRevenueAwkwardUserIDs(t *testing.T) {
	s := newStore(t)
	ids := []string{
		`o'brien`, `''; DROP TABLE users_revenue; --`, `"double"`, `a"b`, `back\slash`, `\\`,
		`with space`, ` leading`, `trailing `, `a/b/c`, `../../etc/passwd`, `/`,
		`{a,b}`, `{}`, `a,b`, `NULL`, `null`, `(1,2)`, `%_*?`, `$1`,
		`Ünïcødé`, `日本語ユーザー`, `emoji 🎉`, "\u200b", "tab\u00a0nbsp",
		strings.Repeat("x", 255),
		strings.Repeat("é", 127) + "x", // 255 bytes, multi-byte
		strings.Repeat("日", 85),        // 255 bytes
		"prefix-" + strings.Repeat("x", 248),
	}
	want := make(map[string]int64)
	for i, id := range ids {
		if _, dup := want[id]; dup {
			t.Fatalf("duplicate id %q in the test table", id)
		}
		want[id] = int64(i+1) * 1000
	}
	mustApply(t, s, batchOf("awkward-1", want))
	// Second file: one user at a time, so each id also travels alone in its array.
	for i, id := range ids {
		mustApply(t, s, Batch{File: fmt.Sprint("awkward-single-", i), Users: []string{id}, Deltas: []int64{-1}})
		want[id]--
	}
	for _, id := range ids {
		if got, err := s.Revenue(t.Context(), id); err != nil || got != want[id] {
			t.Errorf("Revenue(%q) = %d, %v; want %d, nil", id, got, err, want[id])
		}
	}
	if got := revenues(t, s); !maps.Equal(got, want) {
		t.Errorf("users_revenue = %q; want %q", got, want)
	}
	if got, err := s.Revenue(t.Context(), strings.Repeat("x", 254)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Revenue(254 x) = %d, %v; want ErrNotFound", got, err)
	}
}

func TestApplyAddsAndAccumulates(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	a := Batch{File: "events-a.jsonl", Events: 7, SHA256: strings.Repeat("0a", 32),
		Users: []string{"u2", "u1", "u3"}, Deltas: []int64{-50, 100, 0}}
	mustApply(t, s, a)
	if got, want := revenues(t, s), map[string]int64{"u1": 100, "u2": -50, "u3": 0}; !maps.Equal(got, want) {
		t.Fatalf("after a: users_revenue = %v; want %v", got, want)
	}
	b := Batch{File: "events-b.jsonl", Events: 4, SHA256: strings.Repeat("0b", 32),
		Users: []string{"u4", "u1", "u2"}, Deltas: []int64{7, -30, -20}}
	mustApply(t, s, b)
	want := map[string]int64{"u1": 70, "u2": -70, "u3": 0, "u4": 7}
	if got := revenues(t, s); !maps.Equal(got, want) {
		t.Fatalf("after a and b: users_revenue = %v; want %v", got, want)
	}
	for u, w := range want {
		if got, err := s.Revenue(ctx, u); err != nil || got != w {
			t.Errorf("Revenue(%s) = %d, %v; want %d, nil", u, got, err, w)
		}
	}
	wantLedger := map[string]ledgerRow{
		"events-a.jsonl": {Events: 7, Users: 3, Net: "50", SHA256: a.SHA256},
		"events-b.jsonl": {Events: 4, Users: 3, Net: "-43", SHA256: b.SHA256},
	}
	if got := ledger(t, s); !maps.Equal(got, wantLedger) {
		t.Errorf("processed_files = %+v; want %+v", got, wantLedger)
	}
	// Apply must not reorder the caller's slices.
	if strings.Join(b.Users, ",") != "u4,u1,u2" || fmt.Sprint(b.Deltas) != "[7 -30 -20]" {
		t.Errorf("Apply changed the batch: Users %v Deltas %v", b.Users, b.Deltas)
	}
	if ok, digest, err := s.Applied(ctx, "events-a.jsonl"); err != nil || !ok || digest != a.SHA256 {
		t.Errorf("Applied(events-a.jsonl) = %v, %q, %v; want true, %q, nil", ok, digest, err, a.SHA256)
	}
	if ok, digest, err := s.Applied(ctx, "events-c.jsonl"); err != nil || ok || digest != "" {
		t.Errorf("Applied(events-c.jsonl) = %v, %q, %v; want false, \"\", nil", ok, digest, err)
	}
}

func TestApplySameFileTwiceChangesNothing(t *testing.T) {
	s := newStore(t)
	first := Batch{File: "once.jsonl", Events: 2, SHA256: strings.Repeat("11", 32),
		Users: []string{"a", "b"}, Deltas: []int64{10, 20}}
	mustApply(t, s, first)
	before := snapshot(t, s)
	for _, again := range []Batch{
		first,
		{File: "once.jsonl", Events: 99, SHA256: strings.Repeat("22", 32),
			Users: []string{"a", "c"}, Deltas: []int64{-1000, 5}},
		{File: "once.jsonl"},
	} {
		applied, err := s.Apply(t.Context(), again)
		if err != nil || applied {
			t.Errorf("Apply(%+v) of a file in the ledger = %v, %v; want false, nil", again, applied, err)
		}
		before.wantSame(t, s, "a repeated file")
	}
}

func TestApplyEmptyBatch(t *testing.T) {
	s := newStore(t)
	for _, b := range []Batch{
		{File: "empty-nil.jsonl", Events: 0, SHA256: strings.Repeat("e3", 32)},
		{File: "empty-slices.jsonl", Events: 3, SHA256: strings.Repeat("e4", 32), Users: []string{}, Deltas: []int64{}},
	} {
		mustApply(t, s, b)
		if applied, err := s.Apply(t.Context(), b); err != nil || applied {
			t.Errorf("second Apply(%s) = %v, %v; want false, nil", b.File, applied, err)
		}
	}
	want := map[string]ledgerRow{
		"empty-nil.jsonl":    {Events: 0, Users: 0, Net: "0", SHA256: strings.Repeat("e3", 32)},
		"empty-slices.jsonl": {Events: 3, Users: 0, Net: "0", SHA256: strings.Repeat("e4", 32)},
	}
	if got := ledger(t, s); !maps.Equal(got, want) {
		t.Errorf("processed_files = %+v; want %+v", got, want)
	}
	if got := revenues(t, s); len(got) != 0 {
		t.Errorf("users_revenue = %v; want empty", got)
	}
}

func TestApplyLengthMismatch(t *testing.T) {
	s := newStore(t)
	mustApply(t, s, batchOf("seed", map[string]int64{"a": 1}))
	before := snapshot(t, s)
	for _, b := range []Batch{
		{File: "more-users", Users: []string{"a", "b"}, Deltas: []int64{1}},
		{File: "more-deltas", Users: []string{"a"}, Deltas: []int64{1, 2}},
		{File: "no-deltas", Users: []string{"a"}},
	} {
		applied, err := s.Apply(t.Context(), b)
		if err == nil || applied {
			t.Errorf("Apply(%d users, %d deltas) = %v, %v; want false and an error", len(b.Users), len(b.Deltas), applied, err)
		}
		if ok, _, err := s.Applied(t.Context(), b.File); err != nil || ok {
			t.Errorf("Applied(%s) = %v, %v; want false, nil", b.File, ok, err)
		}
	}
	before.wantSame(t, s, "batches of mismatched lengths")
}

func TestApplyNetRevenueBeyondInt64(t *testing.T) {
	s := newStore(t)
	mustApply(t, s, Batch{File: "big", Users: []string{"x", "y", "z"},
		Deltas: []int64{math.MaxInt64, math.MaxInt64, 1}})
	if got, want := ledger(t, s)["big"].Net, "18446744073709551615"; got != want {
		t.Errorf("net_revenue = %s; want %s", got, want)
	}
	mustApply(t, s, Batch{File: "small", Users: []string{"p", "q"},
		Deltas: []int64{math.MinInt64, math.MinInt64}})
	if got, want := ledger(t, s)["small"].Net, "-18446744073709551616"; got != want {
		t.Errorf("net_revenue = %s; want %s", got, want)
	}
}

// TestApplyOverflowRollsBackEverything: a total that leaves bigint fails the batch, and
// nothing of it stays: not the users updated or inserted before the failing row (in the
// same statement or an earlier chunk), not the ledger row.
func TestApplyOverflowRollsBackEverything(t *testing.T) {
	s := newStore(t)
	mustApply(t, s, batchOf("seed", map[string]int64{
		"a": 1, "m-big": math.MaxInt64 - 10, "m-small": math.MinInt64 + 10, "z": 5,
		"zzz-over": math.MaxInt64,
	}))

	// "zzz-over" sorts after every k row, so two chunks are written before the failure.
	late := Batch{File: "up-late-chunk"}
	for i := range 2*chunkRows + 500 {
		late.Users = append(late.Users, fmt.Sprintf("k%06d", i))
		late.Deltas = append(late.Deltas, int64(i))
	}
	late.Users = append(late.Users, "a", "zzz-over", "z")
	late.Deltas = append(late.Deltas, 1, 1, 1)
	for _, b := range []Batch{
		{File: "up", Users: []string{"a", "new-1", "m-big", "z", "zz-new"}, Deltas: []int64{1, 3, 11, 1, 2}},
		{File: "down", Users: []string{"a", "new-1", "m-small", "z"}, Deltas: []int64{1, 3, -11, 1}},
		{File: "up-first", Users: []string{"m-big", "a"}, Deltas: []int64{math.MaxInt64, 1}},
		late,
	} {
		before := snapshot(t, s)
		applied, err := s.Apply(t.Context(), b)
		if err == nil || applied {
			t.Errorf("Apply(%s) overflowing bigint = %v, %v; want false and an error", b.File, applied, err)
		} else {
			t.Logf("Apply(%s): %v", b.File, err)
		}
		before.wantSame(t, s, "failed Apply("+b.File+")")
	}
	// The failed file is not in the ledger, so a corrected version of it applies.
	mustApply(t, s, Batch{File: "up", Users: []string{"a"}, Deltas: []int64{1}})
	if got, err := s.Revenue(t.Context(), "a"); err != nil || got != 2 {
		t.Errorf("Revenue(a) = %d, %v; want 2, nil", got, err)
	}
}

func TestApplyLargeBatch(t *testing.T) {
	s := newStore(t)
	n := 2*chunkRows + 10000 // three chunks, the last one partial
	users := make([]string, n)
	deltas := make([]int64, n)
	want := make(map[string]int64, n)
	for i := range n {
		users[i] = fmt.Sprintf("user-%07d", i)
		deltas[i] = int64(i - n/2)
		want[users[i]] = deltas[i]
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(n, func(i, j int) {
		users[i], users[j] = users[j], users[i]
		deltas[i], deltas[j] = deltas[j], deltas[i]
	})
	mustApply(t, s, Batch{File: "large-1", Events: int64(n), Users: users, Deltas: deltas})
	if got := revenues(t, s); !maps.Equal(got, want) {
		t.Fatalf("after a %d-user batch: users_revenue has %d rows, not the ones applied", n, len(got))
	}
	// Again, as a second file, in another order, with new users too.
	rng.Shuffle(n, func(i, j int) {
		users[i], users[j] = users[j], users[i]
		deltas[i], deltas[j] = deltas[j], deltas[i]
	})
	for i := range 1000 {
		u := fmt.Sprintf("extra-%04d", i)
		users = append(users, u)
		deltas = append(deltas, 3)
		want[u] = 3
	}
	for i, u := range users[:n] {
		want[u] += deltas[i]
	}
	mustApply(t, s, Batch{File: "large-2", Users: users, Deltas: deltas})
	if got := revenues(t, s); !maps.Equal(got, want) {
		t.Fatalf("after two large batches: users_revenue has %d rows, not the sums applied", len(got))
	}
	if got, want := ledger(t, s)["large-2"].Users, int64(n+1000); got != want {
		t.Errorf("ledger users of large-2 = %d; want %d", got, want)
	}
}

func TestApplyCancelledContext(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	applied, err := s.Apply(ctx, batchOf("cancelled", map[string]int64{"a": 1}))
	if err == nil || applied {
		t.Errorf("Apply(cancelled context) = %v, %v; want false and an error", applied, err)
	}
	if got := ledger(t, s); len(got) != 0 {
		t.Errorf("processed_files = %+v; want empty", got)
	}
}

// concurrentStores returns n Stores on one fresh database: either one shared Store or n
// Stores of their own, as n processors would have.
func concurrentStores(t *testing.T, n int, shared bool) []*Store {
	dsn := pgtest.NewDatabase(t, os.Getenv, true)
	ss := make([]*Store, n)
	for i := range ss {
		if shared && i > 0 {
			ss[i] = ss[0]
			continue
		}
		ss[i] = openStore(t, dsn)
		if err := ss[i].Ensure(t.Context()); err != nil {
			t.Fatalf("Ensure() = %v; want nil", err)
		}
	}
	return ss
}

func TestApplyConcurrentOverlappingUsers(t *testing.T) {
	const workers, nUsers, rounds = 8, 2000, 3
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			ss := concurrentStores(t, workers, shared)
			want := make(map[string]int64, nUsers)
			batches := make([]Batch, 0, workers*rounds)
			for w := range workers * rounds {
				rng := rand.New(rand.NewPCG(uint64(w), 99))
				b := Batch{File: fmt.Sprintf("worker-%02d.jsonl", w), Events: nUsers}
				for _, i := range rng.Perm(nUsers) {
					u := fmt.Sprintf("user-%05d", i)
					d := int64((w+1)*(i+1)) * int64(1-2*(i%2)) // both signs
					b.Users = append(b.Users, u)
					b.Deltas = append(b.Deltas, d)
					want[u] += d
				}
				batches = append(batches, b)
			}
			for r := range rounds {
				var wg sync.WaitGroup
				start := make(chan struct{})
				errs := make([]error, workers)
				applied := make([]bool, workers)
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						applied[w], errs[w] = ss[w].Apply(t.Context(), batches[r*workers+w])
					}()
				}
				close(start)
				wg.Wait()
				for w := range workers {
					if errs[w] != nil || !applied[w] {
						t.Errorf("round %d worker %d: Apply = %v, %v; want true, nil", r, w, applied[w], errs[w])
					}
				}
			}
			if got := revenues(t, ss[0]); !maps.Equal(got, want) {
				t.Errorf("users_revenue after %d concurrent files differs from the sums applied", workers*rounds)
			}
			if got := len(ledger(t, ss[0])); got != workers*rounds {
				t.Errorf("processed_files has %d rows; want %d", got, workers*rounds)
			}
			// Retries would hide deadlocks; the server's counter shows whether any happened
			// (it is flushed lazily, so it is only logged).
			var deadlocks int64
			if err := ss[0].DB().QueryRowContext(t.Context(),
				`SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&deadlocks); err != nil {
				t.Errorf("read pg_stat_database: %v", err)
			}
			t.Logf("deadlocks detected by PostgreSQL in this database: %d", deadlocks)
		})
	}
}

func TestApplySameFileConcurrently(t *testing.T) {
	const workers, nUsers = 8, 2000
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			ss := concurrentStores(t, workers, shared)
			want := make(map[string]int64, nUsers)
			var users []string
			var deltas []int64
			for i := range nUsers {
				u := fmt.Sprintf("user-%05d", i)
				users = append(users, u)
				deltas = append(deltas, int64(i+1))
				want[u] = int64(i + 1)
			}
			for round := range 3 {
				file := fmt.Sprintf("same-%d.jsonl", round)
				var wg sync.WaitGroup
				start := make(chan struct{})
				errs := make([]error, workers)
				applied := make([]bool, workers)
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						// Each worker has its own copy in its own order: the same file, claimed
						// twice.
						rng := rand.New(rand.NewPCG(uint64(w), uint64(round)))
						b := Batch{File: file, Events: nUsers, SHA256: strings.Repeat("5a", 32),
							Users: slices.Clone(users), Deltas: slices.Clone(deltas)}
						rng.Shuffle(nUsers, func(i, j int) {
							b.Users[i], b.Users[j] = b.Users[j], b.Users[i]
							b.Deltas[i], b.Deltas[j] = b.Deltas[j], b.Deltas[i]
						})
						<-start
						applied[w], errs[w] = ss[w].Apply(t.Context(), b)
					}()
				}
				close(start)
				wg.Wait()
				n := 0
				for w := range workers {
					if errs[w] != nil {
						t.Errorf("round %d worker %d: Apply = %v", round, w, errs[w])
					}
					if applied[w] {
						n++
					}
				}
				if n != 1 {
					t.Errorf("round %d: %d of %d concurrent Apply calls of the same file returned applied=true; want exactly 1", round, n, workers)
				}
				if round > 0 {
					for i, u := range users {
						want[u] += deltas[i]
					}
				}
				if got := revenues(t, ss[0]); !maps.Equal(got, want) {
					t.Errorf("round %d: users_revenue differs from the file counted once per round", round)
				}
			}
			if got := len(ledger(t, ss[0])); got != 3 {
				t.Errorf("processed_files has %d rows; want 3", got)
			}
		})
	}
}

// hangUp closes the connections held so far.
func (f *fakeServer) hangUp() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

func startFakeServer(t *testing.T, hold bool) *fakeServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	f := &fakeServer{addr: l.Addr().String()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.n++
			if hold {
				f.conns = append(f.conns, c)
			} else {
				c.Close()
			}
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		f.hangUp()
	})
	return f
}
