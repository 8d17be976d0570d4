package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"finonex/internal/pgtest"
)

// newReads returns s.NewReads(opts), closed when the test ends; it then checks that no
// goroutine of the Reads is left.
func newReads(t testing.TB, s *Store, opts ReadOptions) *Reads {
	t.Helper()
	r := s.NewReads(opts)
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Reads.Close() = %v; want nil", err)
		}
		if st := r.Stats(); st.InFlight != 0 || st.Queued != 0 {
			t.Errorf("after Close, Stats() = %+v; want nothing in flight or queued", st)
		}
		// A runner has called runners.Done as it returns, so it may still be on its way out
		// when Close returns: a leak is one still there a second later.
		g := readsGoroutines()
		for deadline := time.Now().Add(time.Second); g != "" && time.Now().Before(deadline); g = readsGoroutines() {
			time.Sleep(time.Millisecond)
		}
		if g != "" {
			t.Errorf("after Close, a Reads goroutine is still running:\n%s", g)
		}
	})
	return r
}

// readsGoroutines returns the stacks of running goroutines that are in a Reads method, or
// "". The Reads tests do not run in parallel, so any such goroutine is a leak.
func readsGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var leaked []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "store.(*Reads).") {
			leaked = append(leaked, g)
		}
	}
	return strings.Join(leaked, "\n\n")
}

// insertRevenues sets users' revenue directly, one statement, committed on return.
func insertRevenues(t testing.TB, s *Store, m map[string]int64) {
	t.Helper()
	mustApply(t, s, batchOf(fmt.Sprintf("insert-%d", rand.Int64()), m))
}

// lockTable takes an ACCESS EXCLUSIVE lock on users_revenue in a transaction of its own,
// so that every query of the table waits in PostgreSQL until the returned release (also
// called when the test ends) commits the transaction. fn, when set, runs before the commit.
func lockTable(t testing.TB, s *Store) (release func(fn func(*sql.Tx))) {
	t.Helper()
	tx, err := s.DB().BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.Exec(`LOCK TABLE users_revenue IN ACCESS EXCLUSIVE MODE`); err != nil {
		tx.Rollback()
		t.Fatalf("lock users_revenue: %v", err)
	}
	var once sync.Once
	release = func(fn func(*sql.Tx)) {
		once.Do(func() {
			if fn != nil {
				fn(tx)
			}
			if err := tx.Commit(); err != nil {
				t.Errorf("commit the lock: %v", err)
			}
		})
	}
	t.Cleanup(func() { release(nil) })
	return release
}

// waitStats polls r.Stats until ok holds, failing the test after 10 seconds.
func waitStats(t testing.TB, r *Reads, what string, ok func(ReadStats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := r.Stats()
		if ok(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: Stats() = %+v", what, st)
		}
		time.Sleep(time.Millisecond)
	}
}

// result is one lookup's answer.
type result struct {
	user string
	rev  int64
	err  error
}

// lookup runs r.Revenue(ctx, user) in a goroutine and sends its answer on the returned
// channel.
func lookup(ctx context.Context, r *Reads, user string) <-chan result {
	c := make(chan result, 1)
	go func() {
		rev, err := r.Revenue(ctx, user)
		c <- result{user, rev, err}
	}()
	return c
}

// plug locks the table and starts one lookup whose query the single runner of r
// (MaxInFlight 1) takes and is held in PostgreSQL: every lookup made until release is
// queued behind it.
func plug(t testing.TB, s *Store, r *Reads) (release func(fn func(*sql.Tx)), plugged <-chan result) {
	t.Helper()
	release = lockTable(t, s)
	before := r.Stats()
	plugged = lookup(t.Context(), r, "plug")
	waitStats(t, r, "the plug's query to start", func(st ReadStats) bool {
		return st.Lookups == before.Lookups+1 && st.Queued == 0 && st.InFlight == 1
	})
	return release, plugged
}

// check compares a lookup's answer with the rows in want: a user absent from want must be
// ErrNotFound.
func (res result) check(t testing.TB, want map[string]int64) {
	t.Helper()
	w, ok := want[res.user]
	switch {
	case !ok && !errors.Is(res.err, ErrNotFound):
		t.Errorf("Revenue(%q) = %d, %v; want ErrNotFound", res.user, res.rev, res.err)
	case ok && (res.err != nil || res.rev != w):
		t.Errorf("Revenue(%q) = %d, %v; want %d, nil", res.user, res.rev, res.err, w)
	}
}

