// Package idempotency remembers, for a window of time, which idempotency keys the server has
// acknowledged and for which event, so that a client's retry is answered with the original
// success instead of being written, and counted, a second time.
//
// The window lives in memory; the keys themselves are durable in the events log (each line
// carries the key it was acknowledged under), and the server reloads recent log files into the
// window at start, so it survives a restart.
//
// # Layout
//
// Time is cut into spans of TTL/generations, aligned on the Unix epoch. A key acknowledged
// until time e belongs to the generation whose span ends at end = e rounded up to a span
// boundary, and the whole generation is dropped, by letting go of its tables, once
// now >= end. Since end >= e, a key is never forgotten before its time; it may be kept up to
// one span late, which is allowed: a late retry is answered as a retry.
//
// A generation holds its keys in one or more open-addressing tables of 24-byte slots, the
// key's 16-byte digest and its event's 8-byte fingerprint, probed in groups of 8 slots with
// a one-byte tag each (see table). There is nothing else per key: no pointer, no expiry, no
// queue; about 31 bytes a key in a full table. Tables never grow or rehash: when the newest
// table of a generation is full, another is added beside it, sized from how many keys the
// generation is still expected to receive, so that memory grows in steps, with no copy and no
// stall. A lookup probes every table of the live generations, newest first: in steady traffic
// one or two tables for each of the generations+1 spans a TTL overlaps.
//
// Keys in flight (Begin returned First, Finish not yet called) live in a small map beside
// the generations: they have no expiry at all, so they are never forgotten, and they leave it
// on Finish, into the newest generation if the event was written, or for good if not.
//
// The cap counts both: Begin answers Full for a new key when maxKeys are held, and only
// dropping a generation or a failed write makes room. Load never refuses a key: a key
// acknowledged in the log is kept for its whole window even beyond the cap (Begin is Full
// until enough of them expire), because forgetting it early could count an event twice.
package idempotency

import (
	"crypto/sha256"
	"encoding/binary"
	"hash/fnv"
	"math/bits"
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
	Full                    // a new key, and the window holds its maximum: 503, retry later
)

// BytesPerKey bounds the memory a key takes in the window, for sizing its cap. Measured as
// heap growth while filling a window (TestBytesPerKey), a key takes about 40 bytes in steady
// traffic and 35 to 45 loaded at a restart; the bound leaves room for a table just added.
const BytesPerKey = 64

// DefaultMaxKeys caps a window at 1 GiB at BytesPerKey: 16,777,216 keys, room for 10 minutes
// at about 24,000 keyed events per second (the window also holds up to a span's worth of
// keys whose generation is not dropped yet).
const DefaultMaxKeys = 1 << 30 / BytesPerKey

const (
	generations = 8 // spans per TTL: keys are kept at most TTL/generations too long

	// A table is full at loadNum/loadDen of its slots: probes stay short at 80%, and a slot,
	// 24 bytes and its tag, costs 31.25 bytes a key there.
	loadNum, loadDen = 4, 5

	minTableKeys = 8192 // smallest table: 10,240 slots, 250 KiB
)

// Fingerprint identifies an event's content; equal events have equal fingerprints.
func Fingerprint(canonical []byte) uint64 {
	h := fnv.New64a()
	h.Write(canonical)
	return h.Sum64()
}

// digest stands for a key in memory: 16 bytes of its SHA-256, whatever the key's length.
// Two keys sharing a digest would take 2^64 keys to expect.
type digest [16]byte

func digestOf(key string) digest {
	var sum [32]byte
	var buf [256]byte // keys are at most 255 bytes: hash a copy on the stack, no allocation
	if len(key) <= len(buf) {
		sum = sha256.Sum256(buf[:copy(buf[:], key)])
	} else {
		sum = sha256.Sum256([]byte(key))
	}
	return digest(sum[:16])
}

type slot struct {
	key digest
	fp  uint64
}

// table is an open-addressing hash table that is never resized and never deleted from: its
// generation is dropped whole. Its slots are probed in groups of 8, linearly from the group
// the digest falls in; each group has a control word of 8 one-byte tags, 0 for an empty slot
// and 0x80 plus 7 bits of the digest for a full one, so that a probe reads one word (a cache
// line holds 8) and looks at a slot only when its tag matches: a key that is not there, the
// common case, costs a word or two per table.
type table struct {
	ctrl  []uint64
	slots []slot // 8 per control word
	n     int    // keys held
	max   int    // keys it may hold: loadNum/loadDen of its slots
}

