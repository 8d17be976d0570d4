// Package idempotency remembers, for a window of time, which idempotency keys the server has
// acknowledged and for which event, so that a client's retry is answered with the original
// success instead of being written, and counted, a second time.
//
// The window lives in memory; the keys themselves are durable in the events log (each line
// carries the key it was acknowledged under), and the server reloads recent log files into the
// window at start, so it survives a restart.
package idempotency

import (
	"crypto/sha256"
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

// digest stands for a key in memory: 16 bytes of its SHA-256, whatever the key's length, so
// that millions of keys fit in a few hundred MB. Two keys sharing a digest would take 2^64
// keys to expect.
type digest [16]byte

func digestOf(key string) digest {
	sum := sha256.Sum256([]byte(key))
	return digest(sum[:16])
}

type entry struct {
	fp      uint64
	expires int64 // unix nanoseconds; 0 while in flight
}

func (e entry) inFlight() bool { return e.expires == 0 }

type expiry struct {
	key digest
	at  int64 // unix nanoseconds
}

// Window holds the keys acknowledged during the last TTL. It is safe for concurrent use.
type Window struct {
	ttl time.Duration

	mu      sync.Mutex
	entries map[digest]entry
	queue   []expiry // in order of expiry, so that expired keys are dropped from the front
	head    int      // queue[:head] is already expired
}

// New returns an empty Window that keeps keys for ttl.
func New(ttl time.Duration) *Window {
	return &Window{ttl: ttl, entries: make(map[digest]entry)}
}

// Begin looks key up. On First the key is marked in flight until Finish.
func (w *Window) Begin(key string, fp uint64, now time.Time) Outcome {
	d := digestOf(key)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now.UnixNano())
	e, ok := w.entries[d]
	switch {
	case !ok:
		w.entries[d] = entry{fp: fp}
		return First
	case e.inFlight():
		return InFlight
	case e.fp != fp:
		return Conflict
	}
	return Replay
}

// Finish ends the in-flight key: remembered as acknowledged when ok, forgotten otherwise (so
// that a retry writes the event).
func (w *Window) Finish(key string, ok bool, now time.Time) {
	d := digestOf(key)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !ok {
		delete(w.entries, d)
		return
	}
	w.remember(d, w.entries[d].fp, now.Add(w.ttl).UnixNano())
}

// Load remembers key as acknowledged at time at, as read back from the events log.
func (w *Window) Load(key string, fp uint64, at time.Time) {
	d := digestOf(key)
	expires := at.Add(w.ttl).UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	if e, ok := w.entries[d]; ok && e.expires > expires {
		return
	}
	w.remember(d, fp, expires)
}

func (w *Window) remember(d digest, fp uint64, expires int64) {
	w.entries[d] = entry{fp: fp, expires: expires}
	w.queue = append(w.queue, expiry{d, expires})
}

// Len returns the number of keys held.
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.entries)
}

// expire drops the keys whose time is up. Keys loaded out of order expire a little late,
// never early.
func (w *Window) expire(now int64) {
	for w.head < len(w.queue) && w.queue[w.head].at <= now {
		x := w.queue[w.head]
		if e, ok := w.entries[x.key]; ok && !e.inFlight() && e.expires <= now {
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