func TestReadsFoundAndNotFound(t *testing.T) {
	s := newStore(t)
	r := newReads(t, s, ReadOptions{})
	want := map[string]int64{"a": 1, "b": -2, "zero": 0}
	insertRevenues(t, s, want)
	for _, u := range []string{"a", "b", "zero", "nobody", "A", "a ", ""} {
		rev, err := r.Revenue(t.Context(), u)
		result{u, rev, err}.check(t, want)
	}
}

// TestReadsMixedBatch sends found, missing and awkward users, and ids no row can hold,
// all in one query.
func TestReadsMixedBatch(t *testing.T) {
	s := newStore(t)
	r := newReads(t, s, ReadOptions{MaxInFlight: 1})
	want := map[string]int64{"plug": 7}
	awkward := []string{
		`o'brien`, `''; DROP TABLE users_revenue; --`, `"double"`, `a"b`, `back\slash`, `\\`,
		`with space`, ` leading`, `trailing `, `{a,b}`, `{}`, `a,b`, `NULL`, `null`, `(1,2)`,
		`$1`, `Ünïcødé`, `日本語ユーザー`, `emoji 🎉`, "\u200b", strings.Repeat("x", 255),
	}
	for i, u := range awkward {
		want[u] = int64(i+1) * 100
	}
	insertRevenues(t, s, want)
	missing := []string{"nobody", "NULL ", `"NULL"`, "{}x", strings.Repeat("x", 254)}
	// PostgreSQL text cannot hold these; sent, they would fail the whole batch.
	impossible := []string{"nul\x00byte", "bad\xffutf8"}

	release, plugged := plug(t, s, r)
	var cs []<-chan result
	for _, list := range [][]string{awkward, missing, impossible} {
		for _, u := range list {
			cs = append(cs, lookup(t.Context(), r, u))
		}
	}
	waitStats(t, r, "the lookups to queue", func(st ReadStats) bool {
		return st.Queued == len(awkward)+len(missing)
	})
	release(nil)
	(<-plugged).check(t, want)
	for _, c := range cs {
		(<-c).check(t, want)
	}
	if st := r.Stats(); st.Queries != 2 || st.Users != int64(1+len(awkward)+len(missing)) || st.Failed != 0 {
		t.Errorf("Stats() = %+v; want 2 queries (the plug, then one batch) for %d users, none failed",
			st, 1+len(awkward)+len(missing))
	}
}