func newTable(keys int) *table {
	groups := (keys*loadDen/loadNum + 7) / 8
	return &table{ctrl: make([]uint64, groups), slots: make([]slot, 8*groups), max: keys}
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// home returns the group where d's probe starts and d's tag. The digest is uniform: its
// first 8 bytes, scaled, pick the group; its ninth byte makes the tag.
func (t *table) home(d digest) (group, tag uint64) {
	g, _ := bits.Mul64(binary.LittleEndian.Uint64(d[:8]), uint64(len(t.ctrl)))
	return g, uint64(d[8] | 0x80)
}

// find returns the slot holding d, or nil.
func (t *table) find(d digest) *slot {
	g, tag := t.home(d)
	for {
		c := t.ctrl[g]
		x := c ^ (tag * lsb) // zero in the bytes that match the tag
		// This flags every zero byte of x, and sometimes a byte above one: checked anyway.
		for m := (x - lsb) &^ x & msb; m != 0; m &= m - 1 {
			if s := &t.slots[8*g+uint64(bits.TrailingZeros64(m)/8)]; s.key == d {
				return s
			}
		}
		if ^c&msb != 0 { // an empty slot: no key probed past it
			return nil
		}
		if g++; g == uint64(len(t.ctrl)) {
			g = 0
		}
	}
}

// add puts d, known to be absent, in the first empty slot of its probe.
func (t *table) add(d digest, fp uint64) {
	g, tag := t.home(d)
	for ^t.ctrl[g]&msb == 0 {
		if g++; g == uint64(len(t.ctrl)) {
			g = 0
		}
	}
	j := uint64(bits.TrailingZeros64(^t.ctrl[g]&msb) / 8)
	t.ctrl[g] |= tag << (8 * j)
	t.slots[8*g+j] = slot{key: d, fp: fp}
	t.n++
}

// generation holds the keys that expire in the span ending at end.
type generation struct {
	end    int64    // unix nanoseconds: every key here expires at or before end
	tables []*table // the last one is the one being filled
	n      int      // keys held, over all tables
}

func (g *generation) find(d digest) *slot {
	for _, t := range g.tables {
		if s := t.find(d); s != nil {
			return s
		}
	}
	return nil
}

// Window holds the keys acknowledged during the last TTL. It is safe for concurrent use.
type Window struct {
	ttl  int64 // nanoseconds
	span int64 // nanoseconds covered by one generation
	max  int

	mu       sync.Mutex
	gens     []*generation // by end, oldest first
	held     int           // keys in gens
	inFlight map[digest]uint64
}

// New returns an empty Window that keeps keys for ttl and holds at most maxKeys of them
// (acknowledged or in flight) before Begin answers Full. A maxKeys below 1 is taken as 1.
func New(ttl time.Duration, maxKeys int) *Window {
	return &Window{
		ttl:      int64(ttl),
		span:     max(int64(ttl)/generations, 1),
		max:      max(maxKeys, 1),
		inFlight: make(map[digest]uint64),
	}
}

// Begin looks key up. On First the key is marked in flight until Finish. A new key is
// refused with Full while the window holds its maximum; known keys are answered as usual.
func (w *Window) Begin(key string, fp uint64, now time.Time) Outcome {
	d := digestOf(key)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(now.UnixNano())
	if _, ok := w.inFlight[d]; ok {
		return InFlight
	}
	if s, _ := w.find(d); s != nil {
		if s.fp != fp {
			return Conflict
		}
		return Replay
	}
	if w.held+len(w.inFlight) >= w.max {
		return Full
	}
	w.inFlight[d] = fp
	return First
}

// Finish ends the in-flight key: remembered as acknowledged when ok, forgotten otherwise (so
// that a retry writes the event). Finish of a key that is not in flight does nothing.
func (w *Window) Finish(key string, ok bool, now time.Time) {
	d := digestOf(key)
	w.mu.Lock()
	defer w.mu.Unlock()
	fp, found := w.inFlight[d]
	if !found {
		return
	}
	delete(w.inFlight, d)
	if ok {
		t := now.UnixNano()
		w.expire(t)
		w.insert(d, fp, t+w.ttl, true)
	}
}

// Load remembers key as acknowledged at time at, as read back from the events log. Loading
// an older time never shortens a key's life; Load ignores the cap (see the package comment).
func (w *Window) Load(key string, fp uint64, at time.Time) {
	d := digestOf(key)
	expires := at.UnixNano() + w.ttl
	w.mu.Lock()
	defer w.mu.Unlock()
	if s, end := w.find(d); s != nil && end >= w.endOf(expires) {
		return
	}
	// Absent, or held in an older generation only: that copy expires first and is never
	// looked at again, since lookups go newest first.
	w.insert(d, fp, expires, false)
}

// Len returns the number of keys held: acknowledged, including those whose generation is
// not dropped yet, and in flight.
func (w *Window) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held + len(w.inFlight)
}

