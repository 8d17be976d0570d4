package idempotency

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

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
	w := New(time.Minute)
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
	w := New(time.Minute)
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
	w := New(ttl)
	w.Begin("k", 1, t0)
	w.Finish("k", true, t0)
	if got := w.Begin("k", 1, t0.Add(ttl-time.Nanosecond)); got != Replay {
		t.Errorf("Begin just before the TTL = %v; want Replay", got)
	}
	if got := w.Begin("k", 2, t0.Add(ttl)); got != First {
		t.Errorf("Begin at the TTL = %v; want First (forgotten)", got)
	}
	w.Finish("k", true, t0.Add(ttl))
	if got := w.Begin("k", 2, t0.Add(ttl+time.Second)); got != Replay {
		t.Errorf("Begin after re-acknowledging = %v; want Replay", got)
	}
	if got := w.Begin("k", 1, t0.Add(ttl+time.Second)); got != Conflict {
		t.Errorf("Begin with the first event after re-acknowledging = %v; want Conflict", got)
	}
}

// An in-flight key is never expired, however long its write takes.
func TestInFlightDoesNotExpire(t *testing.T) {
	w := New(time.Minute)
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
	w := New(ttl)
	w.Load("k", 1, t0)
	w.Load("k", 1, t0.Add(50*time.Second)) // later file: expires at t0+110s
	if got := w.Begin("k", 1, t0.Add(90*time.Second)); got != Replay {
		t.Errorf("Begin after the first load expired but not the second = %v; want Replay", got)
	}
	if got := w.Begin("k", 1, t0.Add(110*time.Second)); got != First {
		t.Errorf("Begin after both expired = %v; want First", got)
	}
}

func TestLoad(t *testing.T) {
	ttl := 10 * time.Minute
	w := New(ttl)
	now := t0
	w.Load("old", 7, now.Add(-ttl-time.Second)) // in time order: see TestLoadOutOfOrderNeverEarly
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
	if got := w.Begin("recent", 7, now.Add(9*time.Minute)); got != First {
		t.Errorf("Begin after the newer time's window = %v; want First", got)
	}
}

// Keys loaded out of order may expire late, but never early.
func TestLoadOutOfOrderNeverEarly(t *testing.T) {
	ttl := time.Minute
	w := New(ttl)
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
	if got := w.Begin("late", 1, t0.Add(90*time.Second)); got != First {
		t.Errorf("Begin(late) at +90s = %v; want First", got)
	}
	if got := w.Begin("early", 1, t0.Add(90*time.Second)); got != First {
		t.Errorf("Begin(early) at +90s = %v; want First", got)
	}
}

// Many keys expiring exercises the queue's compaction.
func TestManyKeysExpire(t *testing.T) {
	ttl := time.Minute
	w := New(ttl)
	const n = 5000
	for i := 0; i < n; i++ {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		k := fmt.Sprint(i)
		if got := w.Begin(k, uint64(i), at); got != First {
			t.Fatalf("Begin(%s) = %v; want First", k, got)
		}
		w.Finish(k, true, at)
	}
	if got := w.Len(); got != n {
		t.Fatalf("Len() = %d; want %d", got, n)
	}
	// Half have expired.
	mid := t0.Add(ttl + n/2*time.Millisecond)
	if got := w.Begin("new", 1, mid); got != First {
		t.Fatalf("Begin(new) = %v; want First", got)
	}
	if got := w.Begin(fmt.Sprint(n/2-1), uint64(n/2-1), mid); got != First {
		t.Errorf("Begin(expired key) = %v; want First", got)
	}
	if got := w.Begin(fmt.Sprint(n/2+1), uint64(n/2+1), mid); got != Replay {
		t.Errorf("Begin(live key) = %v; want Replay", got)
	}
	// All have expired; the two in-flight keys stay.
	end := t0.Add(ttl + n*time.Millisecond)
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
	w := New(time.Minute)
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