// TestReadsConcurrentLookups: 500 lookups at once of 100 users (20 of them missing), all
// answered right.
func TestReadsConcurrentLookups(t *testing.T) {
	s := newStore(t)
	r := newReads(t, s, ReadOptions{})
	want := make(map[string]int64)
	var users []string
	for i := range 100 {
		u := fmt.Sprintf("user-%03d", i)
		users = append(users, u)
		if i%5 != 0 {
			want[u] = int64(i * 1000)
		}
	}
	insertRevenues(t, s, want)
	start := make(chan struct{})
	results := make(chan result, 500)
	var wg sync.WaitGroup
	for i := range 500 {
		u := users[i%len(users)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			rev, err := r.Revenue(t.Context(), u)
			results <- result{u, rev, err}
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	for res := range results {
		res.check(t, want)
	}
	st := r.Stats()
	if st.Lookups != 500 || st.Failed != 0 {
		t.Errorf("Stats() = %+v; want 500 lookups, no failed query", st)
	}
	t.Logf("500 lookups in %d queries asking for %d users", st.Queries, st.Users)
}

// TestReadsBatchDeduplicates: 64 lookups of one user and 10 of another queued together
// ask for two users in one query.
func TestReadsBatchDeduplicates(t *testing.T) {
	s := newStore(t)
	r := newReads(t, s, ReadOptions{MaxInFlight: 1})
	want := map[string]int64{"plug": 1, "hot": 64, "warm": 10}
	insertRevenues(t, s, want)
	release, plugged := plug(t, s, r)
	var cs []<-chan result
	for i := range 74 {
		u := "hot"
		if i%7 == 3 && i < 70 {
			u = "warm" // 10 of them, among the hot ones
		}
		cs = append(cs, lookup(t.Context(), r, u))
	}
	waitStats(t, r, "the lookups to queue", func(st ReadStats) bool { return st.Queued == 74 })
	release(nil)
	(<-plugged).check(t, want)
	for _, c := range cs {
		(<-c).check(t, want)
	}
	if st := r.Stats(); st.Queries != 2 || st.Users != 3 || st.Lookups != 75 {
		t.Errorf("Stats() = %+v; want 75 lookups in 2 queries asking for 3 users", st)
	}
}

// TestReadsMaxBatch: queued lookups of more distinct users than MaxBatch are split into
// batches of at most MaxBatch.
func TestReadsMaxBatch(t *testing.T) {
	s := newStore(t)
	r := newReads(t, s, ReadOptions{MaxInFlight: 1, MaxBatch: 10})
	want := map[string]int64{"plug": 1}
	for i := range 25 {
		want[fmt.Sprint("u", i)] = int64(i)
	}
	insertRevenues(t, s, want)
	release, plugged := plug(t, s, r)
	var cs []<-chan result
	for i := range 25 {
		cs = append(cs, lookup(t.Context(), r, fmt.Sprint("u", i)))
	}
	waitStats(t, r, "the lookups to queue", func(st ReadStats) bool { return st.Queued == 25 })
	release(nil)
	(<-plugged).check(t, want)
	for _, c := range cs {
		(<-c).check(t, want)
	}
	if st := r.Stats(); st.Queries != 1+3 || st.Users != 26 {
		t.Errorf("Stats() = %+v; want 4 queries (plug, 10, 10, 5) asking for 26 users", st)
	}
}

// TestReadsCancelledLookup: a lookup whose caller gives up returns at once, whether its
// query was sent or not, and the others of its batch are answered. A batch that every
// lookup left is never sent.
func TestReadsCancelledLookup(t *testing.T) {
	s := newStore(t)
	r := newReads(t, s, ReadOptions{MaxInFlight: 1})
	want := map[string]int64{"plug": 1, "stays": 2, "leaves": 3}
	insertRevenues(t, s, want)

	// The plug's own caller leaves while its query is held in PostgreSQL.
	release := lockTable(t, s)
	plugCtx, cancelPlug := context.WithCancel(t.Context())
	plugged := lookup(plugCtx, r, "plug")
	waitStats(t, r, "the plug's query to start", func(st ReadStats) bool { return st.InFlight == 1 && st.Queued == 0 })
	ctx, cancel := context.WithCancel(t.Context())
	leaving := lookup(ctx, r, "leaves")
	leavingToo := lookup(ctx, r, "stays")
	staying := lookup(t.Context(), r, "stays")
	waitStats(t, r, "the lookups to queue", func(st ReadStats) bool { return st.Queued == 3 })
	cancelPlug()
	cancel()
	for _, c := range []<-chan result{plugged, leaving, leavingToo} {
		if res := <-c; !errors.Is(res.err, context.Canceled) {
			t.Errorf("Revenue(%q) with its context cancelled = %d, %v; want context.Canceled", res.user, res.rev, res.err)
		}
	}
	if st := r.Stats(); st.Queued != 1 || st.Cancelled != 3 {
		t.Errorf("Stats() after 3 of 4 lookups left = %+v; want 1 queued, 3 cancelled", st)
	}
	release(nil)
	(<-staying).check(t, want)

	// A whole batch leaves before it is sent: it is dropped.
	release = lockTable(t, s)
	plugged = lookup(t.Context(), r, "plug")
	waitStats(t, r, "the second plug's query to start", func(st ReadStats) bool { return st.InFlight == 1 && st.Queued == 0 })
	ctx, cancel = context.WithCancel(t.Context())
	gone := []<-chan result{lookup(ctx, r, "leaves"), lookup(ctx, r, "nobody")}
	waitStats(t, r, "the lookups to queue", func(st ReadStats) bool { return st.Queued == 2 })
	cancel()
	for _, c := range gone {
		if res := <-c; !errors.Is(res.err, context.Canceled) {
			t.Errorf("Revenue(%q) with its context cancelled = %d, %v; want context.Canceled", res.user, res.rev, res.err)
		}
	}
	queries := r.Stats().Queries
	release(nil)
	(<-plugged).check(t, want)
	waitStats(t, r, "the runner to end", func(st ReadStats) bool { return st.InFlight == 0 })
	if st := r.Stats(); st.Queries != queries+1 || st.Dropped != 1 {
		t.Errorf("Stats() = %+v; want only the plug's query sent (%d) and 1 batch dropped", st, queries+1)
	}

	// A context done before the call returns at once, queueing nothing.
	done, cancel := context.WithCancel(t.Context())
	cancel()
	before := r.Stats().Lookups
	if rev, err := r.Revenue(done, "stays"); !errors.Is(err, context.Canceled) {
		t.Errorf("Revenue(stays) with a done context = %d, %v; want context.Canceled", rev, err)
	}
	if got := r.Stats().Lookups; got != before {
		t.Errorf("Stats().Lookups = %d after a call with a done context; want %d", got, before)
	}
}

// TestReadsQueryTimeout: a query held longer than QueryTimeout answers all its lookups
// with the same error, and the next lookups are answered again.
func TestReadsQueryTimeout(t *testing.T) {
	s := newStore(t)
	r := newReads(t, s, ReadOptions{MaxInFlight: 1, QueryTimeout: time.Second})
	want := map[string]int64{"plug": 1, "a": 2}
	insertRevenues(t, s, want)
	if _, err := r.Revenue(t.Context(), "a"); err != nil { // prepared now, not under the lock
		t.Fatalf("Revenue(a) = %v", err)
	}
	release, plugged := plug(t, s, r)
	var cs []<-chan result
	for _, u := range []string{"a", "a", "nobody", "b"} {
		cs = append(cs, lookup(t.Context(), r, u))
	}
	waitStats(t, r, "the lookups to queue", func(st ReadStats) bool { return st.Queued == 4 })
	if res := <-plugged; !errors.Is(res.err, context.DeadlineExceeded) || !strings.HasPrefix(res.err.Error(), "query revenue: ") {
		t.Errorf("Revenue(plug) held past QueryTimeout = %d, %v; want a query revenue error wrapping context.DeadlineExceeded", res.rev, res.err)
	} else {
		t.Logf("timed out: %v", res.err)
	}
	// The queued batch is sent now and is held as long again.
	var first error
	for i, c := range cs {
		res := <-c
		if !errors.Is(res.err, context.DeadlineExceeded) || !strings.HasPrefix(res.err.Error(), "query revenue: ") {
			t.Errorf("Revenue(%q) held past QueryTimeout = %d, %v; want a query revenue error", res.user, res.rev, res.err)
		}
		if i == 0 {
			first = res.err
		} else if res.err != first {
			t.Errorf("Revenue(%q) = %v; want the error of its batch, %v", res.user, res.err, first)
		}
	}
	if st := r.Stats(); st.Queries != 3 || st.Failed != 2 {
		t.Errorf("Stats() = %+v; want 3 queries, 2 failed", st)
	}
	release(nil)
	rev, err := r.Revenue(t.Context(), "a")
	result{"a", rev, err}.check(t, want)
}

// TestReadsFailedQuery: the table disappears under queued lookups; every one of them gets
// an error.
func TestReadsFailedQuery(t *testing.T) {
	s := newStore(t)
	r := newReads(t, s, ReadOptions{MaxInFlight: 1})
	insertRevenues(t, s, map[string]int64{"plug": 1, "a": 2})
	if _, err := r.Revenue(t.Context(), "a"); err != nil {
		t.Fatalf("Revenue(a) = %v", err)
	}
	release, plugged := plug(t, s, r)
	var cs []<-chan result
	for i := range 20 {
		cs = append(cs, lookup(t.Context(), r, fmt.Sprint("u", i%7)))
	}
	waitStats(t, r, "the lookups to queue", func(st ReadStats) bool { return st.Queued == 20 })
	release(func(tx *sql.Tx) {
		if _, err := tx.Exec(`DROP TABLE users_revenue`); err != nil {
			t.Errorf("drop users_revenue: %v", err)
		}
	})
	var errs []error
	for _, c := range append(cs, plugged) {
		res := <-c
		if res.err == nil || errors.Is(res.err, ErrNotFound) || !strings.HasPrefix(res.err.Error(), "query revenue: ") {
			t.Errorf("Revenue(%q) with the table dropped = %d, %v; want a query revenue error", res.user, res.rev, res.err)
		}
		errs = append(errs, res.err)
	}
	t.Logf("errors: %v; %v", errs[0], errs[len(errs)-1])
	for i, err := range errs[:len(cs)] {
		if err != errs[0] {
			t.Errorf("lookup %d: %v; want the error of its batch, %v", i, err, errs[0])
		}
	}
	if st := r.Stats(); st.Queries != 3 || st.Failed != 2 {
		t.Errorf("Stats() = %+v; want 3 queries, the last 2 failed", st)
	}
}

// TestReadsUnreachable: with PostgreSQL unreachable every lookup gets Ensure's error and
// no query is tried.
func TestReadsUnreachable(t *testing.T) {
	s := openStore(t, "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=1")
	r := newReads(t, s, ReadOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	first := s.Ensure(ctx)
	if first == nil {
		t.Fatal("Ensure() against port 1 = nil; want an error")
	}
	var cs []<-chan result
	for i := range 20 {
		cs = append(cs, lookup(ctx, r, fmt.Sprint("u", i)))
	}
	for _, c := range cs {
		if res := <-c; res.err != first {
			t.Errorf("Revenue(%q) = %d, %v; want Ensure's error, %v", res.user, res.rev, res.err, first)
		}
	}
	if st := r.Stats(); st.Lookups != 0 || st.Queries != 0 {
		t.Errorf("Stats() = %+v; want no lookup queued and no query", st)
	}
}

// TestReadsFull: lookups beyond MaxQueued are refused at once.
func TestReadsFull(t *testing.T) {
	s := newStore(t)
	r := newReads(t, s, ReadOptions{MaxInFlight: 1, MaxQueued: 3})
	want := map[string]int64{"plug": 1, "a": 2}
	insertRevenues(t, s, want)
	release, plugged := plug(t, s, r)
	var cs []<-chan result
	for _, u := range []string{"a", "a", "b"} {
		cs = append(cs, lookup(t.Context(), r, u))
	}
	waitStats(t, r, "the lookups to queue", func(st ReadStats) bool { return st.Queued == 3 })
	for _, u := range []string{"a", "c"} {
		if rev, err := r.Revenue(t.Context(), u); !errors.Is(err, ErrReadsFull) {
			t.Errorf("Revenue(%q) with 3 of MaxQueued 3 waiting = %d, %v; want ErrReadsFull", u, rev, err)
		}
	}
	release(nil)
	(<-plugged).check(t, want)
	for _, c := range cs {
		(<-c).check(t, want)
	}
	if st := r.Stats(); st.Full != 2 {
		t.Errorf("Stats().Full = %d; want 2", st.Full)
	}
}

// TestReadsClose: Close answers the queued lookups before returning, and refuses later ones.
func TestReadsClose(t *testing.T) {
	s := newStore(t)
	r := newReads(t, s, ReadOptions{MaxInFlight: 1})
	want := map[string]int64{"plug": 1, "a": 2}
	insertRevenues(t, s, want)
	release, plugged := plug(t, s, r)
	queued := lookup(t.Context(), r, "a")
	waitStats(t, r, "the lookup to queue", func(st ReadStats) bool { return st.Queued == 1 })
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	// Poll until Close has taken effect while the plug still holds. (A lookup made before
	// that would queue and wait, so the poll looks at the flag.)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		closing := r.closed
		r.mu.Unlock()
		if closing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Close() did not mark the Reads closed")
		}
		time.Sleep(time.Millisecond)
	}
	if rev, err := r.Revenue(t.Context(), "a"); !errors.Is(err, ErrReadsClosed) {
		t.Errorf("Revenue(a) after Close = %d, %v; want ErrReadsClosed", rev, err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close() = %v returned with a query in flight and a lookup queued", err)
	default:
	}
	release(nil)
	if err := <-closed; err != nil {
		t.Errorf("Close() = %v; want nil", err)
	}
	// Every batch is answered once Close returns: a runner answers its batch before it takes
	// the next one or ends, and Close waits for the runners. (Each answer then reaches its
	// lookup's goroutine a moment later, so the test reads the runners' state, not the
	// results' arrival.)
	if st := r.Stats(); st.Queued != 0 || st.InFlight != 0 {
		t.Errorf("when Close returned, %d lookups were queued and %d queries in flight; want none: a lookup queued before Close was not answered", st.Queued, st.InFlight)
	}
	for _, c := range []<-chan result{plugged, queued} {
		(<-c).check(t, want)
	}
}

// TestReadsFreshness: a lookup that starts after a commit returned sees that commit,
// while many other lookups keep queries in flight all the time.
func TestReadsFreshness(t *testing.T) {
	s := newStore(t)
	r := newReads(t, s, ReadOptions{})
	insertRevenues(t, s, map[string]int64{"fresh": 0, "other": 1})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()

	var committed atomic.Int64 // the last value whose commit has returned
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the processor
		defer wg.Done()
		for i := int64(1); ctx.Err() == nil && i <= 2000; i++ {
			if _, err := s.DB().ExecContext(ctx, `UPDATE users_revenue SET revenue = $1 WHERE user_id = 'fresh'`, i); err != nil {
				if ctx.Err() == nil {
					t.Errorf("update fresh to %d: %v", i, err)
				}
				return
			}
			committed.Store(i)
		}
		cancel()
	}()
	var checked, stale atomic.Int64
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if g%2 == 1 { // keep batches in flight for others too
					if _, err := r.Revenue(ctx, "other"); err != nil && ctx.Err() == nil {
						t.Errorf("Revenue(other) = %v", err)
					}
					continue
				}
				before := committed.Load()
				got, err := r.Revenue(ctx, "fresh")
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("Revenue(fresh) = %v", err)
					}
					return
				}
				checked.Add(1)
				if got < before && stale.Add(1) <= 5 {
					t.Errorf("Revenue(fresh) = %d, started after %d was committed; want >= %d", got, before, before)
				}
			}
		}()
	}
	wg.Wait()
	st := r.Stats()
	t.Logf("%d commits, %d checked lookups, %d stale; %d lookups in %d queries",
		committed.Load(), checked.Load(), stale.Load(), st.Lookups, st.Queries)
	if checked.Load() < 100 {
		t.Errorf("only %d lookups checked; want at least 100 for the test to mean something", checked.Load())
	}
}

