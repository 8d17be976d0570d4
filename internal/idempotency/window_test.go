package idempotency

import (
	"finonex/internal/testenv"

	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFingerprint(t *testing.T) {
	a := Fingerprint([]byte(`{"userId":"u","name":"add_revenue","value":1}`))
	b := Fingerprint([]byte(`{"userId":"u","name":"add_revenue","value":1}`))
	c := Fingerprint([]byte(`{"userId":"u","name":"add_revenue","value":2}`))
	if a != b {
		t.Errorf("Fingerprint of equal events differ: %x, %x", a, b)
	}
	if a == c {
		t.Errorf("Fingerprint of different events are equal: %x", a)
	}
}

func TestOutcomes(t *testing.T) {
	w := New(time.Minute, 100)
	if got := w.Begin("k", 1, t0); got != First {
		t.Fatalf("Begin(new key) = %v; want First", got)
	}
	if got := w.Begin("k", 1, t0); got != InFlight {
		t.Errorf("Begin(in-flight key, same event) = %v; want InFlight", got)
	}
	if got := w.Begin("k", 2, t0); got != InFlight {
		t.Errorf("Begin(in-flight key, other event) = %v; want InFlight", got)
	}
	w.Finish("k", true, t0)
	if got := w.Begin("k", 1, t0.Add(time.Second)); got != Replay {
		t.Errorf("Begin(acknowledged key, same event) = %v; want Replay", got)
	}
	if got := w.Begin("k", 2, t0.Add(time.Second)); got != Conflict {
		t.Errorf("Begin(acknowledged key, other event) = %v; want Conflict", got)
	}
	// A Replay or Conflict does not start a new flight.
	if got := w.Begin("k", 1, t0.Add(2*time.Second)); got != Replay {
		t.Errorf("Begin after Replay = %v; want Replay", got)
	}
	if got := w.Begin("other", 1, t0); got != First {
		t.Errorf("Begin(other key) = %v; want First", got)
	}
	if got := w.Len(); got != 2 {
		t.Errorf("Len() = %d; want 2", got)
	}
}

func TestFinishFalseForgets(t *testing.T) {
	w := New(time.Minute, 100)
	if got := w.Begin("k", 1, t0); got != First {
		t.Fatalf("Begin = %v; want First", got)
	}
	w.Finish("k", false, t0)
	if got := w.Len(); got != 0 {
		t.Errorf("Len() after Finish(false) = %d; want 0", got)
	}
	// The retry writes the event: First again, even with another event.
	if got := w.Begin("k", 2, t0); got != First {
		t.Errorf("Begin after Finish(false) = %v; want First", got)
	}
	w.Finish("k", true, t0)
	if got := w.Begin("k", 2, t0); got != Replay {
		t.Errorf("Begin after the retry succeeded = %v; want Replay", got)
	}
}

func TestExpiry(t *testing.T) {
	ttl := time.Minute
	w := New(ttl, 10000)
	w.Begin("k", 1, t0)
	w.Finish("k", true, t0)
	if got := w.Begin("k", 1, t0.Add(ttl-time.Nanosecond)); got != Replay {
		t.Errorf("Begin just before the TTL = %v; want Replay", got)
	}
	again := t0.Add(ttl + late(ttl))
	if got := w.Begin("k", 2, again); got != First {
		t.Errorf("Begin one span after the TTL = %v; want First (forgotten)", got)
	}
	w.Finish("k", true, again)
	if got := w.Begin("k", 2, again.Add(time.Second)); got != Replay {
		t.Errorf("Begin after re-acknowledging = %v; want Replay", got)
	}
	if got := w.Begin("k", 1, again.Add(time.Second)); got != Conflict {
		t.Errorf("Begin with the first event after re-acknowledging = %v; want Conflict", got)
	}
}

// An in-flight key is never expired, however long its write takes.
func TestInFlightDoesNotExpire(t *testing.T) {
	w := New(time.Minute, 100)
	w.Begin("k", 1, t0)
	if got := w.Begin("k", 1, t0.Add(time.Hour)); got != InFlight {
		t.Errorf("Begin an hour into a flight = %v; want InFlight", got)
	}
	w.Finish("k", true, t0.Add(time.Hour))
	if got := w.Begin("k", 1, t0.Add(time.Hour+30*time.Second)); got != Replay {
		t.Errorf("Begin after a late Finish = %v; want Replay", got)
	}
}

// An old expiry still queued for a key does not drop its newer acknowledgement.
func TestReacknowledgedKeyKeepsNewExpiry(t *testing.T) {
	ttl := time.Minute
	w := New(ttl, 10000)
	w.Load("k", 1, t0)
	w.Load("k", 1, t0.Add(50*time.Second)) // later file: expires at t0+110s
	if got := w.Begin("k", 1, t0.Add(90*time.Second)); got != Replay {
		t.Errorf("Begin after the first load expired but not the second = %v; want Replay", got)
	}
	if got := w.Begin("k", 1, t0.Add(110*time.Second+late(ttl))); got != First {
		t.Errorf("Begin after both expired = %v; want First", got)
	}
}

func TestLoad(t *testing.T) {
	ttl := 10 * time.Minute
	w := New(ttl, 10000)
	now := t0
	w.Load("old", 7, now.Add(-ttl-late(ttl))) // in time order: see TestLoadOutOfOrderNeverEarly
	w.Load("recent", 7, now.Add(-time.Minute))
	if got := w.Begin("recent", 7, now); got != Replay {
		t.Errorf("Begin(loaded key, same event) = %v; want Replay", got)
	}
	if got := w.Begin("recent", 8, now); got != Conflict {
		t.Errorf("Begin(loaded key, other event) = %v; want Conflict", got)
	}
	if got := w.Begin("old", 7, now); got != First {
		t.Errorf("Begin(key loaded past its window) = %v; want First", got)
	}
	// Loading an older time never shortens a key's life.
	w.Load("recent", 7, now.Add(-9*time.Minute))
	if got := w.Begin("recent", 7, now.Add(8*time.Minute)); got != Replay {
		t.Errorf("Begin after an older Load = %v; want Replay (kept until the newer time)", got)
	}
	if got := w.Begin("recent", 7, now.Add(9*time.Minute+late(ttl))); got != First {
		t.Errorf("Begin after the newer time's window = %v; want First", got)
	}
}

// Keys loaded out of order may expire late, but never early.
func TestLoadOutOfOrderNeverEarly(t *testing.T) {
	ttl := time.Minute
	w := New(ttl, 10000)
	w.Load("late", 1, t0.Add(30*time.Second))
	w.Load("early", 1, t0)
	for _, at := range []time.Duration{0, 30 * time.Second, 59 * time.Second} {
		if got := w.Begin("early", 1, t0.Add(at)); got != Replay {
			t.Errorf("Begin(early) at +%v = %v; want Replay", at, got)
		}
	}
	if got := w.Begin("late", 1, t0.Add(89*time.Second)); got != Replay {
		t.Errorf("Begin(late) at +89s = %v; want Replay", got)
	}
	gone := t0.Add(90*time.Second + late(ttl))
	if got := w.Begin("late", 1, gone); got != First {
		t.Errorf("Begin(late) one span after +90s = %v; want First", got)
	}
	if got := w.Begin("early", 1, gone); got != First {
		t.Errorf("Begin(early) one span after +90s = %v; want First", got)
	}
}

// Many keys expiring, over several generations.
func TestManyKeysExpire(t *testing.T) {
	ttl := time.Minute
	w := New(ttl, 10000)
	const n = 5000
	const step = 10 * time.Millisecond // n keys over 50s: 7 spans of 7.5s
	for i := 0; i < n; i++ {
		at := t0.Add(time.Duration(i) * step)
		k := fmt.Sprint(i)
		if got := w.Begin(k, uint64(i), at); got != First {
			t.Fatalf("Begin(%s) = %v; want First", k, got)
		}
		w.Finish(k, true, at)
	}
	if got := w.Len(); got != n {
		t.Fatalf("Len() = %d; want %d", got, n)
	}
	// The first half has expired, a span ago.
	mid := t0.Add(ttl + n/2*step + late(ttl))
	if got := w.Begin("new", 1, mid); got != First {
		t.Fatalf("Begin(new) = %v; want First", got)
	}
	if got := w.Begin(fmt.Sprint(n/2-1), uint64(n/2-1), mid); got != First {
		t.Errorf("Begin(expired key) = %v; want First", got)
	}
	live := n/2 + int(late(ttl)/step) + 1 // acknowledged until just after mid
	if got := w.Begin(fmt.Sprint(live), uint64(live), mid); got != Replay {
		t.Errorf("Begin(live key) = %v; want Replay", got)
	}
	// All have expired; the two in-flight keys stay.
	end := t0.Add(ttl + n*step + late(ttl))
	w.Begin("probe", 1, end)
	if got := w.Len(); got != 3 {
		t.Errorf("Len() after every acknowledged key expired = %d; want 3 (in flight)", got)
	}
	for i := 0; i < n; i += 997 {
		if got := w.Begin(fmt.Sprint(i), 99, end); got != First {
			t.Errorf("Begin(%d) after expiry = %v; want First", i, got)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	w := New(time.Minute, 100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts := map[string]int{}
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				k := fmt.Sprint(i % 50)
				now := time.Now()
				if w.Begin(k, 1, now) == First {
					mu.Lock()
					firsts[k]++
					mu.Unlock()
					w.Finish(k, true, now)
				}
			}
		}()
	}
	wg.Wait()
	for k, n := range firsts {
		if n != 1 {
			t.Errorf("key %s began First %d times; want 1", k, n)
		}
	}
	if len(firsts) != 50 {
		t.Errorf("%d keys began First; want 50", len(firsts))
	}
}

// A model of the window, checked against it at random times: a key acknowledged until e is
// answered Replay (or Conflict) at any time before e, and forgotten by e plus one span; in
// between either answer is right. Keys are finished at increasing times, and loaded at
// times before and after them, in any order.
func TestNeverForgetsEarly(t *testing.T) {
	rng := rand.New(rand.NewPCG(testenv.Seed(t), 1))
	ttl := time.Minute
	w := New(ttl, 1<<30)
	until := map[int]time.Time{} // key: acknowledged until
	fps := map[int]uint64{}
	now := t0
	const keys = 3000
	check := func(k int) {
		t.Helper()
		e, acked := until[k]
		got := w.Begin(key(k), fps[k], now)
		switch {
		case got == Replay && acked && !now.After(e.Add(late(ttl))):
			return
		case got == Replay:
			t.Fatalf("Begin(%d) at %v = Replay; want First (acknowledged until %v, acked %v)", k, now.Sub(t0), e.Sub(t0), acked)
		case got != First:
			t.Fatalf("Begin(%d) at %v = %v; want First or Replay", k, now.Sub(t0), got)
		case acked && now.Before(e):
			t.Fatalf("Begin(%d) at %v = First; want Replay (acknowledged until %v)", k, now.Sub(t0), e.Sub(t0))
		}
		if rng.IntN(4) == 0 { // the write failed: the retry may carry another event
			w.Finish(key(k), false, now)
			delete(until, k)
			fps[k] = rng.Uint64()
			return
		}
		w.Finish(key(k), true, now)
		until[k] = now.Add(ttl)
	}
	for i := 0; i < 50000; i++ {
		k := rng.IntN(keys)
		switch r := rng.IntN(100); {
		case r < 2: // a jump over a span or more
			now = now.Add(time.Duration(rng.Int64N(int64(2 * ttl))))
		case r < 10: // loaded from the log, at some time within the last window or so
			at := now.Add(-time.Duration(rng.Int64N(int64(ttl + ttl/2))))
			if _, ok := until[k]; !ok {
				fps[k] = rng.Uint64()
			}
			w.Load(key(k), fps[k], at)
			if e := at.Add(ttl); e.After(until[k]) {
				until[k] = e
			}
		default:
			now = now.Add(time.Duration(rng.Int64N(int64(10 * time.Millisecond))))
			check(k)
			if e, ok := until[k]; ok && now.Before(e) {
				if got := w.Begin(key(k), fps[k]+1, now); got != Conflict {
					t.Fatalf("Begin(%d, other event) at %v = %v; want Conflict", k, now.Sub(t0), got)
				}
			}
		}
	}
}

// Whatever the time within its span, a key is kept until its TTL and forgotten by one span
// after it.
func TestExpiresWithinOneSpan(t *testing.T) {
	ttl := 10 * time.Minute
	rng := rand.New(rand.NewPCG(testenv.Seed(t), 2))
	for i := 0; i < 200; i++ {
		w := New(ttl, 10)
		at := t0.Add(time.Duration(rng.Int64N(int64(ttl))))
		w.Begin("k", 1, at)
		w.Finish("k", true, at)
		if got := w.Begin("k", 1, at.Add(ttl-time.Nanosecond)); got != Replay {
			t.Fatalf("acknowledged at %v: Begin at the TTL less 1ns = %v; want Replay", at, got)
		}
		if got := w.Begin("k", 1, at.Add(ttl+late(ttl))); got != First {
			t.Fatalf("acknowledged at %v: Begin one span after the TTL = %v; want First", at, got)
		}
		if got := w.Len(); got != 1 {
			t.Fatalf("Len() = %d; want 1 (in flight)", got)
		}
	}
}

func TestFullAtTheCap(t *testing.T) {
	ttl := time.Minute
	w := New(ttl, 10)
	for i := 0; i < 6; i++ {
		w.Begin(key(i), 1, t0)
		w.Finish(key(i), true, t0)
	}
	for i := 6; i < 10; i++ {
		if got := w.Begin(key(i), 1, t0); got != First {
			t.Fatalf("Begin(%d) = %v; want First", i, got)
		}
	}
	if got := w.Len(); got != 10 {
		t.Fatalf("Len() = %d; want 10", got)
	}
	now := t0.Add(2 * late(ttl)) // in a later generation than t0
	if got := w.Begin("new", 1, now); got != Full {
		t.Errorf("Begin(new key) at the cap = %v; want Full", got)
	}
	// Known keys are answered as usual.
	if got := w.Begin(key(0), 1, now); got != Replay {
		t.Errorf("Begin(acknowledged key) at the cap = %v; want Replay", got)
	}
	if got := w.Begin(key(0), 2, now); got != Conflict {
		t.Errorf("Begin(acknowledged key, other event) at the cap = %v; want Conflict", got)
	}
	if got := w.Begin(key(6), 1, now); got != InFlight {
		t.Errorf("Begin(in-flight key) at the cap = %v; want InFlight", got)
	}
	// A failed write frees its place; a successful one keeps it.
	w.Finish(key(6), false, now)
	w.Finish(key(7), true, now)
	if got := w.Begin("new", 1, now); got != First {
		t.Errorf("Begin(new key) after a failed write = %v; want First", got)
	}
	if got := w.Begin("newer", 1, now); got != Full {
		t.Errorf("Begin(another new key) = %v; want Full", got)
	}
	// The keys acknowledged at t0 expire; those in flight stay.
	later := t0.Add(ttl + late(ttl))
	for i := 0; i < 6; i++ {
		if got := w.Begin(key(100+i), 1, later); got != First {
			t.Errorf("Begin(new key %d) after the first keys expired = %v; want First", i, got)
		}
	}
	if got := w.Begin("newest", 1, later); got != Full {
		t.Errorf("Begin(new key) at the cap again = %v; want Full", got)
	}
	if got := w.Begin(key(7), 1, later); got != Replay {
		t.Errorf("Begin(key acknowledged two spans later) = %v; want Replay", got)
	}
}

// In-flight keys count in the cap, and are never expired to make room.
func TestInFlightHoldsItsPlace(t *testing.T) {
	w := New(time.Minute, 2)
	w.Begin("a", 1, t0)
	w.Begin("b", 1, t0)
	for _, at := range []time.Duration{0, time.Minute, time.Hour} {
		if got := w.Begin("c", 1, t0.Add(at)); got != Full {
			t.Errorf("Begin(c) at +%v with two in flight = %v; want Full", at, got)
		}
		if got := w.Begin("a", 1, t0.Add(at)); got != InFlight {
			t.Errorf("Begin(a) at +%v = %v; want InFlight", at, got)
		}
	}
	w.Finish("a", false, t0.Add(time.Hour))
	if got := w.Begin("c", 1, t0.Add(time.Hour)); got != First {
		t.Errorf("Begin(c) after Finish(a, false) = %v; want First", got)
	}
}

// Load keeps every key acknowledged in the log, beyond the cap: Begin is Full for new keys
// until enough of them expire.
func TestLoadBeyondTheCap(t *testing.T) {
	ttl := time.Minute
	w := New(ttl, 100)
	for i := 0; i < 300; i++ {
		w.Load(key(i), uint64(i), t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	if got := w.Len(); got != 300 {
		t.Fatalf("Len() = %d; want 300", got)
	}
	now := t0.Add(30 * time.Second)
	for i := 0; i < 300; i++ {
		if got := w.Begin(key(i), uint64(i), now); got != Replay {
			t.Fatalf("Begin(loaded key %d) = %v; want Replay", i, got)
		}
	}
	if got := w.Begin("new", 1, now); got != Full {
		t.Errorf("Begin(new key) over the cap = %v; want Full", got)
	}
	if got := w.Begin("new", 1, t0.Add(30*time.Second+ttl+late(ttl))); got != First {
		t.Errorf("Begin(new key) after the loaded keys expired = %v; want First", got)
	}
}

// Many keys in one generation fill several tables; every one is found, and none that was
// not added.
func TestManyKeysOneGeneration(t *testing.T) {
	const n = 100_000
	w := New(time.Minute, n+1)
	for i := 0; i < n; i++ {
		w.Load(key(i), uint64(i), t0)
	}
	if tables := len(w.gens[0].tables); len(w.gens) != 1 || tables < 5 {
		t.Fatalf("%d generations, the first of %d tables; want 1, of several", len(w.gens), tables)
	}
	now := t0.Add(time.Second)
	for i := 0; i < n; i++ {
		if got := w.Begin(key(i), uint64(i), now); got != Replay {
			t.Fatalf("Begin(%d) = %v; want Replay", i, got)
		}
	}
	for i := n; i < 2*n; i++ {
		if got := w.Begin(key(i), 1, now); got != First {
			t.Fatalf("Begin(%d, never added) = %v; want First", i, got)
		}
		w.Finish(key(i), false, now)
	}
	if got := w.Len(); got != n {
		t.Errorf("Len() = %d; want %d", got, n)
	}
}

// Keys whose home is the last group of a table wrap around to the first; keys with the
// same tag are told apart by their digest.
func TestProbingWrapsAround(t *testing.T) {
	tb := newTable(12)
	if len(tb.ctrl) != 2 {
		t.Fatalf("newTable(12) has %d groups; want 2", len(tb.ctrl))
	}
	keys := make([]digest, tb.max)
	for i := range keys {
		binary.LittleEndian.PutUint64(keys[i][:8], ^uint64(0)) // home: the last group
		keys[i][8] = 0x7f                                      // one tag for all
		keys[i][9] = byte(i + 1)
		if s := tb.find(keys[i]); s != nil {
			t.Fatalf("find(key %d) before adding it = %x; want nil", i, s.key)
		}
		tb.add(keys[i], uint64(i))
	}
	if tb.slots[0].key != keys[8] {
		t.Errorf("slot 0 holds %x; want the ninth key, wrapped around", tb.slots[0].key)
	}
	for i, k := range keys {
		if s := tb.find(k); s == nil || s.key != k || s.fp != uint64(i) {
			t.Errorf("find(key %d) = %v; want {%x %d}", i, s, k, i)
		}
	}
	absent := keys[0]
	absent[9] = 0xff
	if s := tb.find(absent); s != nil {
		t.Errorf("find(absent key) = %x; want nil", s.key)
	}
}

// Begin and Finish allocate nothing on their own: a table now and then, for thousands of keys.
func TestBeginDoesNotAllocate(t *testing.T) {
	w := New(time.Minute, 1<<30)
	long := strings.Repeat("k", 255)
	w.Begin(long, 1, t0)
	w.Finish(long, true, t0)
	keys := make([]string, 20000)
	for i := range keys {
		keys[i] = key(i)
	}
	i := 0
	cases := []struct {
		name string
		f    func()
	}{
		{"Replay", func() { w.Begin(long, 1, t0) }},
		{"Conflict", func() { w.Begin(long, 2, t0) }},
		{"First, Finish(false)", func() { w.Begin(keys[0], 1, t0); w.Finish(keys[0], false, t0) }},
		{"First, Finish(true)", func() {
			now := t0.Add(time.Duration(i) * time.Millisecond)
			w.Begin(keys[i], 1, now)
			w.Finish(keys[i], true, now)
			i++
		}},
	}
	for _, c := range cases {
		if got := testing.AllocsPerRun(10000, c.f); got != 0 {
			t.Errorf("%s: %v allocations a call; want 0", c.name, got)
		}
	}
}

// TestBytesPerKey measures the heap a window takes, per key, with 1,000,000 keys acknowledged
// in the last TTL (10,000,000 with IDEMPOTENCY_10M=1; 100,000 with -short or -race): in steady traffic over two TTLs, so
// that generations are dropped and replaced, and loaded at once, as from one big file at a
// restart. The heap is read after a GC each time a table is added or a generation dropped,
// so the peak is seen; per key means per key acknowledged in the last TTL (the window also
// holds up to a span's worth more, expired but not dropped yet).
func TestBytesPerKey(t *testing.T) {
	live := benchKeys()
	if testing.Short() || raceEnabled {
		live = 100_000
	}
	ttl := 10 * time.Minute
	step := ttl / time.Duration(live)
	for _, c := range []struct {
		name string
		keys int // keys added
		add  func(w *Window, i int)
	}{
		{"steady", 2 * live, func(w *Window, i int) {
			now := t0.Add(time.Duration(i) * step)
			w.Begin(key(i), 1, now)
			w.Finish(key(i), true, now)
		}},
		{"loaded", live, func(w *Window, i int) { w.Load(key(i), 1, t0) }},
	} {
		debug.FreeOSMemory() // what the last case freed is not counted as held from the OS
		base, baseSys := heapAlloc(), heapSys()
		w := New(ttl, 2*live)
		var peak uint64
		peakHeld, tables := 0, 0
		for i := 0; i < c.keys; i++ {
			c.add(w, i)
			if n := tableCount(w); n != tables {
				tables = n
				peak = max(peak, heapAlloc()-base)
			}
			peakHeld = max(peakHeld, w.Len())
		}
		end := heapAlloc() - base
		peak = max(peak, end)
		sys := heapSys() - baseSys
		t.Logf("%s: %d keys live, %d held (at most %d): %.1f bytes a key live (%.1f a key held), %.1f at the peak; heap from the OS %.1f",
			c.name, live, w.Len(), peakHeld, float64(end)/float64(live), float64(end)/float64(w.Len()), float64(peak)/float64(live), float64(sys)/float64(live))
		if perKey := float64(peak) / float64(live); perKey > BytesPerKey {
			t.Errorf("%s: %.1f bytes a key at the peak; want at most BytesPerKey = %d", c.name, perKey, BytesPerKey)
		}
		runtime.KeepAlive(w)
	}
}

// heapAlloc returns the bytes of live heap objects.
func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// heapSys returns the bytes of heap the runtime holds from the OS, in use or not.
func heapSys() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapSys - m.HeapReleased
}

// tableCount returns the number of tables w holds.
func tableCount(w *Window) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, g := range w.gens {
		n += len(g.tables)
	}
	return n
}

// benchKeys is the window's size in the benchmarks: 1,000,000 keys, or 10,000,000 with
// IDEMPOTENCY_10M=1.
func benchKeys() int {
	if os.Getenv("IDEMPOTENCY_10M") == "1" {
		return 10_000_000
	}
	return 1_000_000
}

// BenchmarkBegin measures a keyed POST's calls, Begin then Finish, in a window in steady
// traffic holding a million keys: each call adds a key and old ones expire.
func BenchmarkBegin(b *testing.B) {
	w, held, step := steadyWindow(b, 10*time.Minute, benchKeys())
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = key(held + i)
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)) - 1
			now := t0.Add(time.Duration(held+i) * step)
			if got := w.Begin(keys[i], 1, now); got != First {
				b.Errorf("Begin(%s) = %v; want First", keys[i], got)
				return
			}
			w.Finish(keys[i], true, now)
		}
	})
}

// BenchmarkBeginReplay measures a retry's Begin: a key found in the same window.
func BenchmarkBeginReplay(b *testing.B) {
	ttl := 10 * time.Minute
	w, held, step := steadyWindow(b, ttl, benchKeys())
	now := t0.Add(time.Duration(held) * step)
	live := int(ttl / step) // keys acknowledged in the last TTL: held-live..held-1
	keys := make([]string, live)
	for i := range keys {
		keys[i] = key(held - live + i)
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := keys[int(next.Add(7919))%live]
			if got := w.Begin(k, 1, now); got != Replay {
				b.Errorf("Begin(%s) = %v; want Replay", k, got)
				return
			}
		}
	})
}