// endOf returns the end of the span that holds a key expiring at expires: the first span
// boundary at or after it.
func (w *Window) endOf(expires int64) int64 {
	n := expires / w.span // truncated: rounded up already when expires < 0
	if expires%w.span > 0 {
		n++
	}
	return n * w.span
}

// find returns d's slot in the newest generation holding it, and that generation's end.
func (w *Window) find(d digest) (*slot, int64) {
	for i := len(w.gens) - 1; i >= 0; i-- {
		if s := w.gens[i].find(d); s != nil {
			return s, w.gens[i].end
		}
	}
	return nil, 0
}

// expire drops the generations whose span has ended: every key in them has expired.
func (w *Window) expire(now int64) {
	i := 0
	for i < len(w.gens) && w.gens[i].end <= now {
		w.held -= w.gens[i].n
		i++
	}
	if i > 0 {
		n := copy(w.gens, w.gens[i:])
		clear(w.gens[n:]) // let the dropped tables go
		w.gens = w.gens[:n]
	}
}

// insert adds d, known to be absent from every generation ending at or after its own, to the
// generation of expires. inOrder says that keys arrive in order of expiry (Finish), so that
// the part of the span already passed tells how many more to expect.
func (w *Window) insert(d digest, fp uint64, expires int64, inOrder bool) {
	end := w.endOf(expires)
	i := len(w.gens)
	for i > 0 && w.gens[i-1].end > end {
		i--
	}
	if i == 0 || w.gens[i-1].end != end {
		w.gens = append(w.gens, nil)
		copy(w.gens[i+1:], w.gens[i:])
		w.gens[i] = &generation{end: end}
		i++
	}
	g := w.gens[i-1]
	var t *table
	if k := len(g.tables); k > 0 && g.tables[k-1].n < g.tables[k-1].max {
		t = g.tables[k-1]
	} else {
		prev := 0 // keys in the generation before: a guess at how many this one gets
		if i >= 2 {
			prev = w.gens[i-2].n
		}
		t = newTable(w.tableKeys(g, prev, expires, inOrder))
		g.tables = append(g.tables, t)
	}
	t.add(d, fp)
	g.n++
	w.held++
}

// tableKeys sizes the next table of g, from how many keys it is still expected to receive.
// Keys from Finish come in order of expiry, so the part of the span already passed and the
// keys it brought give the rate, and the first table of a span is sized like the span
// before. Keys from Load come in any order: a table at least half as big as g, or as half
// the average generation. Never much more than the cap leaves room for.
func (w *Window) tableKeys(g *generation, prev int, expires int64, inOrder bool) int {
	var keys int
	switch {
	case g.n == 0:
		keys = prev + prev/8
	case inOrder:
		passed := expires - (g.end - w.span) // in (0, span]
		rest := float64(g.n) * float64(w.span-passed) / float64(passed) * 9 / 8
		keys = int(min(rest, float64(4*g.n))) // a burst is not a rate
	default:
		keys = max(g.n, w.held/len(w.gens)) / 2
	}
	if room := w.max - w.held - len(w.inFlight); room > 0 {
		keys = min(keys, room)
	}
	return max(keys, minTableKeys)
}