// benchUsers is how many users the benchmarks read from.
const benchUsers = 10000

// benchStore returns a Store holding benchUsers users, user-0 to user-9999.
func benchStore(b *testing.B) *Store {
	b.Helper()
	s := openStore(b, pgtest.NewDatabase(b, os.Getenv, true))
	if err := s.Ensure(b.Context()); err != nil {
		b.Fatalf("Ensure() = %v", err)
	}
	m := make(map[string]int64, benchUsers)
	for i := range benchUsers {
		m[fmt.Sprint("user-", i)] = int64(i)
	}
	insertRevenues(b, s, m)
	return s
}

// benchLookups runs revenue from about 64 goroutines, like 64 HTTP clients, and reports
// the 99th percentile of a lookup's time.
func benchLookups(b *testing.B, revenue func(ctx context.Context, user string) (int64, error)) {
	names := make([]string, benchUsers)
	for i := range names {
		names[i] = fmt.Sprint("user-", i)
	}
	var mu sync.Mutex
	var took []time.Duration
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		var mine []time.Duration
		for pb.Next() {
			i := rng.IntN(benchUsers)
			start := time.Now()
			rev, err := revenue(context.Background(), names[i])
			mine = append(mine, time.Since(start))
			if err != nil || rev != int64(i) {
				b.Errorf("Revenue(user-%d) = %d, %v; want %d, nil", i, rev, err, i)
				return
			}
		}
		mu.Lock()
		took = append(took, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	if len(took) > 0 {
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
	}
}

// BenchmarkRevenueParallel is one query per lookup (Store.Revenue), to compare with
// BenchmarkReadsParallel.
func BenchmarkRevenueParallel(b *testing.B) {
	s := benchStore(b)
	benchLookups(b, s.Revenue)
}

// BenchmarkReadsParallel is the same load through Reads, for several MaxInFlight.
func BenchmarkReadsParallel(b *testing.B) {
	s := benchStore(b)
	for _, n := range []int{1, 2, 3, 4, 8} {
		b.Run(fmt.Sprint("inflight=", n), func(b *testing.B) {
			r := s.NewReads(ReadOptions{MaxInFlight: n})
			defer r.Close()
			benchLookups(b, r.Revenue)
			st := r.Stats()
			if st.Queries > 0 {
				b.ReportMetric(float64(st.Users)/float64(st.Queries), "users/query")
			}
		})
	}
}
