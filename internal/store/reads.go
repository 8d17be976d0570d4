package store

// Reads shares revenue queries between lookups the way the events writer shares a sync
// between appends. The protocol, which the code below follows step by step:
//
//  1. A lookup joins the queue: the queued batch that already holds its user, else the
//     newest queued batch with room (MaxBatch distinct users), else a new batch at the back.
//     A batch in the queue has not been sent yet, and nothing is ever added to a batch after
//     it leaves the queue.
//  2. If fewer than MaxInFlight queries are running, the lookup starts a runner at once, so a
//     lookup made while the database is idle waits for nothing but its own query.
//  3. A runner takes the batch at the front of the queue, sends one
//     SELECT ... WHERE user_id = ANY($1) for all its users, answers every lookup of the batch
//     with the rows or with the one error, and takes the next batch; it ends when the queue
//     is empty.
//
// Freshness follows from 1 and 3: a lookup's query is sent after the lookup joined the
// queue, so its statement's snapshot (READ COMMITTED takes one per statement) is taken after
// the lookup began and holds every transaction committed before that. TestReadsFreshness
// checks it against a writer committing all the time.
//
// Bounds: MaxBatch users a query, MaxInFlight queries at once, MaxQueued lookups waiting
// (beyond, ErrReadsFull at once), QueryTimeout a query.
//
// The query runs under its own context, QueryTimeout long: a lookup whose caller gives up
// leaves at once with ctx.Err(), and its batch goes on for the others. A batch all of whose
// lookups left before it was sent is dropped unsent.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// readsQuery answers one batch. user_id is the primary key, so each user is one index probe.
const readsQuery = `SELECT user_id, revenue FROM users_revenue WHERE user_id = ANY($1)`

// ErrReadsFull is returned by Reads.Revenue when MaxQueued lookups are already waiting for a
// query: the caller should shed load (the server answers 503 with Retry-After).
var ErrReadsFull = errors.New("revenue lookup queue is full")

// ErrReadsClosed is returned by Reads.Revenue after Close.
var ErrReadsClosed = errors.New("revenue lookups are closed")

// ReadOptions tune a Reads. The zero value is usable.
type ReadOptions struct {
	// MaxBatch is the most distinct users one query asks for; default 256.
	MaxBatch int
	// MaxInFlight is the most queries running at once; default 2, and never more than the
	// Store's pool allows. More than one lets the next batch be answered by PostgreSQL while
	// the last one's callers are still writing their responses.
	MaxInFlight int
	// MaxQueued is the most lookups waiting for a query to be sent; default 8192. Beyond it
	// Revenue returns ErrReadsFull at once instead of queueing.
	MaxQueued int
	// QueryTimeout bounds each query; default 2s. A query that takes longer answers all of
	// its lookups with an error.
	QueryTimeout time.Duration
}

// ReadStats are a Reads' counters since NewReads.
type ReadStats struct {
	Lookups   int64 // lookups queued (found, not found, failed or cancelled)
	Queries   int64 // queries sent
	Users     int64 // distinct users asked for, summed over queries
	Failed    int64 // queries that failed (each answers all its lookups with its error)
	Dropped   int64 // batches not sent because all their lookups had left
	Cancelled int64 // lookups whose caller gave up before the answer
	Full      int64 // lookups refused with ErrReadsFull
	Queued    int   // lookups waiting now for their query to be sent
	InFlight  int   // queries running now
}

// Reads answers revenue lookups, coalescing those that arrive while queries are running
// into one query per batch. It is safe for concurrent use. Close it before the Store.
type Reads struct {
	s           *Store
	maxBatch    int
	maxInFlight int
	maxQueued   int
	timeout     time.Duration

	mu       sync.Mutex // guards the fields below and readBatch.waiters and started
	closed   bool
	queue    []*readBatch          // batches not yet sent, oldest first
	pending  map[string]*readBatch // user to the queued batch that holds it
	queued   int                   // lookups waiting in queue
	inFlight int                   // running runners
	runners  sync.WaitGroup

	lookups, queries, users, failed, dropped, cancelled, full atomic.Int64
}

// readBatch is one query's users and, once done is closed, its answer.
type readBatch struct {
	users   []string
	waiters int  // lookups still waiting, counted until the batch leaves the queue
	started bool // left the queue

	done  chan struct{}    // closed when found and err are set
	found map[string]int64 // the users that have a row
	err   error
}

// NewReads returns a Reads on s. It starts no goroutine until the first lookup; the ones it
// starts end when nothing is queued, and Close waits for them.
func (s *Store) NewReads(opts ReadOptions) *Reads {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 2
	}
	if n := s.db.Stats().MaxOpenConnections; n > 0 && opts.MaxInFlight > n {
		opts.MaxInFlight = n
	}
	if opts.MaxQueued <= 0 {
		opts.MaxQueued = 8192
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 2 * time.Second
	}
	return &Reads{
		s:           s,
		maxBatch:    opts.MaxBatch,
		maxInFlight: opts.MaxInFlight,
		maxQueued:   opts.MaxQueued,
		timeout:     opts.QueryTimeout,
		pending:     make(map[string]*readBatch),
	}
}

