// Package idempotency remembers, for a window of time, which idempotency keys the server has
// acknowledged and for which event, so that a client's retry is answered with the original
// success instead of being written, and counted, a second time.
//
// The window lives in memory; the keys themselves are durable in the events log (each line
// carries the key it was acknowledged under), and the server reloads recent log files into the
// window at start, so it survives a restart.
package idempotency

import (
	"hash/fnv"
	"sync"
	"time"
)

// Outcome is what Begin decided for a request.
type Outcome int

const (
	First    Outcome = iota // first time: write the event, then call Finish
	Replay                  // acknowledged before with the same event: answer success, write nothing
	Conflict                // acknowledged before with a different event: 422
	InFlight                // the first request with this key is still being written: 409, retry
)

// Fingerprint identifies an event's content; equal events have equal fingerprints.
func Fingerprint(canonical []byte) uint64 {
	h := fnv.New64a()
	h.Write(canonical)
	return h.Sum64()
}

type entry struct {
	fp      uint64
	expires time.Time
	done    bool
}

type expiry struct {
	key string
	at  time.Time
}

// Window holds the keys acknowledged during the last TTL. It is safe for concurrent use.
type Window struct {
	ttl time.Duration

	mu      sync.Mutex
	entries map[string]entry
	queue   []expiry // in order of expiry, so that expired keys are dropped from the front
	head    int      // queue[:head] is already expired
}

// New returns an empty Window that keeps keys for ttl.
func New(ttl time.Duration) *Window {
	return &Window{ttl: ttl, entries: make(map[string]entry)}
}

// Begin looks key up. On First the key is marked in flight until Finish.
func (w *Window) Begin(key string, fp uint64, now time.Time) Outcome {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now)
	e, ok := w.entries[key]
	switch {
	case !ok:
		w.entries[key] = entry{fp: fp}
		return First
	case !e.done:
		return InFlight
	case e.fp != fp:
		return Conflict
	}
	return Replay
}

// Finish ends the in-flight key: remembered as acknowledged when ok, forgotten otherwise (so
// that a retry writes the event).
func (w *Window) Finish(key string, ok bool, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !ok {
		delete(w.entries, key)
		return
	}
	e := w.entries[key]
	w.remember(key, e.fp, now.Add(w.ttl))
}

// Load remembers key as acknowledged at time at, as read back from the events log.
func (w *Window) Load(key string, fp uint64, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e, ok := w.entries[key]; ok && e.expires.After(at.Add(w.ttl)) {
		return
	}
	w.remember(key, fp, at.Add(w.ttl))
}

func (w *Window) remember(key string, fp uint64, expires time.Time) {
	w.entries[key] = entry{fp: fp, expires: expires, done: true}
	w.queue = append(w.queue, expiry{key, expires})
}

// Len returns the number of keys held.
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.entries)
}

// expire drops the keys whose time is up. Keys loaded out of order expire a little late,
// never early.
func (w *Window) expire(now time.Time) {
	for w.head < len(w.queue) && !w.queue[w.head].at.After(now) {
		x := w.queue[w.head]
		if e, ok := w.entries[x.key]; ok && e.done && !e.expires.After(now) {
			delete(w.entries, x.key)
		}
		w.queue[w.head] = expiry{}
		w.head++
	}
	if w.head > 1024 && w.head > len(w.queue)/2 { // compact, amortized O(1)
		w.queue = append(w.queue[:0], w.queue[w.head:]...)
		w.head = 0
	}
}