// Revenue returns the user's revenue as of a moment after the call began, or ErrNotFound,
// like Store.Revenue. It returns ctx.Err() as soon as ctx is done, ErrReadsFull when too many
// lookups are waiting, and ErrReadsClosed after Close. A query's failure is wrapped as
// "query revenue: ...", the same error for every lookup it was answering.
func (r *Reads) Revenue(ctx context.Context, userID string) (int64, error) {
	if err := r.s.Ensure(ctx); err != nil {
		return 0, err
	}
	// PostgreSQL text holds neither, and sending one would fail the whole batch.
	if !utf8.ValidString(userID) || strings.IndexByte(userID, 0) >= 0 {
		return 0, ErrNotFound
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b, err := r.join(userID)
	if err != nil {
		return 0, err
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		select {
		case <-b.done: // answered meanwhile: the answer is worth more than the error
		default:
			r.leave(b)
			return 0, ctx.Err()
		}
	}
	if b.err != nil {
		return 0, b.err
	}
	rev, ok := b.found[userID]
	if !ok {
		return 0, ErrNotFound
	}
	return rev, nil
}

// join queues a lookup of userID (step 1) and starts a runner if one may start (step 2).
func (r *Reads) join(userID string) (*readBatch, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrReadsClosed
	}
	if r.queued >= r.maxQueued {
		r.full.Add(1)
		return nil, ErrReadsFull
	}
	b := r.pending[userID]
	if b == nil {
		if n := len(r.queue); n > 0 && len(r.queue[n-1].users) < r.maxBatch {
			b = r.queue[n-1]
		} else {
			b = &readBatch{done: make(chan struct{})}
			r.queue = append(r.queue, b)
		}
		b.users = append(b.users, userID)
		r.pending[userID] = b
	}
	b.waiters++
	r.queued++
	r.lookups.Add(1)
	if r.inFlight < r.maxInFlight {
		r.inFlight++
		r.runners.Add(1)
		go r.run()
	}
	return b, nil
}

// leave takes a cancelled lookup out of its batch's count, if the batch is still queued.
func (r *Reads) leave(b *readBatch) {
	r.cancelled.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !b.started {
		b.waiters--
		r.queued--
	}
}

// run is a runner (step 3): it answers batches from the front of the queue until the
// queue is empty.
func (r *Reads) run() {
	defer r.runners.Done()
	for {
		b := r.next()
		if b == nil {
			return
		}
		b.found, b.err = r.query(b.users)
		// Counted before the answers, so a caller that was answered sees its query counted.
		r.queries.Add(1)
		r.users.Add(int64(len(b.users)))
		if b.err != nil {
			r.failed.Add(1)
		}
		close(b.done)
	}
}

// next takes the batch at the front of the queue, dropping those nobody waits for any
// more. With the queue empty it returns nil and the runner ends, in the same critical
// section, so that a lookup queued after it always finds a runner or starts one.
func (r *Reads) next() *readBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.queue) > 0 {
		b := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		b.started = true
		r.queued -= b.waiters
		for _, u := range b.users {
			delete(r.pending, u)
		}
		if b.waiters > 0 {
			return b
		}
		r.dropped.Add(1)
		close(b.done)
	}
	r.queue = nil // let the array go
	r.inFlight--
	return nil
}

// query asks PostgreSQL for users' rows, under a context of its own: no single caller's
// cancellation may fail the others.
func (r *Reads) query(users []string) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	found, err := r.s.lookup(ctx, users)
	if err != nil && ctx.Err() != nil {
		// lib/pq reports its own cancellation ("canceling statement due to user request"):
		// say why it cancelled.
		return nil, fmt.Errorf("query revenue: %w after %v: %w", ctx.Err(), r.timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("query revenue: %w", err)
	}
	return found, nil
}

// Close refuses new lookups and waits until those queued and running are answered (each
// query takes at most QueryTimeout). Later calls return nil at once.
func (r *Reads) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.runners.Wait()
	return nil
}

// Stats returns a snapshot of the counters.
func (r *Reads) Stats() ReadStats {
	r.mu.Lock()
	queued, inFlight := r.queued, r.inFlight
	r.mu.Unlock()
	return ReadStats{
		Lookups:   r.lookups.Load(),
		Queries:   r.queries.Load(),
		Users:     r.users.Load(),
		Failed:    r.failed.Load(),
		Dropped:   r.dropped.Load(),
		Cancelled: r.cancelled.Load(),
		Full:      r.full.Load(),
		Queued:    queued,
		InFlight:  inFlight,
	}
}

// Ping checks that PostgreSQL answers, as Store.Ping does: a Reads carries its own health
// check to whoever serves lookups through it.
func (r *Reads) Ping(ctx context.Context) error { return r.s.Ping(ctx) }
